"""Functional graph: activations via hooks, 1 - |corr| distances, sparse cut, DIPHA export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from conftest import topodnn_pythonpath
from small_nets import SmallConv
from topodnn.graph import (
    collect_activations,
    correlation_distances,
    functional_graph,
    save_dipha,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------
# reference and fixtures
# ------------------------------------------------------------------------------------------


def reference_distances(X: np.ndarray) -> np.ndarray:
    """1 - |corr| from numpy.corrcoef, constant columns at distance 1, zero diagonal."""
    X = np.asarray(X, dtype=np.float64)
    const = np.ptp(X, axis=0) == 0
    C = np.zeros((X.shape[1], X.shape[1]))
    live = ~const
    if live.any():
        C[np.ix_(live, live)] = np.corrcoef(X[:, live].T)
    D = 1.0 - np.abs(C)
    np.fill_diagonal(D, 0.0)
    return D


def relu_activations(rng: np.random.Generator, m: int, n: int, rank: int = 4) -> np.ndarray:
    """Low-rank + noise + ReLU: realistic correlation structure, some units dead."""
    X = rng.normal(size=(m, rank)) @ rng.normal(size=(rank, n)) + 0.7 * rng.normal(size=(m, n))
    return np.maximum(X, 0.0)


def csr_pattern(S: sp.csr_matrix) -> np.ndarray:
    P = np.zeros(S.shape, dtype=bool)
    rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    P[rows, S.indices] = True
    return P


def csr_values(S: sp.csr_matrix) -> np.ndarray:
    V = np.full(S.shape, np.nan)
    rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    V[rows, S.indices] = S.data
    return V


def assert_valid_graph(S: sp.csr_matrix) -> None:
    assert isinstance(S, sp.csr_matrix)
    assert S.dtype == np.float64
    assert S.indices.dtype in (np.int32, np.int64)
    assert S.has_sorted_indices
    for i in range(S.shape[0]):  # really sorted, strictly ascending, no diagonal
        row = S.indices[S.indptr[i] : S.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)
        assert i not in row
    P = csr_pattern(S)
    assert np.array_equal(P, P.T)
    V = csr_values(S)
    assert np.array_equal(V[P], V.T[P])


@pytest.fixture
def small_model() -> SmallConv:
    torch.manual_seed(0)
    return SmallConv()


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(60, 1, 8, 8, generator=g)


# ------------------------------------------------------------------------------------------
# correlations
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,block_size", [(0, 2048), (1, 7), (2, 16)])
def test_dense_matches_corrcoef(seed: int, block_size: int) -> None:
    rng = np.random.default_rng(seed)
    X = relu_activations(rng, 50, 40)
    X[:, 5] = 2.5  # constant unit
    X[:, 7] = 0.0  # dead unit
    X[:, 9] = X[:, 8]  # duplicated unit
    D = correlation_distances(X, block_size=block_size, progress=False)
    ref = reference_distances(X)
    assert D.dtype == np.float64 and D.shape == (40, 40)
    np.testing.assert_allclose(D, ref, atol=1e-12, rtol=0)
    assert np.array_equal(D, D.T)
    assert np.all(np.diag(D) == 0)
    assert np.all(D[5, np.arange(40) != 5] == 1.0) and np.all(D[np.arange(40) != 7, 7] == 1.0)
    assert D[8, 9] <= 1e-12
    assert D.min() >= 0.0 and D.max() <= 1.0


def test_dense_float32_error_bound() -> None:
    rng = np.random.default_rng(3)
    X = relu_activations(rng, 1000, 300).astype(np.float32)
    D32 = correlation_distances(X, dtype=np.float32, progress=False)
    D64 = correlation_distances(X, dtype=np.float64, progress=False)
    assert np.abs(D32 - D64).max() < 5e-6
    np.testing.assert_allclose(D64, reference_distances(X), atol=1e-12, rtol=0)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.85, 1.0])
@pytest.mark.parametrize("block_size", [7, 64, 2048])
def test_sparse_equals_dense_cut(threshold: float, block_size: int) -> None:
    rng = np.random.default_rng(int(threshold * 100) + block_size)
    m, n = 16, 90
    X = relu_activations(rng, m, n)
    a = np.tile([0.0, 1.0], m // 2)  # centred +-0.5, norm 2: z = +-0.25 exactly, z.z == 1
    X[:, 10] = a
    X[:, 40] = a  # |corr| = 1 exactly: an edge of distance exactly 0
    X[:, 41] = 1.0 - a  # corr = -1 exactly: also distance 0
    X[:, 3] = 0.0  # constant
    D = correlation_distances(X, dtype=np.float64, progress=False)
    assert D[10, 40] == 0.0 and D[10, 41] == 0.0
    S = correlation_distances(X, threshold, dtype=np.float64, block_size=block_size, progress=False)
    assert_valid_graph(S)
    want = (D <= threshold) & ~np.eye(n, dtype=bool)
    assert np.array_equal(csr_pattern(S), want)
    np.testing.assert_allclose(csr_values(S)[want], D[want], atol=1e-12, rtol=0)
    # the exact-zero edges are stored (explicit zeros), in both directions
    V = csr_values(S)
    for i, j in [(10, 40), (10, 41), (40, 41)]:
        assert V[i, j] == 0.0 and V[j, i] == 0.0
    assert S.nnz == int(want.sum())
    assert (S.data == 0).sum() >= 6
    if threshold == 1.0:  # constant unit: distance 1 to everything, kept at threshold 1
        assert np.all(V[3, np.arange(n) != 3] == 1.0)
    else:
        assert not csr_pattern(S)[3].any()


def test_sparse_float32_close_to_float64() -> None:
    rng = np.random.default_rng(7)
    X = relu_activations(rng, 500, 400).astype(np.float32)
    D = correlation_distances(X, dtype=np.float64, progress=False)
    S = correlation_distances(X, 0.6, dtype=np.float32, block_size=100, progress=False)
    assert_valid_graph(S)
    want = (D <= 0.6) & ~np.eye(400, dtype=bool)
    got = csr_pattern(S)
    near = np.abs(D - 0.6) < 2e-6  # float32 may decide these either way
    assert np.array_equal(got & ~near, want & ~near)
    assert np.abs(csr_values(S)[got] - D[got]).max() < 2e-6


def test_sparse_empty_and_tiny() -> None:
    X = np.random.default_rng(0).normal(size=(5, 1))
    S = correlation_distances(X, 0.5, progress=False)
    assert S.shape == (1, 1) and S.nnz == 0
    X = np.random.default_rng(1).normal(size=(1000, 30))  # independent: no |corr| >= 0.9
    S = correlation_distances(X, 0.1, progress=False)
    assert S.shape == (30, 30) and S.nnz == 0 and len(S.indptr) == 31


def test_activations_not_modified_unless_asked() -> None:
    X = relu_activations(np.random.default_rng(4), 30, 20)
    keep = X.copy()
    correlation_distances(X, progress=False)
    correlation_distances(X, 0.5, progress=False)
    assert np.array_equal(X, keep)


# ------------------------------------------------------------------------------------------
# activations through hooks
# ------------------------------------------------------------------------------------------


class HandConv(nn.Module):
    """Hand-computable: conv 1->2 (2x2, fixed weights) -> 'act1' (identity), fc 8->3 -> 'act2'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2)
        self.act1 = nn.Identity()
        self.fc = nn.Linear(8, 3)
        self.act2 = nn.Identity()
        with torch.no_grad():
            self.conv.weight[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # top-left pixel
            self.conv.weight[1, 0] = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # 2 x bottom-right
            self.conv.bias[:] = torch.tensor([0.0, 10.0])
            self.fc.weight.zero_()
            self.fc.weight[0, 0] = 1.0
            self.fc.weight[1, 7] = 1.0
            self.fc.weight[2, 4] = -1.0
            self.fc.bias[:] = torch.tensor([0.0, 0.0, 100.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.fc(self.act1(self.conv(x)).flatten(1)))


def test_layer_order_and_c_order_flattening() -> None:
    model = HandConv()
    x = torch.arange(5 * 9, dtype=torch.float32).reshape(5, 1, 3, 3) ** 1.5
    X, names, sizes = collect_activations(
        model, x, layers=["act1", "act2"], dtype=np.float64, progress=False
    )
    assert names == ["act1", "act2"] and sizes == [8, 3]
    xi = x[:, 0].double().numpy()
    expect = np.zeros((5, 11))
    for s in range(5):
        for yy in range(2):
            for xx in range(2):
                expect[s, 0 * 4 + yy * 2 + xx] = xi[s, yy, xx]  # channel 0 = top-left pixel
                expect[s, 1 * 4 + yy * 2 + xx] = 2 * xi[s, yy + 1, xx + 1] + 10.0
        expect[s, 8] = expect[s, 0]
        expect[s, 9] = expect[s, 7]
        expect[s, 10] = 100.0 - expect[s, 4]
    np.testing.assert_allclose(X, expect, rtol=1e-6)
    # requested order is the node order
    Y, names2, sizes2 = collect_activations(
        model, x, layers=["act2", "act1"], dtype=np.float64, progress=False
    )
    assert names2 == ["act2", "act1"] and sizes2 == [3, 8]
    np.testing.assert_array_equal(Y, np.concatenate([X[:, 8:], X[:, :8]], axis=1))
    # and the graph: fc unit 0 duplicates conv unit 0, fc unit 2 anti-duplicates conv unit 4
    D = functional_graph(model, x, layers=["act1", "act2"], progress=False)
    np.testing.assert_allclose(D, reference_distances(expect), atol=1e-9)
    assert D[0, 8] < 1e-12 and D[4, 10] < 1e-12 and D[7, 9] < 1e-12


def no_hooks_left(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks for m in model.modules()
    )


def test_hooks_leave_model_unchanged(small_model: SmallConv, images: torch.Tensor) -> None:
    small_model.train()
    with torch.no_grad():
        before = small_model.eval()(images)
    small_model.train()
    state = {k: v.clone() for k, v in small_model.state_dict().items()}
    functional_graph(small_model, images, n_samples=40, progress=False)
    assert small_model.training  # mode restored
    assert no_hooks_left(small_model)
    for k, v in small_model.state_dict().items():
        assert torch.equal(v, state[k])
    with torch.no_grad():
        after = small_model.eval()(images)
    assert torch.equal(before, after)
    small_model.eval()
    functional_graph(small_model, images, n_samples=40, progress=False)
    assert not small_model.training
    small_model.train()
    small_model.conv2.eval()  # mixed modes come back as they were
    functional_graph(small_model, images, n_samples=40, progress=False)
    assert [m.training for m in small_model.modules()] == [
        True, True, True, False, True, True, True
    ]


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        raise RuntimeError("boom in forward")


def test_hooks_removed_when_forward_raises() -> None:
    model = Exploding()
    model.train()
    # the model's own error, as one ValueError naming the batch (the original is its cause)
    with pytest.raises(ValueError, match=r"model failed on a batch of 10 inputs.*boom") as exc:
        functional_graph(model, torch.randn(10, 4), layers=["act"], progress=False)
    assert isinstance(exc.value.__cause__, RuntimeError)
    assert no_hooks_left(model)
    assert model.training


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Identity()
        self.b = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(torch.log(h))  # log of negatives: NaN


def test_nan_activations_name_the_layer() -> None:
    model = NaNModel()
    x = torch.randn(20, 5)
    with pytest.raises(ValueError, match=r"layer 'b'.*NaN or inf"):
        functional_graph(model, x, layers=["a", "b"], progress=False)
    assert no_hooks_left(model)
    x = torch.randn(20, 5)
    x[3, 2] = float("inf")
    with pytest.raises(ValueError, match=r"layer 'a'.*NaN or inf"):
        functional_graph(model, x.abs(), layers=["a"], progress=False)


class SharedReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.fc2(self.relu(self.fc1(x))))


def test_module_called_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"'relu' was called 2 times"):
        functional_graph(SharedReLU(), torch.randn(8, 3), layers=["relu"], progress=False)
    with pytest.raises(ValueError, match=r"'fc2' was never called"):
        functional_graph(NeverCalled(), torch.randn(8, 3), layers=["fc2"], progress=False)


class NeverCalled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(x)


class PairData(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], i % 10


def test_data_forms_agree(small_model: SmallConv, images: torch.Tensor) -> None:
    labels = torch.arange(len(images)) % 10
    ref = functional_graph(small_model, images, n_samples=45, batch_size=10, progress=False)
    forms = [
        images.numpy(),
        DataLoader(TensorDataset(images, labels), batch_size=7, shuffle=False),
        DataLoader(images, batch_size=16),  # batches that are bare tensors
        TensorDataset(images, labels),
        PairData(images),
    ]
    for data in forms:
        D = functional_graph(small_model, data, n_samples=45, batch_size=13, progress=False)
        np.testing.assert_allclose(D, ref, atol=1e-12, rtol=0)
    assert ref.shape == (3 * 6 * 6 + 4 * 4 * 4 + 6,) * 2


def test_fewer_samples_than_requested_uses_all(
    small_model: SmallConv, images: torch.Tensor
) -> None:
    D, info = functional_graph(
        small_model, images[:12], n_samples=1000, progress=False, return_info=True
    )
    assert info["n_samples"] == 12
    X, _, _ = collect_activations(small_model, images[:12], progress=False, dtype=np.float64)
    np.testing.assert_allclose(D, reference_distances(X), atol=1e-12)


def test_sparse_graph_from_model_and_info(
    small_model: SmallConv, images: torch.Tensor
) -> None:
    dense = functional_graph(small_model, images, progress=False)
    S, info = functional_graph(
        small_model, images, threshold=0.6, dtype=np.float64, block_size=50,
        progress=False, return_info=True,
    )
    assert_valid_graph(S)
    n = dense.shape[0]
    want = (dense <= 0.6) & ~np.eye(n, dtype=bool)
    assert np.array_equal(csr_pattern(S), want)
    assert info["layers"] == ["act1", "act2", "out"]
    assert info["nodes_per_layer"] == [108, 64, 6] and info["n_nodes"] == n == 178
    assert info["n_samples"] == 60 and info["n_edges"] == S.nnz // 2
    X, _, _ = collect_activations(small_model, images, dtype=np.float64, progress=False)
    const = np.ptp(X, axis=0) == 0
    assert sum(info["constant_units"].values()) == int(const.sum())
    assert info["constant_units"]["act1"] == int(const[:108].sum())
    assert set(info["timings"]) == {"activations", "correlations"}
    assert info["peak_memory_estimate"] > X.nbytes // 2


def _mean_abs_corr_oracle(X: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.corrcoef(X, rowvar=False)
    C = np.nan_to_num(np.abs(C), nan=0.0)  # constant units: correlation 0
    iu = np.triu_indices(X.shape[1], k=1)
    return float(C[iu].mean())


@pytest.mark.parametrize("block_size", [1, 7, 64, 500])
def test_mean_abs_corr_is_the_density_before_the_threshold(block_size: int) -> None:
    rng = np.random.default_rng(5)
    X = np.maximum(rng.normal(size=(80, 3)) @ rng.normal(size=(3, 90)) + rng.normal(size=(80, 90)), 0)
    X[:, 3] = 1.0  # a constant unit
    X[:, 7] = X[:, 8]  # a duplicate: |corr| 1
    want = _mean_abs_corr_oracle(X)
    for threshold in (None, 0.2, 0.6, 1.0):
        stats: dict = {}
        correlation_distances(X, threshold, dtype=np.float64, block_size=block_size,
                              progress=False, stats=stats)
        assert stats["mean_abs_corr"] == pytest.approx(want, abs=1e-12), threshold
    stats = {}
    correlation_distances(X, 0.6, dtype=np.float32, block_size=block_size, progress=False,
                          stats=stats)
    assert stats["mean_abs_corr"] == pytest.approx(want, abs=1e-6)
    stats = {}
    correlation_distances(X[:, :1], 0.6, progress=False, stats=stats)
    assert np.isnan(stats["mean_abs_corr"])  # one unit: no pair


def test_functional_graph_reports_mean_abs_corr(small_model: SmallConv, images: torch.Tensor) -> None:
    X, _, _ = collect_activations(small_model, images, dtype=np.float64, progress=False)
    _, info = functional_graph(small_model, images, threshold=0.6, dtype=np.float64,
                               progress=False, return_info=True)
    assert info["mean_abs_corr"] == pytest.approx(_mean_abs_corr_oracle(X), abs=1e-12)


def test_constant_units_reported(capsys: pytest.CaptureFixture) -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    with torch.no_grad():
        model[0].bias[:3] = -1000.0  # three dead ReLUs
    D, info = functional_graph(
        model, torch.randn(30, 4), layers=["1"], progress=True, return_info=True
    )
    assert info["constant_units"] == {"1": 3}
    assert np.all(D[:3][:, 3:] == 1.0) and np.all(D[:3, :3][~np.eye(3, dtype=bool)] == 1.0)
    err = capsys.readouterr().err
    assert "3 constant units" in err and "1: 3/6" in err


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


def test_bad_layers(small_model: SmallConv, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"none of the requested layers.*available modules: conv1"):
        functional_graph(small_model, images, layers=["nope", "zilch"], progress=False)
    with pytest.raises(ValueError, match=r"not found.*\['nope'\]"):
        functional_graph(small_model, images, layers=["act1", "nope"], progress=False)
    with pytest.raises(ValueError, match="functional_layers"):
        functional_graph(nn.Sequential(nn.Linear(2, 2)), torch.randn(4, 2), progress=False)
    with pytest.raises(ValueError, match="empty"):
        functional_graph(small_model, images, layers=[], progress=False)
    with pytest.raises(ValueError, match="repeated"):
        functional_graph(small_model, images, layers=["act1", "act1"], progress=False)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5, float("nan"), "x"])
def test_bad_threshold(small_model: SmallConv, images: torch.Tensor, threshold) -> None:
    with pytest.raises(ValueError, match="threshold"):
        functional_graph(small_model, images, threshold=threshold, progress=False)
    with pytest.raises(ValueError, match="threshold"):
        correlation_distances(np.random.rand(5, 3), threshold)


def test_bad_samples_and_data(small_model: SmallConv, images: torch.Tensor) -> None:
    for n in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_samples"):
            functional_graph(small_model, images, n_samples=n, progress=False)
    with pytest.raises(ValueError, match="at least 2 samples"):
        functional_graph(small_model, images, n_samples=1, progress=False)
    with pytest.raises(ValueError, match="at least 2 samples"):
        functional_graph(small_model, images[:1], progress=False)
    with pytest.raises(ValueError, match="empty"):
        functional_graph(small_model, images[:0], progress=False)
    with pytest.raises(ValueError, match="empty"):
        functional_graph(small_model, TensorDataset(images[:0]), progress=False)
    with pytest.raises(ValueError, match="empty"):
        functional_graph(small_model, PairData(images[:0]), progress=False)
    with pytest.raises(ValueError, match="empty"):
        functional_graph(small_model, DataLoader(TensorDataset(images[:0])), progress=False)
    with pytest.raises(ValueError, match="data must be"):
        functional_graph(small_model, 42, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        functional_graph(small_model, images, dtype=np.int32, progress=False)
    with pytest.raises(ValueError, match="at least 2 samples"):
        correlation_distances(np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        correlation_distances(np.array([[1.0, np.nan], [2.0, 3.0]]))
    assert no_hooks_left(small_model)


# ------------------------------------------------------------------------------------------
# DIPHA files
# ------------------------------------------------------------------------------------------


def test_save_dipha_dense(tmp_path: Path) -> None:
    D = reference_distances(relu_activations(np.random.default_rng(5), 20, 9))
    path = tmp_path / "full.bin"
    save_dipha(path, D)
    raw = path.read_bytes()
    assert len(raw) == 24 + 8 * 9 * 9
    assert raw[:8] == bytes.fromhex("0046D7E001000000")
    head = np.frombuffer(raw[:24], dtype="<i8")
    assert head.tolist() == [8067171840, 7, 9]
    np.testing.assert_array_equal(np.frombuffer(raw[24:], dtype="<f8").reshape(9, 9), D)


def test_save_dipha_sparse(tmp_path: Path) -> None:
    m, n = 16, 30
    X = relu_activations(np.random.default_rng(6), m, n)
    X[:, 1] = np.tile([0.0, 1.0], m // 2)
    X[:, 2] = X[:, 1]  # an explicit-zero edge
    S = correlation_distances(X, 0.6, dtype=np.float64, progress=False)
    path = tmp_path / "sparse.bin"
    save_dipha(path, S)
    raw = path.read_bytes()
    E = S.nnz
    assert len(raw) == 24 + 8 * n + 16 * E
    words = np.frombuffer(raw[: 24 + 8 * n + 8 * E], dtype="<i8")
    assert words[:3].tolist() == [8067171840, 8, n]
    counts = words[3 : 3 + n]
    np.testing.assert_array_equal(counts, np.diff(S.indptr))
    np.testing.assert_array_equal(words[3 + n :], S.indices)
    vals = np.frombuffer(raw[24 + 8 * n + 8 * E :], dtype="<f8")
    np.testing.assert_array_equal(vals, S.data)
    # row 1 holds column 2 with distance exactly 0
    row1 = words[3 + n + counts[0] : 3 + n + counts[0] + counts[1]]
    assert 2 in row1
    assert vals[counts[0] + list(row1).index(2)] == 0.0
    # dense -> complete sparse graph
    D = reference_distances(X[:, :5])
    save_dipha(tmp_path / "complete.bin", D, sparse=True)
    raw = (tmp_path / "complete.bin").read_bytes()
    assert len(raw) == 24 + 8 * 5 + 16 * 20
    w = np.frombuffer(raw[: 24 + 8 * 5 + 8 * 20], dtype="<i8")
    assert w[3:8].tolist() == [4] * 5
    assert w[8:12].tolist() == [1, 2, 3, 4] and w[12:16].tolist() == [0, 2, 3, 4]
    np.testing.assert_array_equal(
        np.frombuffer(raw[24 + 8 * 5 + 8 * 20 :], dtype="<f8"), D[~np.eye(5, dtype=bool)]
    )


def test_save_dipha_takes_the_symmetry_rule_of_persistence(tmp_path: Path) -> None:
    """Rounding-level asymmetry (one ulp, float64 or float32) is written, as persistence accepts
    it, and the file gives persistence's diagrams (both read the lower triangle); an asymmetry
    beyond 8 ulps of the largest entry is refused by both, the message naming the pair."""
    from topodnn._arrays import ROUNDING_ULPS
    from topodnn.engine import persistence
    from topodnn.io import read_distance_matrix

    X = np.random.default_rng(3).normal(size=(14, 3))
    D64 = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    for D in (D64, D64.astype(np.float32)):
        ok = D.copy()
        ok[7, 2] = np.nextafter(ok[2, 7], ok.dtype.type(np.inf))
        ok[9, 4] = np.nextafter(ok[4, 9], ok.dtype.type(0))
        assert not np.array_equal(ok, ok.T)
        save_dipha(tmp_path / "ok.bin", ok)
        back = read_distance_matrix(tmp_path / "ok.bin")
        for a, b in zip(persistence(back, max_dim=1), persistence(ok, max_dim=1)):
            np.testing.assert_array_equal(a, b)
        tol = ROUNDING_ULPS * np.finfo(D.dtype).eps * float(np.abs(D).max())
        bad = D.copy()
        bad[7, 2] = bad[2, 7] + bad.dtype.type(2 * tol)
        with pytest.raises(ValueError, match=r"not symmetric beyond rounding: D\[2, 7\]"):
            persistence(bad, max_dim=1)
        with pytest.raises(ValueError, match=r"not symmetric beyond rounding: D\[2, 7\]"):
            save_dipha(tmp_path / "bad.bin", bad)
        assert not (tmp_path / "bad.bin").exists()


def test_save_dipha_bad_input(tmp_path: Path) -> None:
    S = sp.csr_matrix(np.array([[0.0, 0.5], [0.5, 0.0]]))
    with pytest.raises(ValueError, match="sparse=False"):
        save_dipha(tmp_path / "x", S, sparse=False)
    with pytest.raises(ValueError, match="diagonal"):
        save_dipha(tmp_path / "x", sp.csr_matrix(np.array([[1.0, 0.5], [0.5, 0.0]])))
    with pytest.raises(ValueError, match="not symmetric"):
        save_dipha(tmp_path / "x", sp.csr_matrix(np.array([[0.0, 0.5], [0.4, 0.0]])))
    with pytest.raises(ValueError, match="not symmetric"):
        save_dipha(tmp_path / "x", np.array([[0.0, 0.5], [0.4, 0.0]]))
    with pytest.raises(ValueError, match="square"):
        save_dipha(tmp_path / "x", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        save_dipha(tmp_path / "x", np.array([[0.0, np.nan], [np.nan, 0.0]]))


# ------------------------------------------------------------------------------------------
# the engine and MPI
# ------------------------------------------------------------------------------------------


MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    from mpi4py import MPI
    import numpy as np, torch
    from torch import nn
    from topodnn.graph import correlation_distances, functional_graph
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(11)
    X = np.maximum(rng.normal(size=(64, 3)) @ rng.normal(size=(3, 150))
                   + rng.normal(size=(64, 150)), 0)
    X[:, 4] = X[:, 5]
    S = correlation_distances(X, 0.7, dtype=np.float64, block_size=16, comm=comm, progress=False)
    R = correlation_distances(X, 0.7, dtype=np.float64, block_size=150, progress=False)
    ok = (np.array_equal(S.indptr, R.indptr) and np.array_equal(S.indices, R.indices)
          and np.allclose(S.data, R.data, atol=1e-12, rtol=0))
    st, one = {}, {}
    correlation_distances(X, 0.7, dtype=np.float64, block_size=16, comm=comm, progress=False,
                          stats=st)
    correlation_distances(X, 0.7, dtype=np.float64, block_size=16, progress=False, stats=one)
    ok = ok and st["mean_abs_corr"] == one["mean_abs_corr"]  # exactly, on every rank
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 40), nn.ReLU(), nn.Linear(40, 30), nn.Tanh())
    x = torch.randn(50, 6)
    G = functional_graph(model, x, layers=["1", "3"], threshold=0.5, block_size=9,
                         comm=comm, progress=False)
    H = functional_graph(model, x, layers=["1", "3"], threshold=0.5, block_size=70,
                         progress=False)
    ok = ok and np.array_equal(G.indices, H.indices) and np.allclose(G.data, H.data, atol=1e-6)
    try:
        functional_graph(model, x, layers=["nope"], comm=comm, progress=False)
        ok = False
    except ValueError:
        pass
    oks = comm.allgather(bool(ok))
    if comm.rank == 0:
        print("MPI-RESULT", oks, S.nnz)
    """
)


def test_mpi_ranks_share_blocks(tmp_path: Path) -> None:
    mpirun = shutil.which("mpirun", path=os.path.dirname(sys.executable)) or shutil.which("mpirun")
    if mpirun is None:  # pragma: no cover
        pytest.skip("mpirun not found")
    pytest.importorskip("mpi4py")
    script = tmp_path / "mpi_graph.py"
    script.write_text(MPI_SCRIPT)
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PYTHONPATH=topodnn_pythonpath(env),
        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [mpirun, "--oversubscribe", "-n", "2", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MPI-RESULT [True, True]" in proc.stdout, proc.stdout + proc.stderr
