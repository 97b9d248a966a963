"""Functional-graph construction: time and peak memory against one dense matrix product.

Workloads (activation matrices synthesised with the shapes of the real networks; correlation
structure: ReLU of clustered factors + shared low-rank mixing + noise, about 4 % of the pairs at
|corr| >= 0.4 like a trained network's graph):

* ``lenet``     1000 samples x 1,820 units  -> dense 1 - |corr| matrix (float64), and the same
                through a LeNet forward pass (``functional_graph`` end to end).
* ``resnet18``  1000 x 25,600 -> sparse graph at threshold 0.6 (= max_epsilon 0.3), float32.
* ``vgg16``     1000 x 36,864 -> sparse graph at threshold 0.6, float32.

Peer, in the same run: one dense float32 product ``X^T X`` of the same shape (numpy/OpenBLAS
sgemm with two distinct operands; numpy would pick ssyrk for ``X.T @ X``, which crashes in this
OpenBLAS at n = 36,864), i.e. every correlation in one BLAS call with no thresholding. Each measurement runs in its own process so that
``ru_maxrss`` is its own peak.

    PYTHONPATH=python .venv/bin/python benchmarks/bench_graph.py            # all workloads
    PYTHONPATH=python .venv/bin/python benchmarks/bench_graph.py lenet vgg16
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SHAPES = {"lenet": (1000, 1820), "resnet18": (1000, 25600), "vgg16": (1000, 36864)}
THRESHOLD = 0.6


def synth_activations(m: int, n: int, seed: int = 0) -> np.ndarray:
    """ReLU(cluster factor + low-rank mixing + noise), float32, (m, n)."""
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


def best_of(reps: int, f) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(kind: str, workload: str) -> dict:
    from topodnn.graph import correlation_distances

    m, n = SHAPES[workload]
    X = synth_activations(m, n)
    base = maxrss_bytes()
    out: dict = {"workload": workload, "kind": kind, "m": m, "n": n, "input_rss": base}
    reps = 5 if n < 5000 else 1  # small workloads: best of 5 (BLAS warm-up, shared machine)
    if kind == "ours-dense":
        out["seconds"] = best_of(reps, lambda: correlation_distances(X, dtype=np.float64,
                                                                     progress=False))
        out["result"] = f"dense ({n}, {n}) float64"
    elif kind == "ours-dense32":
        out["seconds"] = best_of(reps, lambda: correlation_distances(X, dtype=np.float32,
                                                                     progress=False))
        D = correlation_distances(X, dtype=np.float32, progress=False)
        D64 = correlation_distances(X, dtype=np.float64, progress=False)
        out["result"] = f"dense float64 from float32 products; max |d32-d64| = {np.abs(D - D64).max():.2e}"
    elif kind == "ours-sparse":
        t = time.perf_counter()
        S = correlation_distances(X, THRESHOLD, dtype=np.float32, progress=False, copy=False)
        out["seconds"] = time.perf_counter() - t
        e = S.nnz // 2
        out["result"] = f"{e:,} edges ({e / (n * (n - 1) / 2):.1%} of pairs)"
    elif kind == "gemm32":
        Y = X.copy()  # a distinct operand: numpy would call syrk for X.T @ X, and OpenBLAS's
        # ssyrk segfaults at n = 36,864 (output > 4 GiB); gemm is the plain full product
        need = 4 * n * n + (2 << 30)
        if mem_available() > need:
            out["seconds"] = best_of(reps, lambda: X.T @ Y)
            out["result"] = f"one sgemm, output ({n}, {n}) float32"
        else:  # the machine is shared: same flops in 4 column slabs rather than risk the OOM killer
            slabs = np.array_split(np.arange(n), 4)
            C = np.empty((n, len(slabs[0])), dtype=np.float32)
            t = time.perf_counter()
            for s in slabs:
                np.matmul(X.T, Y[:, s[0] : s[-1] + 1], out=C[:, : len(s)])
            out["seconds"] = time.perf_counter() - t
            out["result"] = f"sgemm in 4 column slabs (memory was short), total {n}x{n}"
    elif kind == "lenet-forward":
        out.update(lenet_end_to_end())
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["peak_rss"] = maxrss_bytes()
    out["load1"] = os.getloadavg()[0]
    return out


def lenet_end_to_end() -> dict:
    """LeNet (topodnn.networks, untrained) on 1000 random 28x28 inputs: forward + dense graph."""
    import torch

    from topodnn.graph import functional_graph
    from topodnn.networks import get_network

    torch.manual_seed(0)
    model = get_network("lenet")
    x = (torch.rand(1000, 1, 28, 28) - 0.1307) / 0.3081
    functional_graph(model, x[:200], progress=False)  # warm-up
    t = time.perf_counter()
    D, info = functional_graph(model, x, progress=False, return_info=True)
    total = time.perf_counter() - t
    return {
        "seconds": total,
        "result": f"{D.shape[0]} nodes; forward {info['timings']['activations']:.3f} s, "
        f"correlations {info['timings']['correlations']:.3f} s",
    }


def run_child(kind: str, workload: str) -> dict:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, workload],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"{kind} {workload} failed (exit status {proc.returncode}; -9 = killed, e.g. out of "
            f"memory):\n{proc.stderr}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1], argv[2])))
        return
    workloads = argv or ["lenet", "resnet18", "vgg16"]
    print(f"threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"cpus={os.cpu_count()}, threshold={THRESHOLD}")
    head = ("workload", "shape", "what", "seconds", "vs gemm32", "peak RSS GiB", "load1", "result")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head), flush=True)
    for w in workloads:
        if w == "lenet":
            plan = ["gemm32", "ours-dense", "ours-dense32", "lenet-forward"]
        else:
            plan = ["gemm32", "ours-sparse"]
        peer = None
        for k in plan:
            r = run_child(k, w)
            if k == "gemm32":
                peer = r["seconds"]
            print(
                f"| {w} | {r['m']}x{r['n']} | {k} | {r['seconds']:.3f} | "
                f"{r['seconds'] / peer:.2f}x | {r['peak_rss'] / 2**30:.2f} | {r['load1']:.1f} | "
                f"{r['result']} |",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
