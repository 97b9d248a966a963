"""Vietoris-Rips engine (topodnn.persistence): oracles, properties, DIPHA regression files, input
validation."""

from __future__ import annotations

import os

import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
from topodnn import _core
from topodnn.engine import persistence

from oracles import assert_same, gudhi_diagrams, sorted_rows

ripser = pytest.importorskip("ripser")



def point_cloud_distances(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    X = rng.normal(size=(n, dim))
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, 0)
    return D


def random_matrix(rng: np.random.Generator, n: int) -> np.ndarray:
    A = rng.random((n, n))
    D = A + A.T
    np.fill_diagonal(D, 0)
    return D


# ------------------------------------------------------------------------------- known answers
def test_circle_has_one_long_h1_bar():
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    X = np.c_[np.cos(t), np.sin(t)]
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    dg = persistence(D, max_dim=1)
    assert dg[0].shape == (24, 2) and np.isinf(dg[0][:, 1]).sum() == 1
    assert dg[1].shape[0] == 1
    birth, death = dg[1][0]
    assert birth == pytest.approx(2 * np.sin(np.pi / 24)) and death > 1.5


def test_octahedron_has_one_h2_bar():
    X = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    dg = persistence(D, max_dim=2)
    assert dg[1].shape == (0, 2)
    np.testing.assert_array_equal(dg[2], [[np.sqrt(2), 2.0]])


def test_output_shape_and_dtype():
    D = point_cloud_distances(np.random.default_rng(1), 12, 2)
    dg = persistence(D, max_dim=3)
    assert len(dg) == 4
    for a in dg:
        assert a.dtype == np.float64 and a.ndim == 2 and a.shape[1] == 2
    empty = persistence(np.zeros((0, 0)), max_dim=1)
    assert len(empty) == 2 and all(a.shape == (0, 2) for a in empty)


# ----------------------------------------------------------------------------------- oracles
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 26),
    max_dim=st.integers(0, 3),
    kind=st.sampled_from(["points2", "points4", "matrix"]),
    quantile=st.sampled_from([None, 0.3, 0.6]),
)
def test_equals_gudhi(seed, n, max_dim, kind, quantile):
    rng = np.random.default_rng(seed)
    D = random_matrix(rng, n) if kind == "matrix" else point_cloud_distances(rng, n, int(kind[-1]))
    thr = np.inf if quantile is None else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    assert_same(persistence(D, max_dim=max_dim, threshold=thr), gudhi_diagrams(D, max_dim, thr))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(4, 30),
    max_dim=st.integers(1, 3),
    kind=st.sampled_from(["points3", "matrix", "ties"]),
    quantile=st.sampled_from([None, 0.4, 0.7]),
    budget=st.sampled_from([16, 40, 200]),
)
def test_windowed_working_column_equals_gudhi(seed, n, max_dim, kind, quantile, budget):
    # A tiny working budget (in entries) forces long columns to be reduced window by window.
    rng = np.random.default_rng(seed)
    if kind == "ties":
        A = rng.integers(1, 5, size=(n, n)).astype(float)
        D = np.triu(A, 1) + np.triu(A, 1).T
    else:
        D = random_matrix(rng, n) if kind == "matrix" else point_cloud_distances(rng, n, 3)
    thr = np.inf if quantile is None else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    got = _core._rips_persistence(D, None, None, None, n, max_dim, thr, None, False, -1, budget * 16)
    assert_same(got, gudhi_diagrams(D, max_dim, thr))


def test_windowed_working_column_is_used(capfd):
    D = point_cloud_distances(np.random.default_rng(5), 40, 3)
    got = _core._rips_persistence(D, None, None, None, 40, 2, 1.5, None, True, -1, 16 * 16)
    err = capfd.readouterr().err
    windows = [int(m.group(1)) for m in re.finditer(r"\d+ columns in (\d+) windows", err)]
    assert windows and max(windows) > 0, err
    assert_same(got, gudhi_diagrams(D, 2, 1.5))


def test_equals_ripser_on_float32_input():
    # ripser computes in float32: on float32 input both see the same values.
    rng = np.random.default_rng(7)
    D = point_cloud_distances(rng, 40, 3).astype(np.float32)
    ours = persistence(D, max_dim=2, threshold=1.5)
    ref = ripser.ripser(D, maxdim=2, thresh=1.5, distance_matrix=True)["dgms"]
    for q in range(3):
        b = ref[q][ref[q][:, 0] != ref[q][:, 1]]
        np.testing.assert_array_equal(sorted_rows(ours[q]), sorted_rows(b.astype(np.float64)))


def test_top_dimension_essential_class_without_cofaces():
    # a 4-cycle 0-4-1-5 whose diagonals are beyond the threshold: one essential H1 class
    # (found by the gudhi comparison; gudhi needs persistence_dim_max here)
    rng = np.random.default_rng(13472264)
    D = random_matrix(rng, 6)
    thr = float(np.quantile(D[np.triu_indices(6, 1)], 0.3))
    dg = persistence(D, max_dim=1, threshold=thr)
    np.testing.assert_array_equal(dg[1], [[D[1, 5], np.inf]])
    assert_same(dg, gudhi_diagrams(D, 1, thr))


def test_ties_equal_gudhi():
    # integer distances: many equal filtration values
    rng = np.random.default_rng(3)
    n = 18
    A = rng.integers(1, 5, size=(n, n)).astype(float)
    D = np.triu(A, 1) + np.triu(A, 1).T
    assert_same(persistence(D, max_dim=2), gudhi_diagrams(D, 2))


# -------------------------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 22), quantile=st.sampled_from([None, 0.5]))
def test_dense_sparse_torch_and_relabelling_agree(seed, n, quantile):
    rng = np.random.default_rng(seed)
    D = point_cloud_distances(rng, n, 3)
    thr = np.inf if quantile is None else float(np.quantile(D, quantile))
    ref = persistence(D, max_dim=2, threshold=thr)
    # sparse: exactly the edges under the threshold
    keep = (D <= thr) & ~np.eye(n, dtype=bool)
    S = sp.csr_matrix((D[keep], np.nonzero(keep)), shape=(n, n))
    for a, b in zip(persistence(S, max_dim=2), ref):
        np.testing.assert_array_equal(a, b)
    # dense with +inf for absent edges
    Dinf = np.where(keep | np.eye(n, dtype=bool), D, np.inf)
    for a, b in zip(persistence(Dinf, max_dim=2), ref):
        np.testing.assert_array_equal(a, b)
    # relabelled vertices
    p = rng.permutation(n)
    for a, b in zip(persistence(D[np.ix_(p, p)], max_dim=2, threshold=thr), ref):
        np.testing.assert_array_equal(a, b)
    torch = pytest.importorskip("torch")
    for a, b in zip(persistence(torch.from_numpy(D), max_dim=2, threshold=thr), ref):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 30),
    max_dim=st.integers(1, 3),
    quantile=st.sampled_from([0.3, 0.6, 1.0]),
    decimals=st.sampled_from([1, 2, 15]),
)
def test_neighbour_list_path_equals_gudhi(seed, n, max_dim, quantile, decimals):
    """Graphs too large for the dense look-up matrix (n of VGG16 and ResNet18) enumerate cofaces
    by merging sorted neighbour lists; forced here on small inputs (ties included by rounding)."""
    rng = np.random.default_rng(seed)
    D = np.round(point_cloud_distances(rng, n, 3), decimals)
    thr = float(np.quantile(D[np.triu_indices(n, 1)], quantile)) if n > 1 else 1.0
    ours = _core._rips_persistence(np.ascontiguousarray(D), None, None, None, n, max_dim, thr, None, False, 0)
    assert_same(ours, gudhi_diagrams(D, max_dim, thr))
    keep = (D <= thr) & ~np.eye(n, dtype=bool)
    rows, cols = np.nonzero(keep)
    S = sp.csr_matrix((D[rows, cols], (rows, cols)), shape=(n, n))
    sparse = _core._rips_persistence(np.zeros((0, 0)), S.indptr.astype(np.int64), S.indices.astype(np.int64),
                                     S.data, n, max_dim, np.inf, None, False, 0)
    for a, b in zip(sparse, ours):
        np.testing.assert_array_equal(a, b)


def test_sparse_explicit_zero_is_an_edge():
    S = sp.csr_matrix((np.array([0.0, 0.0, 1.0, 1.0]), (np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1]))), shape=(3, 3))
    dg = persistence(S, max_dim=1)
    np.testing.assert_array_equal(dg[0], [[0.0, 1.0], [0.0, np.inf]])


def test_threshold_keeps_equal_edges_and_makes_essentials():
    D = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]], float)
    np.testing.assert_array_equal(persistence(D, 0, threshold=1.0)[0], [[0, 1], [0, 1], [0, np.inf]])
    np.testing.assert_array_equal(persistence(D, 0, threshold=0.5)[0], [[0, np.inf]] * 3)
    # a square: H1 class alive at the threshold is essential
    C = np.array([[0, 1, 1.5, 1], [1, 0, 1, 1.5], [1.5, 1, 0, 1], [1, 1.5, 1, 0]])
    np.testing.assert_array_equal(persistence(C, 1, threshold=1.2)[1], [[1.0, np.inf]])
    np.testing.assert_array_equal(persistence(C, 1)[1], [[1.0, 1.5]])


def test_float32_input_is_not_copied_and_matches_float64_of_same_values():
    rng = np.random.default_rng(11)
    D32 = point_cloud_distances(rng, 20, 2).astype(np.float32)
    a = persistence(D32, 2)
    b = persistence(D32.astype(np.float64), 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------- DIPHA regression files
def read_words(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_distance_file(path: str):
    raw = read_words(path)
    head = np.frombuffer(raw, "<i8", count=3)
    assert head[0] == 8067171840
    n = int(head[2])
    if head[1] == 7:
        D = np.frombuffer(raw, "<f8", count=n * n, offset=24).reshape(n, n)
        return np.ascontiguousarray(D), None, None, None, n
    assert head[1] == 8
    counts = np.frombuffer(raw, "<i8", count=n, offset=24)
    E = int(counts.sum())
    idx = np.frombuffer(raw, "<i8", count=E, offset=24 + 8 * n)
    val = np.frombuffer(raw, "<f8", count=E, offset=24 + 8 * n + 8 * E)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return np.zeros((0, 0)), indptr, np.ascontiguousarray(idx), np.ascontiguousarray(val), n


def diagram_bytes(dims, births, deaths) -> bytes:
    rec = np.zeros(len(dims), dtype=[("d", "<i8"), ("b", "<f8"), ("e", "<f8")])
    rec["d"], rec["b"], rec["e"] = dims, births, deaths
    return np.array([8067171840, 2, len(dims)], "<i8").tobytes() + rec.tobytes()


DIPHA_CASES = [
    ("sphere_3_32.complex", 3, "sphere_3.diagram"),
    ("sphere_3_32.complex", 2, "sphere_2.diagram"),
    ("sphere_3_32.complex", 1, "sphere_1.diagram"),
    ("sphere_3_32_2.complex", 3, "sphere_3_2.diagram"),
    ("sphere_3_32_0.8.complex", 3, "sphere_3_0.8.diagram"),
    ("sphere_3_32_0.5.complex", 2, "sphere_2_0.5.diagram"),
    ("sphere_3_32_0.3.complex", 2, "sphere_1_0.3.diagram"),
]


@pytest.mark.parametrize("complex_file,upper_dim,diagram_file", DIPHA_CASES)
def test_dipha_diagram_byte_identical(complex_file, upper_dim, diagram_file, dipha_test_data):
    path = os.path.join(dipha_test_data, complex_file)
    dense, indptr, indices, values, n = read_distance_file(path)
    dims, births, deaths = _core._dipha_diagram_from_matrix(dense, indptr, indices, values, n, upper_dim, None)
    assert diagram_bytes(dims, births, deaths) == read_words(os.path.join(dipha_test_data, diagram_file))


# ------------------------------------------------------------------------------- bad inputs
GOOD = np.array([[0, 1, 2], [1, 0, 1.5], [2, 1.5, 0]], float)


def _with(i, j, v, sym=True):
    D = GOOD.copy()
    D[i, j] = v
    if sym:
        D[j, i] = v
    return D


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((np.ones((3, 4)),), {}, "square"),
        ((np.ones(9),), {}, "square"),
        ((_with(0, 1, 3.0, sym=False),), {}, "not symmetric"),
        ((_with(0, 1, np.nan),), {}, "NaN"),
        ((_with(0, 1, -1.0),), {}, "negative"),
        ((_with(1, 1, 0.5, sym=False),), {}, "diagonal"),
        ((np.array([["a", "b"], ["c", "d"]]),), {}, "real-valued"),
        ((GOOD,), {"max_dim": -1}, "max_dim"),
        ((GOOD,), {"max_dim": 1.5}, "max_dim"),
        ((GOOD,), {"max_dim": True}, "max_dim"),
        ((GOOD,), {"threshold": np.nan}, "threshold"),
        ((GOOD,), {"threshold": -1.0}, "threshold"),
        ((GOOD,), {"threshold": "x"}, "threshold"),
        ((GOOD,), {"comm": 3}, "comm"),
        ((sp.csr_matrix(np.array([[0, 1.0], [2.0, 0]])),), {}, "not symmetric"),
        ((sp.csr_matrix(np.array([[0, 1.0], [0, 0]])),), {}, "not symmetric"),
        ((sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0]])),), {}, "diagonal"),
        ((sp.csr_matrix(np.array([[0, -1.0], [-1.0, 0]])),), {}, "negative"),
        ((sp.csr_matrix(np.ones((2, 3))),), {}, "square"),
    ],
)
def test_bad_input_raises_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        persistence(*args, **kwargs)


def test_too_large_complex_raises_with_estimate():
    D = np.ones((3000, 3000))
    np.fill_diagonal(D, 0)
    with pytest.raises(ValueError, match="too large for memory"):
        persistence(D, max_dim=4)


def test_index_overflow_raises():
    with pytest.raises(ValueError, match="overflow"):
        persistence(sp.csr_matrix((200000, 200000)), max_dim=6)


def test_sparse_stored_zero_diagonal_and_empty_rows():
    """Stored zeros on the diagonal are vertex births, not edges; trailing empty rows are vertices."""
    rows, cols = [0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 2, 0, 1, 2, 0, 1, 2]
    vals = [0.0, 1.0, 2.0, 1.0, 0.0, 1.5, 2.0, 1.5, 0.0]
    with_diag = sp.csr_matrix((vals, (rows, cols)), shape=(5, 5))
    assert with_diag.nnz == 9
    off = [k for k in range(9) if rows[k] != cols[k]]
    without = sp.csr_matrix(([vals[k] for k in off], ([rows[k] for k in off], [cols[k] for k in off])), shape=(5, 5))
    a, b = persistence(with_diag, max_dim=1), persistence(without, max_dim=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[0], [[0, 1], [0, 1.5], [0, np.inf], [0, np.inf], [0, np.inf]])
    assert len(a[1]) == 0


def test_verbose_reports_phases_with_peak_memory(capfd):
    D = point_cloud_distances(np.random.default_rng(2), 30, 3)
    quiet = persistence(D, max_dim=2)
    assert capfd.readouterr().err == ""
    loud = persistence(D, max_dim=2, verbose=True)
    err = capfd.readouterr().err
    assert "30 vertices" in err and "H0 done" in err
    for q in (1, 2):
        assert f"dim {q}: reduced" in err
    assert "MiB peak]" in err
    for a, b in zip(quiet, loud):
        np.testing.assert_array_equal(a, b)
