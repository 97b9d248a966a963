"""How topodnn reads the numeric arrays users pass: numpy, torch, pandas, scipy.sparse, lists.

One policy for every matrix of numbers given to the engine or the graph builder:

* numpy arrays of any layout (C or Fortran order, strided, read-only, memory-mapped, ``np.matrix``),
  nested lists and pandas DataFrames are read through :func:`numpy.asarray`;
* torch tensors are detached and read without a copy when on the CPU; a tensor on another device
  must be moved with ``.cpu()`` first; a tensor on the ``meta`` device holds no data and is
  refused; ``bfloat16`` (which numpy lacks) is widened exactly to float32; sparse COO and CSR
  tensors become the scipy.sparse matrix of the same stored entries (duplicates kept, so that the
  caller sees them);
* value types: float32 and float64 are kept, float16 and bfloat16 are widened exactly to
  float32, integers are converted to float64 (exactly: magnitudes up to 2**53 only); bool,
  complex, long double (``numpy.longdouble`` wider than float64), strings and objects are refused:
  there is no unambiguous real value to read from them.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = ["is_torch_tensor", "is_scipy_sparse", "as_numpy", "real_dtype", "check_exact_integers", "real_scalar",
           "ROUNDING_ULPS", "rounding_tolerance", "tolerance_text", "BLOCK_ENTRIES", "rows_per_block",
           "largest_asymmetry"]

#: Largest integer magnitude that float64 represents exactly (and all smaller ones).
EXACT_INT = 2**53


def is_torch_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach") and hasattr(x, "layout")


def is_scipy_sparse(x: Any) -> bool:
    """Whether ``x`` is a scipy.sparse matrix or array (scipy is imported only if it may be)."""
    if not type(x).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse as sp

    return sp.issparse(x)


def _is_pandas(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "to_numpy")


def _tensor(t: Any, what: str) -> tuple[Any, Optional[float]]:
    import torch

    if t.device.type == "meta":
        raise ValueError(
            f"{what} is a tensor on the meta device, which holds no data (only a shape and a "
            "dtype); create it with real values, e.g. on the CPU"
        )
    if t.device.type != "cpu":
        raise ValueError(f"{what} is a torch tensor on device '{t.device}'; move it with .cpu() first")
    if t.is_complex():
        raise ValueError(f"{what} must be real, got a complex tensor ({t.dtype})")
    t = t.detach()
    eps = None
    if t.dtype in (torch.bfloat16, torch.float16):
        # numpy has no bfloat16 and scipy.sparse no float16: widen exactly, keep the rounding level
        eps = float(torch.finfo(t.dtype).eps)
    if t.layout == torch.strided:
        if eps is not None:
            t = t.to(torch.float32)
        return t.numpy(), eps
    import scipy.sparse as sp

    if t.layout == torch.sparse_coo:
        if t.sparse_dim() != 2 or t.dense_dim() != 0:
            raise ValueError(
                f"{what} is a sparse COO tensor with {t.sparse_dim()} sparse and {t.dense_dim()} "
                "dense dimensions; expected a 2-D matrix (2 sparse dimensions)"
            )
        idx = t._indices().numpy()  # as stored: an uncoalesced tensor keeps its duplicates
        vals = t._values()
        if eps is not None:
            vals = vals.to(torch.float32)
        return sp.coo_matrix((vals.numpy(), (idx[0], idx[1])), shape=tuple(t.shape)), eps
    if t.layout == torch.sparse_csr:
        if t.dim() != 2 or t.values().dim() != 1:
            raise ValueError(f"{what} is a batched or hybrid sparse CSR tensor; expected a 2-D matrix")
        vals = t.values()
        if eps is not None:
            vals = vals.to(torch.float32)
        m = sp.csr_matrix(
            (vals.numpy(), t.col_indices().numpy(), t.crow_indices().numpy()), shape=tuple(t.shape)
        )
        return m, eps
    raise ValueError(
        f"{what} is a torch tensor of layout {t.layout}; pass a dense, sparse COO or sparse CSR "
        "tensor (e.g. .to_sparse_coo())"
    )


def as_numpy(x: Any, what: str) -> tuple[Any, Optional[float]]:
    """A numpy array (or scipy.sparse matrix) of the values of ``x``, without a copy if possible.

    Returns
    -------
    array : numpy.ndarray or scipy.sparse matrix
        scipy.sparse inputs are returned as they are.
    eps : float or None
        Machine epsilon of the type the values came in when that type is not the array's own
        (torch bfloat16 and float16, widened to float32); None otherwise.

    Raises
    ------
    ValueError
        One line naming the problem: a tensor with no data or on another device, a complex or
        unsupported sparse tensor, a ragged nested list.
    """
    if is_scipy_sparse(x):
        return x, None
    if is_torch_tensor(x):
        return _tensor(x, what)
    if _is_pandas(x):
        x = x.to_numpy()
    try:
        return np.asarray(x), None
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{what} could not be read as a numeric array: {exc}") from None


def real_dtype(dtype: np.dtype, what: str, eps: Optional[float] = None) -> tuple[np.dtype, float]:
    """The working dtype (float32 or float64) of values of ``dtype``, and their rounding level.

    Parameters
    ----------
    dtype : numpy.dtype
        Type of the values as given.
    what : str
        Name of the argument, for the message.
    eps : float, optional
        Rounding level to report instead of ``dtype``'s (see :func:`as_numpy`).

    Returns
    -------
    working : numpy.dtype
        float32 for float16/float32 (and bfloat16 given as float32), float64 for float64 and
        integers.
    eps : float
        Machine epsilon of the given type (0 for integers: they are exact).

    Raises
    ------
    ValueError
        For bool, complex, long double, strings, objects and other non-real types.
    """
    dt = np.dtype(dtype)
    if dt == np.bool_:
        raise ValueError(
            f"{what} must be real-valued numbers, got dtype bool; convert explicitly if 0/1 are meant "
            "(e.g. .astype(numpy.float64))"
        )
    if np.issubdtype(dt, np.complexfloating):
        raise ValueError(f"{what} must be real, got dtype {dt}; pass the real part explicitly if that is meant")
    if np.issubdtype(dt, np.integer):
        return np.dtype(np.float64), 0.0
    if np.issubdtype(dt, np.floating):
        if dt.itemsize > 8:
            raise ValueError(
                f"{what} has dtype {dt}, wider than float64, which the engine does not support; "
                "round it explicitly with .astype(numpy.float64)"
            )
        working = np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)
        return working, float(eps if eps is not None else np.finfo(dt).eps)
    raise ValueError(f"{what} must be real-valued numbers, got dtype {dt}")


#: Rounding allowance of the symmetry and zero-diagonal checks of a distance matrix, in units of
#: ``eps(dtype) * scale``, scale being the largest finite |entry| (see topodnn.persistence).
ROUNDING_ULPS = 8


def rounding_tolerance(eps: float, scale: float) -> float:
    """The largest difference accepted as rounding between two entries that should be equal."""
    return ROUNDING_ULPS * eps * scale


def tolerance_text(tol: float, eps: float) -> str:
    """How ``tol`` came about, for an error message."""
    if eps == 0:
        return "integer input must be exact"
    return (f"tolerance {tol:.3g} = {ROUNDING_ULPS} x eps x the largest finite |entry|, "
            f"eps = {eps:.3g}")


#: Entries per block when a dense matrix is checked: each temporary is at most 4 MiB, so that
#: validation adds little to the peak (the engine itself reads the caller's array in place).
BLOCK_ENTRIES = 1 << 19


def rows_per_block(n: int) -> int:
    """Rows of an ``(n, n)`` matrix per block of about BLOCK_ENTRIES entries."""
    return max(1, BLOCK_ENTRIES // max(n, 1))


def largest_asymmetry(a: np.ndarray) -> tuple[float, tuple[int, int]]:
    """``max |a[i, j] - a[j, i]|`` over the square matrix ``a`` (in float64; equal infinities
    differ by 0) and a pair ``(i, j)``, ``i > j``, where it is reached; read in row blocks
    (temporaries of a few MiB, views of ``a`` otherwise)."""
    n = a.shape[0]
    step = rows_per_block(n)
    worst, where = 0.0, (0, 0)
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        low = a[i0:i1, :i1]  # rows i, columns j < i1 (views: no copy of the matrix)
        up = a[:i1, i0:i1].T  # the same pairs read as a[j, i]
        with np.errstate(invalid="ignore"):
            diff = np.subtract(low, up, dtype=np.float64)  # float32 entries compared in float64
            np.abs(diff, out=diff)
        diff[low == up] = 0.0  # equal infinities
        k = int(np.argmax(diff))
        if diff.flat[k] > worst:
            worst, where = float(diff.flat[k]), (i0 + k // i1, k % i1)
    return worst, (max(where), min(where))


def check_exact_integers(values: np.ndarray, what: str) -> None:
    """Refuse integer values that float64 cannot hold exactly (magnitude above 2**53)."""
    if values.size and np.issubdtype(values.dtype, np.integer) and values.dtype.itemsize >= 8:
        lo, hi = values.min(), values.max()
        if int(hi) > EXACT_INT or int(lo) < -EXACT_INT:
            big = int(hi) if int(hi) > EXACT_INT else int(lo)
            raise ValueError(
                f"{what} holds the integer {big}, beyond 2**53: float64, in which the engine "
                "computes, cannot represent it exactly; rescale or convert explicitly"
            )


def real_scalar(x: Any, what: str, expected: str) -> float:
    """``x`` as a float if it is a real number: a Python or numpy int/float, or a 0-d real array
    or tensor. Strings, bools, complex numbers and anything else are refused (``expected``
    describes what is wanted, for the message)."""
    import numbers

    if getattr(x, "ndim", None) == 0 and hasattr(x, "item") and not isinstance(x, numbers.Number):
        try:
            x = x.item()  # a 0-d numpy array or torch tensor; its Python value is checked below
        except Exception:  # e.g. a tensor without data: refused below
            pass
    if isinstance(x, bool) or isinstance(x, np.bool_) or not isinstance(x, numbers.Real):
        raise ValueError(f"{what} must be {expected}, got {x!r} ({type(x).__name__})")
    return float(x)
