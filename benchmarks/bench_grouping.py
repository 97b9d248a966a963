"""Node grouping: how grouped functional graphs' summaries differ from full-resolution ones, and
what grouping gives on the big networks.

Two parts, each step its own fresh process started by this script (which only orchestrates, see
benchmarks/harness.py):

``lenet``
    LeNet trained by ``topodnn.training.train`` on the embedded MNIST sample (4,000 digits,
    lr 0.01, ``--lenet-epochs`` epochs, trial 0); then, for every grouping of ``--lenet-groups``
    (``units`` = full resolution, 1,820 nodes) and every checkpoint epoch, the topology H0..H2
    (ε = (1 − |corr|)/2 ≤ 0.3) of the functional graph over the first 1000 held-out digits
    (``topodnn.pipeline.model_topology(..., groups=...)``). Each child reports, per epoch and
    dimension, the summaries of ``topodnn.summaries.summarise`` (pairs with persistence ≤ 0.02
    dropped), pairs per node and the Betti curve on a 61-point grid of [0, 0.3]. Once every child
    has finished, the parent compares every grouping with ``units``: per dimension and summary, the
    Spearman correlation across epochs (does the grouped summary order the epochs as the full one
    does?), the ratio grouped / full of each summary (median over epochs), and per epoch the
    Pearson correlation of the two Betti curves (the same shape, whatever the scale?).
``big``
    Each network of ``--big-nets`` (32x32 single-channel inputs: the embedded digits zero-padded
    as ``bench_big.py`` does) trained ``--big-epochs`` epoch(s) (SGD lr 0.01, momentum 0.9, weight
    decay 5e-4, batch 128, seed 0), then for each grouping of ``--big-groups`` the grouped
    functional graph (nodes, edges) and its H0..H2: whether it completes, pair counts, times.

Times are recorded as measured; on a shared machine they say little (see benchmarks/README.md).
One JSON file per run in benchmarks/results/ (``grouping_<UTC>.json``).

    PYTHONPATH=python python benchmarks/bench_grouping.py
    PYTHONPATH=python python benchmarks/bench_grouping.py lenet --lenet-epochs 1 \\
        --lenet-groups units channel --results-dir /tmp/bench          # checks the script
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

MAX_DIM = 2
MAX_EPSILON = 0.3
N_SAMPLES = 1000
MIN_PERSISTENCE = 0.02
GRID = 61  # Betti curves on linspace(0, MAX_EPSILON, GRID)
STATS = ("life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area", "pairs_per_node")


def _finite(x: Any) -> Any:
    """JSON-safe number: NaN and inf as None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ----------------------------------------------------------------------------------------------
# Children


def _topology_record(mt: Any) -> Dict[str, Any]:
    import numpy as np

    from topodnn.summaries import betti_curve, filter_pairs, summarise_diagrams

    summ = summarise_diagrams(mt.diagrams, min_persistence=MIN_PERSISTENCE, max_epsilon=MAX_EPSILON)
    dims = {}
    for q, s in summ.items():
        kept = filter_pairs(mt.diagrams[q], MIN_PERSISTENCE)
        _, beta = betti_curve(kept, GRID, max_epsilon=MAX_EPSILON)
        dims[str(q)] = {**{k: _finite(float(v)) if isinstance(v, float) else v for k, v in s.items()},
                        "pairs_per_node": s["n_pairs"] / mt.n_nodes,
                        "pairs_unfiltered": int(len(mt.diagrams[q])),
                        "betti_curve": [int(b) for b in beta]}
    return {"nodes": mt.n_nodes, "edges": mt.n_edges, "nodes_per_layer": mt.info["nodes_per_layer"],
            "constant_nodes": int(sum(mt.info["constant_units"].values())),
            "graph_s": mt.timings["graph"], "persistence_s": mt.timings["persistence"],
            "pairs": [int(len(d)) for d in mt.diagrams],
            "essential": [int(np.isinf(d[:, 1]).sum()) for d in mt.diagrams], "dims": dims}


def child_train_lenet(epochs: int, save: str) -> None:
    import torch

    from topodnn import training

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    hist = training.train("lenet", "mnist", trial=0, lr=0.01, n_epochs=epochs, save_path=save,
                          progress=False)
    harness.emit({"epochs": hist["epoch"], "train_acc": hist["train_acc"], "test_acc": hist["test_acc"],
                  "train_s": time.perf_counter() - t0})


def child_lenet(groups: str, save: str, epochs: List[int]) -> None:
    import torch

    from topodnn import datasets, pipeline, training

    torch.set_num_threads(2)
    _, test, _ = datasets.load_dataset("mnist")
    inputs = test.tensors[0][:N_SAMPLES]
    folder = training.results_dir(save, "lenet", "mnist")
    per_epoch = {}
    for e in epochs:
        model = training.load_model(training.checkpoint_path(folder, 0, e))
        mt = pipeline.model_topology(model, inputs, max_dim=MAX_DIM, max_epsilon=MAX_EPSILON,
                                     n_samples=N_SAMPLES, groups=groups, progress=False)
        per_epoch[str(e)] = _topology_record(mt)
        print(f"lenet {groups} epoch {e}: {mt.n_nodes} nodes, {mt.n_edges} edges, pairs "
              f"{per_epoch[str(e)]['pairs']}", file=sys.stderr, flush=True)
    harness.emit({"net": "lenet", "groups": groups, "epochs": per_epoch,
                  "peak_mib": harness.self_peak()["ru_maxrss_mib"]})


def child_big(net: str, epochs: int, groupings: List[str]) -> None:
    import torch

    from bench_big import padded_mnist
    from topodnn import networks, pipeline

    torch.set_num_threads(2)
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = padded_mnist()
    model = networks.get_network(net, in_channels=1, input_size=32)
    units = sum(networks.count_nodes(model, (1, 32, 32)).values())
    t0 = time.perf_counter()
    if epochs:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        g = torch.Generator().manual_seed(0)
        model.train()
        for ep in range(epochs):
            perm = torch.randperm(len(ytr), generator=g)
            for i in range(0, len(ytr), 128):
                idx = perm[i:i + 128]
                opt.zero_grad()
                loss = torch.nn.functional.nll_loss(model(xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
            print(f"{net}: epoch {ep + 1}/{epochs} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xte[i:i + 100]).argmax(1) == yte[i:i + 100]).sum())
                      for i in range(0, len(yte), 100))
    out: Dict[str, Any] = {"net": net, "epochs": epochs, "units": int(units), "train_s": train_s,
                           "test_acc": correct / len(yte), "groupings": {}}
    for groups in groupings:
        mt = pipeline.model_topology(model, xte, max_dim=MAX_DIM, max_epsilon=MAX_EPSILON,
                                     n_samples=N_SAMPLES, groups=groups, progress=False)
        rec = _topology_record(mt)
        rec["peak_mib_so_far"] = harness.self_peak()["ru_maxrss_mib"]
        out["groupings"][groups] = rec
        print(f"{net} {groups}: {mt.n_nodes} nodes, {mt.n_edges} edges, pairs {rec['pairs']}, graph "
              f"{mt.timings['graph']:.1f} s, persistence {mt.timings['persistence']:.1f} s",
              file=sys.stderr, flush=True)
    out["peak_mib"] = harness.self_peak()["ru_maxrss_mib"]
    harness.emit(out)


# ----------------------------------------------------------------------------------------------
# Comparison (parent, after every child)


def _spearman(a: List[Optional[float]], b: List[Optional[float]]) -> Optional[float]:
    """topodnn.gap.spearman over the epochs where both have a value; None for fewer than 3 or a
    constant series."""
    from topodnn.gap import spearman

    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 3:
        return None
    x, y = zip(*pairs)
    r = spearman(x, y)
    return None if math.isnan(r) else r


def compare_lenet(full: Dict[str, Any], grouped: Dict[str, Any]) -> Dict[str, Any]:
    """Spearman across epochs, median ratios and per-epoch Betti-curve correlations."""
    import numpy as np

    epochs = sorted(set(full["epochs"]) & set(grouped["epochs"]), key=int)
    out: Dict[str, Any] = {"groups": grouped["groups"], "epochs": [int(e) for e in epochs], "dims": {}}
    for q in map(str, range(MAX_DIM + 1)):
        d: Dict[str, Any] = {"spearman": {}, "median_ratio": {}, "betti_curve_pearson": {}}
        for stat in STATS:
            f = [full["epochs"][e]["dims"][q][stat] for e in epochs]
            g = [grouped["epochs"][e]["dims"][q][stat] for e in epochs]
            d["spearman"][stat] = _spearman(f, g)
            ratios = [y / x for x, y in zip(f, g) if x not in (None, 0) and y is not None]
            d["median_ratio"][stat] = float(np.median(ratios)) if ratios else None
        for e in epochs:
            bf = np.array(full["epochs"][e]["dims"][q]["betti_curve"], dtype=float)
            bg = np.array(grouped["epochs"][e]["dims"][q]["betti_curve"], dtype=float)
            ok = np.ptp(bf) > 0 and np.ptp(bg) > 0
            d["betti_curve_pearson"][e] = float(np.corrcoef(bf, bg)[0, 1]) if ok else None
        out["dims"][q] = d
    return out


# ----------------------------------------------------------------------------------------------
# Parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("parts", nargs="*", default=["lenet", "big"],
                    help="which parts to run: lenet, big (default both)")
    ap.add_argument("--lenet-epochs", type=int, default=8, help="LeNet training epochs (default 8)")
    ap.add_argument("--lenet-at", type=int, nargs="+", default=None,
                    help="epochs whose topology is compared (default every epoch 0..--lenet-epochs)")
    ap.add_argument("--lenet-groups", nargs="+", default=["units", "channel", "chunk:4", "chunk:16"],
                    help="groupings of the LeNet study; 'units' (the reference) is always added")
    ap.add_argument("--big-nets", nargs="+", default=["alexnet", "resnet18", "vgg16"])
    ap.add_argument("--big-epochs", type=int, default=1)
    ap.add_argument("--big-groups", nargs="+", default=["channel", "nodes:2000"])
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per child process")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child-train-lenet", nargs=2, metavar=("EPOCHS", "SAVE"), help=argparse.SUPPRESS)
    ap.add_argument("--child-lenet", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    ap.add_argument("--child-big", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_train_lenet:
        child_train_lenet(int(args.child_train_lenet[0]), args.child_train_lenet[1])
        return
    if args.child_lenet:
        groups, save, *epochs = args.child_lenet
        child_lenet(groups, save, [int(e) for e in epochs])
        return
    if args.child_big:
        net, epochs, *groupings = args.child_big
        child_big(net, int(epochs), groupings)
        return

    bad = [p for p in args.parts if p not in ("lenet", "big")]
    if bad:
        raise SystemExit(f"unknown part(s) {bad}; choose from lenet, big")
    harness.require_topodnn()
    at = sorted(set(args.lenet_at if args.lenet_at is not None else range(args.lenet_epochs + 1)))
    if min(at) < 0 or max(at) > args.lenet_epochs:
        raise SystemExit(f"--lenet-at must lie in 0..{args.lenet_epochs}")
    lenet_groups = ["units"] + [g for g in args.lenet_groups if g != "units"]
    env = harness.mpi_environment()
    me = os.path.abspath(__file__)
    run = harness.BenchmarkRun("grouping", settings={
        "parts": args.parts, "lenet_epochs": args.lenet_epochs, "lenet_at": at,
        "lenet_groups": lenet_groups, "big_nets": args.big_nets, "big_epochs": args.big_epochs,
        "big_groups": args.big_groups, "max_dim": MAX_DIM, "max_epsilon": MAX_EPSILON,
        "n_samples": N_SAMPLES, "min_persistence": MIN_PERSISTENCE, "betti_grid": GRID,
        "timeout_s": args.timeout}, results_dir=Path(args.results_dir))
    run.notes.append("times were taken on the machine as it was (see load_before/load_after); on a "
                     "shared machine they are no measurement of speed")
    lenet: Dict[str, Any] = {}
    if "lenet" in args.parts:
        save = run.tmp / "lenet"
        trained = run.child(harness.python_child(me, "--child-train-lenet", args.lenet_epochs, save),
                            label=f"lenet: train {args.lenet_epochs} epochs", timeout_s=args.timeout,
                            env=env, meta={"kind": "train", "net": "lenet"})
        if trained["ok"]:
            for groups in lenet_groups:
                rec = run.child(harness.python_child(me, "--child-lenet", groups, save, *at),
                                label=f"lenet: topology, groups {groups}", timeout_s=args.timeout,
                                env=env, meta={"kind": "lenet", "groups": groups})
                if rec["ok"]:
                    lenet[groups] = rec["result"]
        else:
            run.notes.append(f"lenet: training failed ({trained['failure']})")
    if "big" in args.parts:
        for net in args.big_nets:
            run.child(harness.python_child(me, "--child-big", net, args.big_epochs, *args.big_groups),
                      label=f"{net}: train {args.big_epochs} epoch(s), grouped topology",
                      timeout_s=args.timeout, env=env, meta={"kind": "big", "net": net})
    # every child has finished
    if "units" in lenet:
        for groups, rec in lenet.items():
            if groups != "units":
                run.comparisons.append(compare_lenet(lenet["units"], rec))
    path = run.write()
    run.cleanup()
    print(render(run.record))
    print(f"raw results: {path}")


def render(record: Dict[str, Any]) -> str:
    """A short text table of a record (for the terminal)."""
    lines = []
    for cmp in record.get("comparisons", []):
        lines.append(f"LeNet, groups {cmp['groups']} vs units, epochs {cmp['epochs']}:")
        for q, d in cmp["dims"].items():
            rho = ", ".join(f"{k} {v:+.2f}" if v is not None else f"{k} -" for k, v in d["spearman"].items())
            curve = [v for v in d["betti_curve_pearson"].values() if v is not None]
            med = sorted(curve)[len(curve) // 2] if curve else None
            lines.append(f"  H{q} Spearman across epochs: {rho}; Betti-curve Pearson median "
                         f"{'-' if med is None else f'{med:.2f}'}")
    for r in record.get("runs", []):
        if r["meta"].get("kind") == "big":
            if not r["ok"]:
                lines.append(f"{r['meta']['net']}: {r['failure']}")
                continue
            res = r["result"]
            for g, t in res["groupings"].items():
                lines.append(f"{res['net']} ({res['units']} units) groups {g}: {t['nodes']} nodes, {t['edges']} "
                             f"edges, pairs {t['pairs']}, graph {t['graph_s']:.1f} s, persistence "
                             f"{t['persistence_s']:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
