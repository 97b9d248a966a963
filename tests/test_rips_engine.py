"""The Vietoris-Rips engine's own paths, each forced and compared with an independent oracle: the
per-edge column listing against the simplex-by-simplex apparent-pair tests (simplex by simplex),
dense and neighbour-list look-ups, the windowed reduction, and threads inside a rank against
gudhi."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
from topodnn import _core

gudhi = pytest.importorskip("gudhi")

LOWER, UPPER = 1, 2


def sorted_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def gudhi_diagrams(D: np.ndarray, max_dim: int, threshold: float = np.inf) -> list:
    st_ = gudhi.RipsComplex(distance_matrix=D, max_edge_length=threshold).create_simplex_tree(
        max_dimension=max_dim + 1
    )
    st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True)
    out = []
    for q in range(max_dim + 1):
        b = st_.persistence_intervals_in_dimension(q).reshape(-1, 2)
        out.append(sorted_rows(b[b[:, 0] != b[:, 1]]))
    return out


def assert_same(ours: list, ref: list) -> None:
    assert len(ours) == len(ref)
    for q, (a, b) in enumerate(zip(ours, ref)):
        a = sorted_rows(a)
        assert a.shape == b.shape, f"H{q}: {a.shape[0]} pairs, expected {b.shape[0]}"
        np.testing.assert_array_equal(a, b, err_msg=f"H{q}")


def matrix(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Symmetric distances with a zero diagonal. 'ties': integers 1..3 (most values tied);
    'zeros': integers 0..2 (zero-length edges too); 'points': a rounded 3-D point cloud (some
    ties); 'uniform': no ties."""
    if kind == "points":
        X = rng.normal(size=(n, 3))
        D = np.round(np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)), 1)
    elif kind == "uniform":
        D = rng.random((n, n))
    else:
        lo = 0 if kind == "zeros" else 1
        D = rng.integers(lo, 4 if kind == "ties" else 3, size=(n, n)).astype(float)
    D = np.triu(D, 1)
    D = D + D.T
    return np.ascontiguousarray(D)


def threshold_of(D: np.ndarray, quantile) -> float:
    if quantile is None:
        return np.inf
    return float(np.quantile(D[np.triu_indices(len(D), 1)], quantile))


def rips(D, max_dim, thr=np.inf, *, dense_lookup_bytes=-1, working_bytes=-1):
    return _core._rips_persistence(D, None, None, None, len(D), max_dim, thr, None, False, dense_lookup_bytes,
                                   working_bytes)


# ----------------------------------------------------------------------- column listing
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 28),
    kind=st.sampled_from(["ties", "zeros", "points", "uniform"]),
    quantile=st.sampled_from([None, 0.3, 0.6]),
    dim=st.sampled_from([1, 2]),
    dense_lookup_bytes=st.sampled_from([-1, 0]),
)
def test_edge_listing_verdicts_equal_reference(seed, n, kind, quantile, dim, dense_lookup_bytes):
    """Per-edge listing (one candidate set per edge, triangles listed from their max-key edge)
    against the simplex-by-simplex tests: the same simplices, each once, with the same
    apparent-pair verdicts (lower half, upper half), ties included."""
    D = matrix(np.random.default_rng(seed), n, kind)
    thr = threshold_of(D, quantile)
    ref = _core._rips_apparent_verdicts(D, dim, thr, dense_lookup_bytes, True)
    got = _core._rips_apparent_verdicts(D, dim, thr, dense_lookup_bytes, False)
    np.testing.assert_array_equal(got[1], ref[1], err_msg="simplices listed")
    np.testing.assert_array_equal(got[0], ref[0], err_msg="filtration values")
    np.testing.assert_array_equal(got[2], ref[2], err_msg="apparent-pair verdicts")
    assert len(np.unique(got[1])) == len(got[1]), "a simplex listed twice"


def test_edge_listing_sees_every_verdict_kind_on_ties():
    """The equivalence above is not vacuous: tied inputs produce lower halves, upper halves and
    columns among the triangles, and the number of triangles is C(n, 3) for a complete graph."""
    D = matrix(np.random.default_rng(3), 25, "ties")
    v, r, f = _core._rips_apparent_verdicts(D, 2, np.inf, -1, False)
    assert len(r) == 25 * 24 * 23 // 6
    counts = np.bincount(f, minlength=4)
    assert counts[0] > 0 and counts[LOWER] > 0 and counts[UPPER] > 0 and counts[3] == 0
    v1, r1, f1 = _core._rips_apparent_verdicts(D, 1, np.inf, 0, False)
    assert len(r1) == 300 and 0 < np.count_nonzero(f1 == LOWER) < 300


def test_apparent_verdicts_refuses_bad_arguments():
    D = np.zeros((3, 3))
    with pytest.raises(ValueError, match="dimension 1 or 2"):
        _core._rips_apparent_verdicts(D, 3, np.inf, -1, False)
    with pytest.raises(ValueError, match="threshold"):
        _core._rips_apparent_verdicts(D, 1, -1.0, -1, False)
    with pytest.raises(ValueError, match="square"):
        _core._rips_apparent_verdicts(np.zeros((2, 3)), 1, np.inf, -1, False)


# ----------------------------------------------------------------------- whole engine
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 24),
    kind=st.sampled_from(["ties", "zeros", "points", "uniform"]),
    quantile=st.sampled_from([None, 0.4, 0.7]),
    max_dim=st.integers(1, 3),
    dense_lookup_bytes=st.sampled_from([-1, 0]),
    working_bytes=st.sampled_from([-1, 16 * 16]),
)
def test_equals_gudhi_on_every_path(seed, n, kind, quantile, max_dim, dense_lookup_bytes, working_bytes):
    """Dense or neighbour-list look-up, whole or windowed working columns: gudhi's diagrams."""
    D = matrix(np.random.default_rng(seed), n, kind)
    thr = threshold_of(D, quantile)
    got = rips(D, max_dim, thr, dense_lookup_bytes=dense_lookup_bytes, working_bytes=working_bytes)
    assert_same(got, gudhi_diagrams(D, max_dim, thr))
