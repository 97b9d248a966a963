"""The quick start's main job, timed: ``topodnn demo`` (LeNet on the embedded MNIST sample).

Runs ``python -m topodnn demo --save-path DIR`` in a fresh folder (so nothing is reused), then
reads what the run recorded: the training time of every epoch (``history_trl0.json``) and, for
each epoch with topology, the graph and persistence times (``summaries_trl0.json``). Writes the
"## Demo" section of benchmarks/RESULTS.md.

    PYTHONPATH=python .venv/bin/python benchmarks/bench_demo.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import replace_section  # noqa: E402

from topodnn import results  # noqa: E402

SECTION = "## Demo"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "topodnn", "demo", "--save-path", tmp, "--no-progress"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"topodnn demo failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        folder = results.results_dir(tmp, "lenet", "mnist")
        hist = results.read_history(folder, 0)
        summ = results.read_summaries(folder, 0)
        pngs = sorted(p.name for p in folder.glob("*.png"))
    train = [t for e, t in zip(hist.epochs, hist.epoch_time_s) if e > 0]
    rows = sorted(((int(e), v) for e, v in summ["epochs"].items()), key=lambda x: x[0])
    lines = [
        SECTION, "",
        "`PYTHONPATH=python .venv/bin/python benchmarks/bench_demo.py`: `topodnn demo` in a fresh folder "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"1-minute load {os.getloadavg()[0]:.1f} at the end). LeNet on the 4,000 embedded training "
        "digits, 6 epochs, lr 0.01; topology of 1,000 test digits, H0..H2, eps <= 0.3, one process.", "",
        f"- whole run (training, topology at {len(rows)} epochs, plots, table): {wall:.0f} s",
        f"- training: {statistics.median(train):.2f} s per epoch (median of {len(train)}; min "
        f"{min(train):.2f}, max {max(train):.2f}), test accuracy {100 * hist.test_acc[-1]:.1f} % "
        "after the last epoch",
        f"- PNGs written: {', '.join(pngs)}", "",
        "| epoch | nodes | graph (s) | persistence (s) | test acc | H1 pairs | H2 pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for e, v in rows:
        d = v["dims"]
        lines.append(f"| {e} | {v.get('n_nodes', '-')} | {v.get('time_graph_s', float('nan')):.2f} | "
                     f"{v.get('time_persistence_s', float('nan')):.2f} | {100 * v['test_acc']:.1f} % | "
                     f"{d.get('1', {}).get('n_pairs', '-')} | {d.get('2', {}).get('n_pairs', '-')} |")
    lines.append("")
    lines.append("Graph = forward pass of 1,000 digits through hooks + thresholded correlation graph; "
                 "persistence = `topodnn.persistence` on it. Pair counts after the 0.02 persistence filter.")
    replace_section(SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
