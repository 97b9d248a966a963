"""Functional graph of a network: units as nodes, ``1 - |Pearson corr|`` as distances.

The pipeline, streamed from a torch model to the persistence engine:

1. :func:`collect_activations` runs the model in eval mode without gradients on the first
   ``n_samples`` inputs and records, through forward hooks, the outputs of the named modules.
   Every unit (each channel x spatial position of a conv layer, each neuron of a linear layer) is
   one node; a layer's output is flattened per sample in C order (channel-major). The activations
   land in one preallocated ``(n_samples, n_nodes)`` matrix, nodes ordered layer by layer. With
   ``groups=`` (big networks, :mod:`topodnn.grouping`) a node is instead a group of consecutive
   units of one layer (a conv channel, a fixed-size chunk), its activation the mean of its units,
   computed per batch: the matrix then has one column per group.
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
* A unit (or group) whose activation never varies over the samples (a dead ReLU, say) has an
  undefined correlation; as in the original pipeline it is taken as 0, i.e. distance 1 to every
  other node. Such nodes are counted per layer (``info["constant_units"]``) and reported in one
  log line.
* Sparse graphs are symmetric CSR matrices whose stored entries are exactly the edges
  ``i != j`` with ``d(i, j) <= threshold``. Edges of distance exactly 0 (``|corr| = 1``, e.g.
  duplicated units) are stored as explicit zeros: a stored entry is an edge whatever its value.

Unlike the original pipeline the full float64 matrix (``8 n^2`` bytes: 10.9 GB for VGG16's 36.9k
units) is never written or even formed on the way to a sparse graph.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import scipy.sparse as sp

from ._agreement import agree_on, check_comm, comm_size, digest, on_rank
from ._arrays import (as_numpy, is_torch_tensor, largest_asymmetry, real_dtype, real_scalar, rounding_tolerance,
                      tolerance_text)
from .grouping import GroupSpec, Groups, LayerGroups, parse_groups, resolve_groups

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


def _check_threshold(threshold: Any) -> Optional[float]:
    if threshold is None:
        return None
    t = real_scalar(threshold, "threshold", "a number in (0, 1] or None")
    if not (0.0 < t <= 1.0):
        raise ValueError(
            f"threshold must lie in (0, 1] (a distance 1 - |corr|), got {threshold!r}; "
            "use threshold=None for the dense matrix"
        )
    return t


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# 1. activations
# --------------------------------------------------------------------------------------------


def _numeric_inputs(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as an input array the model may take (numbers; the model decides which)."""
    a = np.asarray(a)  # np.matrix and memory maps as plain arrays
    if a.dtype.kind not in "biuf":
        if a.dtype.kind == "c":
            raise ValueError(f"{what} must be real, got dtype {a.dtype}")
        raise ValueError(
            f"{what} must be numbers, got dtype {a.dtype} (an object or string array, e.g. a "
            "DataFrame with non-numeric columns); pass a numeric array"
        )
    if a.ndim == 0:
        raise ValueError(f"{what} is a single number; expected samples along dimension 0")
    return a


def _nested_numbers(x: Any) -> bool:
    """A list/tuple whose first leaf, followed through first elements, is a plain number."""
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return isinstance(x, numbers.Number) and not is_torch_tensor(x)


def _as_inputs(data: Any) -> Any:
    """``data`` normalised: a tensor or ndarray of inputs, or a Dataset / iterable of batches.

    Raises ValueError (one line) for what cannot be inputs: a tensor without data (meta
    device), a sparse or complex tensor, a non-numeric array or DataFrame, ragged nested lists,
    strings, mappings and non-iterables.
    """
    import torch

    if isinstance(data, torch.Tensor):
        if data.device.type == "meta":
            raise ValueError(
                "data is a tensor on the meta device, which holds no data (only a shape and a "
                "dtype); pass real inputs"
            )
        if data.layout != torch.strided:
            raise ValueError(f"data is a {data.layout} tensor; pass dense inputs (e.g. .to_dense())")
        if data.is_complex():
            raise ValueError(f"data must be real, got a complex tensor ({data.dtype})")
        if data.dim() == 0:
            raise ValueError("data is a 0-d tensor; expected samples along dimension 0")
        return data
    if isinstance(data, np.ndarray):
        return _numeric_inputs(data, "data")
    if type(data).__module__.startswith("pandas") and hasattr(data, "to_numpy"):
        return _numeric_inputs(data.to_numpy(), "data (a pandas object)")
    if isinstance(data, (list, tuple)) and _nested_numbers(data):
        try:
            a = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"data (nested lists of numbers) is not a rectangular array: {exc}") from None
        return _numeric_inputs(a, "data (nested lists)")
    if isinstance(data, (str, bytes, Mapping)) or not hasattr(data, "__iter__") and not hasattr(
        data, "__getitem__"
    ):
        raise ValueError(
            "data must be a tensor/array of inputs, a DataLoader or a Dataset, "
            f"got {type(data).__name__}"
        )
    return data


def _array_tensor(a: np.ndarray):
    """A tensor sharing ``a``'s memory when torch can (else of a copy: read-only arrays, negative
    strides), so that no warning is raised and nothing is written through it."""
    import torch

    a = np.asarray(a)
    if not a.flags.writeable or any(st < 0 for st in a.strides):
        a = np.array(a)
    return torch.from_numpy(a)


def _batch_tensor(x: Any, where: str):
    import torch

    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return _array_tensor(_numeric_inputs(x, where))
    try:
        return _array_tensor(_numeric_inputs(np.asarray(x), where))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where} is a {type(x).__name__} that is not a tensor of inputs: {exc}") from None


def _input_batches(data: Any, n_samples: int, batch_size: int):
    """Yield input tensors (first dimension = samples) until ``n_samples`` have been produced.

    ``data`` (normalised by :func:`_as_inputs`) is a tensor or array of inputs, a DataLoader (or
    any iterable of batches; the first element of a tuple/list batch is the input), or a
    map-style Dataset (``item[0]`` for tuple/list items, the item itself otherwise; items are
    stacked ``batch_size`` at a time).
    """
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

    if isinstance(data, TensorDataset):
        data = data.tensors[0]
    if isinstance(data, (torch.Tensor, np.ndarray)):
        if data.shape[0] == 0:
            raise ValueError("data is empty: the input tensor has no samples along dimension 0")
        for start in range(0, min(n_samples, data.shape[0]), batch_size):
            batch = data[start : min(start + batch_size, n_samples)]
            yield batch if isinstance(batch, torch.Tensor) else _array_tensor(batch)
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
            items = [_batch_tensor(first(data[i]), f"data[{i}]")
                     for i in range(start, min(start + batch_size, stop))]
            shapes = {tuple(x.shape) for x in items}
            if len(shapes) > 1:
                raise ValueError(f"the Dataset's items have different shapes {sorted(shapes)}; "
                                 "every input must have the same shape")
            yield torch.stack(items)
        return

    produced = 0
    any_batch = False
    for k, batch in enumerate(data):
        x = _batch_tensor(first(batch), f"batch {k} of data")
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


@dataclass
class _Activations:
    """A validated request for activations (see :func:`collect_activations`)."""

    model: Any
    data: Any
    layers: list[str]
    n_samples: int
    batch_size: int
    dtype: np.dtype
    device: Any
    input_dtype: Any  # torch dtype floating inputs are cast to, or None
    groups: Groups


def _activations_request(
    model: Any, data: Any, layers: Optional[Sequence[str]], n_samples: Any, batch_size: Any,
    dtype: Any, device: Any, groups: GroupSpec = None,
) -> _Activations:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    n_samples = _check_count(n_samples, "n_samples")
    batch_size = _check_count(batch_size, "batch_size")
    dt = _check_dtype(dtype)
    names = _resolve_layers(model, layers)
    grouping = parse_groups(groups, names)
    tensors = list(model.parameters()) + list(model.buffers())
    if any(t.device.type == "meta" for t in tensors):
        raise ValueError("the model has parameters on the meta device, which hold no data; load "
                         "its weights (e.g. model.to_empty(device='cpu') and a state dict) first")
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
    return _Activations(model, _as_inputs(data), names, n_samples, batch_size, dt, device,
                        floating[0] if floating else None, grouping)


def _hash_tensor(h: Any, t: Any) -> None:
    import torch

    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    t = t.to("cpu").contiguous().reshape(-1)
    if t.numel():
        h.update(t.view(torch.uint8).numpy())


def _activations_facts(req: _Activations) -> dict[str, Any]:
    """What must agree across ranks: the arguments and content hashes of model and inputs."""
    h = digest()
    for name, t in list(req.model.named_parameters()) + list(req.model.named_buffers()):
        h.update(name.encode())
        _hash_tensor(h, t)
    facts: dict[str, Any] = {
        "n_samples": req.n_samples, "batch_size": req.batch_size, "dtype": str(req.dtype),
        "layers": list(req.layers), "groups": req.groups.text(),
        "model parameters and buffers": f"hash {h.hexdigest()}",
    }
    data = req.data
    if isinstance(data, np.ndarray) or is_torch_tensor(data):
        h = digest()
        head = data[: req.n_samples]
        if isinstance(head, np.ndarray):
            h.update(f"{head.dtype}{head.shape}".encode())
            h.update(np.ascontiguousarray(head))
        else:
            _hash_tensor(h, head)
        facts["data"] = (f"{type(data).__name__} {tuple(data.shape)}, first {len(head)} "
                         f"samples hash {h.hexdigest()}")
    else:
        facts["data"] = f"a {type(data).__name__} (contents not compared)"
    return facts


def _is_out_of_memory(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def _forward(model: Any, xb: Any, req: _Activations) -> None:
    """Run the model on one batch (cast/moved as documented); its failures as one ValueError."""
    if xb.is_complex():
        raise ValueError(f"data must be real, got a batch of dtype {xb.dtype}")
    cast = req.input_dtype if xb.is_floating_point() and req.input_dtype is not None else None
    x = xb.to(device=req.device, dtype=cast) if cast is not None else xb.to(req.device)
    try:
        model(x)
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
        if _is_out_of_memory(exc):
            raise
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = ("" if xb.is_floating_point() else
                "; only floating-point inputs are cast to the model's parameter dtype: convert "
                "other inputs explicitly (e.g. x.float() / 255 for 8-bit images)")
        raise ValueError(
            f"the model failed on a batch of {x.shape[0]} inputs of shape {tuple(x.shape)} and "
            f"dtype {x.dtype} ({type(exc).__name__}: {line}); data must hold the model's "
            f"inputs with the samples along dimension 0{hint}"
        ) from exc


def _collect(
    req: _Activations, progress: bool
) -> tuple[np.ndarray, list[str], list[int], list[LayerGroups]]:
    """Run the model over the inputs of a validated request; see :func:`collect_activations`.

    Returns the ``(n_used, n_nodes)`` matrix, the layer names, the nodes of each layer and each
    layer's grouping (resolved on the first batch's output shapes).
    """
    import torch

    model, names, n_samples = req.model, req.layers, req.n_samples
    modules = dict(model.named_modules())
    captured: dict[str, list] = {name: [] for name in names}

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            captured[name].append(output)

        return hook

    X: Optional[np.ndarray] = None
    sizes: list[int] = []  # units of each layer
    offsets: list[int] = []  # first node of each layer
    shapes: list[tuple[int, ...]] = []  # per-sample output shape of each layer
    layout: list[LayerGroups] = []
    filled = 0
    modes = [(mod, mod.training) for mod in model.modules()]  # restored one by one
    torch_dtype = torch.float64 if req.dtype == np.float64 else torch.float32
    handles = [modules[name].register_forward_hook(make_hook(name)) for name in names]
    bar = _progress_bar(n_samples, "activations", "sample", progress)
    try:
        model.eval()
        with torch.no_grad():
            for xb in _input_batches(req.data, n_samples, req.batch_size):
                for name in names:
                    captured[name].clear()
                nb = int(xb.shape[0])
                _forward(model, xb, req)
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
                    if out.is_complex():
                        raise ValueError(f"layer {name!r} returned complex values ({out.dtype})")
                    out = out.detach()
                    if X is None:
                        shapes.append(tuple(int(d) for d in out.shape[1:]))
                    out = out.reshape(nb, -1)
                    if not bool(torch.isfinite(out).all()):
                        raise ValueError(f"layer {name!r} produced NaN or inf activations")
                    outs.append(out)
                if X is None:
                    sizes = [int(o.shape[1]) for o in outs]
                    layout = resolve_groups(req.groups, names, shapes)
                    offsets = np.concatenate(
                        [[0], np.cumsum([g.n_nodes for g in layout])]).astype(int).tolist()
                    X = np.empty((n_samples, offsets[-1]), dtype=req.dtype)
                for name, out, size, off, grp in zip(names, outs, sizes, offsets, layout):
                    if out.shape[1] != size:
                        raise ValueError(
                            f"layer {name!r} has {out.shape[1]} units per sample in this batch "
                            f"but {size} in the first one"
                        )
                    if grp.is_units:
                        X[filled : filled + nb, off : off + size] = out.to(
                            device="cpu", dtype=torch_dtype
                        ).numpy()
                    else:  # group means in float64, one batch of the layer at a time
                        X[filled : filled + nb, off : off + grp.n_nodes] = grp.means(
                            out.to(device="cpu", dtype=torch.float64).numpy())
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
    return X, names, [g.n_nodes for g in layout], layout


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
    groups: GroupSpec = None,
    return_groups: bool = False,
):
    """Record the outputs of named modules over the first ``n_samples`` inputs.

    The model runs in eval mode under ``torch.no_grad()``; forward hooks capture the outputs and
    are removed afterwards (also when the forward pass raises); the model's train/eval mode is
    restored. Nothing else about the model changes.

    Parameters
    ----------
    model : torch.nn.Module
    data : tensor, array-like, DataLoader, Dataset or TensorDataset
        Inputs in order, samples along dimension 0: a torch tensor, a numpy array of any layout
        (read-only and memory-mapped ones included), a pandas DataFrame, nested lists of
        numbers; or a DataLoader or any iterable of batches (the first element of a tuple/list
        batch is the input), or a Dataset (``item[0]`` of tuple/list items). A list is read as
        an array of samples when its elements are numbers or lists of numbers, as batches
        otherwise. If fewer than ``n_samples`` are available, all are used. Floating-point
        inputs are cast to the model's parameter dtype (that of its first floating-point
        parameter or buffer; no cast for a model without any) and moved to ``device``; other
        inputs (integers, bool) are passed as they are, and a model that cannot take them is a
        ValueError.
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
    groups : None, str or mapping, optional
        Node grouping (:mod:`topodnn.grouping`): ``None`` (every unit a node), ``"channel"``,
        ``{"chunk": k}``, ``{"nodes": n}`` or ``{layer: spec}``. A node's activation is the mean
        of its units, computed per batch in float64 and stored in ``dtype``; the matrix holds
        ``n_samples x n_nodes`` values, the full-resolution one is never formed.
    return_groups : bool
        Also return the list of :class:`topodnn.grouping.LayerGroups` (which units each node
        averages, and each layer's output shape).

    Returns
    -------
    activations : ndarray, shape (n_used, n_nodes)
        Row = sample, column = node; nodes layer by layer in ``layers`` order. Ungrouped, a node
        is a unit and each layer's output is flattened per sample in C order (channel x
        position); grouped, a layer's nodes are ordered by their first unit in that order.
    layers : list of str
        The layer names used.
    sizes : list of int
        Number of nodes of each layer (its units when ungrouped).
    groups : list of LayerGroups
        Only with ``return_groups``.

    Raises
    ------
    ValueError
        On bad arguments or data (one line naming the problem), a layer called other than once
        or producing NaN/inf, or a forward pass that fails on the inputs (wrong shape or dtype
        for the model: the message gives the batch's shape and dtype and the model's error), or a
        grouping spec that is ambiguous or does not fit the layers (see :mod:`topodnn.grouping`).
    """
    req = _activations_request(model, data, layers, n_samples, batch_size, dtype, device, groups)
    X, names, sizes, layout = _collect(req, progress)
    return (X, names, sizes, layout) if return_groups else (X, names, sizes)


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
    activations : array-like or torch.Tensor, shape (n_samples, n_nodes)
        Row = sample, column = unit (numpy array of any layout, CPU tensor, DataFrame...).
        Real numbers (integers are read as float64; bool and complex are refused), finite,
        with at least 2 samples.
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
        activations and arguments: the ranks first exchange their verdicts on the arguments
        and a content hash of the activations (one small allgather); a bad argument on any
        rank, or arguments that differ, is the same ValueError on every rank. A rank that
        never calls cannot be detected: the others wait for it.
    progress : bool
        tqdm bar over the blocks (stderr terminals only, rank 0 only).
    copy : bool
        False lets the function standardise ``activations`` in place (saves one copy of the
        matrix when it already has the working dtype and is writeable).
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
    check_comm(comm)

    def check() -> tuple:
        thr = _check_threshold(threshold)
        A, dt = _check_activations(activations, dtype)
        bs = _check_count(block_size, "block_size")
        facts = {}
        if comm_size(comm) > 1:
            h = digest()
            h.update(np.ascontiguousarray(A))
            facts = {"threshold": thr, "dtype": str(dt), "block_size": bs,
                     "activations": f"{A.dtype} {A.shape} hash {h.hexdigest()}"}
        return (thr, A, dt, bs), facts

    thr, A, dt, bs = agree_on(comm, check, call="correlation_distances")
    return _correlations(A, thr, dt, bs, comm, progress, copy, return_constant, stats)


def _check_activations(activations: Any, dtype: Any) -> tuple[np.ndarray, np.dtype]:
    """The activation matrix as a real 2-D array with at least 2 samples, and the working dtype."""
    A, _ = as_numpy(activations, "activations")
    if sp.issparse(A):
        raise ValueError("activations must be a dense (n_samples, n_nodes) array, got a sparse matrix")
    if A.ndim != 2:
        raise ValueError(f"activations must be 2-D (n_samples, n_nodes), got shape {A.shape}")
    m, n = A.shape
    if m < 2:
        raise ValueError(f"need at least 2 samples to correlate, got {m}")
    if n < 1:
        raise ValueError("activations has no units (0 columns)")
    working, _ = real_dtype(A.dtype, "activations")
    if dtype is None:
        dtype = A.dtype if A.dtype in (np.float32, np.float64) else working
    dt = _check_dtype(dtype)
    if not np.isfinite(A).all():
        bad = np.flatnonzero(~np.isfinite(A).all(axis=0))
        raise ValueError(f"activations contain NaN or inf (units {bad[:10].tolist()} ...)")
    return A, dt


def _correlations(
    A: np.ndarray, thr: Optional[float], dt: np.dtype, block_size: int, comm: Any,
    progress: bool, copy: bool, return_constant: bool, stats: Optional[dict] = None,
):
    """The work of :func:`correlation_distances` on validated arguments (agreed across ranks)."""
    n = A.shape[1]
    if copy or not A.flags.writeable:
        Z = np.array(A, dtype=dt, order="C", copy=True)
    else:
        Z = np.ascontiguousarray(A, dtype=dt)
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
    groups: GroupSpec = None,
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
    data : tensor, array-like, DataLoader, Dataset or TensorDataset
        Inputs, in order (DataLoader: first element of each batch; Dataset: ``item[0]``); the
        forms accepted are those of :func:`collect_activations`. Inputs are cast to the model's
        parameter dtype (floating-point inputs; others are passed as they are).
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
        ``constant_units`` (constant nodes per layer), ``n_edges`` (sparse), ``mean_abs_corr``
        (mean ``|corr|`` over all pairs of nodes, before the threshold), ``timings`` (seconds:
        ``activations``, ``correlations``), ``peak_memory_estimate`` (bytes), and how nodes were
        grouped: ``groups`` (the spec's canonical text, ``"units"`` when ungrouped),
        ``units_per_layer``, ``layer_shapes`` (per-sample output shapes) and ``node_units`` (per
        layer, the runs ``[start, stop, step]`` of units each node averages; see
        :func:`topodnn.grouping.unit_ranges`).
    block_size : int
        Nodes per row block of the thresholded product.
    comm : mpi4py communicator, optional
        Rank 0 runs the model and broadcasts the activations; the ranks share the correlation
        blocks and all-gather the edges. Every rank returns the same graph. Every rank must
        pass the same model, data and arguments: before any other collective the ranks
        exchange, in one small allgather, their verdict on their own arguments and what must
        agree (``n_samples``, ``threshold``, ``dtype``, ``block_size``, ``batch_size``, the
        layer names, a content hash of the model's parameters and buffers and, for a tensor or
        array, of the inputs used; the contents of a DataLoader or Dataset are not compared).
        Bad arguments on any rank, or arguments that differ, are the same ValueError on every
        rank, naming the failing rank (``"(on rank r of P)"``) or what differs and where. A
        failure of the forward pass on rank 0 is broadcast and raised on every rank too. What
        cannot be detected: a rank that never calls (the others wait for it forever). The
        grouping spec (its canonical text) is one of the facts compared.
    groups : None, str or mapping, optional
        Node grouping for big networks (:mod:`topodnn.grouping`): ``None`` or ``"units"`` (every
        unit its own node, the default), ``"channel"`` (a conv layer's channel, the mean over its
        spatial positions, is one node; linear layers keep their units), ``{"chunk": k}``
        (consecutive units of a layer in C order, ``k`` per node, the last chunk shorter),
        ``{"nodes": n}`` (``n`` nodes in total, shared among the layers in proportion to their
        units) or ``{layer: spec}`` per layer. A node's activation is the mean of its units,
        computed per batch in float64; the full-resolution activation matrix is never formed.
        Anything ambiguous is a ValueError. How grouped summaries differ from full-resolution
        ones (measured on LeNet, and what grouping gives on AlexNet, ResNet18 and VGG16): see
        :mod:`topodnn.grouping`.

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
    check_comm(comm)
    size = comm_size(comm)

    def check() -> tuple:
        req, thr, bs = _graph_request(model, data, layers, n_samples, threshold, batch_size,
                                      dtype, device, block_size, groups)
        return (req, thr, bs), (_graph_facts(req, thr, bs) if size > 1 else {})

    req, thr, bs = agree_on(comm, check, call="functional_graph")
    return _functional_graph(req, thr, bs, comm, progress, return_info)


def _graph_request(
    model: Any, data: Any, layers: Any, n_samples: Any, threshold: Any, batch_size: Any,
    dtype: Any, device: Any, block_size: Any, groups: GroupSpec = None,
) -> tuple[_Activations, Optional[float], int]:
    """Validated arguments of :func:`functional_graph` (this rank's view)."""
    thr = _check_threshold(threshold)
    if dtype is None:
        dtype = np.float64 if thr is None else np.float32
    bs = _check_count(block_size, "block_size")
    req = _activations_request(model, data, layers, n_samples, batch_size, dtype, device, groups)
    return req, thr, bs


def _graph_facts(req: _Activations, thr: Optional[float], block_size: int) -> dict[str, Any]:
    return {"threshold": thr, "block_size": block_size, **_activations_facts(req)}


def _functional_graph(
    req: _Activations, thr: Optional[float], block_size: int, comm: Any, progress: bool,
    return_info: bool,
):
    """The work of :func:`functional_graph` once the ranks agree on the arguments."""
    n_samples, dt = req.n_samples, req.dtype
    rank, size = _rank_size(comm)
    t0 = time.perf_counter()
    if size > 1:
        X, names, sizes, layout = _collect_on_root(comm, req, progress=progress and rank == 0)
    else:
        X, names, sizes, layout = _collect(req, progress)
    t1 = time.perf_counter()
    m, n = X.shape
    if m < 2:
        raise ValueError(
            f"need at least 2 samples to correlate, data gave {m} (n_samples={n_samples})"
        )
    if m < n_samples and rank == 0:
        _report(f"data has only {m} samples (n_samples={n_samples}); using all {m}", progress)
    corr_stats: dict = {}
    out, constant = _correlations(  # the activations are the same on every rank: no re-check
        X, thr, dt, block_size, comm, progress and rank == 0, copy=False, return_constant=True,
        stats=corr_stats,
    )
    t2 = time.perf_counter()
    del X

    offsets = np.concatenate([[0], np.cumsum(sizes)])
    const_per_layer = [int(constant[offsets[i] : offsets[i + 1]].sum()) for i in range(len(sizes))]
    grouped = not all(g.is_units for g in layout)
    if any(const_per_layer) and rank == 0:
        parts = ", ".join(f"{nm}: {c}/{s}" for nm, c, s in zip(names, const_per_layer, sizes) if c)
        what = "nodes (group means)" if grouped else "units"
        _report(
            f"{sum(const_per_layer)} constant {what} (zero variance over {m} samples; "
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
    if grouped:  # one batch of the widest layer in float64, for its group means
        peak += 8 * req.batch_size * max(g.units for g in layout)
    info = {
        "layers": list(names),
        "nodes_per_layer": list(sizes),
        "groups": req.groups.text(),
        "units_per_layer": [g.units for g in layout],
        "layer_shapes": {g.layer: list(g.shape) for g in layout},
        "node_units": {g.layer: g.as_info() for g in layout},
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


def _collect_on_root(comm: Any, req: _Activations, progress: bool):
    """Rank 0 runs the model; every rank gets the activations or the same ValueError."""
    from mpi4py import MPI

    rank, size = _rank_size(comm)
    result = None
    failure: Optional[BaseException] = None
    if rank == 0:
        try:
            result = _collect(req, progress)
        except Exception as exc:  # every rank must learn of it, or the others hang in bcast
            failure = exc
    verdict = comm.bcast(
        None if failure is None else (isinstance(failure, ValueError), str(failure)), root=0
    )
    if verdict is not None:
        is_value_error, msg = verdict
        if not is_value_error and failure is not None:
            raise failure  # not bad input (out of memory, say): rank 0 keeps its exception
        raise (ValueError if is_value_error else RuntimeError)(on_rank(msg, 0, size)) from failure
    if rank == 0:
        X, names, sizes, layout = result
        header = (X.shape, X.dtype.str, names, sizes, layout)
    else:
        header = None
    shape, dstr, names, sizes, layout = comm.bcast(header, root=0)
    if rank != 0:
        X = np.empty(shape, dtype=np.dtype(dstr))
    X = np.ascontiguousarray(X)
    mpitype = MPI.FLOAT if X.dtype == np.float32 else MPI.DOUBLE
    # Bcast in pieces below 2^31 elements
    flat = X.reshape(-1)
    step = 1 << 28
    for s in range(0, flat.shape[0], step):
        comm.Bcast([flat[s : s + step], mpitype], root=0)
    return X, names, sizes, layout


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
    24 + 8 n + 16 E bytes for E stored entries). A dense matrix must be symmetric up to rounding,
    by the rule of :func:`topodnn.persistence` (8 x eps of its dtype x its largest |entry|; DIPHA
    and ``persistence`` both read the lower triangle); a sparse one exactly (both triangles are
    written and a reader may take either), with no diagonal entries.
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
    _, eps = real_dtype(D.dtype, "distances")
    tol = rounding_tolerance(eps, float(np.abs(D).max(initial=0.0)))
    worst, (i, j) = largest_asymmetry(D)
    if worst > tol:
        raise ValueError(
            f"distance matrix is not symmetric beyond rounding: D[{j}, {i}] = {float(D[j, i])!r} but "
            f"D[{i}, {j}] = {float(D[i, j])!r} ({tolerance_text(tol, eps)}); DIPHA reads the lower "
            "triangle: symmetrise it, e.g. D = numpy.maximum(D, D.T)"
        )
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
