"""Vietoris-Rips persistent homology of a distance matrix, serial or over MPI ranks.

The front of the C++ engine in ``extern/dipha/src/rips.cpp``. Same call shape and output as
``ripser.ripser(D, maxdim, thresh, distance_matrix=True)['dgms']``, plus ``comm=`` for MPI.
"""

from __future__ import annotations

import numbers
from typing import Any, List, Optional

import numpy as np

__all__ = ["persistence"]


def _is_torch_tensor(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach") and hasattr(x, "numpy")


def _check_comm(comm: Any) -> None:
    if comm is None:
        return
    from mpi4py import MPI

    if not isinstance(comm, MPI.Comm) or isinstance(comm, MPI.Intercomm):
        raise ValueError(
            f"comm must be an mpi4py intracommunicator (e.g. mpi4py.MPI.COMM_WORLD) or None, "
            f"got {type(comm).__name__}"
        )
    if comm == MPI.COMM_NULL:
        raise ValueError("comm is MPI.COMM_NULL; pass a valid communicator or None")


def _dense_input(a: np.ndarray) -> np.ndarray:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"distances must be a square 2-D matrix, got shape {a.shape}; pass the full n x n "
            "distance matrix (not a condensed vector or a point cloud)"
        )
    if a.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)) or a.dtype == np.bool_:
            raise ValueError(f"distances must be a real-valued matrix, got dtype {a.dtype}")
        a = a.astype(np.float64)
    a = np.ascontiguousarray(a)
    if np.isnan(a).any():
        raise ValueError("distances contain NaN; remove or replace them (use +inf for an absent edge)")
    if np.isneginf(a).any() or (a < 0).any():
        raise ValueError("distances contain negative values; a distance must be >= 0")
    if not np.array_equal(np.diagonal(a), np.zeros(a.shape[0], dtype=a.dtype)):
        raise ValueError(
            "the diagonal of the distance matrix must be zero (every vertex is born at 0); "
            "set it with numpy.fill_diagonal(D, 0)"
        )
    if not np.array_equal(a, a.T):
        raise ValueError(
            "the distance matrix is not symmetric (exact comparison); symmetrise it, e.g. "
            "D = numpy.maximum(D, D.T)"
        )
    return a


def _sparse_input(m: Any) -> tuple:
    """Validated CSR arrays (n, indptr, indices, values) of a sparse distance matrix.

    Linear in the number of stored entries, with one transposed copy for the symmetry check
    (a 14-million-edge ResNet18 graph is checked in a few seconds).
    """
    import scipy.sparse as sp

    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the sparse distance matrix must be square, got shape {m.shape}")
    n = m.shape[0]
    csr = sp.csr_matrix(m, dtype=np.float64)  # no copy for a float64 CSR matrix
    if not csr.has_canonical_format:  # duplicates summed, indices sorted: on a copy
        csr = csr.copy()
        csr.sum_duplicates()
    data = csr.data
    if np.isnan(data).any():
        raise ValueError("the sparse distance matrix contains NaN; remove those entries")
    if (data < 0).any():
        raise ValueError("the sparse distance matrix contains negative values; a distance must be >= 0")
    row_of = np.repeat(np.arange(n, dtype=csr.indices.dtype), np.diff(csr.indptr))
    diag = csr.indices == row_of
    if diag.any():
        if (data[diag] != 0).any():
            raise ValueError(
                "the sparse distance matrix has non-zero diagonal entries (every vertex is born at 0); "
                "remove them with M.setdiag(0); M.eliminate_zeros() or store no diagonal"
            )
        keep = ~diag
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of[keep], minlength=n), out=indptr[1:])
        csr = sp.csr_matrix((data[keep], csr.indices[keep], indptr), shape=(n, n))
    del diag, row_of
    t = csr.transpose().tocsr()
    t.sort_indices()
    if not (np.array_equal(t.indptr, csr.indptr) and np.array_equal(t.indices, csr.indices)
            and np.array_equal(t.data, csr.data)):
        raise ValueError(
            "the sparse distance matrix is not symmetric (pattern and values must match exactly); "
            "symmetrise it, e.g. M = M.maximum(M.T)"
        )
    del t
    return (
        n,
        np.ascontiguousarray(csr.indptr, dtype=np.int64),
        np.ascontiguousarray(csr.indices, dtype=np.int64),
        np.ascontiguousarray(csr.data, dtype=np.float64),
    )


def persistence(
    distances: Any,
    max_dim: int = 1,
    threshold: float = np.inf,
    *,
    comm: Optional[Any] = None,
    verbose: bool = False,
) -> List[np.ndarray]:
    """Persistence diagrams of the Vietoris-Rips filtration of a distance matrix.

    Parameters
    ----------
    distances : numpy.ndarray, scipy.sparse matrix or torch.Tensor
        Symmetric n x n matrix of pairwise distances (any units). Dense float64 or float32
        C-contiguous arrays are used without a copy (other real dtypes are converted to
        float64); a CPU torch tensor goes through ``.numpy()`` (no copy). The diagonal must be
        zero: every vertex is born at 0. Entries must be >= 0 and not NaN; ``+inf`` marks an
        absent edge. Symmetry is checked exactly. For a scipy.sparse matrix the stored
        off-diagonal entries are the edges (an explicit 0 is an edge of length 0), missing entries
        are absent edges; pattern and values must be symmetric.
    max_dim : int, default 1
        Highest homology dimension. H_0 .. H_max_dim are computed exactly, using all simplices
        up to dimension ``max_dim + 1``.
    threshold : float, default inf
        Edges with distance ``d > threshold`` are left out (``d <= threshold`` is kept); the
        filtration stops there and classes alive at the threshold are essential.
    comm : mpi4py.MPI.Intracomm, optional
        Communicator over which the work is split; every rank must call with the same input
        and gets the same result, identical for any number of ranks. ``None`` computes serially.
    verbose : bool, default False
        Progress on rank 0's standard error.

    Returns
    -------
    list of numpy.ndarray
        ``max_dim + 1`` float64 arrays of shape (k, 2), one per homology dimension, rows
        (birth, death) sorted ascending, in the units of the input. Death ``inf`` for classes
        that never die (essential). Pairs of zero length are not reported.

    Notes
    -----
    The filtration value of a simplex is the length of its longest edge (not half of it); ties
    are broken by a fixed total order (value, dimension, colexicographic rank), which does not
    affect the diagrams. Coefficients are in Z/2 only; no representative cycles are computed.
    The triangle inequality is not assumed.

    Memory: the thresholded graph (about 40 bytes per edge), the columns of the top dimension,
    and one working column at a time. A column whose working coboundary outgrows 1 GiB
    (typically the cocycle of an essential class in a dense graph) is reduced window by window
    of filtration values, regenerating its coboundary for each window, so that no column holds
    much more than that at once.

    Raises
    ------
    ValueError
        On malformed input (shape, symmetry, NaN, negative values, diagonal), bad ``max_dim`` or
        ``threshold``, a communicator that is not an mpi4py intracommunicator, or a complex too
        large for the memory of the machine (an estimate is given). Under MPI every rank raises.
    MemoryError
        If memory runs out during the computation nevertheless (the message names the phase,
        the dimension and the peak); under MPI every rank raises it.
    """
    from ._mpi import MPI  # noqa: F401  (initialises MPI, start-up defaults: see _mpi)

    from . import _core

    if isinstance(max_dim, bool) or not isinstance(max_dim, numbers.Integral):
        raise ValueError(f"max_dim must be a non-negative integer, got {max_dim!r}")
    if max_dim < 0:
        raise ValueError(f"max_dim must be >= 0, got {max_dim}")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a real number >= 0 or inf, got {threshold!r}") from None
    if np.isnan(threshold) or threshold < 0:
        raise ValueError(f"threshold must be >= 0 (or inf), got {threshold}")
    _check_comm(comm)

    if _is_torch_tensor(distances):
        if distances.device.type != "cpu":
            raise ValueError("distances is a torch tensor on another device; move it with .cpu() first")
        distances = distances.detach().numpy()

    try:
        import scipy.sparse as sp

        is_sparse = sp.issparse(distances)
    except ImportError:  # pragma: no cover
        is_sparse = False
    if is_sparse:
        n, indptr, indices, values = _sparse_input(distances)
        dense = np.zeros((0, 0))
        return _core._rips_persistence(dense, indptr, indices, values, n, int(max_dim), threshold, comm, bool(verbose))
    a = np.asarray(distances)
    a = _dense_input(a)
    return _core._rips_persistence(a, None, None, None, a.shape[0], int(max_dim), threshold, comm, bool(verbose))
