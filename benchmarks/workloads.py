"""Benchmark workloads: the functional graph of a LeNet trained on real MNIST digits.

Built with topodnn's own pipeline: LeNet (1820 units: relu1 1440, relu2 320, relu3 50, output 10)
trained by :func:`topodnn.training.train` on the embedded MNIST sample (4,000 digits, lr 0.01,
5 epochs, trial 0), then :func:`topodnn.functional_graph` over the first 1000 held-out digits.
The distance is the original's eps = (1 - |corr|) / 2 (DIPHA halves the edge 1 - |corr|).

Workload A: threshold 0.3 (|corr| >= 0.4, the original's cut); workload B: threshold 0.42. Both
H0..H2. The matrix is built once and cached in benchmarks/.cache/.

``python benchmarks/workloads.py`` prints the edge counts; ``--dipha-file A PATH`` writes the
original's sparse DIPHA input of a workload (type 8, edge length 1 - |corr| <= 2 * threshold),
the file it gave ``dipha --upper_dim 3 --dual``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
WORKLOADS = {"A": 0.3, "B": 0.42}
EPOCHS = 5


def functional_graph_distances(epochs: int = EPOCHS) -> np.ndarray:
    """(1 - |corr|) / 2 between the trained LeNet's units over 1000 held-out digits (1820 x 1820)."""
    import torch

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


def load(name: str) -> tuple:
    """(distance matrix, threshold) of workload `name` ('A' or 'B'), built on first use."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"lenet_mnist_epoch{EPOCHS}_functional_graph.npy")
    if not os.path.exists(path):
        # in a child process: training and torch would otherwise stay in the caller's peak memory
        # (and in that of every peer it starts: Linux keeps ru_maxrss across exec)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--build", path], check=True)
    return np.load(path), WORKLOADS[name]


def write_dipha_file(name: str, path: str) -> int:
    """The original's sparse DIPHA input of workload `name`; returns the number of edges."""
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
    ap.add_argument("--build", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        tmp = f"{args.build}.{os.getpid()}.tmp.npy"
        np.save(tmp, functional_graph_distances())
        os.replace(tmp, args.build)
        return
    if args.dipha_file:
        name, path = args.dipha_file
        print(f"wrote {path}: workload {name}, {write_dipha_file(name, path)} edges")
        return
    D, _ = load("A")
    iu = np.triu_indices(len(D), 1)
    for name, thr in WORKLOADS.items():
        print(name, D.shape, "edges <= thr:", int((D[iu] <= thr).sum()), "of", len(iu[0]))


if __name__ == "__main__":
    main()
