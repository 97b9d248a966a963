"""The quick start's main job, timed: ``topodnn demo`` (LeNet on the embedded MNIST sample).

Runs ``python -m topodnn demo --save-path DIR --no-progress`` in a fresh folder (nothing is
reused) as a child process of this script (which only orchestrates, see benchmarks/harness.py),
then reads what the run recorded: the training time of every epoch (``history_trl0.json``) and,
for each epoch with topology, the graph and persistence times (``summaries_trl0.json``). Wall
time and peak memory (``ru_maxrss`` of the demo's process, from ``wait4``) are the parent's
view of the child. One JSON file per run in benchmarks/results/.

    PYTHONPATH=python python benchmarks/bench_demo.py
    PYTHONPATH=python python benchmarks/bench_demo.py --epochs 1   # checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def read_demo_folder(folder: Path) -> Dict[str, Any]:
    """What the demo recorded: per-epoch training times, topology times and pair counts, PNGs."""
    hist = json.loads((folder / "history_trl0.json").read_text())
    summ = json.loads((folder / "summaries_trl0.json").read_text())
    epochs = []
    for e, v in sorted(((int(e), v) for e, v in summ["epochs"].items()), key=lambda x: x[0]):
        dims = v.get("dims", {})
        epochs.append({"epoch": e, "nodes": v.get("n_nodes"), "graph_s": v.get("time_graph_s"),
                       "persistence_s": v.get("time_persistence_s"), "test_acc": v.get("test_acc"),
                       "pairs": {q: d.get("n_pairs") for q, d in dims.items()}})
    train = [t for e, t in zip(hist["epoch"], hist["epoch_time_s"]) if e > 0]
    return {"train_epoch_s": train, "test_acc_last": hist["test_acc"][-1], "topology_epochs": epochs,
            "pngs": sorted(p.name for p in folder.glob("*.png"))}


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--epochs", type=int, help="passed to `topodnn demo --epochs` (default: the demo's)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    args = ap.parse_args(argv)
    harness.require_topodnn()
    run = harness.BenchmarkRun("demo", settings={"epochs": args.epochs, "timeout_s": args.timeout},
                               results_dir=Path(args.results_dir))
    save = run.tmp / "demo"
    cmd = [sys.executable, "-m", "topodnn", "demo", "--save-path", str(save), "--no-progress"]
    if args.epochs is not None:
        cmd += ["--epochs", str(args.epochs)]
    run.child(cmd, label="topodnn demo", timeout_s=args.timeout, env=harness.mpi_environment(),
              parse=lambda _stdout: read_demo_folder(save / "lenet_mnist"), meta={"kind": "demo"})
    path = run.write()
    run.cleanup()
    import report

    print(report.render_demo(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
