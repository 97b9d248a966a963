"""The Vietoris-Rips engine's own paths, each forced and compared with an independent oracle: the
per-edge column listing against the simplex-by-simplex apparent-pair tests (simplex by simplex),
dense and neighbour-list look-ups, the long (bucketed) and windowed working columns, and threads
inside a rank against gudhi."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
from topodnn import _core

from conftest import run_dipha_batch, run_mpi

from oracles import assert_same, gudhi_diagrams, sorted_rows

LOWER, UPPER = 1, 2


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


#: The kinds of matrix() and random seeds, as every randomised test here draws them.
KINDS = st.sampled_from(["ties", "zeros", "points", "uniform"])
SEEDS = st.integers(0, 2**32 - 1)


def threshold_of(D: np.ndarray, quantile) -> float:
    if quantile is None:
        return np.inf
    return float(np.quantile(D[np.triu_indices(len(D), 1)], quantile))


def rips(D, max_dim, thr=np.inf, *, dense_lookup_bytes=-1, working_bytes=-1, n_threads=1, long_column_bytes=-1,
         window_method=0, verbose=False):
    return _core._rips_persistence(D, None, None, None, len(D), max_dim, thr, None, verbose, dense_lookup_bytes,
                                   working_bytes, n_threads=n_threads, long_column_bytes=long_column_bytes,
                                   window_method=window_method)


#: how a window regenerates its coboundary: by estimate, by V edge, by window edge (same entries)
WINDOW_METHODS = st.sampled_from([0, 1, 2])


#: long_column_bytes that keeps every column in its heap (the long path off)
NO_LONG = 1 << 50


# ----------------------------------------------------------------------- column listing
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=SEEDS,
    n=st.integers(3, 28),
    kind=KINDS,
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


@pytest.mark.parametrize("kind", ["ties", "points", "uniform"])
@pytest.mark.parametrize("n", [150, 400])
def test_edge_walk_verdicts_on_larger_graphs(kind, n):
    """Dimension 1 on graphs whose balls outgrow the walk's small-ball path (64 members) and
    whose neighbour lists are long against small balls (both of its searches for min S_e), dense
    and neighbour-list look-ups, complete and thresholded: the reference's verdicts exactly."""
    D = matrix(np.random.default_rng(n), n, kind)
    for quantile in (None, 0.3):
        thr = threshold_of(D, quantile)
        for dense_lookup_bytes in (-1, 0):
            ref = _core._rips_apparent_verdicts(D, 1, thr, dense_lookup_bytes, True)
            got = _core._rips_apparent_verdicts(D, 1, thr, dense_lookup_bytes, False)
            for k in range(3):
                np.testing.assert_array_equal(got[k], ref[k])
            assert 0 < np.count_nonzero(got[2] == LOWER) < len(got[2])


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
    seed=SEEDS,
    n=st.integers(2, 24),
    kind=KINDS,
    quantile=st.sampled_from([None, 0.4, 0.7]),
    max_dim=st.integers(1, 3),
    dense_lookup_bytes=st.sampled_from([-1, 0]),
    working_bytes=st.sampled_from([-1, 16 * 16]),
    window_method=WINDOW_METHODS,
)
def test_equals_gudhi_on_every_path(seed, n, kind, quantile, max_dim, dense_lookup_bytes, working_bytes,
                                    window_method):
    """Dense or neighbour-list look-up, whole or windowed working columns (either regeneration of
    a window): gudhi's diagrams."""
    D = matrix(np.random.default_rng(seed), n, kind)
    thr = threshold_of(D, quantile)
    got = rips(D, max_dim, thr, dense_lookup_bytes=dense_lookup_bytes, working_bytes=working_bytes,
               window_method=window_method)
    assert_same(got, gudhi_diagrams(D, max_dim, thr))


# ----------------------------------------------------------------------- long working columns
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=SEEDS,
    n=st.integers(4, 40),
    kind=KINDS,
    quantile=st.sampled_from([None, 0.3, 0.6]),
    max_dim=st.integers(1, 3),
    long_entries=st.sampled_from([1, 4, 32]),
    working_entries=st.sampled_from([None, 40, 300]),
    n_threads=st.sampled_from([1, 3]),
    dense_lookup_bytes=st.sampled_from([-1, 0]),
    window_method=WINDOW_METHODS,
)
def test_long_columns_equal_gudhi(seed, n, kind, quantile, max_dim, long_entries, working_entries, n_threads,
                                  dense_lookup_bytes, window_method):
    """Columns forced onto the long path (buckets of values, waiting additions, compaction, the
    fall-back to windows, either regeneration of a window, long columns handed on between
    threads): gudhi's diagrams, and exactly those of the heap-only reduction."""
    D = matrix(np.random.default_rng(seed), n, kind)
    thr = threshold_of(D, quantile)
    wb = -1 if working_entries is None else 16 * working_entries
    got = rips(D, max_dim, thr, dense_lookup_bytes=dense_lookup_bytes, working_bytes=wb, n_threads=n_threads,
               long_column_bytes=16 * long_entries, window_method=window_method)
    ref = rips(D, max_dim, thr, dense_lookup_bytes=dense_lookup_bytes, long_column_bytes=NO_LONG)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert_same(got, gudhi_diagrams(D, max_dim, thr))


@pytest.mark.parametrize("kind", ["ties", "zeros"])
@pytest.mark.parametrize("window_method", [1, 2])
def test_windows_with_tied_values(kind, window_method):
    """Windows regenerated on matrices of few distinct values (the longest edge of a coface is
    decided by rank among equal values), fixed seeds: the heap-only reduction's diagrams exactly,
    and gudhi's."""
    for seed in range(12):
        D = matrix(np.random.default_rng(seed), 20 + seed, kind)
        thr = threshold_of(D, 0.6)
        got = rips(D, 1, thr, working_bytes=16 * 16, window_method=window_method)
        ref = rips(D, 1, thr, long_column_bytes=NO_LONG)
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)
        assert_same(got, gudhi_diagrams(D, 1, thr))


def _reduction_counts(err: str) -> dict:
    """Sums over dimensions of the verbose log's long-path and window counts."""
    import re

    out = {"long": 0, "buckets": 0, "compactions": 0, "windowed": 0, "forwarded": 0, "windows": 0,
           "by_window_edge": 0}
    keys = ["forwarded", "long", "buckets", "compactions", "windowed", "windows", "by_window_edge"]
    for line in err.splitlines():
        m = re.search(r"(\d+) forwarded;.*; (\d+) long columns \((\d+) buckets reached\), largest \d+ entries, "
                      r"(\d+) compactions; (\d+) columns in (\d+) windows, (\d+) of them by window edge", line)
        if m:
            for k, v in zip(keys, map(int, m.groups())):
                out[k] += v
    return out


@pytest.mark.parametrize("working_entries, long_entries, n_threads, window_method, expect", [
    (None, 64, 1, 0, ("long", "buckets")),
    (300, 32, 1, 1, ("long", "buckets", "compactions", "windowed")),
    (300, 32, 1, 2, ("long", "buckets", "compactions", "windowed", "by_window_edge")),
    (16, -1, 3, 2, ("windowed", "by_window_edge")),
    (None, 64, 3, 0, ("long", "forwarded")),
])
def test_long_path_is_taken(capfd, working_entries, long_entries, n_threads, window_method, expect):
    """Each part of the long path, and each regeneration of a window, is reached on a 200-point
    cloud (H1 at the 30 % quantile)."""
    X = np.random.default_rng(200).normal(size=(200, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    thr = float(np.quantile(D, 0.3))
    wb = -1 if working_entries is None else 16 * working_entries
    lb = -1 if long_entries < 0 else 16 * long_entries
    got = rips(D, 1, thr, working_bytes=wb, n_threads=n_threads, long_column_bytes=lb,
               window_method=window_method, verbose=True)
    counts = _reduction_counts(capfd.readouterr().err)
    assert all(counts[k] > 0 for k in expect), counts
    if window_method == 1:
        assert counts["by_window_edge"] == 0, counts
    if window_method == 2:
        assert counts["by_window_edge"] == counts["windows"], counts
    ref = rips(D, 1, thr, long_column_bytes=NO_LONG)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert_same(got, gudhi_diagrams(D, 1, thr))


# ----------------------------------------------------------------------- dense look-up
def _lookup_kind(err: str) -> str:
    import re

    m = re.search(r"edges \(([^)]*)\); H0 done", err)
    assert m, err
    return m.group(1)


@settings(max_examples=60, deadline=None,  # capfd is read out after each call: safe to share
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    seed=SEEDS,
    n=st.integers(3, 24),
    kind=KINDS,
    quantile=st.sampled_from([None, 0.3, 0.6]),
    max_dim=st.integers(1, 3),
    variant=st.sampled_from(["symmetric", "diagonal", "upper", "float32"]),
)
def test_dense_lookup_in_place_or_copied(capfd, seed, n, kind, quantile, max_dim, variant):
    """The dense look-up reads an exactly symmetric float64 matrix in place (its diagonal, here
    not zero, never read) and copies any other (the lower triangle's values, DIPHA's
    convention): the diagrams of the lower triangle either way, as the neighbour lists give
    them and as gudhi does."""
    rng = np.random.default_rng(seed)
    D = matrix(rng, n, kind)
    thr = threshold_of(D, quantile)
    if variant == "diagonal":
        np.fill_diagonal(D, rng.random(n) * 1e-3)
    elif variant == "upper":  # the upper triangle off by a little: it must not be read
        iu = np.triu_indices(n, 1)
        D[iu] += rng.random(len(iu[0])) * 1e-3
    elif variant == "float32":
        D = D.astype(np.float32)
    got = rips(D, max_dim, thr, verbose=True)
    expect = "the input, in place" if variant in ("symmetric", "diagonal") else "a copy"
    assert _lookup_kind(capfd.readouterr().err) == "dense look-up: " + expect
    lower = np.tril(np.asarray(D, dtype=np.float64), -1)
    lower = lower + lower.T
    ref = rips(lower, max_dim, thr, dense_lookup_bytes=0, verbose=True)
    assert _lookup_kind(capfd.readouterr().err) == "neighbour lists"
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert_same(got, gudhi_diagrams(lower, max_dim, thr))


# ----------------------------------------------------------------------- threads inside a rank
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=SEEDS,
    n=st.integers(2, 26),
    kind=KINDS,
    quantile=st.sampled_from([None, 0.5]),
    max_dim=st.integers(1, 3),
    n_threads=st.integers(2, 4),
    dense_lookup_bytes=st.sampled_from([-1, 0]),
    working_bytes=st.sampled_from([-1, 16 * 16]),
)
def test_threads_equal_gudhi_and_one_thread(seed, n, kind, quantile, max_dim, n_threads, dense_lookup_bytes,
                                            working_bytes):
    """T threads: T workers of the pipelined reduction (key ranges, columns handed on between
    threads) and the listing shared out edge by edge; the diagrams of one thread and of gudhi."""
    D = matrix(np.random.default_rng(seed), n, kind)
    thr = threshold_of(D, quantile)
    kw = dict(dense_lookup_bytes=dense_lookup_bytes, working_bytes=working_bytes)
    got = rips(D, max_dim, thr, n_threads=n_threads, **kw)
    one = rips(D, max_dim, thr, n_threads=1, **kw)
    for a, b in zip(got, one):
        np.testing.assert_array_equal(a, b)
    assert_same(got, gudhi_diagrams(D, max_dim, thr))


def test_threads_hand_columns_on(capfd):
    """The pipeline between threads is exercised: columns are forwarded from worker to worker."""
    X = np.random.default_rng(7).normal(size=(60, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    got = _core._rips_persistence(D, None, None, None, 60, 2, np.inf, None, True, -1, -1, n_threads=3)
    err = capfd.readouterr().err
    forwarded = [int(line.split(" forwarded")[0].rsplit(" ", 1)[1]) for line in err.splitlines() if "forwarded" in line]
    assert len(forwarded) == 2 and max(forwarded) > 0, err
    assert_same(got, gudhi_diagrams(D, 2))


@pytest.mark.parametrize("n_threads", [-1, 1, 5])
def test_n_threads_accepted(n_threads):
    D = matrix(np.random.default_rng(1), 12, "points")
    ref = rips(D, 2)
    for a, b in zip(rips(D, 2, n_threads=n_threads), ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_threads", [0, -2])
def test_bad_n_threads_raises(n_threads):
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        rips(np.zeros((3, 3)), 1, n_threads=n_threads)


@pytest.mark.parametrize("window_method", [-1, 3])
def test_bad_window_method_raises(window_method):
    with pytest.raises(ValueError, match="window_method must be 0"):
        rips(np.zeros((3, 3)), 1, window_method=window_method)


RANKS_X_THREADS = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from topodnn import _core

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(2024)
    cases = []
    for t in range(8):
        n = int(rng.integers(20, 45))
        if t % 2:
            A = rng.integers(1, 4, size=(n, n)).astype(float)  # ties
        else:
            X = rng.normal(size=(n, 3)); A = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
        D = np.triu(A, 1); D = np.ascontiguousarray(D + D.T)
        thr = np.inf if t % 3 == 0 else float(np.quantile(D, 0.6))
        cases.append((D, 1 + t % 3, thr, [-1, 0][t % 2], [-1, 24 * 16][(t // 2) % 2]))
    bad = 0
    for i, (D, md, thr, dl, wb) in enumerate(cases):
        ref = _core._rips_persistence(D, None, None, None, len(D), md, thr, None, False, dl, wb)
        # every ranks x threads split, and ranks with different thread counts
        for T in (1, 2, 3, (comm.rank % 3) + 1):
            got = _core._rips_persistence(D, None, None, None, len(D), md, thr, comm, False, dl, wb, n_threads=T)
            if not all(np.array_equal(a, b) for a, b in zip(ref, got)):
                print(f"rank {comm.rank}: case {i} with {T} threads differs", flush=True)
                bad += 1
    bad = comm.allreduce(bad)
    if comm.rank == 0:
        print("MISMATCHES", bad, flush=True)
    sys.exit(1 if bad else 0)
    """
)


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_ranks_times_threads_identical(nprocs, tmp_path):
    script = tmp_path / "ranks_threads.py"
    script.write_text(RANKS_X_THREADS)
    proc = run_mpi(nprocs, [sys.executable, script], timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "MISMATCHES 0" in proc.stdout


FAULT_WITH_THREADS = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from topodnn import _core

    comm = MPI.COMM_WORLD
    X = np.random.default_rng(0).normal(size=(50, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    try:
        _core._rips_persistence(D, None, None, None, 50, 2, np.inf, comm, False, -1, -1, n_threads=int(sys.argv[1]))
    except MemoryError as e:
        print(f"rank {comm.rank} raised: {e}", flush=True)
    else:
        print(f"rank {comm.rank} did not raise", flush=True)
    """
)


@pytest.mark.parametrize(
    "phase, nprocs",
    [
        ("rips.reduce.2.0:1", 2),  # a worker's own columns
        ("rips.reduce.2.2:1", 2),  # a batch handed on by a thread of the same rank
        ("rips.reduce.1.3:2", 3),  # a batch handed on through the MPI chain
        ("rips.reduce.1.1:0", 1),  # one rank, its second thread
        ("rips.columns.2:0", 3),  # the threaded listing
        ("rips.workers:1", 2),
    ],
)
def test_fault_with_threads_raises_on_every_rank(phase, nprocs, tmp_path, monkeypatch):
    """Out of memory in any thread of any rank: every rank raises MemoryError, none hangs."""
    script = tmp_path / "fault.py"
    script.write_text(FAULT_WITH_THREADS)
    monkeypatch.setenv("DIPHA_FAULT_INJECT", phase)
    proc = run_mpi(nprocs, [sys.executable, script, "3"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == nprocs, proc.stdout
    for r, line in enumerate(lines):
        assert line.startswith(f"rank {r} raised: rips: out of memory while "), line


DIPHA_RIPS_CASES = [
    ("sphere_3_32.complex", 3, "sphere_3.diagram"),
    ("sphere_3_32_2.complex", 3, "sphere_3_2.diagram"),
    ("sphere_3_32_0.8.complex", 3, "sphere_3_0.8.diagram"),
    ("sphere_3_32_0.3.complex", 2, "sphere_1_0.3.diagram"),
]


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_dipha_threads_byte_identical(nprocs, dipha_test_data, tmp_path):
    """dipha --threads N: DIPHA's regression diagrams, byte for byte, for 1-3 ranks x 2-3 threads."""
    jobs, expected = [], {}
    for inp, ud, exp in DIPHA_RIPS_CASES:
        for T in (2, 3):
            job = f"{inp}@{ud}|{T}"
            out = tmp_path / f"{len(jobs)}.diagram"
            jobs.append((job, ["dipha", "--threads", str(T), "--upper_dim", str(ud), dipha_test_data / inp, out]))
            expected[job] = (out, dipha_test_data / exp)
    res = run_dipha_batch(nprocs, jobs, tmp_path / "batch")
    for job, (rc, text) in res.items():
        assert rc == 0, (job, text)
        out, exp = expected[job]
        assert Path(out).read_bytes() == Path(exp).read_bytes(), job


@pytest.mark.parametrize("value, message", [("0", "between 1 and 4096"), ("x", "is not an integer")])
def test_dipha_bad_threads_is_a_usage_error(value, message, dipha_test_data, tmp_path):
    argv = ["dipha", "--threads", value, "--upper_dim", "2", dipha_test_data / "sphere_3_32.complex", tmp_path / "o"]
    res = run_dipha_batch(2, [("bad", argv)], tmp_path / "batch")
    rc, text = res["bad"]
    assert rc == 1 and message in text and text.count("Usage: dipha") == 1
    assert not (tmp_path / "o").exists()


def test_persistence_n_threads_keyword_gives_the_same_diagrams() -> None:
    """topodnn.persistence(n_threads=) reaches the engine's threads: same diagrams; bad values
    refused with one line."""
    from topodnn.engine import persistence

    rng = np.random.default_rng(3)
    X = rng.normal(size=(70, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    ref = persistence(D, 2, 1.3)
    for t in (2, 3, -1):
        for a, b in zip(ref, persistence(D, 2, 1.3, n_threads=t)):
            np.testing.assert_array_equal(a, b)
    for bad in (0, -2, 1.5, True, "2", 10**6):
        with pytest.raises(ValueError, match="n_threads"):
            persistence(D, 1, n_threads=bad)


# ----------------------------------------------------------------------- sort of entries
def _float32_derived(rng, size, lo, hi):
    """Distances computed in float64 from float32 data, as functional graphs are: few bits."""
    c = rng.uniform(1 - 2 * hi, 1 - 2 * lo, size).astype(np.float32)
    return (1.0 - c.astype(np.float64)) / 2.0


@pytest.mark.parametrize("case", ["narrow", "ties", "one value", "wide", "full float64", "negative zero"])
def test_sort_entries_equals_lexsort(case):
    """The reduction's sort of coboundary entries (a radix sort of packed 64-bit keys where they
    fit): exactly numpy's lexsort by (value, rank), values back bit for bit, on the inputs that
    pack (narrow windows of few-bit values, ties, a single value) and those that do not."""
    rng = np.random.default_rng(len(case))
    n = 50_000
    ranks = rng.integers(0, 2**42, n)
    if case == "narrow":
        values = _float32_derived(rng, n, 0.2466, 0.2499)
    elif case == "ties":
        values = rng.choice(_float32_derived(rng, 40, 0.25, 0.26), n)
        ranks = rng.integers(0, 300, n)  # duplicates of whole entries too
    elif case == "one value":
        values = np.full(n, 0.25)
    elif case == "wide":
        values = _float32_derived(rng, n, 0.0, 0.3)
    elif case == "full float64":
        values = rng.uniform(0.2466, 0.2499, n)
    else:
        values = _float32_derived(rng, n, 0.0, 0.01)
        values[::7] = -0.0
    v, r, radix = _core._rips_sort_entries(values, ranks, 4096)
    order = np.lexsort((ranks, values))
    np.testing.assert_array_equal(v.view(np.uint64), values[order].view(np.uint64))
    np.testing.assert_array_equal(r, ranks[order])
    assert radix == (case in ("narrow", "ties", "one value")), "the path the case is meant to take"
    v2, r2, radix2 = _core._rips_sort_entries(values[:100], ranks[:100], 4096)
    assert not radix2
    np.testing.assert_array_equal(r2, ranks[:100][np.lexsort((ranks[:100], values[:100]))])


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, n=st.integers(1, 3000), distinct=st.integers(1, 60))
def test_sort_entries_random(seed, n, distinct):
    """Random short inputs forced through the radix sort (min_radix 1) or not: lexsort's order."""
    rng = np.random.default_rng(seed)
    values = rng.choice(_float32_derived(rng, distinct, 0.2, 0.24), n)
    ranks = rng.integers(0, int(rng.choice([2, 1000, 2**40])), n)
    order = np.lexsort((ranks, values))
    for min_radix in (1, 1 << 30):
        v, r, radix = _core._rips_sort_entries(values, ranks, min_radix)
        np.testing.assert_array_equal(v, values[order])
        np.testing.assert_array_equal(r, ranks[order])
        assert radix == (min_radix == 1)
