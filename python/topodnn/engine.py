"""Vietoris-Rips persistent homology of a distance matrix, serial or over MPI ranks.

The front of the C++ engine in ``extern/dipha/src/rips.cpp``. Same call shape and output as
``ripser.ripser(D, maxdim, thresh, distance_matrix=True)['dgms']``, plus ``comm=`` for MPI.
"""

from __future__ import annotations

import numbers
from typing import Any, List, Optional, Union

import numpy as np

from ._agreement import agree_on, check_comm
from ._arrays import (ROUNDING_ULPS, as_numpy, check_exact_integers, is_scipy_sparse, largest_asymmetry, real_dtype,
                      real_scalar, rounding_tolerance, rows_per_block, tolerance_text)

__all__ = ["persistence"]


#: Highest homology dimension the engine supports (simplices of up to 63 vertices).
MAX_DIM = 61

_WHAT = "distances"


def _check_max_dim(max_dim: Any) -> int:
    if isinstance(max_dim, bool) or not isinstance(max_dim, numbers.Integral):
        raise ValueError(f"max_dim must be an integer in [0, {MAX_DIM}], got {max_dim!r}")
    if not 0 <= max_dim <= MAX_DIM:
        raise ValueError(
            f"max_dim must lie in [0, {MAX_DIM}] (the engine handles simplices of at most "
            f"{MAX_DIM + 2} vertices), got {int(max_dim)}"
        )
    return int(max_dim)


def _check_threshold(threshold: Any) -> float:
    t = real_scalar(threshold, "threshold", "a real number >= 0 or inf")
    if np.isnan(t) or t < 0:
        raise ValueError(f"threshold must be >= 0 (or inf), got {t}")
    return t




def _dense_input(a: np.ndarray, eps_override: Optional[float]) -> np.ndarray:
    """The validated C-contiguous float32/float64 matrix handed to the engine (see persistence)."""
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"distances must be a square 2-D matrix, got shape {a.shape}; pass the full n x n "
            "distance matrix (not a condensed vector or a point cloud)"
        )
    working, eps = real_dtype(a.dtype, _WHAT, eps_override)
    check_exact_integers(a, _WHAT)
    a = np.ascontiguousarray(a, dtype=working)  # no copy for C-contiguous float32/float64
    n = a.shape[0]
    step = rows_per_block(n)  # temporaries of a few MiB
    scale = 0.0
    for i0 in range(0, n, step):
        blk = a[i0 : i0 + step]
        nan = np.isnan(blk)
        if nan.any():
            r, c = np.argwhere(nan)[0]
            raise ValueError(
                f"distances contain NaN (first at D[{i0 + r}, {c}]); remove or replace them "
                "(use +inf for an absent edge)"
            )
        if blk.min() < 0:
            neg = np.where(blk < 0, blk, 0)
            neg[np.arange(blk.shape[0]), np.arange(i0, i0 + blk.shape[0])] = 0  # the diagonal: below
            if neg.min() < 0:
                r, c = np.unravel_index(np.argmin(neg), neg.shape)
                raise ValueError(
                    f"distances contain negative values (D[{i0 + r}, {c}] = {float(blk[r, c])!r}); a "
                    "distance must be >= 0 (clip rounding below 0 with numpy.maximum(D, 0))"
                )
        scale = max(scale, float(np.max(np.abs(blk), where=np.isfinite(blk), initial=0.0)))
    tol = rounding_tolerance(eps, scale)
    diag = np.abs(np.diagonal(a).astype(np.float64))
    if n and diag.max() > tol:
        k = int(np.argmax(diag))
        raise ValueError(
            f"the diagonal of the distance matrix must be zero up to rounding (every vertex is "
            f"born at 0): D[{k}, {k}] = {float(a[k, k])!r} ({tolerance_text(tol, eps)}); set it with "
            "numpy.fill_diagonal(D, 0)"
        )
    worst, (i, j) = largest_asymmetry(a)
    if worst > tol:
        raise ValueError(
            f"the distance matrix is not symmetric beyond rounding: D[{j}, {i}] = {float(a[j, i])!r} but "
            f"D[{i}, {j}] = {float(a[i, j])!r}, the largest difference ({tolerance_text(tol, eps)}); "
            "symmetrise it, e.g. D = numpy.maximum(D, D.T), or keep the lower triangle, "
            "D = numpy.tril(D) + numpy.tril(D, -1).T"
        )
    return a


def _coo_duplicate(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, first: int) -> ValueError:
    """The error for entry (rows[first], cols[first]) stored more than once."""
    i, j = int(rows[first]), int(cols[first])
    vals = data[(rows == i) & (cols == j)]
    shown = ", ".join(repr(float(v)) for v in vals[:6]) + (", ..." if len(vals) > 6 else "")
    return ValueError(
        f"the sparse distance matrix stores the entry D[{i}, {j}] {len(vals)} times (values "
        f"{shown}); scipy would silently add them up (to {float(vals.sum())!r}). Store each entry once "
        "(e.g. build the matrix from unique (row, column) pairs), or call M.sum_duplicates() "
        "first if the sum is what you mean"
    )


def _csr_as_stored(m: Any):
    """CSR with sorted indices and the entries of ``m`` as stored; duplicates are an error."""
    import scipy.sparse as sp

    n = m.shape[0]
    if m.format == "csr":
        csr = sp.csr_matrix(m)  # no copy
        if csr.has_canonical_format:
            return csr
        csr = csr.copy()
        csr.has_sorted_indices = False
        csr.sort_indices()  # sorts only: duplicates stay
        row_of = np.repeat(np.arange(n), np.diff(csr.indptr))
        dup = (csr.indices[1:] == csr.indices[:-1]) & (row_of[1:] == row_of[:-1])
        if dup.any():
            raise _coo_duplicate(row_of, csr.indices, csr.data, int(np.argmax(dup)))
        csr.has_canonical_format = True
        return csr
    coo = m if m.format == "coo" else m.tocoo()  # tocoo keeps duplicates; tocsr would add them
    rows, cols = np.asarray(coo.row, dtype=np.int64), np.asarray(coo.col, dtype=np.int64)
    order = np.lexsort((cols, rows))
    rows, cols, data = rows[order], cols[order], np.asarray(coo.data)[order]
    dup = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
    if dup.any():
        raise _coo_duplicate(rows, cols, data, int(np.argmax(dup)))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    csr = sp.csr_matrix((data, cols, indptr), shape=(n, n))
    csr.has_canonical_format = True
    return csr


def _sparse_input(m: Any, eps_override: Optional[float]) -> tuple:
    """Validated CSR arrays (n, indptr, indices, values) of a sparse distance matrix.

    Linear in the number of stored entries for a canonical CSR matrix (a COO or unsorted one is
    sorted first): one pass of ``_core._csr_summary`` (a 13-million-edge ResNet18 graph in a
    fraction of a second), then, only when it finds something, the checks that word the error
    (with one transposed copy for the symmetry check).
    """
    import scipy.sparse as sp

    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the sparse distance matrix must be square, got shape {m.shape}")
    what = "the sparse distance matrix"
    _, eps = real_dtype(m.dtype, what, eps_override)
    n = m.shape[0]
    csr = _csr_as_stored(m)
    check_exact_integers(csr.data, what)
    data = np.asarray(csr.data, dtype=np.float64)
    # one pass in C++ finds nothing to report or remove in the usual case; the checks below name
    # what it found
    from ._mpi import MPI  # noqa: F401  (MPI before the extension)
    from . import _core

    s = _core._csr_summary(csr.indptr, csr.indices, data)
    if (not (s["nan"] or s["negative"] or s["diagonal"]) and s["symmetric_pattern"]
            and s["max_asymmetry"] <= rounding_tolerance(eps, s["scale"])):
        return n, np.asarray(csr.indptr, dtype=np.int64), np.asarray(csr.indices, dtype=np.int64), data
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(csr.indptr))
    cols = np.asarray(csr.indices, dtype=np.int64)
    if np.isnan(data).any():
        k = int(np.argmax(np.isnan(data)))
        raise ValueError(f"the sparse distance matrix contains NaN (at D[{row_of[k]}, {cols[k]}]); remove those entries")
    diag = cols == row_of
    neg = (data < 0) & ~diag
    if neg.any():
        k = int(np.argmin(np.where(neg, data, 0)))
        raise ValueError(
            f"the sparse distance matrix contains negative values (D[{row_of[k]}, {cols[k]}] = "
            f"{float(data[k])!r}); a distance must be >= 0"
        )
    scale = float(np.max(np.abs(data), where=np.isfinite(data), initial=0.0))
    tol = rounding_tolerance(eps, scale)
    if diag.any():
        dv = np.abs(data[diag])
        if dv.max() > tol:
            k = int(np.flatnonzero(diag)[np.argmax(dv)])
            raise ValueError(
                f"the sparse distance matrix has a non-zero diagonal entry D[{row_of[k]}, "
                f"{row_of[k]}] = {float(data[k])!r} (every vertex is born at 0; "
                f"{tolerance_text(tol, eps)}); remove it with M.setdiag(0); M.eliminate_zeros() "
                "or store no diagonal"
            )
        keep = ~diag
        data, cols, row_of = data[keep], cols[keep], row_of[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=n), out=indptr[1:])
    del diag
    csr = sp.csr_matrix((data, cols, indptr), shape=(n, n))
    t = csr.transpose().tocsr()
    t.sort_indices()
    if not (np.array_equal(t.indptr, csr.indptr) and np.array_equal(t.indices, csr.indices)):
        here = row_of * n + cols
        there = np.sort(cols * n + row_of)
        lone = here[~np.isin(here, there, assume_unique=True)][0]
        i, j = divmod(int(lone), n)
        raise ValueError(
            f"the sparse distance matrix is not symmetric: D[{i}, {j}] is stored but D[{j}, {i}] "
            "is not (the pattern must be symmetric); symmetrise it, e.g. M = M.maximum(M.T)"
        )
    with np.errstate(invalid="ignore"):
        diff = np.abs(t.data - data)
    diff[t.data == data] = 0.0  # equal infinities
    if diff.size and diff.max() > tol:
        k = int(np.argmax(diff))
        i, j = max(row_of[k], cols[k]), min(row_of[k], cols[k])
        lower = data[k] if row_of[k] > cols[k] else t.data[k]
        upper = t.data[k] if row_of[k] > cols[k] else data[k]
        raise ValueError(
            f"the sparse distance matrix is not symmetric beyond rounding: D[{j}, {i}] = "
            f"{float(upper)!r} but D[{i}, {j}] = {float(lower)!r}, the largest difference "
            f"({tolerance_text(tol, eps)}); symmetrise it, e.g. M = M.maximum(M.T)"
        )
    del t, diff
    return n, indptr, cols, data


def _prepare(distances: Any) -> tuple:
    """``(dense, indptr, indices, values, n)`` for the engine, validated."""
    x, eps = as_numpy(distances, _WHAT)
    if is_scipy_sparse(x):
        n, indptr, indices, values = _sparse_input(x, eps)
        return np.zeros((0, 0)), indptr, indices, values, n
    a = _dense_input(x, eps)
    return a, None, None, None, a.shape[0]


def persistence(
    distances: Any,
    max_dim: int = 1,
    threshold: float = np.inf,
    *,
    comm: Optional[Any] = None,
    verbose: bool = False,
    max_work: Optional[float] = None,
    collapse_edges: Union[bool, int] = False,
    n_threads: int = 1,
) -> List[np.ndarray]:
    """Persistence diagrams of the Vietoris-Rips filtration of a distance matrix.

    Parameters
    ----------
    distances : array-like, scipy.sparse matrix or torch.Tensor
        Symmetric n x n matrix of pairwise distances (any units): a numpy array of any layout
        (float64 and float32 C-contiguous arrays are used without a copy), a nested list, a
        pandas DataFrame, a scipy.sparse matrix or array, or a CPU torch tensor (dense, sparse
        COO or sparse CSR). Values: float32/float64 as given, float16 and bfloat16 widened
        exactly to float32, integers converted exactly to float64 (magnitudes up to 2**53);
        bool and complex values are refused, dense or sparse. Entries must be >= 0 and not NaN;
        ``+inf`` marks an absent edge. For a sparse matrix the stored off-diagonal entries are
        the edges (an explicit 0 is an edge of length 0), missing entries are absent edges, the
        pattern must be symmetric and an entry stored twice is refused (scipy would add the
        two values up).
    max_dim : int, default 1
        Highest homology dimension, ``0 <= max_dim <= 61``. H_0 .. H_max_dim are computed
        exactly, using all simplices up to dimension ``max_dim + 1``.
    threshold : float, default inf
        A real number (not a string). Edges with distance ``d > threshold`` are left out
        (``d <= threshold`` is kept); the filtration stops there and classes alive at the
        threshold are essential.
    comm : mpi4py.MPI.Intracomm, optional
        Communicator over which the work is split; every rank must call with the same input
        and gets the same result, identical for any number of ranks. ``None`` computes serially.
    verbose : bool, default False
        Progress on rank 0's standard error.
    max_work : float, optional
        Limit on the estimated work, in coface visits (the engine estimates them up front from
        n, the number of edges within the threshold and ``max_dim``; about 2e8 visits per second
        on one core). ``None``: the default limit, 5e11 (about 40 minutes); above 1e11 a warning
        with a rough time is printed on rank 0's stderr. ``inf`` lifts the limit.
    n_threads : int, default 1
        Threads of this process (each rank under MPI): the column listing and the reduction are
        shared out over them; -1 takes one per hardware thread. Ranks and threads compose
        (``mpirun -n P`` with ``n_threads=T`` runs P x T workers); the diagrams are identical for
        any split. The GIL is released while the engine runs.
    collapse_edges : bool or int, default False
        Edge collapse of the thresholded graph before the reduction (Boissonnat and Pritam,
        SoCG 2020): edges whose removal, or whose later entry, leaves the persistence of the flag
        filtration unchanged in every dimension are removed or moved. The diagrams are exactly
        the same (positive-length pairs and essential classes). ``True``: 3 rounds; an integer
        k > 0: k rounds; -1: rounds until one removes no edge. It pays off on graphs where many
        edges are dominated (the LeNet graph at ε ≤ 0.3 loses two thirds of its edges in 3
        rounds) and can cost more than it saves on dense ones (see benchmarks/RESULTS.md).

    Returns
    -------
    list of numpy.ndarray
        ``max_dim + 1`` float64 arrays of shape (k, 2), one per homology dimension, rows
        (birth, death) sorted ascending, in the units of the input. Death ``inf`` for classes
        that never die (essential). Pairs of zero length are not reported.

    Notes
    -----
    Symmetry and diagonal are checked up to rounding, as ripser.py and giotto-ph accept
    ``1 - numpy.abs(numpy.corrcoef(X))`` (whose diagonal is a few 1e-16 and whose two triangles
    differ in the last bit). With ``scale`` the largest finite ``|entry|`` and ``eps`` the
    machine epsilon of the input's type (float64: 2.2e-16, float32: 1.2e-7, float16: 9.8e-4,
    bfloat16: 7.8e-3; 0 for integers, which must be exact), the matrix is accepted when
    ``|D[i, j] - D[j, i]| <= 8 * eps * scale`` and ``|D[i, i]| <= 8 * eps * scale``. The value
    used for the edge {i, j} is the strict lower triangle's ``D[max(i, j), min(i, j)]``
    (DIPHA's and Ripser's convention) and the diagonal is taken as 0. The bound is absolute,
    not elementwise relative: ``1 - |corr|`` near 0 carries the absolute rounding of ``|corr|``
    near 1. 8 ulps: each of ``corr[i, j]`` and ``corr[j, i]`` is a product divided by two
    square-rooted norms in a different order (at most 1.5 eps of relative error each, so 3 eps
    apart), ``1 - |corr|`` adds at most 1 eps, and 4 eps are left for the two entries of the
    product ``X X^T`` being summed in different orders. A matrix whose largest entry is much
    below the magnitude it was computed from (all units nearly perfectly correlated, say) can
    exceed the bound: symmetrise it explicitly (``numpy.tril(D) + numpy.tril(D, -1).T``).
    A larger difference is an error naming the largest one and where it is. The same rule
    holds for the stored values of a sparse matrix.

    The filtration value of a simplex is the length of its longest edge (not half of it); ties
    are broken by a fixed total order (value, dimension, colexicographic rank), which does not
    affect the diagrams. Coefficients are in Z/2 only; no representative cycles are computed.
    The triangle inequality is not assumed.

    Under MPI, every rank validates its own arguments, then the ranks exchange their verdicts
    (one small allgather on ``comm``) before the engine's first collective: bad input on any
    rank is the same ValueError on every rank, with that rank's message and
    ``"(on rank r of P)"``. The engine compares a fingerprint of the input across ranks. What
    cannot be detected: a rank that never calls (or passes another communicator); the others
    wait for it forever.

    Memory: the thresholded graph (about 40 bytes per edge) and, up to n = 8192, a dense look-up
    matrix (a C-contiguous float64 input that is exactly symmetric, as ``functional_graph``'s
    matrices are, is read in place; any other is copied, 8 n^2 bytes), the columns of the top
    dimension, and one working column at a time. A column whose working coboundary passes 32 MiB
    is held explicitly in buckets of filtration values; one that outgrows 256 MiB even so
    (typically the cocycle of an essential class in a dense graph) is reduced window by window of
    filtration values, regenerating its coboundary for each window, so that no column holds much
    more than that at once. Validation reads the matrix block by block (temporaries of at most
    4 MiB whatever n).

    Raises
    ------
    ValueError
        On malformed input (shape, dtype, symmetry, NaN, negative values, diagonal, duplicate
        sparse entries, a tensor on another device or without data), bad ``max_dim`` or
        ``threshold``, a communicator that is not an mpi4py intracommunicator, or a complex too
        large for the memory of the machine (an estimate is given). Under MPI every rank raises.
    MemoryError
        If memory runs out during the computation nevertheless (the message names the phase,
        the dimension and the peak); under MPI every rank raises it.
    """
    from ._mpi import MPI  # noqa: F401  (initialises MPI, start-up defaults: see _mpi)

    from . import _core

    check_comm(comm)

    def check() -> tuple:
        md, thr = _check_max_dim(max_dim), _check_threshold(threshold)
        work = _check_max_work(max_work)
        rounds = _check_collapse(collapse_edges)
        threads = _check_threads(n_threads)
        return (md, thr, work, rounds, threads, _prepare(distances)), {}

    # every rank validates, then one allgather of the verdicts, before the engine's collectives
    md, thr, work, rounds, threads, (dense, indptr, indices, values, n) = agree_on(
        comm, check, call="persistence")
    return _core._rips_persistence(dense, indptr, indices, values, n, md, thr, comm, bool(verbose),
                                   max_work=work, collapse=rounds, n_threads=threads)


def _check_threads(n_threads: Any) -> int:
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral) or (
            int(n_threads) < 1 and int(n_threads) != -1) or int(n_threads) > 4096:
        raise ValueError(f"n_threads must be an integer from 1 to 4096, or -1 (one per hardware thread), "
                         f"got {n_threads!r}")
    return int(n_threads)


#: Rounds of edge collapse for ``collapse_edges=True``.
COLLAPSE_ROUNDS = 3


def _check_collapse(collapse_edges: Any) -> int:
    """Rounds of edge collapse for the engine: 0 off, k > 0 rounds, -1 until no edge is removed."""
    if isinstance(collapse_edges, (bool, np.bool_)):
        return COLLAPSE_ROUNDS if collapse_edges else 0
    if isinstance(collapse_edges, numbers.Integral) and int(collapse_edges) >= -1:
        return int(collapse_edges)
    raise ValueError(
        "collapse_edges must be True/False, a number of rounds k >= 1, 0 (off) or -1 (rounds "
        f"until one removes no edge), got {collapse_edges!r}"
    )


def _check_max_work(max_work: Any) -> float:
    """The engine's work limit: None is its default (-1), else a number > 0 (inf: no limit)."""
    if max_work is None:
        return -1.0
    w = real_scalar(max_work, "max_work", "a positive number of coface visits, inf for no limit, or None")
    if not w > 0:
        raise ValueError(f"max_work must be > 0 (inf: no limit; None: the default), got {max_work!r}")
    return w
