"""Functional-graph construction: time and peak memory against one dense matrix product.

Workloads (activation matrices synthesised with the shapes of the real networks; correlation
structure: ReLU of clustered factors + shared low-rank mixing + noise, about 4 % of the pairs at
|corr| >= 0.4 like a trained network's graph):

* ``lenet``     1000 samples x 1,820 units  -> dense 1 - |corr| matrix (float64 and float32
                products), and the same through a LeNet forward pass (``functional_graph`` end
                to end).
* ``resnet18``  1000 x 25,600 -> sparse graph at threshold 0.6 (= max_epsilon 0.3), float32.
* ``vgg16``     1000 x 36,864 -> sparse graph at threshold 0.6, float32.
* ``tiny``      1000 x 200, both paths: checks the script, measures nothing.

Peer, in the same run: one dense float32 product ``X^T Y`` of the same shape (numpy/OpenBLAS
sgemm with two distinct operands; numpy would pick ssyrk for ``X.T @ X``, which crashes in this
OpenBLAS at n = 36,864), i.e. every correlation in one BLAS call with no thresholding. Each
measurement runs in its own fresh process started by this script, which only orchestrates
(benchmarks/harness.py), so that ``ru_maxrss`` is that measurement's own peak (the synthetic
input included; ``input_rss_mib`` is the resident set once the input exists). Small workloads:
best of 5 after the first call; big ones: one call. One JSON file per run in benchmarks/results/.

    PYTHONPATH=python python benchmarks/bench_graph.py            # lenet resnet18 vgg16
    PYTHONPATH=python python benchmarks/bench_graph.py tiny       # checks the script
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SHAPES = {"lenet": (1000, 1820), "resnet18": (1000, 25600), "vgg16": (1000, 36864), "tiny": (1000, 200)}
PLANS = {"lenet": ["gemm32", "ours-dense", "ours-dense32", "lenet-forward"],
         "resnet18": ["gemm32", "ours-sparse"], "vgg16": ["gemm32", "ours-sparse"],
         "tiny": ["gemm32", "ours-dense", "ours-dense32", "ours-sparse", "lenet-forward"]}
THRESHOLD = 0.6
SMALL = 5000  # below this many units: best of 5 calls after the first


def synth_activations(m: int, n: int, seed: int = 0):
    """ReLU(cluster factor + low-rank mixing + noise), float32, (m, n)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_clusters = 24  # within-cluster pairs ~ 1/24 of all pairs
    cluster = rng.integers(0, n_clusters, size=n)
    F = rng.standard_normal((m, n_clusters), dtype=np.float32)
    G = rng.standard_normal((m, 8), dtype=np.float32)
    H = 0.35 * rng.standard_normal((8, n), dtype=np.float32)
    X = rng.standard_normal((m, n), dtype=np.float32)
    X *= 0.6
    X += F[:, cluster] * rng.uniform(1.2, 2.0, size=n).astype(np.float32)
    X += G @ H
    X += rng.uniform(-0.5, 0.5, size=n).astype(np.float32)  # per-unit bias: some ReLUs mostly off
    np.maximum(X, 0.0, out=X)
    X[:, rng.choice(n, size=n // 200, replace=False)] = 0.0  # 0.5 % dead units
    return X


def timings(reps: int, f: Callable[[], Any]) -> Dict[str, Any]:
    """First call, then ``reps`` more: ``first_s``, ``repeat_s``, ``seconds`` (best of the
    further calls, or the first if there are none)."""
    t = time.perf_counter()
    f()
    first = time.perf_counter() - t
    more = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        more.append(time.perf_counter() - t)
    return {"first_s": first, "repeat_s": more, "seconds": min(more) if more else first}


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def child(kind: str, workload: str) -> Dict[str, Any]:
    import numpy as np

    m, n = SHAPES[workload]
    X = synth_activations(m, n)
    out: Dict[str, Any] = {"workload": workload, "kind": kind, "m": m, "n": n,
                           "input_rss_mib": harness.self_peak()["ru_maxrss_mib"]}
    reps = 5 if n < SMALL else 0
    if kind in ("ours-dense", "ours-dense32", "ours-sparse"):
        t = time.perf_counter()
        from topodnn.graph import correlation_distances
        out["import_s"] = time.perf_counter() - t
    if kind == "ours-dense":
        out.update(timings(reps, lambda: correlation_distances(X, dtype=np.float64, progress=False)))
        out["result"] = f"dense ({n}, {n}) float64"
    elif kind == "ours-dense32":
        out.update(timings(reps, lambda: correlation_distances(X, dtype=np.float32, progress=False)))
        D = correlation_distances(X, dtype=np.float32, progress=False)
        D64 = correlation_distances(X, dtype=np.float64, progress=False)
        out["max_abs_diff_to_float64"] = float(np.abs(D - D64).max())
        out["result"] = f"dense float64 from float32 products; max |d32-d64| = {out['max_abs_diff_to_float64']:.2e}"
    elif kind == "ours-sparse":
        box = {}

        def call():
            box["S"] = correlation_distances(X, THRESHOLD, dtype=np.float32, progress=False, copy=False)

        out.update(timings(reps, call))
        e = box["S"].nnz // 2
        out["edges"] = int(e)
        out["result"] = f"{e:,} edges ({e / (n * (n - 1) / 2):.1%} of pairs)"
    elif kind == "gemm32":
        Y = X.copy()  # a distinct operand: numpy would call syrk for X.T @ X, and OpenBLAS's
        # ssyrk segfaults at n = 36,864 (output > 4 GiB); gemm is the plain full product
        need = 4 * n * n + (2 << 30)
        if mem_available() > need:
            out.update(timings(reps, lambda: X.T @ Y))
            out["result"] = f"one sgemm, output ({n}, {n}) float32"
        else:  # the machine is shared: same flops in 4 column slabs rather than risk the OOM killer
            slabs = np.array_split(np.arange(n), 4)
            C = np.empty((n, len(slabs[0])), dtype=np.float32)

            def call():
                for s in slabs:
                    np.matmul(X.T, Y[:, s[0]: s[-1] + 1], out=C[:, : len(s)])

            out.update(timings(0, call))
            out["result"] = f"sgemm in 4 column slabs (memory was short), total {n}x{n}"
            out["slabs"] = 4
    elif kind == "lenet-forward":
        out.update(lenet_end_to_end())
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["peak_mib"] = harness.self_peak()["ru_maxrss_mib"]
    return out


def lenet_end_to_end() -> Dict[str, Any]:
    """LeNet (topodnn.networks, untrained) on 1000 random 28x28 inputs: forward + dense graph,
    timed after one warm-up call on 200 inputs."""
    import torch

    from topodnn.graph import functional_graph
    from topodnn.networks import get_network

    torch.manual_seed(0)
    model = get_network("lenet")
    x = (torch.rand(1000, 1, 28, 28) - 0.1307) / 0.3081
    t = time.perf_counter()
    functional_graph(model, x[:200], progress=False)  # warm-up
    warm = time.perf_counter() - t
    t = time.perf_counter()
    D, info = functional_graph(model, x, progress=False, return_info=True)
    total = time.perf_counter() - t
    return {
        "seconds": total, "warm_up_s": warm, "warm_up": "first call, on 200 of the inputs",
        "forward_s": info["timings"]["activations"], "correlations_s": info["timings"]["correlations"],
        "result": f"{D.shape[0]} nodes; forward {info['timings']['activations']:.3f} s, "
        f"correlations {info['timings']['correlations']:.3f} s",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("workloads", nargs="*", default=["lenet", "resnet18", "vgg16"],
                    help=f"any of {', '.join(SHAPES)} (default lenet resnet18 vgg16)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child process")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        harness.emit(child(*args.child))
        return
    for w in args.workloads:
        if w not in SHAPES:
            raise SystemExit(f"unknown workload {w!r}; choose from {', '.join(SHAPES)}")
    harness.require_topodnn()
    me = os.path.abspath(__file__)
    run = harness.BenchmarkRun("graph", settings={
        "workloads": args.workloads, "threshold": THRESHOLD, "timeout_s": args.timeout,
        "shapes": {w: SHAPES[w] for w in args.workloads}, "plans": {w: PLANS[w] for w in args.workloads}},
        results_dir=Path(args.results_dir))
    for w in args.workloads:
        for kind in PLANS[w]:
            run.child(harness.python_child(me, "--child", kind, w), label=f"{w}: {kind}",
                      timeout_s=args.timeout, meta={"kind": "graph", "workload": w, "what": kind})
    path = run.write()
    run.cleanup()
    import report

    print(report.render_graph(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
