"""Edge collapse of the flag filtration (extern/dipha/src/collapse.cpp): the engine's diagrams with
collapse equal those without, exactly; gudhi's diagrams of its own collapsed filtration agree; the
collapsed edge list itself (via _core._collapse_edges) keeps only what the algorithm may produce;
known answers; serial = MPI."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
from topodnn import _core

from oracles import gudhi_persistence, sorted_rows

from conftest import run_mpi

import gudhi


# --------------------------------------------------------------------------------- helpers
def rips(D: np.ndarray, max_dim: int, thr: float = np.inf, collapse: int = 0, dense_lookup_bytes: int = -1,
         sparse: bool = False, verbose: bool = False) -> list:
    """The engine's diagrams of a dense matrix, or of its edges <= thr passed as CSR."""
    n = len(D)
    if not sparse:
        return _core._rips_persistence(np.ascontiguousarray(D), None, None, None, n, max_dim, thr, None, verbose,
                                       dense_lookup_bytes, -1, collapse=collapse)
    keep = (D <= thr) & ~np.eye(n, dtype=bool)
    rows, cols = np.nonzero(keep)
    S = sp.csr_matrix((D[rows, cols], (rows, cols)), shape=(n, n))
    S.sort_indices()
    return _core._rips_persistence(np.zeros((0, 0)), S.indptr.astype(np.int64), S.indices.astype(np.int64),
                                   S.data.astype(np.float64), n, max_dim, np.inf, None, verbose,
                                   dense_lookup_bytes, -1, collapse=collapse)


def assert_identical(a: list, b: list) -> None:
    assert len(a) == len(b)
    for q, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f"H{q}: {x.shape[0]} pairs, expected {y.shape[0]}"
        np.testing.assert_array_equal(x, y, err_msg=f"H{q}")


def gudhi_tree(n: int, u, v, w) -> "gudhi.SimplexTree":
    """gudhi's flag filtration (1-skeleton) of a filtered graph, vertices at 0."""
    st_ = gudhi.SimplexTree()
    for i in range(n):
        st_.insert([i], 0.0)
    for a, b, x in zip(u, v, w):
        st_.insert([int(a), int(b)], float(x))
    return st_


def edges_of(D: np.ndarray, thr: float = np.inf):
    iu = np.triu_indices(len(D), 1)
    keep = np.isfinite(D[iu]) & (D[iu] <= thr)
    return iu[0][keep].astype(np.int64), iu[1][keep].astype(np.int64), D[iu][keep].astype(np.float64)


def point_cloud(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    X = rng.normal(size=(n, dim))
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, 0)
    return D


def make_matrix(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind.startswith("points"):
        return point_cloud(rng, n, int(kind[-1]))
    if kind.startswith("ties"):  # integer values 1..k: many equal filtration values
        A = rng.integers(1, int(kind[-1]) + 1, size=(n, n)).astype(float)
    elif kind == "correlation":  # 1 - |corr| of units of a random two-layer network
        X = rng.normal(size=(60, 5))
        H = np.maximum(X @ rng.normal(size=(5, n)), 0) + 1e-3 * rng.normal(size=(60, n))
        A = np.clip(1 - np.abs(np.corrcoef(H.T)), 0, None)  # symmetric only up to rounding
    else:
        A = rng.random((n, n))
    D = np.triu(A, 1) + np.triu(A, 1).T
    return D


KINDS = ["points2", "points3", "points4", "matrix", "ties2", "ties3", "ties5", "correlation"]


# ------------------------------------------------------- engine: same diagrams with collapse
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 28),
    max_dim=st.integers(1, 3),
    kind=st.sampled_from(KINDS),
    quantile=st.sampled_from([None, 0.3, 0.6, 0.85]),
    rounds=st.sampled_from([1, 2, -1]),
    sparse=st.booleans(),
    lists=st.booleans(),
)
def test_collapse_keeps_the_diagrams(seed, n, max_dim, kind, quantile, rounds, sparse, lists):
    rng = np.random.default_rng(seed)
    D = make_matrix(rng, kind, n)
    thr = np.inf if quantile is None else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    dl = 0 if lists else -1  # neighbour lists only (engine and collapse) or the dense look-ups
    ref = rips(D, max_dim, thr)
    got = rips(D, max_dim, thr, collapse=rounds, dense_lookup_bytes=dl, sparse=sparse)
    assert_identical(got, ref)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 24),
    max_dim=st.integers(1, 3),
    kind=st.sampled_from(KINDS),
    quantile=st.sampled_from([None, 0.5]),
    rounds=st.sampled_from([1, 3]),
)
def test_collapse_equals_gudhi_on_its_collapsed_filtration(seed, n, max_dim, kind, quantile, rounds):
    rng = np.random.default_rng(seed)
    D = make_matrix(rng, kind, n)
    thr = np.inf if quantile is None else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    tree = gudhi_tree(n, *edges_of(D, thr))
    tree.collapse_edges(nb_iterations=rounds)
    ref = gudhi_persistence(tree, max_dim)
    got = rips(D, max_dim, thr, collapse=rounds)
    for q in range(max_dim + 1):
        np.testing.assert_array_equal(sorted_rows(got[q]), ref[q], err_msg=f"H{q}")


def test_collapse_on_a_larger_correlation_graph():
    # a functional-graph-like input where collapse removes most edges; H0..H3
    rng = np.random.default_rng(2024)
    D = make_matrix(rng, "correlation", 70)
    thr = float(np.quantile(D[np.triu_indices(70, 1)], 0.4))
    assert_identical(rips(D, 3, thr, collapse=-1), rips(D, 3, thr))
    assert_identical(rips(D, 3, thr, collapse=2, dense_lookup_bytes=0, sparse=True), rips(D, 3, thr))


def test_verbose_reports_the_collapse(capfd):
    D = point_cloud(np.random.default_rng(3), 30, 2)
    got = rips(D, 1, 1.0, collapse=2, verbose=True)
    err = capfd.readouterr().err
    u, _, _ = edges_of(D, 1.0)
    after = _core._collapse_edges(30, *edges_of(D, 1.0), 2)[3]["edges_after_round"]
    rounds = [x for x in err.splitlines() if "edge collapse round" in x]  # progress, one per round
    assert rounds == [f"[rips] edge collapse round {r + 1}: {len(u)} -> {a} edges" for r, a in enumerate(after)], err
    summary = [x for x in err.splitlines() if "edge collapse:" in x]
    assert len(summary) == 1 and f"{len(u)} -> {after[-1]} edges in {len(after)} rounds" in summary[0], err
    assert_identical(got, rips(D, 1, 1.0))


def test_bad_collapse_value_is_refused():
    D = point_cloud(np.random.default_rng(3), 5, 2)
    with pytest.raises(ValueError, match="collapse must be -1"):
        rips(D, 1, collapse=-2)


# ----------------------------------------------------------------------------- known answers
def cycle_matrix(k: int, cycle: float, chord: float) -> np.ndarray:
    D = np.full((k, k), chord)
    for i in range(k):
        D[i, (i + 1) % k] = D[(i + 1) % k, i] = cycle
    np.fill_diagonal(D, 0)
    return D


def test_cone_collapses_to_a_tree():
    # apex 0 joined at 0.5 to a 6-cycle of edges at 1 (other pairs absent): the flag complex is a
    # cone; every cycle edge is dominated by the apex from its birth on and is removed, which
    # leaves the star: a contractible filtration on the same vertices.
    k = 6
    D = np.full((k + 1, k + 1), np.inf)
    D[1:, 1:] = cycle_matrix(k, 1.0, np.inf)
    D[0, 1:] = D[1:, 0] = 0.5
    D[0, 0] = 0
    u, v, w, counts = _core._collapse_edges(k + 1, *edges_of(D), 1)
    np.testing.assert_array_equal(u, np.zeros(k))
    np.testing.assert_array_equal(v, np.arange(1, k + 1))
    np.testing.assert_array_equal(w, np.full(k, 0.5))
    assert counts["removed"] == k and counts["moved"] == 0 and counts["edges_after_round"] == [k]
    for rounds in (1, -1):
        dg = rips(D, 2, collapse=rounds)
        np.testing.assert_array_equal(dg[0], [[0, 0.5]] * k + [[0, np.inf]])
        assert dg[1].shape == (0, 2) and dg[2].shape == (0, 2)


def test_four_cycle_h1_survives():
    # a 4-cycle at 1 with diagonals at 2: H1 = (1, 2). One diagonal is dominated from 2 on and
    # removed; the other, the cycle and the class stay.
    D = cycle_matrix(4, 1.0, 2.0)
    u, v, w, counts = _core._collapse_edges(4, *edges_of(D), 5)
    assert len(u) == 5 and sorted(w) == [1, 1, 1, 1, 2]
    assert counts["edges_after_round"] == [5, 5]  # the second round changes nothing: no third
    for rounds in (1, -1):
        np.testing.assert_array_equal(rips(D, 1, collapse=rounds)[1], [[1.0, 2.0]])
        # without the diagonals nothing is dominated: the class is essential
        np.testing.assert_array_equal(rips(D, 1, 1.5, collapse=rounds)[1], [[1.0, np.inf]])
    assert len(_core._collapse_edges(4, *edges_of(D, 1.5), -1)[0]) == 4


def test_octahedron_h2_survives():
    X = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    u, v, w, _ = _core._collapse_edges(6, *edges_of(D), -1)
    # two of the three diagonals are dominated at 2 and removed; the third closes the sphere
    assert len(u) == 13 and (w == 2).sum() == 1
    for rounds in (1, -1):
        dg = rips(D, 2, collapse=rounds)
        assert dg[1].shape == (0, 2)
        np.testing.assert_array_equal(dg[2], [[np.sqrt(2), 2.0]])
        dg = rips(D, 2, 1.5, collapse=rounds)  # the octahedron alone: nothing to collapse
        np.testing.assert_array_equal(dg[2], [[np.sqrt(2), np.inf]])
    assert len(_core._collapse_edges(6, *edges_of(D, 1.5), -1)[0]) == 12


# ------------------------------------------------------------------ the collapsed edge list
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 30),
    kind=st.sampled_from(KINDS),
    quantile=st.sampled_from([None, 0.4]),
    rounds=st.sampled_from([1, 2, 5, -1]),
)
def test_collapsed_edge_list(seed, n, kind, quantile, rounds):
    rng = np.random.default_rng(seed)
    D = make_matrix(rng, kind, n)
    thr = np.inf if quantile is None else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    u0, v0, w0 = edges_of(D, thr)
    perm = rng.permutation(len(u0))  # the input's order and orientation do not matter
    u, v, w, counts = _core._collapse_edges(n, v0[perm], u0[perm], w0[perm], rounds)
    # a subset of the input edges, u < v, sorted by (value, v, u), each value raised to some
    # input value or kept
    assert np.all(u < v)
    assert np.all(np.lexsort((u, v, w)) == np.arange(len(u)))
    orig = {(int(a), int(b)): x for a, b, x in zip(u0, v0, w0)}
    for a, b, x in zip(u, v, w):
        assert x >= orig[(int(a), int(b))]
    assert set(w.tolist()) <= set(w0.tolist())
    after = counts["edges_after_round"]
    assert after and after[-1] == len(u) and all(x >= y for x, y in zip([len(u0)] + after, after))
    assert counts["removed"] == len(u0) - len(u)
    if rounds < 0:  # until a round removes no edge: the last one removed none
        assert ([len(u0)] + after)[-2] == after[-1]
    else:
        assert len(after) <= rounds
        if len(after) < rounds:  # stopped early: the last round changed nothing, nor does another
            again = _core._collapse_edges(n, u, v, w, 1)
            assert again[3]["edges_after_round"] == [len(u)] and again[3]["moved"] == 0
            for x, y in zip(again[:3], (u, v, w)):
                np.testing.assert_array_equal(x, y)
    # neighbour lists instead of the dense look-up: the same edges
    lists = _core._collapse_edges(n, u0, v0, w0, rounds, 0)
    for x, y in zip(lists[:3], (u, v, w)):
        np.testing.assert_array_equal(x, y)
    # the flag filtration of the collapsed list has gudhi's diagrams of the original
    max_dim = 2
    ref = gudhi_persistence(gudhi_tree(n, u0, v0, w0), max_dim)
    got = gudhi_persistence(gudhi_tree(n, u, v, w), max_dim)
    for q in range(max_dim + 1):
        np.testing.assert_array_equal(got[q], ref[q], err_msg=f"H{q}")


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_edge_count_against_gudhi_collapse_edges(dim):
    # The two implementations need not visit edges alike, so only what must hold is asserted:
    # both keep the diagrams and remove edges; the counts themselves are compared in reports.
    rng = np.random.default_rng(dim)
    D = point_cloud(rng, 120, dim)
    thr = float(np.quantile(D[np.triu_indices(120, 1)], 0.3))
    u0, v0, w0 = edges_of(D, thr)
    for rounds in (1, 3):
        u, v, w, _ = _core._collapse_edges(120, u0, v0, w0, rounds)
        tree = gudhi_tree(120, u0, v0, w0)
        tree.collapse_edges(nb_iterations=rounds)
        theirs = sum(1 for s, _ in tree.get_skeleton(1) if len(s) == 2)
        assert len(u) < len(u0) and theirs < len(u0)
        ours = gudhi_persistence(gudhi_tree(120, u, v, w), 1)
        for q, ref in enumerate(gudhi_persistence(tree, 1)):
            np.testing.assert_array_equal(ours[q], ref)


@pytest.mark.parametrize(
    "u, v, w, fragment",
    [
        ([0, 1], [1, 0], [1.0, 1.0], "listed twice"),
        ([0], [0], [1.0], "self-loop"),
        ([0], [5], [1.0], "out of range"),
        ([0], [1], [np.nan], "not finite"),
        ([0], [1], [np.inf], "not finite"),
        ([-1], [1], [1.0], "out of range"),
    ],
)
def test_collapse_edges_refuses_bad_input(u, v, w, fragment):
    with pytest.raises(ValueError, match=fragment):
        _core._collapse_edges(3, np.array(u), np.array(v), np.array(w), 1)


def test_collapse_edges_zero_rounds_and_empty_input():
    D = point_cloud(np.random.default_rng(1), 10, 2)
    u0, v0, w0 = edges_of(D)
    u, v, w, counts = _core._collapse_edges(10, u0, v0, w0, 0)
    assert len(u) == len(u0) and counts["edges_after_round"] == []
    u, v, w, counts = _core._collapse_edges(4, np.zeros(0), np.zeros(0), np.zeros(0), -1)
    assert len(u) == 0 and counts["edges_after_round"] == [0]


# -------------------------------------------------------------------------------------- MPI
SAME_AS_SERIAL = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from topodnn import _core

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(777)
    cases = []
    for t in range(10):
        n = int(rng.integers(4, 40))
        if t % 3 == 0:  # ties
            A = rng.integers(1, 4, size=(n, n)).astype(float); D = np.triu(A, 1) + np.triu(A, 1).T
        else:
            X = rng.normal(size=(n, 2 + t % 3)); D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
        np.fill_diagonal(D, 0)
        thr = np.inf if t % 2 else float(np.quantile(D, 0.6))
        cases.append((np.ascontiguousarray(D), int(rng.integers(1, 4)), thr))
    bad = 0
    for i, (D, md, thr) in enumerate(cases):
        ref = _core._rips_persistence(D, None, None, None, len(D), md, thr, None, False)
        for rounds in (1, -1):
            serial = _core._rips_persistence(D, None, None, None, len(D), md, thr, None, False, -1, -1, collapse=rounds)
            par = _core._rips_persistence(D, None, None, None, len(D), md, thr, comm, False, -1, -1, collapse=rounds)
            if not all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(ref, serial, par)):
                print(f"rank {comm.rank}: case {i} rounds {rounds} differs", flush=True); bad += 1
    bad = comm.allreduce(bad)
    if comm.rank == 0:
        print("MISMATCHES", bad, flush=True)
    sys.exit(1 if bad else 0)
    """
)


@pytest.mark.parametrize("nprocs", [2, 3])
def test_collapse_under_mpi_equals_serial(tmp_path, nprocs):
    script = tmp_path / "collapse_mpi.py"
    script.write_text(SAME_AS_SERIAL)
    proc = run_mpi(nprocs, [sys.executable, script], timeout=180)
    assert proc.returncode == 0 and "MISMATCHES 0" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_persistence_collapse_edges_keyword_gives_the_same_diagrams() -> None:
    """topodnn.persistence(collapse_edges=...) reaches the engine's collapse: same diagrams for
    True, rounds and -1; bad values refused."""
    from topodnn.engine import persistence

    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    ref = persistence(D, 2, 1.2)
    for c in (True, 1, 2, -1):
        got = persistence(D, 2, 1.2, collapse_edges=c)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a, b)
    for bad in (-2, 1.5, "3", None):
        with pytest.raises(ValueError, match="collapse_edges"):
            persistence(D, 1, collapse_edges=bad)
