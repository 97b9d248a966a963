"""Topological early stopping: decide when to stop training from the Betti curves alone.

The functional graph of a network (nodes = units, distance = 1 - |Pearson corr| of their
activations) changes shape as the network learns. Learning to generalise forms 2-D and 3-D
cavities (beta_2 and beta_3 grow, the maxima of their curves grow) and moves 1-D cavities from
higher to lower density; memorising makes the cavities regress toward higher density. Density here
is that of the graph thresholded at a filtration value: in the units used throughout topodnn,
eps = (1 - |corr|) / 2 in [0, 0.5], and the graph at eps joins every pair with |corr| >= 1 - 2 eps,
so *higher density means larger eps* (more edges). Read literally, while the network learns the eps
at which beta_1 peaks should move to smaller values, and back to larger ones once it memorises.

The rule
--------
Every ``every`` epochs the functional graph of the first ``n_samples`` *training* inputs (never the
test set: the whole point is to decide without one) is computed, its persistence diagrams are
summarised (:func:`topodnn.summaries.summarise_diagrams`), and one scalar signal s(e) is read from
the summary, e.g. ``"area_2"`` (area under beta_2), ``"betti_max_2"`` or ``"eps_at_max_1"`` (eps at
the maximum of beta_1). The
signal is optionally smoothed with a trailing moving average of ``smooth`` evaluations. With
``mode="max"`` an evaluation *improves* when s > best + min_delta (``mode="min"``: s < best -
min_delta). Training stops at the evaluation where ``patience`` consecutive evaluations have not
improved; the chosen epoch (``best_epoch``) is the last one that improved, the checkpoint to keep.
Evaluations before ``start_epoch`` are recorded but neither set the best value nor count against
patience (the first epochs of training reorganise the graph wholesale). A signal that is not finite
(e.g. no H2 pair at all) never improves.

This is the rule of patience-based early stopping on a validation metric, with the validation
metric replaced by a topological signal of the training data: no labels of unseen data are used.

Defaults
--------
``signal="betti_max_2"`` (the maximum of the beta_2 curve), ``mode="max"``, ``patience=5``,
``min_delta=0.0``, ``smooth=1``; the callback computes H0..H2 (``max_dim=2``) and ignores the
untrained network (``start_epoch=1``). This is the rule the study of README.md ("Results: early
stopping and the generalisation gap", ``experiments/study.py``) chose on its tuning runs and froze
(``benchmarks/results/study_es_rule.json``; ``area_2`` with ``smooth=3`` came next). On its fresh
runs that rule helped where networks memorised (4.1 points of test accuracy lost against 11.2 for
training to the end) but lost 6.6 points on average against 1.9 for ordinary early stopping on a
10 % validation split: the verdict is inconclusive, and a validation split is the better tool
where one can be spared. The move the method names is there: once a network memorises, the eps of
the beta_1 maximum grows (0.04 after the test-accuracy peak, against 0.001 in clean runs), so
``"eps_at_max_1"`` with ``mode="min"`` follows it, but it moves later than the beta_2 maximum
falls. The beta_2 signals need the 2-skeleton, the
dominant cost of the topology.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = [
    "DEFAULT_SIGNAL",
    "DEFAULT_PATIENCE",
    "SIGNALS",
    "signal_value",
    "choose_stop",
    "TopologicalEarlyStopping",
    "read_records",
]

#: Statistics of one homology dimension that a signal may name, as ``"<stat>_<dim>"``.
SIGNAL_STATS = ("life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area")

#: Named signals with a documented meaning (any ``"<stat>_<dim>"`` is accepted as well).
SIGNALS = {
    "eps_at_max_1": "eps (=(1-|corr|)/2) at the maximum of the beta_1 curve; falls while 1-D "
    "cavities move to lower density (learning), grows when they regress toward higher density "
    "(memorising; follow it with mode='min')",
    "midlife_1": "mean (birth+death)/2 of H1 pairs; moves with eps_at_max_1",
    "betti_max_2": "maximum of the beta_2 curve; grows as 2-D cavities form",
    "area_2": "area under the beta_2 curve; grows as 2-D cavities form",
    "betti_max_sum": "sum over dimensions >= 1 of the Betti-curve maxima",
    "area_sum": "sum over dimensions >= 1 of the areas under the Betti curves",
}

SignalSpec = Union[str, Callable[[Mapping[int, Mapping[str, float]]], float]]

#: The rule chosen on the study's tuning runs (benchmarks/results/study_es_rule.json).
DEFAULT_SIGNAL = "betti_max_2"
DEFAULT_PATIENCE = 5


def _get_dim(summary: Mapping[Any, Mapping[str, float]], dim: int) -> Optional[Mapping[str, float]]:
    """Entry of one dimension in a summary whose keys may be ints or strings (JSON)."""
    if dim in summary:
        return summary[dim]
    if str(dim) in summary:
        return summary[str(dim)]
    return None


def _parse_signal(signal: str) -> tuple[str, Optional[int]]:
    """Split ``"<stat>_<dim>"`` / ``"<stat>_sum"``; raise ValueError for anything else."""
    stat, sep, tail = signal.rpartition("_")
    if not sep or stat not in SIGNAL_STATS:
        raise ValueError(
            f"unknown signal {signal!r}: use '<stat>_<dim>' or '<stat>_sum' with stat in "
            f"{SIGNAL_STATS} (e.g. 'eps_at_max_1', 'betti_max_2'), or a callable"
        )
    if tail == "sum":
        return stat, None
    if not tail.isdigit():
        raise ValueError(f"signal {signal!r}: the part after the last '_' must be a dimension or 'sum'")
    return stat, int(tail)


def signal_value(summary: Mapping[Any, Mapping[str, float]], signal: SignalSpec) -> float:
    """Read one scalar signal from a topological summary.

    Parameters
    ----------
    summary
        ``{dim: {life, midlife, betti_max, eps_at_max, n_pairs, area}}`` as returned by
        :func:`topodnn.summaries.summarise_diagrams` (keys may also be strings, as after JSON).
    signal
        ``"<stat>_<dim>"`` (e.g. ``"eps_at_max_1"``), ``"<stat>_sum"`` (sum over dimensions >= 1),
        or a callable ``summary -> float``.

    Returns
    -------
    float
        The value; ``nan`` when the dimension is absent from the summary.
    """
    if callable(signal):
        return float(signal(summary))
    stat, dim = _parse_signal(signal)
    if dim is not None:
        entry = _get_dim(summary, dim)
        if entry is None or stat not in entry:
            return math.nan
        return float(entry[stat])
    total, seen = 0.0, False
    for key, entry in summary.items():
        if int(key) >= 1 and stat in entry:
            value = float(entry[stat])
            if math.isfinite(value):
                total += value
                seen = True
    return total if seen else math.nan


def _smoothed(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over the last ``window`` finite values (nan where none)."""
    arr = np.asarray(values, dtype=float)
    out = np.full(arr.shape, np.nan)
    for i in range(arr.size):
        chunk = arr[max(0, i - window + 1) : i + 1]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            out[i] = chunk.mean()
    return out


def _check_rule(mode: str, patience: int, min_delta: float, smooth: int) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' (signal grows while learning) or 'min', got {mode!r}")
    if int(patience) != patience or patience < 1:
        raise ValueError(f"patience must be a positive integer (topology evaluations), got {patience!r}")
    if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
    if int(smooth) != smooth or smooth < 1:
        raise ValueError(f"smooth must be a positive integer (evaluations averaged), got {smooth!r}")


@dataclass
class _RuleState:
    """Online state of the patience rule (shared by choose_stop and the callback)."""

    mode: str
    patience: int
    min_delta: float
    start_epoch: int
    best_value: float = math.nan
    best_epoch: Optional[int] = None
    stop_epoch: Optional[int] = None
    waited: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Feed one (smoothed) signal value; return True when the rule fires at this epoch."""
        if self.stop_epoch is not None:
            return True
        if epoch < self.start_epoch:
            return False
        if math.isfinite(value):
            if self.best_epoch is None or not math.isfinite(self.best_value):
                improved = True
            elif self.mode == "max":
                improved = value > self.best_value + self.min_delta
            else:
                improved = value < self.best_value - self.min_delta
        else:
            improved = False
        if improved:
            self.best_value, self.best_epoch, self.waited = value, epoch, 0
            return False
        if self.best_epoch is None:
            # Nothing finite seen yet: there is no best to be patient about.
            return False
        self.waited += 1
        if self.waited >= self.patience:
            self.stop_epoch = epoch
            return True
        return False


def choose_stop(
    summary_sequence: Sequence[Mapping[Any, Mapping[str, float]]],
    *,
    epochs: Optional[Sequence[int]] = None,
    signal: SignalSpec = DEFAULT_SIGNAL,
    mode: str = "max",
    patience: int = DEFAULT_PATIENCE,
    min_delta: float = 0.0,
    smooth: int = 1,
    start_epoch: int = 0,
) -> tuple[Optional[int], Optional[int]]:
    """Apply the topological stopping rule to a finished sequence of summaries.

    Parameters
    ----------
    summary_sequence
        One summary per topology evaluation, in training order (see :func:`signal_value`).
    epochs
        The epoch of each summary; default ``0, 1, 2, ...``.
    signal
        Which scalar to follow (see :data:`SIGNALS`), or a callable ``summary -> float``.
    mode
        ``"max"``: the signal grows while the network learns (true of every named signal);
        ``"min"``: it shrinks.
    patience
        Number of consecutive evaluations without improvement after which training stops.
    min_delta
        An evaluation improves only if it beats the best value by more than this (signal units;
        eps for ``eps_at_max_*`` and ``midlife_*``, a count for ``betti_max_*``).
    smooth
        Trailing moving-average window over evaluations (1 = no smoothing).
    start_epoch
        Evaluations at earlier epochs are ignored by the rule.

    Returns
    -------
    (stop_epoch, best_epoch)
        ``stop_epoch`` is the epoch at which the rule fires, ``None`` if it never does (train to
        the end); ``best_epoch`` is the epoch of the best signal value (the checkpoint to keep),
        ``None`` if no evaluation had a finite signal at or after ``start_epoch``.
    """
    _check_rule(mode, patience, min_delta, smooth)
    n = len(summary_sequence)
    if epochs is None:
        epochs = list(range(n))
    epochs = [int(e) for e in epochs]
    if len(epochs) != n:
        raise ValueError(f"epochs has {len(epochs)} entries but there are {n} summaries")
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError("epochs must be strictly increasing")
    raw = [signal_value(s, signal) for s in summary_sequence]
    values = _smoothed(raw, int(smooth))
    state = _RuleState(mode, int(patience), float(min_delta), int(start_epoch))
    for epoch, value in zip(epochs, values):
        if state.update(epoch, float(value)):
            break
    return state.stop_epoch, state.best_epoch


def _training_inputs(data: Any, n_samples: int) -> Any:
    """First ``n_samples`` inputs of a tensor or of a (Tensor)Dataset, in order."""
    import torch

    if isinstance(data, torch.Tensor):
        x = data
    elif isinstance(data, np.ndarray):
        x = torch.as_tensor(data, dtype=torch.float32)
    elif hasattr(data, "tensors"):
        x = data.tensors[0]
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        n = min(len(data), n_samples)
        items = [data[i] for i in range(n)]
        x = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    else:
        raise ValueError(
            "data must be the training inputs: a tensor, an array or a dataset of (input, label)"
        )
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 training inputs for correlations, got {x.shape[0]}")
    return x[:n_samples]


class TopologicalEarlyStopping:
    """Callback for :func:`topodnn.training.train` that stops training from topology alone.

    Every ``every`` epochs it builds the functional graph of the first ``n_samples`` *training*
    inputs, computes persistence up to ``max_dim``, records the summaries and applies the rule of
    :func:`choose_stop` online. It returns True (stop) when the rule fires.

    Parameters
    ----------
    data
        Training inputs: a tensor ``(N, C, H, W)``, or the training dataset (its inputs are used,
        labels ignored). Only the first ``n_samples`` are used, in order.
    every
        Compute topology at epochs that are multiples of ``every`` (epoch 0 included if the
        training loop calls back for it).
    n_samples, max_dim, max_epsilon, layers, comm
        Passed to :func:`topodnn.pipeline.model_topology` (eps units: (1 - |corr|)/2); the
        summaries are its ``summaries()`` (pairs of persistence <= 0.02 dropped, counts also
        per node).
    signal, mode, patience, min_delta, smooth, start_epoch
        The rule; see :func:`choose_stop`. ``patience`` counts topology evaluations, not epochs.
        ``start_epoch`` defaults to 1 here: the graph of the untrained network (epoch 0) says
        nothing about learning, and on some data its beta_2 area exceeds that of the first
        trained epochs, which would make epoch 0 the "best".
    keep_diagrams
        Also keep each evaluation's diagrams in :attr:`history` (for plotting Betti curves).
    progress
        Print one line per evaluation.
    groups
        Node grouping of the functional graph (``groups=`` of :func:`topodnn.functional_graph`,
        e.g. ``"channel"`` for a big network); ``None``: every unit its own node. The rule was
        chosen on full-resolution graphs of small networks (README, "Results").

    Attributes
    ----------
    history : list of dict
        One entry per evaluation: ``epoch``, ``summary``, ``signal`` (raw), ``smoothed``,
        ``seconds``, and ``diagrams`` if kept.
    stop_epoch : int or None
        Epoch at which the rule fired.
    best_epoch : int or None
        Epoch with the best signal so far (the checkpoint to keep).
    """

    def __init__(
        self,
        data: Any,
        *,
        every: int = 1,
        n_samples: int = 1000,
        max_dim: int = 2,
        max_epsilon: float = 0.3,
        layers: Optional[Sequence[Any]] = None,
        signal: SignalSpec = DEFAULT_SIGNAL,
        mode: str = "max",
        patience: int = DEFAULT_PATIENCE,
        min_delta: float = 0.0,
        smooth: int = 1,
        start_epoch: int = 1,
        keep_diagrams: bool = True,
        comm: Any = None,
        progress: bool = False,
        groups: Any = None,
    ) -> None:
        _check_rule(mode, patience, min_delta, smooth)
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer (epochs), got {every!r}")
        if int(n_samples) != n_samples or n_samples < 2:
            raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
        if not callable(signal):
            _, dim = _parse_signal(signal)
            if dim is not None and dim > max_dim:
                raise ValueError(
                    f"signal {signal!r} needs homology dimension {dim} but max_dim={max_dim}; "
                    f"raise max_dim to {dim} or follow a lower dimension"
                )
        self.inputs = _training_inputs(data, int(n_samples))
        self.every = int(every)
        self.n_samples = int(n_samples)
        self.max_dim = int(max_dim)
        self.max_epsilon = float(max_epsilon)
        self.layers = layers
        from .grouping import parse_groups

        # a bad spec fails here, not at the first evaluation
        self._groups_text = "units" if groups is None else parse_groups(groups).text()
        self.groups = groups
        self.signal = signal
        self.smooth = int(smooth)
        self.keep_diagrams = keep_diagrams
        self.comm = comm
        self.progress = progress
        self._state = _RuleState(mode, int(patience), float(min_delta), int(start_epoch))
        self.history: list[dict[str, Any]] = []

    @property
    def stop_epoch(self) -> Optional[int]:
        return self._state.stop_epoch

    @property
    def best_epoch(self) -> Optional[int]:
        return self._state.best_epoch

    @property
    def params(self) -> dict[str, Any]:
        """The rule and topology parameters, for reports."""
        return {
            "every": self.every,
            "n_samples": self.n_samples,
            "max_dim": self.max_dim,
            "max_epsilon": self.max_epsilon,
            "signal": self.signal if isinstance(self.signal, str) else repr(self.signal),
            "mode": self._state.mode,
            "patience": self._state.patience,
            "min_delta": self._state.min_delta,
            "smooth": self.smooth,
            "start_epoch": self._state.start_epoch,
            "data": "training inputs",
            "groups": self._groups_text,
        }

    def evaluate(self, epoch: int, model: Any) -> dict[str, Any]:
        """Compute and record the topology of ``model`` on the training inputs at ``epoch``."""
        import time

        from topodnn import pipeline

        t0 = time.perf_counter()
        # model_topology runs the model in eval mode and restores its mode
        topo = pipeline.model_topology(
            model,
            self.inputs,
            layers=self.layers,
            max_dim=self.max_dim,
            max_epsilon=self.max_epsilon,
            n_samples=self.n_samples,
            comm=self.comm,
            progress=False,
            groups=self.groups,
        )
        diagrams = topo.diagrams
        summary = topo.summaries()
        raw = signal_value(summary, self.signal)
        values = [h["signal"] for h in self.history] + [raw]
        smoothed = float(_smoothed(values, self.smooth)[-1])
        entry: dict[str, Any] = {
            "epoch": int(epoch),
            "summary": summary,
            "signal": raw,
            "smoothed": smoothed,
            "seconds": time.perf_counter() - t0,
        }
        if self.keep_diagrams:
            entry["diagrams"] = [np.asarray(d) for d in diagrams]
        self.history.append(entry)
        return entry

    def __call__(self, epoch: int, model: Any, history: Any = None) -> bool:
        """Training-loop hook: evaluate on schedule; True means stop now."""
        if self._state.stop_epoch is not None:
            return True
        if epoch % self.every != 0:
            return False
        entry = self.evaluate(epoch, model)
        fired = self._state.update(int(epoch), entry["smoothed"])
        if self.progress:
            print(
                f"[topo-es] epoch {epoch}: {self.signal if isinstance(self.signal, str) else 'signal'}"
                f"={entry['signal']:.5g} best_epoch={self.best_epoch} waited={self._state.waited}"
                + (" -> stop" if fired else ""),
                flush=True,
            )
        return fired

    def summaries(self) -> list[dict[str, Any]]:
        """Recorded summaries in order, as ``choose_stop`` takes them."""
        return [h["summary"] for h in self.history]

    def epochs(self) -> list[int]:
        """Epochs of the recorded evaluations."""
        return [h["epoch"] for h in self.history]


def read_records(path: Any) -> tuple[list[Mapping[Any, Mapping[str, float]]], list[int]]:
    """Summaries and epochs from a JSON file of ``{"epoch": e, "summary": {dim: {...}}}`` records.

    Accepts a list of records, or an object whose ``"history"`` is one (as ``topodnn run
    --early-stop topology`` writes ``early_stop_trl<T>.json``).

    Returns
    -------
    (summaries, epochs)
        In the file's order, ready for :func:`choose_stop`.

    Raises
    ------
    ValueError
        The file is missing, not JSON, or not a list of such records.
    """
    import json
    from pathlib import Path

    p = Path(path)
    try:
        records = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"summaries file {str(p)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: cannot read a JSON list of {{epoch, summary}} records ({exc})") from None
    if isinstance(records, dict) and "history" in records:
        records = records["history"]
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and "epoch" in r and "summary" in r for r in records
    ):
        raise ValueError(f"{p}: expected a JSON list of {{'epoch', 'summary'}} records")
    return [r["summary"] for r in records], [int(r["epoch"]) for r in records]
