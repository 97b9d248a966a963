"""Benchmark workloads: the functional graph of a LeNet trained on real MNIST digits, and a tiny one.

Built with topodnn's own pipeline: LeNet (1820 units: relu1 1440, relu2 320, relu3 50, output 10)
trained by :func:`topodnn.training.train` on the embedded MNIST sample (4,000 digits, lr 0.01,
5 epochs, trial 0), then :func:`topodnn.functional_graph` over the first 1000 held-out digits.
The distance is the original's eps = (1 - |corr|) / 2 (DIPHA halves the edge 1 - |corr|).

Workload A: threshold 0.3 (|corr| >= 0.4, the original's cut); workload B: threshold 0.42. Both
H0..H2. Workload ``tiny`` (for checking the benchmark scripts, not for measuring): the same
distance between 200 synthetic units (tanh of 20 shared factors plus noise, 1000 samples, seed
0), threshold 0.38, H0..H2. Each matrix is built once, in its own process (training and torch
must not stay in anyone's peak memory), and cached in benchmarks/.cache/ (or
``$TOPODNN_BENCH_CACHE``).

``python benchmarks/workloads.py`` prints the edge counts; ``--describe NAME`` prints one
``BENCH_RESULT`` line (size, edges, threshold, what it is); ``--dipha-file NAME PATH`` writes the
original's sparse DIPHA input of a workload (type 8, edge length 1 - |corr| <= 2 * threshold),
the file it gave ``dipha --upper_dim 3 --dual``.

This module imports numpy only inside the functions that need it: benchmark parents import it to
find the files without loading anything.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (no numpy: safe in a benchmark parent)

CACHE = str(harness.CACHE)
EPOCHS = 5
WORKLOADS = {"A": 0.3, "B": 0.42, "tiny": 0.38}
MAX_DIM = {"A": 2, "B": 2, "tiny": 2}
_LENET = f"lenet_mnist_epoch{EPOCHS}_functional_graph.npy"
FILES = {"A": _LENET, "B": _LENET, "tiny": "tiny_random_200_units.npy"}
SOURCES = {
    "A": f"LeNet functional graph (1820 units, 1000 held-out MNIST digits, {EPOCHS} epochs), "
         "eps = (1 - |corr|) / 2",
    "B": f"LeNet functional graph (1820 units, 1000 held-out MNIST digits, {EPOCHS} epochs), "
         "eps = (1 - |corr|) / 2",
    "tiny": "200 synthetic units (tanh of 20 factors + noise, 1000 samples, seed 0), "
            "eps = (1 - |corr|) / 2; a check of the scripts, not a measurement",
}


def check_name(name: str) -> None:
    if name not in WORKLOADS:
        raise SystemExit(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")


def matrix_path(name: str) -> str:
    """Path of the cached distance matrix of workload ``name`` (it may not exist yet)."""
    check_name(name)
    return os.path.join(CACHE, FILES[name])


def is_built(name: str) -> bool:
    return os.path.exists(matrix_path(name))


def build_argv(name: str) -> List[str]:
    """Command that builds and caches the matrix of workload ``name`` in its own process."""
    return [sys.executable, os.path.abspath(__file__), "--build", name]


def functional_graph_distances(epochs: int = EPOCHS):
    """(1 - |corr|) / 2 between the trained LeNet's units over 1000 held-out digits (1820 x 1820)."""
    import numpy as np
    import torch

    import tempfile

    import topodnn
    from topodnn import datasets, training

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        training.train("lenet", "mnist", trial=0, lr=0.01, n_epochs=epochs, save_path=tmp,
                       progress=False)
        ckpt = training.checkpoint_path(training.results_dir(tmp, "lenet", "mnist"), 0, epochs)
        model = training.load_model(ckpt)
    _, test, _ = datasets.load_dataset("mnist")
    G = topodnn.functional_graph(model, test.tensors[0], n_samples=1000, progress=False)
    return np.ascontiguousarray(G / 2.0)


def tiny_distances(n: int = 200, seed: int = 0):
    """(1 - |corr|) / 2 between ``n`` synthetic correlated units over 1000 samples (float64)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    F = rng.standard_normal((1000, 20))
    W = rng.standard_normal((20, n)) * (rng.random(n) < 0.7)
    A = np.tanh(F @ W + 1.5 * rng.standard_normal((1000, n)))
    D = (1.0 - np.abs(np.corrcoef(A.T))) / 2.0
    D = np.maximum(D, D.T)
    np.fill_diagonal(D, 0.0)
    return np.ascontiguousarray(D)


def build(name: str) -> str:
    """Build and cache the matrix of ``name`` in this process (call it in a child)."""
    import numpy as np

    path = matrix_path(name)
    os.makedirs(CACHE, exist_ok=True)
    D = tiny_distances() if name == "tiny" else functional_graph_distances()
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    np.save(tmp, D)
    os.replace(tmp, path)
    return path


def load(name: str) -> Tuple[Any, float]:
    """(distance matrix, threshold) of workload ``name``, built in a child process on first use."""
    import numpy as np

    if not is_built(name):
        # its result line goes to stderr: this process's stdout carries this process's result
        subprocess.run(build_argv(name), check=True, stdout=sys.stderr)
    return np.load(matrix_path(name)), WORKLOADS[name]


def describe(name: str) -> Dict[str, Any]:
    """Size, edges within the threshold, threshold and provenance of workload ``name``."""
    import numpy as np

    D, thr = load(name)
    iu = np.triu_indices(len(D), 1)
    return {"workload": name, "n": int(len(D)), "threshold": thr, "max_dim": MAX_DIM[name],
            "edges": int((D[iu] <= thr).sum()), "pairs_of_units": int(len(iu[0])),
            "matrix_file": matrix_path(name),
            "source": SOURCES[name]}


def write_dipha_file(name: str, path: str) -> int:
    """The original's sparse DIPHA input of workload `name`; returns the number of edges."""
    import numpy as np
    import scipy.sparse as sp

    from topodnn import save_dipha

    D, thr = load(name)
    edge = 2.0 * D  # 1 - |corr|: DIPHA's Rips value is half the longest edge
    keep = edge <= 2.0 * thr
    np.fill_diagonal(keep, False)
    rows, cols = np.nonzero(keep)
    save_dipha(path, sp.csr_matrix((edge[rows, cols], (rows, cols)), shape=D.shape), sparse=True)
    return len(rows) // 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dipha-file", nargs=2, metavar=("WORKLOAD", "PATH"))
    ap.add_argument("--describe", metavar="WORKLOAD")
    ap.add_argument("--build", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        check_name(args.build)
        harness.emit({"workload": args.build, "built": build(args.build)})
        return
    if args.describe:
        check_name(args.describe)
        harness.emit(describe(args.describe))
        return
    if args.dipha_file:
        name, path = args.dipha_file
        check_name(name)
        edges = write_dipha_file(name, path)
        print(f"wrote {path}: workload {name}, {edges} edges", file=sys.stderr)
        harness.emit({"workload": name, "path": path, "edges": edges, "n": len(load(name)[0])})
        return
    for name in WORKLOADS:
        d = describe(name)
        print(name, (d["n"], d["n"]), "edges <= thr:", d["edges"], "of", d["pairs_of_units"])


if __name__ == "__main__":
    main()
