"""The topology of a model on inputs: functional graph → persistence diagrams → summaries.

This module owns the one convention that ties the functional graph to the numbers of the papers
and their plots: the filtration value of an edge is

    ε = (1 − |corr|) / 2 ∈ [0, 0.5],

half the graph distance ``1 − |corr|``, as DIPHA (the original engine) assigns half the longest
edge to a simplex. ``max_epsilon`` 0.3 (the original's ``MAX_EPSILON``) keeps the edges with
|corr| ≥ 0.4. Every caller that turns a model into diagrams or summaries (the command line, early
stopping, the gap model, the studies) goes through :func:`model_topology` or
:func:`graph_topology`; none halves distances itself.

The flow is one way: :mod:`topodnn.graph` (torch → thresholded graph) → :mod:`topodnn.engine`
(graph → diagrams) → :mod:`topodnn.summaries` (diagrams → Betti curves and scalars).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

__all__ = [
    "EPSILON_PER_DISTANCE",
    "DEFAULT_MAX_EPSILON",
    "DEFAULT_MAX_DIM",
    "epsilon_of_distance",
    "distance_of_epsilon",
    "ModelTopology",
    "graph_topology",
    "model_topology",
    "topology",
]

#: ε per unit of graph distance: ε = (1 − |corr|) / 2.
EPSILON_PER_DISTANCE = 0.5
#: The original's MAX_EPSILON: ε ≤ 0.3, i.e. |corr| ≥ 0.4.
DEFAULT_MAX_EPSILON = 0.3
#: H0..H2, the original's UPPER_DIM = 3.
DEFAULT_MAX_DIM = 2


def epsilon_of_distance(distance: Any) -> Any:
    """ε of a graph distance ``1 − |corr|`` (scalar or array): ``distance / 2``."""
    return EPSILON_PER_DISTANCE * distance


def distance_of_epsilon(epsilon: float) -> float:
    """The graph distance ``1 − |corr|`` at filtration value ``epsilon``: ``2 ε``."""
    return float(epsilon) / EPSILON_PER_DISTANCE


#: Keyword arguments :func:`model_topology` passes on to :func:`topodnn.functional_graph`.
GRAPH_ARGS = frozenset({"batch_size", "dtype", "device", "block_size", "groups"})


def _check_max_epsilon(max_epsilon: Any) -> float:
    from ._arrays import real_scalar

    eps = real_scalar(max_epsilon, "max_epsilon", "a number in (0, 0.5]")
    if not (0.0 < eps <= 0.5):
        raise ValueError(
            f"max_epsilon must lie in (0, 0.5] (ε = (1 − |corr|) / 2), got {max_epsilon!r}"
        )
    return eps


def _checked(comm: Any, call: str, max_dim: Any, max_epsilon: Any,
             graph_kw: Optional[dict] = None) -> tuple[int, float]:
    """(max_dim, max_epsilon) validated, the verdict and the values agreed across ``comm``'s
    ranks before any collective: a bad or differing argument is the same ValueError on every
    rank."""
    from ._agreement import agree_on, check_comm
    from .engine import _check_max_dim

    check_comm(comm)

    def check() -> tuple:
        eps = _check_max_epsilon(max_epsilon)
        md = _check_max_dim(max_dim)
        for bad in ("threshold", "return_info"):
            if bad in (graph_kw or {}):
                raise ValueError(f"{call}() sets {bad} itself; pass max_epsilon instead")
        unknown = sorted(set(graph_kw or {}) - GRAPH_ARGS)
        if unknown:
            raise ValueError(
                f"{call}() got unexpected keyword arguments {unknown}; it passes on "
                f"{sorted(GRAPH_ARGS)} to functional_graph"
            )
        return (md, eps), {"max_dim": md, "max_epsilon": eps}

    return agree_on(comm, check, call=call)


@dataclass
class ModelTopology:
    """Persistence diagrams of a functional graph, in ε units, with what they were computed from.

    Attributes
    ----------
    diagrams : list of numpy.ndarray
        ``max_dim + 1`` arrays of shape (k, 2), (birth, death) in ε units sorted ascending;
        classes alive at ``max_epsilon`` have death ``inf``.
    max_epsilon : float
        End of the filtration (ε).
    max_dim : int
        Highest homology dimension computed.
    n_nodes : int
        Nodes of the functional graph (units of the recorded layers, or their groups with
        ``groups=``).
    n_samples : int
        Inputs the correlations were computed over.
    n_edges : int
        Edges with ε ≤ max_epsilon.
    info : dict
        The graph builder's report (layers, nodes per layer, constant units, how nodes were
        grouped, ...).
    timings : dict
        Seconds: ``graph``, ``persistence``.
    """

    diagrams: list
    max_epsilon: float
    max_dim: int
    n_nodes: int
    n_samples: int
    n_edges: int
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def summaries(self, *, min_persistence: float = 0.02) -> dict:
        """Per-dimension summaries (:func:`topodnn.summaries.summarise_diagrams`), per node too.

        The graph's ``n_nodes`` is passed on, so the counts also come per node
        (``betti_max_per_node``, ``n_pairs_per_node``, ``n_essential_per_node``,
        ``area_per_node``).
        """
        from .summaries import summarise_diagrams

        return summarise_diagrams(
            self.diagrams, min_persistence=min_persistence, max_epsilon=self.max_epsilon,
            n_nodes=self.n_nodes,
        )


def graph_topology(
    graph: Any,
    *,
    max_dim: int = DEFAULT_MAX_DIM,
    max_epsilon: float = DEFAULT_MAX_EPSILON,
    comm: Any = None,
    verbose: bool = False,
    copy: bool = True,
) -> list:
    """Diagrams (ε units) of a thresholded functional graph given in distance units.

    Parameters
    ----------
    graph : scipy.sparse matrix
        Symmetric CSR of distances ``1 − |corr|`` holding (at least) the edges of distance
        ``≤ 2 max_epsilon``, as :func:`topodnn.functional_graph` returns with
        ``threshold=2 * max_epsilon``.
    max_dim, max_epsilon
        Homology H0..H_max_dim up to ε = ``max_epsilon``.
    comm : mpi4py communicator, optional
        Passed to :func:`topodnn.persistence`.
    verbose : bool
        The engine's progress log on rank 0's stderr.
    copy : bool, default True
        False halves the values of a float64 CSR ``graph`` in place (no second copy of a big
        graph); the caller must not use it as distances afterwards.

    Returns
    -------
    list of numpy.ndarray
        One (k, 2) array per dimension 0..max_dim, in ε units.
    """
    import scipy.sparse as sp

    from .engine import persistence

    if not sp.issparse(graph):  # the same on every rank for the same call site
        raise ValueError(
            f"graph must be a scipy.sparse distance matrix (1 - |corr|), got {type(graph).__name__}"
        )
    md, eps = _checked(comm, "graph_topology", max_dim, max_epsilon)
    halved = sp.csr_matrix(graph, dtype=np.float64, copy=copy)
    halved.data *= EPSILON_PER_DISTANCE  # ε = (1 − |corr|) / 2; explicit zeros stay stored
    return persistence(halved, max_dim=md, threshold=eps, comm=comm, verbose=verbose)


def model_topology(
    model: Any,
    inputs: Any,
    *,
    max_dim: int = DEFAULT_MAX_DIM,
    max_epsilon: float = DEFAULT_MAX_EPSILON,
    n_samples: int = 1000,
    layers: Optional[Sequence[str]] = None,
    comm: Any = None,
    progress: bool = True,
    **graph_kw: Any,
) -> ModelTopology:
    """The topology of ``model`` on the first ``n_samples`` of ``inputs``.

    Builds the functional graph cut at distance ``2 max_epsilon``
    (:func:`topodnn.functional_graph`), then its Vietoris–Rips persistence H0..H_max_dim up to
    ε = ``max_epsilon`` (:func:`graph_topology`).

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode without gradients; its mode is restored afterwards.
    inputs : tensor, ndarray, DataLoader or Dataset
        As :func:`topodnn.functional_graph` takes them.
    max_dim : int, default 2
        Highest homology dimension (H0, H1, H2: the original's UPPER_DIM = 3).
    max_epsilon : float in (0, 0.5], default 0.3
        Largest filtration value ε = (1 − |corr|) / 2.
    n_samples : int, default 1000
        Inputs the correlations are computed over (the original: the first 1000 test images).
    layers : list of str, optional
        Recorded modules; default ``model.functional_layers``.
    comm : mpi4py communicator, optional
        Shared graph construction and distributed persistence; every rank gets the result.
        The ranks agree on ``max_dim`` and ``max_epsilon`` first, then on everything
        :func:`topodnn.functional_graph` compares (model and input hashes included): a bad or
        differing argument is the same ValueError on every rank. A rank that never calls
        cannot be detected (the others wait for it).
    progress : bool
        Progress bars of the graph builder.
    **graph_kw
        Passed to :func:`topodnn.functional_graph` (``batch_size``, ``dtype``, ``device``,
        ``block_size``, ``groups``: e.g. ``groups="channel"`` or ``{"nodes": 2000}`` to reach
        H2 on a big network; see :mod:`topodnn.grouping`).

    Returns
    -------
    ModelTopology
    """
    return _model_topology("model_topology", model, inputs, max_dim, max_epsilon, n_samples,
                           layers, comm, progress, graph_kw)


def _model_topology(call: str, model: Any, inputs: Any, max_dim: Any, max_epsilon: Any,
                    n_samples: int, layers: Optional[Sequence[str]], comm: Any, progress: bool,
                    graph_kw: dict) -> ModelTopology:
    from .graph import functional_graph

    md, eps = _checked(comm, call, max_dim, max_epsilon, graph_kw)
    t0 = time.perf_counter()
    graph, info = functional_graph(
        model, inputs, layers=layers, n_samples=n_samples, threshold=distance_of_epsilon(eps),
        comm=comm, progress=progress, return_info=True, **graph_kw,
    )
    t1 = time.perf_counter()
    diagrams = graph_topology(graph, max_dim=md, max_epsilon=eps, comm=comm, copy=False)
    t2 = time.perf_counter()
    return ModelTopology(
        diagrams=diagrams, max_epsilon=eps, max_dim=md, n_nodes=int(info["n_nodes"]),
        n_samples=int(info["n_samples"]), n_edges=int(info["n_edges"]), info=info,
        timings={"graph": t1 - t0, "persistence": t2 - t1},
    )


def topology(
    model: Any,
    data: Any,
    *,
    layers: Optional[Sequence[str]] = None,
    max_dim: int = DEFAULT_MAX_DIM,
    max_epsilon: float = DEFAULT_MAX_EPSILON,
    n_samples: int = 1000,
    comm: Any = None,
    progress: bool = True,
    **kw: Any,
) -> list:
    """Persistence diagrams of the functional graph, in ε units (see :func:`model_topology`).

    Returns
    -------
    list of numpy.ndarray
        One (birth, death) array per dimension 0..max_dim, in ε units; classes alive at
        ``max_epsilon`` have death ``inf``.
    """
    return _model_topology("topology", model, data, max_dim, max_epsilon, n_samples, layers,
                           comm, progress, kw).diagrams
