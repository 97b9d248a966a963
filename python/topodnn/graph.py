"""Functional graph of a network: units as nodes, ``1 - |Pearson corr|`` as distances.

The pipeline, streamed from a torch model to the persistence engine:

1. :func:`collect_activations` runs the model in eval mode without gradients on the first
   ``n_samples`` inputs and records, through forward hooks, the outputs of the named modules.
   Every unit (each channel x spatial position of a conv layer, each neuron of a linear layer) is
   one node; a layer's output is flattened per sample in C order (channel-major). The activations
   land in one preallocated ``(n_samples, n_nodes)`` matrix, nodes ordered layer by layer.
2. :func:`correlation_distances` standardises the columns (statistics in float64) and forms the
   correlations by matrix products: one product for the dense matrix, or row block by row block of
   the upper triangle for a thresholded sparse graph, so that the dense ``n x n`` matrix never
   exists.
3. :mod:`topodnn.pipeline` cuts the graph at ``2 * max_epsilon``, turns distances into the
   original's filtration values ε = (1 − |corr|) / 2 and hands it to
   :func:`topodnn.engine.persistence`.

Conventions
-----------
* distance ``d(i, j) = 1 - |corr(i, j)|`` in ``[0, 1]``; the diagonal is 0.
* A unit whose activation never varies over the samples (a dead ReLU, say) has an undefined
  correlation; as in the original pipeline it is taken as 0, i.e. distance 1 to every other unit.
  Such units are counted per layer (``info["constant_units"]``) and reported in one log line.
* Sparse graphs are symmetric CSR matrices whose stored entries are exactly the edges
  ``i != j`` with ``d(i, j) <= threshold``. Edges of distance exactly 0 (``|corr| = 1``, e.g.
  duplicated units) are stored as explicit zeros: a stored entry is an edge whatever its value.

Unlike the original pipeline the full float64 matrix (``8 n^2`` bytes: 10.9 GB for VGG16's 36.9k
units) is never written or even formed on the way to a sparse graph.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import scipy.sparse as sp

__all__ = [
    "collect_activations",
    "correlation_distances",
    "functional_graph",
    "save_dipha",
]

_log = logging.getLogger(__name__)

DIPHA_MAGIC = 8067171840
DIPHA_DISTANCE_MATRIX = 7
DIPHA_SPARSE_DISTANCE_MATRIX = 8

#: Default number of nodes per row block of the thresholded correlation product.
DEFAULT_BLOCK_SIZE = 2048


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _rank_size(comm: Any) -> tuple[int, int]:
    if comm is None:
        return 0, 1
    return int(comm.Get_rank()), int(comm.Get_size())


def _progress_bar(total: int, desc: str, unit: str, enabled: bool):
    """A tqdm bar on stderr, or a no-op object when disabled or stderr is not a terminal."""
    enabled = bool(enabled)
    if enabled:
        try:
            enabled = sys.stderr.isatty()
        except (AttributeError, ValueError):
            enabled = False
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _report(msg: str, progress: bool) -> None:
    """One line for the user: logged at INFO, and printed to stderr when ``progress`` is on."""
    _log.info(msg)
    if progress:
        print(f"topodnn.graph: {msg}", file=sys.stderr)


def _check_threshold(threshold: Optional[float]) -> Optional[float]:
    if threshold is None:
        return None
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}") from None
    if not (0.0 < t <= 1.0):
        raise ValueError(
            f"threshold must lie in (0, 1] (a distance 1 - |corr|), got {threshold!r}; "
            "use threshold=None for the dense matrix"
        )
    return t


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


# --------------------------------------------------------------------------------------------
# 1. activations
# --------------------------------------------------------------------------------------------


def _input_batches(data: Any, n_samples: int, batch_size: int):
    """Yield input tensors (first dimension = samples) until ``n_samples`` have been produced.

    ``data`` is a tensor or array of inputs, a DataLoader (or any iterable of batches; the first
    element of a tuple/list batch is the input), or a map-style Dataset (``item[0]`` for
    tuple/list items, the item itself otherwise; items are stacked ``batch_size`` at a time).
    """
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, TensorDataset):
        data = data.tensors[0]
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError("data is empty: the input tensor has no samples along dimension 0")
        for start in range(0, min(n_samples, data.shape[0]), batch_size):
            yield data[start : min(start + batch_size, n_samples)]
        return

    def first(x: Any) -> Any:
        return x[0] if isinstance(x, (tuple, list)) else x

    if (
        isinstance(data, Dataset)
        and not isinstance(data, (DataLoader, IterableDataset))
        and hasattr(data, "__len__")
    ):
        n = len(data)
        if n == 0:
            raise ValueError("data is empty: the Dataset has length 0")
        stop = min(n, n_samples)
        for start in range(0, stop, batch_size):
            items = [first(data[i]) for i in range(start, min(start + batch_size, stop))]
            items = [torch.as_tensor(x) for x in items]
            yield torch.stack(items)
        return

    if isinstance(data, (str, bytes, Mapping)) or not hasattr(data, "__iter__"):
        raise ValueError(
            "data must be a tensor/array of inputs, a DataLoader or a Dataset, "
            f"got {type(data).__name__}"
        )
    produced = 0
    any_batch = False
    for batch in data:
        x = first(batch)
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.dim() == 0:
            raise ValueError("data yields 0-d batches; expected a batch dimension first")
        if x.shape[0] == 0:
            continue
        any_batch = True
        x = x[: n_samples - produced]
        produced += x.shape[0]
        yield x
        if produced >= n_samples:
            return
    if not any_batch:
        raise ValueError("data is empty: the DataLoader/iterable yielded no samples")


def _resolve_layers(model: Any, layers: Optional[Sequence[str]]) -> list[str]:
    if layers is None:
        layers = getattr(model, "functional_layers", None)
        if layers is None:
            raise ValueError(
                f"layers=None but {type(model).__name__} has no 'functional_layers' attribute; "
                "pass layers=[module names as in model.named_modules()]"
            )
    if isinstance(layers, str):
        layers = [layers]
    layers = [str(name) for name in layers]
    if not layers:
        raise ValueError("layers is empty: name at least one module")
    if len(set(layers)) != len(layers):
        dup = sorted({n for n in layers if layers.count(n) > 1})
        raise ValueError(f"layer names repeated: {dup}")
    available = [name for name, _ in model.named_modules() if name]
    avail_set = set(available)
    missing = [name for name in layers if name not in avail_set]
    if missing:
        listing = ", ".join(available) if available else "(none)"
        if len(missing) == len(layers):
            raise ValueError(
                f"none of the requested layers {missing} exist in {type(model).__name__}; "
                f"available modules: {listing}"
            )
        raise ValueError(
            f"requested layers not found in {type(model).__name__}: {missing}; "
            f"available modules: {listing}"
        )
    return layers


def collect_activations(
    model: Any,
    data: Any,
    *,
    layers: Optional[Sequence[str]] = None,
    n_samples: int = 1000,
    batch_size: int = 100,
    dtype: Any = np.float32,
    device: Any = None,
    progress: bool = True,
) -> tuple[np.ndarray, list[str], list[int]]:
    """Record the outputs of named modules over the first ``n_samples`` inputs.

    The model runs in eval mode under ``torch.no_grad()``; forward hooks capture the outputs and
    are removed afterwards (also when the forward pass raises); the model's train/eval mode is
    restored. Nothing else about the model changes.

    Parameters
    ----------
    model : torch.nn.Module
    data : tensor, ndarray, DataLoader, Dataset or TensorDataset
        Inputs in order; from a DataLoader the first element of each batch, from a Dataset
        ``item[0]``. If fewer than ``n_samples`` are available, all are used.
    layers : list of str, optional
        Module names as in ``model.named_modules()``; default ``model.functional_layers``.
        Each module must be called exactly once per forward pass and return a tensor whose
        first dimension is the batch.
    n_samples : int
        Number of inputs (the original pipeline: the first 1000 test images).
    batch_size : int
        Batch size of the forward pass for tensor and Dataset inputs (a DataLoader keeps its own).
    dtype : float32 or float64
        Storage type of the activation matrix.
    device : torch device, optional
        Where the inputs go; default: the device of the model's first parameter (or CPU).
    progress : bool
        tqdm bar on stderr (only when stderr is a terminal).

    Returns
    -------
    activations : ndarray, shape (n_used, n_nodes)
        Row = sample, column = unit; units layer by layer in ``layers`` order, each layer's output
        flattened per sample in C order (channel x position).
    layers : list of str
        The layer names used.
    sizes : list of int
        Number of units of each layer.
    """
    import torch

    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    n_samples = int(n_samples)
    batch_size = int(batch_size)
    dt = _check_dtype(dtype)
    names = _resolve_layers(model, layers)
    modules = dict(model.named_modules())

    if device is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    device = torch.device(device)

    captured: dict[str, list] = {name: [] for name in names}

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            captured[name].append(output)

        return hook

    X: Optional[np.ndarray] = None
    sizes: list[int] = []
    offsets: list[int] = []
    filled = 0
    modes = [(mod, mod.training) for mod in model.modules()]  # restored one by one
    torch_dtype = torch.float64 if dt == np.float64 else torch.float32
    handles = [modules[name].register_forward_hook(make_hook(name)) for name in names]
    bar = _progress_bar(n_samples, "activations", "sample", progress)
    try:
        model.eval()
        with torch.no_grad():
            for xb in _input_batches(data, n_samples, batch_size):
                for name in names:
                    captured[name].clear()
                nb = int(xb.shape[0])
                model(xb.to(device))
                outs = []
                for name in names:
                    got = captured[name]
                    if len(got) != 1:
                        what = "never called" if not got else f"called {len(got)} times"
                        raise ValueError(
                            f"layer {name!r} was {what} in one forward pass; each functional "
                            "layer must be a module applied exactly once (use a distinct module "
                            "instance per use)"
                        )
                    out = got[0]
                    if not isinstance(out, torch.Tensor):
                        raise ValueError(
                            f"layer {name!r} returned {type(out).__name__}, expected a tensor"
                        )
                    if out.dim() == 0 or out.shape[0] != nb:
                        raise ValueError(
                            f"layer {name!r} output has shape {tuple(out.shape)}; expected the "
                            f"batch ({nb}) as its first dimension"
                        )
                    out = out.detach().reshape(nb, -1)
                    if not bool(torch.isfinite(out).all()):
                        raise ValueError(f"layer {name!r} produced NaN or inf activations")
                    outs.append(out)
                if X is None:
                    sizes = [int(o.shape[1]) for o in outs]
                    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
                    X = np.empty((n_samples, offsets[-1]), dtype=dt)
                for name, out, size, off in zip(names, outs, sizes, offsets):
                    if out.shape[1] != size:
                        raise ValueError(
                            f"layer {name!r} has {out.shape[1]} units per sample in this batch "
                            f"but {size} in the first one"
                        )
                    X[filled : filled + nb, off : off + size] = out.to(
                        device="cpu", dtype=torch_dtype
                    ).numpy()
                filled += nb
                bar.update(nb)
                for name in names:
                    captured[name].clear()
    finally:
        bar.close()
        for h in handles:
            h.remove()
        for mod, training in modes:
            mod.training = training
    if X is None:
        raise ValueError("data is empty: no input samples")
    if filled < X.shape[0]:
        X = X[:filled]
    return X, names, sizes


# --------------------------------------------------------------------------------------------
# 2. correlations
# --------------------------------------------------------------------------------------------


def _standardise_(X: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Centre each column and scale it to unit Euclidean norm, in place; return the norms.

    Mean and norm are computed in float64 whatever the storage type, a column chunk at a time
    (extra memory: one float64 chunk of ``n_samples x chunk``). A column that never varies gets
    norm 0 and is set to all zeros, so its correlation with everything is 0.
    """
    m, n = X.shape
    norms = np.empty(n, dtype=np.float64)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        block = X[:, c0:c1].astype(np.float64)
        block -= block.mean(axis=0)
        nrm = np.sqrt(np.einsum("ij,ij->j", block, block))
        norms[c0:c1] = nrm
        scale = np.zeros_like(nrm)
        np.divide(1.0, nrm, out=scale, where=nrm > 0)
        block *= scale
        X[:, c0:c1] = block
    return norms


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.int32) if n < np.iinfo(np.int32).max else np.dtype(np.int64)


def _block_edges(
    Z: np.ndarray, i0: int, i1: int, cut: float, abs_sums: Optional[dict] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle edges (i, j), i0 <= i < i1, i < j, with ``|corr| >= cut``.

    Returns row, column (sorted by row then column; int32 unless n >= 2^31) and distance
    (float64) arrays. Memory: one ``(i1 - i0) x (n - i0)`` block in Z's dtype and its mask.
    ``abs_sums``, if given, receives ``{i0: sum of |corr| over the block's pairs i < j}``
    (float64; every pair, not only the edges kept).
    """
    n = Z.shape[1]
    C = Z[:, i0:i1].T @ Z[:, i0:]  # rows i0..i1-1, columns i0..n-1
    np.abs(C, out=C)
    if abs_sums is not None:
        lower = np.tril(C[:, : i1 - i0])  # the diagonal block's pairs j <= i
        abs_sums[i0] = float(C.sum(dtype=np.float64)) - float(lower.sum(dtype=np.float64))
        del lower
    flat = np.flatnonzero(C >= cut)  # row-major: sorted by (row, column)
    vals = C.reshape(-1)[flat]
    del C
    r, c = np.divmod(flat, n - i0)
    del flat
    upper = c > r  # strict upper triangle (the diagonal block also holds j <= i)
    if not upper.all():
        r, c, vals = r[upper], c[upper], vals[upper]
    idt = _index_dtype(n)
    d = vals.astype(np.float64)
    np.minimum(d, 1.0, out=d)
    np.subtract(1.0, d, out=d)
    return (r + i0).astype(idt), (c + i0).astype(idt), d


def _dense_from_blocks(Z: np.ndarray, block_size: int, progress: bool) -> np.ndarray:
    """Dense ``1 - |Z^T Z|`` (float64, zero diagonal, exactly symmetric), upper row blocks only.

    Row blocks keep every BLAS call's output below ``block_size x n`` (one product with an
    output of more than 2^32 bytes crashes some OpenBLAS builds, e.g. float32 at n = 36,864) and
    halve the flops; the lower triangle is mirrored from the upper one.
    """
    n = Z.shape[1]
    D = np.empty((n, n), dtype=np.float64)
    blocks = _block_ranges(n, block_size)
    bar = _progress_bar(sum((i1 - i0) * (n - i0) for i0, i1 in blocks), "correlations", "pair",
                        progress)
    try:
        for i0, i1 in blocks:
            C = Z[:, i0:i1].T @ Z[:, i0:]
            np.abs(C, out=C)
            np.minimum(C, 1.0, out=C)
            dst = D[i0:i1, i0:]
            np.subtract(1.0, C, out=dst, casting="unsafe")
            del C
            bar.update((i1 - i0) * (n - i0))
    finally:
        bar.close()
    _mirror_upper_(D)
    np.fill_diagonal(D, 0.0)
    return D


def _mirror_upper_(D: np.ndarray, tile: int = 256) -> None:
    """Copy the strict upper triangle onto the lower one, in cache-sized tiles."""
    n = D.shape[0]
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        D[i0:i1, :i0] = D[:i0, i0:i1].T
        blk = D[i0:i1, i0:i1]
        lo = np.tril_indices(i1 - i0, -1)
        blk[lo] = blk.T[lo]


def _symmetric_csr(
    n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray
) -> sp.csr_matrix:
    """Symmetric CSR from strict-upper-triangle edges sorted by (row, column).

    The upper triangle U is a CSR as given; its transpose (the lower triangle, by scipy's
    counting-sort CSR->CSC transposition, which keeps explicit zeros and sorts indices) is
    interleaved with it row by row: lower entries (columns < i) then upper (columns > i). No
    sparse addition (scipy's drops explicit zeros) and no eliminate_zeros anywhere.
    """
    idt = _index_dtype(max(n, 2 * rows.shape[0] + 1))
    up_count = np.bincount(rows, minlength=n).astype(idt)
    u_ptr = np.zeros(n + 1, dtype=idt)
    np.cumsum(up_count, out=u_ptr[1:])
    U = sp.csr_matrix((vals, cols.astype(idt, copy=False), u_ptr), shape=(n, n), copy=False)
    L = U.T.tocsr()  # csc -> csr: a transposition, sorted indices, zeros kept
    low_count = np.diff(L.indptr).astype(idt)
    indptr = np.zeros(n + 1, dtype=idt)
    np.cumsum(up_count + low_count, out=indptr[1:])
    e = U.nnz
    indices = np.empty(2 * e, dtype=idt)
    data = np.empty(2 * e, dtype=np.float64)
    row_starts = indptr[:-1].astype(np.int64)
    dst = np.repeat(row_starts - L.indptr[:-1], low_count) + np.arange(e, dtype=np.int64)
    indices[dst] = L.indices
    data[dst] = L.data
    del L
    dst = np.repeat(row_starts + low_count - u_ptr[:-1], up_count) + np.arange(e, dtype=np.int64)
    indices[dst] = U.indices
    data[dst] = U.data
    del dst, U
    out = sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
    out.has_sorted_indices = True
    return out


def _block_ranges(n: int, block_size: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + block_size)) for i in range(0, n, block_size)]


def _assign_blocks(blocks: list[tuple[int, int]], n: int, size: int) -> list[list[int]]:
    """Split upper-triangle row blocks over ``size`` ranks with balanced work (greedy LPT)."""
    work = [(i1 - i0) * (n - i0) for i0, i1 in blocks]
    load = [0] * size
    owners: list[list[int]] = [[] for _ in range(size)]
    for b in sorted(range(len(blocks)), key=lambda b: -work[b]):
        r = min(range(size), key=lambda r: (load[r], r))
        owners[r].append(b)
        load[r] += work[b]
    return [sorted(o) for o in owners]


def _allgather_edges(comm: Any, parts: dict[int, tuple[np.ndarray, ...]], n_blocks: int):
    """Every rank gets every block's edges; return (rows, cols, vals) in block order."""
    from mpi4py import MPI

    mine = sorted(parts)
    counts_local = [int(parts[b][0].shape[0]) for b in mine]
    meta = comm.allgather((mine, counts_local))
    block_count = np.zeros(n_blocks, dtype=np.int64)
    block_owner_order = []  # block ids in the order the ranks' data arrive
    for rank, (blks, cnts) in enumerate(meta):
        for b, c in zip(blks, cnts):
            block_count[b] = c
            block_owner_order.append(b)
    per_rank = [int(sum(c)) for _, c in meta]
    total = int(sum(per_rank))
    displ = np.concatenate([[0], np.cumsum(per_rank)[:-1]]).astype(np.int64)

    def gather(k: int, dtype: Any, mpitype: Any) -> np.ndarray:
        send = (
            np.concatenate([parts[b][k] for b in mine]).astype(dtype, copy=False)
            if mine
            else np.empty(0, dtype=dtype)
        )
        recv = np.empty(total, dtype=dtype)
        comm.Allgatherv([send, mpitype], [recv, (per_rank, displ.tolist()), mpitype])
        return recv

    rows = gather(0, np.int64, MPI.INT64_T)
    cols = gather(1, np.int64, MPI.INT64_T)
    vals = gather(2, np.float64, MPI.DOUBLE)
    # reorder from rank order to block order (so edges are sorted by (row, column))
    start_in_recv = np.zeros(n_blocks, dtype=np.int64)
    pos = 0
    for b in block_owner_order:
        start_in_recv[b] = pos
        pos += block_count[b]
    if all(block_owner_order[i] < block_owner_order[i + 1] for i in range(len(block_owner_order) - 1)):
        return rows, cols, vals
    perm = np.concatenate(
        [np.arange(start_in_recv[b], start_in_recv[b] + block_count[b]) for b in range(n_blocks)]
    ) if n_blocks else np.empty(0, dtype=np.int64)
    return rows[perm], cols[perm], vals[perm]


def correlation_distances(
    activations: np.ndarray,
    threshold: Optional[float] = None,
    *,
    dtype: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    comm: Any = None,
    progress: bool = True,
    copy: bool = True,
    return_constant: bool = False,
    stats: Optional[dict] = None,
):
    """Distances ``1 - |Pearson corr|`` between the columns of an activation matrix.

    Parameters
    ----------
    activations : ndarray, shape (n_samples, n_nodes)
        Row = sample, column = unit. Must be finite, with at least 2 samples.
    threshold : float in (0, 1], optional
        None: the dense matrix. A number: the sparse graph of the edges with distance
        ``<= threshold`` (the original pipeline: ``2 * MAX_EPSILON = 0.6``).
    dtype : float32 or float64, optional
        Precision of the standardised activations and of the products; default: the input's
        type if float32/float64, else float64. Means and norms are always float64.
        Error of float32 products against float64 ones, measured on 1000 samples x 1820
        synthetic ReLU units (``benchmarks/bench_graph.py``): max ``|d32 - d64|`` = 1.4e-6
        (the tests check < 5e-6 at 1000 samples); it grows roughly like ``sqrt(n_samples)``.
        Edges within that margin of ``threshold`` may be kept or dropped differently than in
        float64, and duplicated units come out at about 1e-6 instead of 0.
    block_size : int
        Nodes per row block of the products.
    comm : mpi4py communicator, optional
        Sparse path only: the row blocks are shared out among the ranks and the edge lists
        all-gathered, so every rank returns the full graph. Every rank must pass the same
        activations.
    progress : bool
        tqdm bar over the blocks (stderr terminals only, rank 0 only).
    copy : bool
        False lets the function standardise ``activations`` in place (saves one copy of the
        matrix when it already has the working dtype).
    return_constant : bool
        Also return the boolean mask of constant (zero-variance) units.
    stats : dict, optional
        If given, receives ``mean_abs_corr``: the mean ``|corr|`` over all ``n (n - 1) / 2``
        pairs of units (a constant unit counts as 0; NaN for one unit), the density of the
        graph before any threshold. Computed from the same block products (the dense path:
        from the clipped distances); the same on any number of ranks.

    Returns
    -------
    ndarray (n, n) float64 or scipy.sparse.csr_matrix (n, n) float64
        Dense: symmetric, zero diagonal, values in [0, 1]; a constant unit is at distance 1 from
        every other unit. Sparse: symmetric, sorted int32 (int64 for > 2^31 entries) indices, no
        diagonal entries, exactly the edges ``d <= threshold``, explicit zeros kept.

    Notes
    -----
    Work: the upper-triangle row blocks of the ``n x m x n`` product only (about half its
    flops), then a mirror (dense) or an O(edges) symmetrisation (sparse).
    Peak memory, with ``m`` samples, ``n`` nodes, ``b = block_size``, ``s`` the dtype's size and
    ``E`` the number of undirected edges kept: dense ``m n s`` + ``8 n^2`` (the output) +
    ``b n s`` (one block); sparse ``m n s`` (activations) + ``b n (s + 1)`` (one
    block of correlations and its mask) + about ``50 E`` to ``75 E`` bytes (edge lists,
    symmetrisation, the CSR; ``24 E`` remain in the result with int32 indices). Measured peak RSS
    of the whole process at VGG16 size (1000 x 36,864 float32, 26.0 M edges = 3.8 % of the pairs
    at threshold 0.6): 1.74 GiB; ResNet18 size (1000 x 25,600, 12.5 M edges): 0.89 GiB.
    """
    thr = _check_threshold(threshold)
    A = np.asarray(activations)
    if A.ndim != 2:
        raise ValueError(f"activations must be 2-D (n_samples, n_nodes), got shape {A.shape}")
    m, n = A.shape
    if m < 2:
        raise ValueError(f"need at least 2 samples to correlate, got {m}")
    if n < 1:
        raise ValueError("activations has no units (0 columns)")
    if dtype is None:
        dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.float64
    dt = _check_dtype(dtype)
    if not np.issubdtype(A.dtype, np.number) or np.iscomplexobj(A):
        raise ValueError(f"activations must be real numbers, got dtype {A.dtype}")
    if not np.isfinite(A).all():
        bad = np.flatnonzero(~np.isfinite(A).all(axis=0))
        raise ValueError(f"activations contain NaN or inf (units {bad[:10].tolist()} ...)")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")

    Z = np.array(A, dtype=dt, order="C", copy=True) if copy else np.ascontiguousarray(A, dtype=dt)
    norms = _standardise_(Z)
    constant = norms == 0
    rank, size = _rank_size(comm)

    n_pairs = n * (n - 1) // 2
    if thr is None:
        out = _dense_from_blocks(Z, int(block_size), progress and rank == 0)
        if stats is not None:
            stats["mean_abs_corr"] = (1.0 - math.fsum(out.sum(axis=1)) / (2 * n_pairs)
                                      if n_pairs else math.nan)
    else:
        cut = 1.0 - thr  # keep |corr| >= cut
        blocks = _block_ranges(n, int(block_size))
        owners = _assign_blocks(blocks, n, size)
        mine = owners[rank]
        parts: dict[int, tuple[np.ndarray, ...]] = {}
        abs_sums: Optional[dict] = {} if stats is not None else None
        work_total = sum((i1 - i0) * (n - i0) for b, (i0, i1) in enumerate(blocks) if b in mine)
        bar = _progress_bar(work_total, "correlations", "pair", progress and rank == 0)
        try:
            for b in mine:
                i0, i1 = blocks[b]
                parts[b] = _block_edges(Z, i0, i1, cut, abs_sums)
                bar.update((i1 - i0) * (n - i0))
        finally:
            bar.close()
        del Z
        if size > 1:
            rows, cols, vals = _allgather_edges(comm, parts, len(blocks))
        else:
            rows = np.concatenate([parts[b][0] for b in range(len(blocks))])
            cols = np.concatenate([parts[b][1] for b in range(len(blocks))])
            vals = np.concatenate([parts[b][2] for b in range(len(blocks))])
        parts.clear()
        out = _symmetric_csr(n, rows, cols, vals)
        if stats is not None:
            if size > 1:
                merged: dict = {}
                for part in comm.allgather(abs_sums):
                    merged.update(part)
                abs_sums = merged
            # fsum is exact, so the blocks' order (and the number of ranks) does not matter
            stats["mean_abs_corr"] = math.fsum(abs_sums.values()) / n_pairs if n_pairs else math.nan
    if return_constant:
        return out, constant
    return out


# --------------------------------------------------------------------------------------------
# 3. the functional graph
# --------------------------------------------------------------------------------------------


def functional_graph(
    model: Any,
    data: Any,
    *,
    layers: Optional[Sequence[str]] = None,
    n_samples: int = 1000,
    threshold: Optional[float] = None,
    batch_size: int = 100,
    dtype: Any = None,
    device: Any = None,
    progress: bool = True,
    return_info: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    comm: Any = None,
):
    """The functional graph of ``model`` over the first ``n_samples`` inputs of ``data``.

    Nodes are the units of the ``layers`` (default ``model.functional_layers``), layer by layer in
    that order, each layer's output flattened per sample in C order (channel x position); the
    distance between two units is ``1 - |Pearson correlation|`` of their activations over the
    samples (a constant unit: correlation 0, distance 1).

    Unlike the original pipeline, which formed the full float64 matrix and wrote it to disk
    before cutting it at ``2 * MAX_EPSILON``, the thresholded graph is built block by block and
    the dense matrix never exists (:func:`save_dipha` still writes the original's files).

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode without gradients; hooks are removed and the mode restored afterwards.
    data : tensor, ndarray, DataLoader, Dataset or TensorDataset
        Inputs, in order (DataLoader: first element of each batch; Dataset: ``item[0]``).
    layers : list of str, optional
        Module names as in ``model.named_modules()``.
    n_samples : int
        Number of inputs used (all of them if ``data`` has fewer; at least 2 are needed).
    threshold : float in (0, 1], optional
        None: dense float64 ``(n, n)`` array. A number: symmetric ``scipy.sparse.csr_matrix``
        holding exactly the edges of distance ``<= threshold`` (explicit zeros stored).
    batch_size : int
        Forward batch size for tensor/Dataset inputs.
    dtype : float32 or float64, optional
        Activation storage and product precision. Default: float64 for the dense matrix (its
        ``8 n^2``-byte output dominates anyway), float32 with a threshold (half the memory and
        twice the speed; distance error about 1.4e-6, see :func:`correlation_distances`).
    device : torch device, optional
        Where the inputs are sent; default: the model's device.
    progress : bool
        tqdm bars on stderr for the forward pass and the block products (terminals only, rank 0
        only) and a printed line on constant units.
    return_info : bool
        Also return a dict: ``layers``, ``nodes_per_layer``, ``n_nodes``, ``n_samples``,
        ``constant_units`` (per layer), ``n_edges`` (sparse), ``mean_abs_corr`` (mean
        ``|corr|`` over all pairs of units, before the threshold), ``timings`` (seconds:
        ``activations``, ``correlations``) and ``peak_memory_estimate`` (bytes).
    block_size : int
        Nodes per row block of the thresholded product.
    comm : mpi4py communicator, optional
        Rank 0 runs the model and broadcasts the activations; the ranks share the correlation
        blocks and all-gather the edges. Every rank returns the same graph.

    Returns
    -------
    ndarray or scipy.sparse.csr_matrix, and the info dict if ``return_info``

    Notes
    -----
    Peak memory: ``n_samples x n_nodes`` activations in ``dtype`` (VGG16 at 32x32, 1000 x 36.9k
    float32: 148 MB), plus the correlation phase (see :func:`correlation_distances`): the dense
    result is ``8 n^2`` bytes (10.9 GB for VGG16; use a threshold); the thresholded graph of a
    VGG16-sized layer set at threshold 0.6 peaked at 1.74 GiB RSS.
    """
    thr = _check_threshold(threshold)
    if dtype is None:
        dtype = np.float64 if thr is None else np.float32
    dt = _check_dtype(dtype)
    rank, size = _rank_size(comm)
    t0 = time.perf_counter()

    if size > 1:
        X, names, sizes = _collect_on_root(
            comm, model, data, layers=layers, n_samples=n_samples, batch_size=batch_size,
            dtype=dt, device=device, progress=progress and rank == 0,
        )
    else:
        X, names, sizes = collect_activations(
            model, data, layers=layers, n_samples=n_samples, batch_size=batch_size,
            dtype=dt, device=device, progress=progress,
        )
    t1 = time.perf_counter()
    m, n = X.shape
    if m < 2:
        raise ValueError(
            f"need at least 2 samples to correlate, data gave {m} (n_samples={n_samples})"
        )
    if m < n_samples and rank == 0:
        _report(f"data has only {m} samples (n_samples={n_samples}); using all {m}", progress)
    corr_stats: dict = {}
    out, constant = correlation_distances(
        X, thr, dtype=dt, block_size=block_size, comm=comm,
        progress=progress and rank == 0, copy=False, return_constant=True, stats=corr_stats,
    )
    t2 = time.perf_counter()
    del X

    offsets = np.concatenate([[0], np.cumsum(sizes)])
    const_per_layer = [int(constant[offsets[i] : offsets[i + 1]].sum()) for i in range(len(sizes))]
    if any(const_per_layer) and rank == 0:
        parts = ", ".join(f"{nm}: {c}/{s}" for nm, c, s in zip(names, const_per_layer, sizes) if c)
        _report(
            f"{sum(const_per_layer)} constant units (zero variance over {m} samples; "
            f"correlation 0, distance 1): {parts}",
            progress,
        )
    if not return_info:
        return out
    itemsize = dt.itemsize
    if thr is None:
        b = min(int(block_size), n)
        peak = m * n * itemsize + 8 * n * n + b * n * itemsize
        n_edges = n * (n - 1) // 2
    else:
        n_edges = int(out.nnz // 2)
        b = min(int(block_size), n)
        peak = m * n * itemsize + b * n * (itemsize + 1) + 56 * n_edges
    info = {
        "layers": list(names),
        "nodes_per_layer": list(sizes),
        "n_nodes": int(n),
        "n_samples": int(m),
        "constant_units": dict(zip(names, const_per_layer)),
        "threshold": thr,
        "n_edges": n_edges,
        "mean_abs_corr": corr_stats["mean_abs_corr"],
        "timings": {"activations": t1 - t0, "correlations": t2 - t1},
        "peak_memory_estimate": int(peak),
        "ranks": size,
    }
    return out, info


def _collect_on_root(comm: Any, model: Any, data: Any, **kw: Any):
    """Rank 0 runs the model; every rank gets the activations or the same ValueError."""
    from mpi4py import MPI

    rank = comm.Get_rank()
    result = None
    failure: Optional[BaseException] = None
    if rank == 0:
        try:
            result = collect_activations(model, data, **kw)
        except Exception as exc:  # every rank must learn of it, or the others hang in bcast
            failure = exc
    verdict = comm.bcast(
        None if failure is None else (isinstance(failure, ValueError), str(failure)), root=0
    )
    if verdict is not None:
        if failure is not None:
            raise failure
        is_value_error, msg = verdict
        raise (ValueError if is_value_error else RuntimeError)(f"on rank 0: {msg}")
    if rank == 0:
        X, names, sizes = result
        header = (X.shape, X.dtype.str, names, sizes)
    else:
        header = None
    shape, dstr, names, sizes = comm.bcast(header, root=0)
    if rank != 0:
        X = np.empty(shape, dtype=np.dtype(dstr))
    X = np.ascontiguousarray(X)
    mpitype = MPI.FLOAT if X.dtype == np.float32 else MPI.DOUBLE
    # Bcast in pieces below 2^31 elements
    flat = X.reshape(-1)
    step = 1 << 28
    for s in range(0, flat.shape[0], step):
        comm.Bcast([flat[s : s + step], mpitype], root=0)
    return X, names, sizes


# --------------------------------------------------------------------------------------------
# 4. DIPHA files
# --------------------------------------------------------------------------------------------


def save_dipha(
    path: Union[str, os.PathLike],
    distances: Union[np.ndarray, sp.spmatrix, Any],
    *,
    sparse: Optional[bool] = None,
) -> None:
    """Write a distance matrix or graph as a DIPHA input file.

    ``sparse=None`` follows the input: a dense array gives a DISTANCE_MATRIX (type 7: magic,
    7, n, then n*n float64 row-major; 24 + 8 n^2 bytes), a scipy.sparse matrix a
    SPARSE_DISTANCE_MATRIX (type 8: magic, 8, n, the n neighbour counts, every row's neighbour
    indices ascending, then the distances in the same order; all int64/float64 little-endian;
    24 + 8 n + 16 E bytes for E stored entries). A dense matrix must be symmetric to 1e-12
    (DIPHA reads only the lower triangle); a sparse one exactly, with no diagonal entries.
    ``sparse=True`` on a dense array stores every
    off-diagonal pair (a complete graph). A sparse graph has no dense form (absent entries are not
    distances), so ``sparse=False`` on a sparse input is an error.

    The files are what the original pipeline gave ``dipha --upper_dim 3 --dual in out``; note
    that DIPHA's filtration value is half the longest edge.
    """
    if sp.issparse(distances):
        if sparse is False:
            raise ValueError(
                "sparse=False needs a dense matrix: absent entries of a sparse graph are not "
                "distances; write it as sparse (type 8)"
            )
        csr = sp.csr_matrix(distances)
        if csr.shape[0] != csr.shape[1]:
            raise ValueError(f"distance graph must be square, got shape {csr.shape}")
        if not np.isfinite(csr.data).all():
            raise ValueError("distance graph contains NaN or inf")
        csr = csr.copy()
        csr.sort_indices()
        n = csr.shape[0]
        rows = np.repeat(np.arange(n), np.diff(csr.indptr))
        if np.any(rows == csr.indices):
            raise ValueError("sparse distance graph has diagonal entries; DIPHA rows exclude self")
        if not _is_symmetric(csr):
            raise ValueError("sparse distance graph is not symmetric (pattern and values)")
        _write_sparse(path, csr)
        return
    D = np.asarray(distances)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"distance matrix must be square 2-D, got shape {D.shape}")
    if not np.issubdtype(D.dtype, np.number) or np.iscomplexobj(D):
        raise ValueError(f"distance matrix must be real, got dtype {D.dtype}")
    if not np.isfinite(D).all():
        raise ValueError("distance matrix contains NaN or inf")
    if not np.allclose(D, D.T, rtol=0.0, atol=1e-12):
        raise ValueError("distance matrix is not symmetric (beyond 1e-12)")
    n = D.shape[0]
    if sparse:
        r, c = np.nonzero(~np.eye(n, dtype=bool))
        indptr = np.arange(n + 1, dtype=np.int64) * (n - 1)
        csr = sp.csr_matrix((D[r, c].astype(np.float64), c.astype(np.int64), indptr), shape=(n, n))
        _write_sparse(path, csr)
        return
    with open(path, "wb") as f:
        np.array([DIPHA_MAGIC, DIPHA_DISTANCE_MATRIX, n], dtype="<i8").tofile(f)
        np.ascontiguousarray(D, dtype="<f8").tofile(f)


def _is_symmetric(csr: sp.csr_matrix) -> bool:
    """Same stored pattern and values as the transpose (``csr`` has sorted indices)."""
    t = csr.T.tocsr()
    t.sort_indices()
    return (
        np.array_equal(t.indptr, csr.indptr)
        and np.array_equal(t.indices, csr.indices)
        and np.array_equal(t.data, csr.data)
    )


def _write_sparse(path: Union[str, os.PathLike], csr: sp.csr_matrix) -> None:
    n = csr.shape[0]
    with open(path, "wb") as f:
        np.array([DIPHA_MAGIC, DIPHA_SPARSE_DISTANCE_MATRIX, n], dtype="<i8").tofile(f)
        np.diff(csr.indptr).astype("<i8").tofile(f)
        csr.indices.astype("<i8").tofile(f)
        csr.data.astype("<f8").tofile(f)
