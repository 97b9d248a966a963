"""Plots of Betti curves, summaries, persistence diagrams and training curves.

Every ``plot_*`` function draws on ``ax`` when given and returns it; with ``ax=None`` it draws on a
new figure from ``matplotlib.pyplot.subplots()``. Matplotlib is imported inside the functions (the
package does not need it to compute anything) and no global style (rcParams, style sheets) is
changed. For files without any display, pass the axes of a ``matplotlib.figure.Figure`` (what the
command line does) or select the Agg backend first.

Units: ε is the filtration value, (1 − |corr|) / 2 for functional graphs (see
:mod:`topodnn.summaries`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from .summaries import betti_curve, filter_pairs, smooth as smooth_curve

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_betti_curves", "plot_life_midlife", "plot_diagram", "plot_training"]


def _new_axes() -> "Axes":
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


def _epoch_colours(epochs: Sequence[Any], cmap: str) -> list:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    n = len(epochs)
    return [cm(i / max(n - 1, 1)) for i in range(n)]


def _is_curve(value: Any) -> bool:
    """True for an ``(eps, beta)`` tuple of two 1-D arrays of equal length."""
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    a, b = (np.asarray(v) for v in value)
    return a.ndim == 1 and b.ndim == 1 and a.shape == b.shape


def _pairs_of_dim(value: Any, dim: int) -> np.ndarray:
    """Pairs of dimension ``dim`` from a per-dim list/dict, or ``value`` itself if it is (k, 2)."""
    if isinstance(value, Mapping):
        if dim not in value:
            raise ValueError(f"diagram has no dimension {dim}; it has {sorted(value)}")
        return np.asarray(value[dim], dtype=np.float64)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except ValueError:  # ragged: a list of per-dimension arrays of different lengths
        arr = None
    if arr is not None and arr.ndim == 2 and arr.shape[1] == 2:
        return arr
    seq = list(value)
    if dim >= len(seq):
        raise ValueError(f"diagram has no dimension {dim}; it has dimensions 0..{len(seq) - 1}")
    return np.asarray(seq[dim], dtype=np.float64)


def plot_betti_curves(
    curves: Mapping[Any, Any],
    dim: int,
    ax: Optional["Axes"] = None,
    smooth: Union[bool, float] = False,
    *,
    max_epsilon: float = 0.3,
    n_grid: int = 301,
    min_persistence: float = 0.0,
    cmap: str = "viridis",
) -> "Axes":
    """Betti curves of one dimension across epochs, one line per epoch.

    Parameters
    ----------
    curves : mapping epoch -> curve or diagram
        Either ``(eps, beta)`` tuples (as :func:`topodnn.summaries.betti_curve` returns; drawn as
        right-continuous steps), or diagrams: a list / dict of per-dimension ``(k, 2)`` arrays, or
        the ``(k, 2)`` array of dimension ``dim`` itself. Diagrams are evaluated on
        ``np.linspace(0, max_epsilon, n_grid)``.
    dim : int
        Homological dimension (used to pick the diagram and for the title ``betti_<dim>``).
    ax : matplotlib Axes, optional
    smooth : bool or float, default False
        Smooth each curve with :func:`topodnn.summaries.smooth` (window = a tenth of the curve, as
        the original did; a float gives another fraction).
    max_epsilon : float, default 0.3
        Grid end, ε units.
    n_grid : int, default 301
        Grid size for curves computed from diagrams.
    min_persistence : float, default 0.0
        Drop pairs with death − birth ≤ this before computing curves from diagrams (the original
        summarised with 0.02).
    cmap : str, default "viridis"
        Colour map over epochs (earliest = first colour).

    Returns
    -------
    Axes
    """
    if ax is None:
        ax = _new_axes()
    epochs = sorted(curves)
    colours = _epoch_colours(epochs, cmap)
    for epoch, colour in zip(epochs, colours):
        value = curves[epoch]
        if _is_curve(value):
            eps, beta = (np.asarray(v, dtype=np.float64) for v in value)
            step = True
        else:
            pairs = _pairs_of_dim(value, dim)
            if min_persistence > 0:
                pairs = filter_pairs(pairs, min_persistence, max_epsilon=max_epsilon)
            eps, beta = betti_curve(pairs, n_grid, max_epsilon=max_epsilon)
            beta = beta.astype(np.float64)
            step = False
        if smooth is not False and smooth is not None:
            fraction = 0.1 if smooth is True else float(smooth)
            beta = smooth_curve(beta, fraction)
            step = False
        ax.plot(
            eps,
            beta,
            color=colour,
            label=f"epoch {epoch}",
            drawstyle="steps-post" if step else "default",
        )
    ax.set_xlabel("ε")
    ax.set_ylabel("number of cavities")
    ax.set_title(f"betti_{dim}")
    if epochs:
        ax.legend()
    return ax


def plot_life_midlife(
    summaries: Mapping[Any, Mapping[Any, Any]], dim: int, ax: Optional["Axes"] = None
) -> "Axes":
    """Life and midlife of one dimension against the epoch.

    Parameters
    ----------
    summaries : mapping epoch -> summary
        Each value is either ``{dim: summary dict}`` (as
        :func:`topodnn.summaries.summarise_diagrams` returns) or a summary dict itself (with keys
        ``life`` and ``midlife``, ε units).
    dim : int
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Two lines: ``life`` and ``midlife``.
    """
    if ax is None:
        ax = _new_axes()
    epochs = sorted(summaries)
    life, midlife = [], []
    for e in epochs:
        s = summaries[e]
        if "life" not in s:
            if dim not in s:
                raise ValueError(f"summary of epoch {e} has no dimension {dim}")
            s = s[dim]
        life.append(float(s["life"]))
        midlife.append(float(s["midlife"]))
    ax.plot(epochs, life, marker="o", label="life")
    ax.plot(epochs, midlife, marker="s", label="midlife")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ε")
    ax.set_title(f"life / midlife, dim {dim}")
    ax.legend()
    return ax


def plot_diagram(
    pairs_per_dim: Union[Sequence[Any], Mapping[int, Any]],
    ax: Optional["Axes"] = None,
    *,
    max_epsilon: Optional[float] = None,
) -> "Axes":
    """Persistence diagram: one point per (birth, death) pair, one colour per dimension.

    Essential classes (death = inf) are drawn on a dashed line labelled ∞ above every finite
    point.

    Parameters
    ----------
    pairs_per_dim : list or dict of (k, 2) arrays
        ``pairs_per_dim[q]`` = the pairs of H_q, ε units.
    ax : matplotlib Axes, optional
    max_epsilon : float, optional
        Axis extent; default: the largest finite value.

    Returns
    -------
    Axes
        Lines: the diagonal and, when there are essential classes, the ∞ line; one scatter
        collection per non-empty dimension.
    """
    if ax is None:
        ax = _new_axes()
    items = (
        sorted(pairs_per_dim.items())
        if isinstance(pairs_per_dim, Mapping)
        else list(enumerate(pairs_per_dim))
    )
    dgms = [(int(q), np.asarray(p, dtype=np.float64).reshape(-1, 2)) for q, p in items]
    finite = [p[np.isfinite(p)] for _, p in dgms]
    finite_vals = np.concatenate(finite) if finite else np.zeros(0)
    top = float(max_epsilon) if max_epsilon is not None else (
        float(finite_vals.max()) if finite_vals.size else 1.0
    )
    if top <= 0:
        top = 1.0
    inf_y = top * 1.1
    has_inf = any((~np.isfinite(p[:, 1])).any() for _, p in dgms)
    ax.plot([0, inf_y], [0, inf_y], color="grey", linewidth=0.8)
    if has_inf:
        ax.plot([0, inf_y], [inf_y, inf_y], color="grey", linestyle="--", linewidth=0.8)
    for q, p in dgms:
        if p.size == 0:
            continue
        y = np.where(np.isfinite(p[:, 1]), p[:, 1], inf_y)
        ax.scatter(p[:, 0], y, s=8, label=f"H{q}")
    if has_inf:
        ticks = [t for t in ax.get_yticks() if 0 <= t < top * 1.05]
        ax.set_yticks(ticks + [inf_y])
        ax.set_yticklabels([f"{t:g}" for t in ticks] + ["∞"])
    ax.set_xlim(-0.02 * inf_y, inf_y * 1.02)
    ax.set_ylim(-0.02 * inf_y, inf_y * 1.05)
    ax.set_xlabel("birth (ε)")
    ax.set_ylabel("death (ε)")
    ax.set_title("persistence diagram")
    if any(p.size for _, p in dgms):
        ax.legend(loc="lower right")
    return ax


def plot_training(history: Any, ax: Optional["Axes"] = None) -> "Axes":
    """Train and test accuracy against the epoch.

    Parameters
    ----------
    history : History, dict or list of dicts
        A :class:`topodnn.results.History` (as :func:`topodnn.results.read_history` returns), or
        what :func:`topodnn.training.train` returns: a dict of per-epoch lists (keys ``epoch``,
        ``train_acc``, ``test_acc``), or the same as a list of per-epoch records. Read with
        :func:`topodnn.results.history_from_mapping`: accuracies are fractions in [0, 1].
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Two lines: ``train`` and ``test``.

    Raises
    ------
    ValueError
        ``history`` is not a training history (a missing series, accuracies outside [0, 1]).
    """
    from .results import history_from_mapping

    hist = history_from_mapping(history)
    if ax is None:
        ax = _new_axes()
    ax.plot(hist.epochs, hist.train_acc, marker=".", label="train")
    ax.plot(hist.epochs, hist.test_acc, marker=".", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("training")
    ax.legend()
    return ax
