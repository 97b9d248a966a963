"""Betti curves and scalar summaries of persistence diagrams.

Conventions
-----------
A diagram of one homological dimension is a ``(k, 2)`` float array of ``(birth, death)`` pairs in
filtration units. For functional graphs these are ε units, ε = (1 − |corr|) / 2 ∈ [0, 0.5], the
filtration value DIPHA assigns to a simplex (half its longest edge). Essential classes (classes that
never die) have ``death = inf``.

The Betti curve of dimension q is

    β_q(ε) = #{pairs of dimension q : birth ≤ ε < death},

a right-continuous step function: a class is counted from its birth on and no longer at its death.
It is computed here from *sorted* birth and death lists (two binary searches per grid point); the
original research code built it from unsorted event lists, which gave wrong curves whenever the
diagram was not already ordered by birth and death.

Summaries (``summarise``) follow the paper's definitions:

* life    = mean(death − birth),
* midlife = mean((birth + death) / 2).

The original code computed midlife as ``mean(death) + mean(birth) / 2`` because of an
operator-precedence slip; we use the paper's definition, which differs from the original's numbers
by ``mean(death) / 2`` exactly (see ``tests/test_summaries.py``).

Essential classes and the persistence filter
--------------------------------------------
A class still alive at the end of the filtration (``death = inf``) has persistence
``max_epsilon - birth`` within the computed range: DIPHA's diagram files, which the original
summarised, give it death = the largest filtration value. :func:`filter_pairs` given
``max_epsilon`` drops an essential class born within ``min_persistence`` of ``max_epsilon``, as the
original's filter did; with ``death = inf`` taken literally every essential class would pass.

Counts per node
---------------
Networks of different sizes have functional graphs of different sizes (410 nodes for
LeNet-300-100, 1,820 for LeNet): the number of cavities grows with the number of nodes. Given
``n_nodes=``, :func:`summarise` adds :data:`PER_NODE_KEYS`: each count (``betti_max``,
``n_pairs``, ``n_essential``, ``area``) divided by the number of nodes, under
``"<stat>_per_node"`` (the original plotted cavities per node). Means (life, midlife) and
positions (eps_at_max) do not scale with size and have no per-node version.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "betti_curve",
    "smooth",
    "filter_pairs",
    "summarise",
    "summarise_diagrams",
    "SUMMARY_KEYS",
    "COUNT_KEYS",
    "PER_NODE_KEYS",
]

#: The keys of the dictionaries returned by :func:`summarise`, in table order.
SUMMARY_KEYS = (
    "life",
    "midlife",
    "betti_max",
    "eps_at_max",
    "n_pairs",
    "n_essential",
    "area",
)

#: The summaries that count features (and grow with the size of the graph).
COUNT_KEYS = ("betti_max", "n_pairs", "n_essential", "area")
#: Keys added by :func:`summarise` when ``n_nodes`` is given: the counts divided by the nodes.
PER_NODE_KEYS = tuple(f"{k}_per_node" for k in COUNT_KEYS)

Grid = Union[None, int, ArrayLike]


def _as_pairs(pairs: ArrayLike) -> np.ndarray:
    """Validate ``pairs`` and return them as a ``(k, 2)`` float64 array (a copy)."""
    arr = np.array(pairs, dtype=np.float64, copy=True)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"pairs must be an array of shape (k, 2) holding (birth, death); got shape {arr.shape}"
        )
    if np.isnan(arr).any():
        raise ValueError("pairs contain NaN; births and deaths must be numbers (death may be inf)")
    if np.isinf(arr[:, 0]).any():
        raise ValueError("pairs contain an infinite birth; only deaths may be inf (essential classes)")
    bad = arr[:, 1] < arr[:, 0]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"pair {i} dies before it is born (birth={arr[i, 0]!r}, death={arr[i, 1]!r}); "
            "expected death >= birth"
        )
    return arr


def betti_curve(
    pairs: ArrayLike, grid: Grid = None, *, max_epsilon: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Betti curve β(ε) = number of pairs with ``birth <= ε < death``.

    Parameters
    ----------
    pairs : array_like, shape (k, 2)
        (birth, death) pairs of one homological dimension, in filtration units, in any order.
        ``death = inf`` marks an essential class: it stays alive to the end of any grid.
    grid : None, int or array_like, optional
        Where to evaluate the curve.

        * ``None`` (default): on the diagram's own event points. The result is the exact step
          function: ``eps`` holds the sorted unique births and finite deaths, and ``beta[i]`` is
          the value of β on ``[eps[i], eps[i+1])`` (and on ``[eps[-1], ∞)`` for the last one).
          β is 0 before ``eps[0]``.
        * ``int n``: ``np.linspace(0, max_epsilon, n)``.
        * array: these ε values (any order; returned as given).
    max_epsilon : float, default 0.3
        Upper end of the grid when ``grid`` is an int, in filtration units.

    Returns
    -------
    eps : ndarray of float64
        The evaluation points.
    beta : ndarray of int64
        β at each point.

    Notes
    -----
    Computed from the sorted births and deaths: β(ε) = #{birth ≤ ε} − #{death ≤ ε}, which is exact
    because every pair with death ≤ ε also has birth ≤ ε. A pair with ``birth == death`` is never
    counted.
    """
    arr = _as_pairs(pairs)
    births = np.sort(arr[:, 0])
    deaths = np.sort(arr[:, 1])
    if grid is None:
        finite_deaths = deaths[np.isfinite(deaths)]
        eps = np.unique(np.concatenate([births, finite_deaths]))
    elif isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        n = int(grid)
        if n < 1:
            raise ValueError(f"grid size must be a positive integer; got {n}")
        if not np.isfinite(max_epsilon) or max_epsilon < 0:
            raise ValueError(f"max_epsilon must be finite and >= 0; got {max_epsilon!r}")
        eps = np.linspace(0.0, float(max_epsilon), n)
    else:
        eps = np.asarray(grid, dtype=np.float64)
        if eps.ndim != 1:
            raise ValueError(f"grid must be one-dimensional; got shape {eps.shape}")
        if np.isnan(eps).any():
            raise ValueError("grid contains NaN")
        eps = eps.copy()
    born = np.searchsorted(births, eps, side="right")
    dead = np.searchsorted(deaths, eps, side="right")
    beta = (born - dead).astype(np.int64)
    return eps, beta


def smooth(beta: ArrayLike, fraction: float = 0.1) -> np.ndarray:
    """Centred moving average over ``fraction`` of the curve's length.

    The original pipeline smoothed every Betti curve with a moving average whose window was a
    tenth of the curve's length before plotting; this reproduces it as an option. The window is
    ``max(1, round(fraction * len(beta)))`` samples; near the ends the average is taken over the
    samples that exist (no zero padding, so the ends are not pulled toward 0).

    Parameters
    ----------
    beta : array_like, shape (m,)
        Curve values (usually on a uniform grid: smoothing an event-point curve mixes unequal
        ε steps).
    fraction : float, default 0.1
        Window length as a fraction of ``len(beta)``, in (0, 1].

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    y = np.asarray(beta, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"beta must be one-dimensional; got shape {y.shape}")
    if not (0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    m = y.size
    if m == 0:
        return y.copy()
    window = max(1, int(round(fraction * m)))
    if window == 1:
        return y.copy()
    kernel = np.ones(window)
    total = np.convolve(y, kernel, mode="same")
    count = np.convolve(np.ones(m), kernel, mode="same")
    return total / count


def filter_pairs(
    pairs: ArrayLike,
    min_persistence: float = 0.02,
    *,
    strict: bool = True,
    max_epsilon: Optional[float] = None,
) -> np.ndarray:
    """Drop short-lived pairs.

    Parameters
    ----------
    pairs : array_like, shape (k, 2)
        (birth, death) pairs, filtration units.
    min_persistence : float, default 0.02
        Persistence threshold, filtration units (ε). The original pipeline used 0.02.
    strict : bool, default True
        ``True`` keeps pairs with ``death - birth > min_persistence`` (the original's rule: a pair
        of persistence exactly 0.02 is dropped). ``False`` keeps ``>=``.
    max_epsilon : float, optional
        The end of the filtration. Given, an essential class (``death = inf``) has persistence
        ``max_epsilon - birth`` and is filtered like any pair (the original's diagram files gave
        it death = the largest filtration value); not given, essential classes are always kept.

    Returns
    -------
    ndarray, shape (k', 2)
        The kept pairs, in their input order (essential deaths stay ``inf``).
    """
    arr = _as_pairs(pairs)
    if not np.isfinite(min_persistence) or min_persistence < 0:
        raise ValueError(f"min_persistence must be finite and >= 0; got {min_persistence!r}")
    deaths = arr[:, 1]
    if max_epsilon is not None:
        eps = _check_end(max_epsilon)
        deaths = np.where(np.isfinite(deaths), deaths, np.maximum(eps, arr[:, 0]))
    life = deaths - arr[:, 0]
    keep = life > min_persistence if strict else life >= min_persistence
    return arr[keep]


def _check_end(max_epsilon: Any) -> float:
    try:
        eps = float(max_epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"max_epsilon must be a finite number >= 0; got {max_epsilon!r}") from None
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"max_epsilon must be finite and >= 0; got {max_epsilon!r}")
    return eps


def _check_n_nodes(n_nodes: Any) -> Optional[int]:
    if n_nodes is None:
        return None
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 1:
        raise ValueError(f"n_nodes must be a positive integer (nodes of the graph); got {n_nodes!r}")
    return int(n_nodes)


def summarise(
    pairs: ArrayLike,
    *,
    min_persistence: float = 0.02,
    max_epsilon: float = 0.3,
    grid: Grid = None,
    n_nodes: Optional[int] = None,
) -> dict[str, Any]:
    """Scalar summaries of one dimension's diagram.

    Parameters
    ----------
    pairs : array_like, shape (k, 2)
        (birth, death) pairs in ε units; ``inf`` deaths are essential classes.
    min_persistence : float, default 0.02
        Pairs with ``death - birth <= min_persistence`` are dropped first (the original's
        filter; 0 keeps every pair of positive persistence, see :func:`filter_pairs`); an
        essential class counts with persistence ``max_epsilon - birth``.
    max_epsilon : float, default 0.3
        The end of the filtration (ε ≤ max_epsilon was computed). Essential classes are treated
        as dying at ``max_epsilon`` for the filter, ``life``, ``midlife`` and ``area``: this is
        what the original's diagram files said (DIPHA writes the largest filtration value of the
        complex, ≤ max_epsilon, as their death).
    grid : None, int or array_like, optional
        Where β is evaluated for ``betti_max`` and ``eps_at_max``: ``None`` uses the exact event
        points (see :func:`betti_curve`); an int or array uses that grid.

    Returns
    -------
    dict
        ``life``: mean(death − birth); ``midlife``: mean((birth + death) / 2) (NaN for both when
        no pair is left); ``betti_max``: max of β; ``eps_at_max``: the smallest ε where β reaches it
        (NaN when there is no pair); ``n_pairs``: pairs kept, essential ones included;
        ``n_essential``: essential pairs kept; ``area``: ∫ β(ε) dε over [0, max_epsilon]
        (exact, ε units); with ``n_nodes``, also ``betti_max_per_node``, ``n_pairs_per_node``,
        ``n_essential_per_node``, ``area_per_node`` (each count / ``n_nodes``).
    """
    max_epsilon = _check_end(max_epsilon)
    nodes = _check_n_nodes(n_nodes)
    kept = filter_pairs(pairs, min_persistence, max_epsilon=max_epsilon)
    births = kept[:, 0]
    essential = ~np.isfinite(kept[:, 1])
    deaths = np.where(essential, np.maximum(float(max_epsilon), births), kept[:, 1])
    n = kept.shape[0]
    if n:
        life = float(np.mean(deaths - births))
        midlife = float(np.mean((births + deaths) / 2.0))
        eps, beta = betti_curve(kept, grid, max_epsilon=max_epsilon)
        i = int(np.argmax(beta))
        betti_max = int(beta[i])
        eps_at_max = float(eps[i]) if betti_max > 0 else float("nan")
    else:
        life = midlife = eps_at_max = float("nan")
        betti_max = 0
    lo = np.clip(births, 0.0, max_epsilon)
    hi = np.clip(deaths, 0.0, max_epsilon)
    area = float(np.sum(np.maximum(hi - lo, 0.0)))
    out: dict[str, Any] = {
        "life": life,
        "midlife": midlife,
        "betti_max": betti_max,
        "eps_at_max": eps_at_max,
        "n_pairs": int(n),
        "n_essential": int(np.count_nonzero(essential)),
        "area": area,
    }
    if nodes is not None:
        for key in COUNT_KEYS:
            out[f"{key}_per_node"] = float(out[key]) / nodes
    return out


def summarise_diagrams(
    diagrams: Union[Sequence[ArrayLike], Mapping[int, ArrayLike]],
    *,
    min_persistence: float = 0.02,
    max_epsilon: float = 0.3,
    grid: Grid = None,
    n_nodes: Optional[int] = None,
) -> dict[int, dict[str, Any]]:
    """:func:`summarise` every dimension of a diagram.

    Parameters
    ----------
    diagrams : list of array_like or dict
        ``diagrams[q]`` = the (k, 2) pairs of H_q (the shape ``topodnn.topology`` and
        ripser return), or a mapping ``{q: pairs}``.
    min_persistence, max_epsilon, grid, n_nodes
        As in :func:`summarise` (``n_nodes``: the graph's nodes, the same for every dimension).

    Returns
    -------
    dict
        ``{q: summary dict}``.
    """
    items = diagrams.items() if isinstance(diagrams, Mapping) else enumerate(diagrams)
    return {
        int(q): summarise(
            pairs, min_persistence=min_persistence, max_epsilon=max_epsilon, grid=grid,
            n_nodes=n_nodes,
        )
        for q, pairs in items
    }
