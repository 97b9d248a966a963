"""Generalisation-gap prediction without a test set: features, predictors, their evaluation.

The gap of a trained network is ``train accuracy - test accuracy`` in accuracy points (0-100):
the training accuracy evaluated at the checkpoint's weights, in eval mode, on its whole training
split with the labels it was trained on (permuted ones included), the test accuracy on the whole
test split. The cross-entropy gap is ``test loss - train loss`` (nats, eval mode). The claim of the
method (Corneanu et al., CVPR 2020) is that the gap is a simple function of the topology of the
network's functional graph, so that ``test accuracy = train accuracy - predicted gap`` can be
estimated without a test set.

Observations
------------
One observation is one checkpoint of one training run (a network at one epoch). **Epoch 0, the
untrained network, is never an observation**: its gap is the difference of two chance accuracies
and its graph that of random weights; nothing of learning is in it. Observations of one run are
not independent, so every evaluation holds out whole runs (or whole groups of runs).

Features
--------
A model is linear in named features (:func:`feature_names`, :func:`features_from_summary`):

* topological, from the summaries of :func:`topodnn.summaries.summarise` of the probe graph:
  ``"<stat>_<dim>"`` with ``stat`` one of :data:`TOPOLOGICAL_STATS` (``life``, ``midlife``,
  ``betti_max``, ``eps_at_max``, ``n_pairs``, ``n_essential``, ``area`` and the per-node counts
  ``betti_max_per_node``, ``n_pairs_per_node``, ``n_essential_per_node``, ``area_per_node``);
* not topological, all known without a test set: ``train_acc`` (points), ``train_loss`` (nats,
  eval mode), ``log_n_train`` (natural log of the training-set size), ``mean_abs_corr`` (mean
  |corr| over all pairs of units of the probe graph: its density without topology),
  ``arch_<net>`` and ``dataset_<name>`` (1 for that network / dataset, else 0).

A statistic that is undefined (life of a dimension without pairs: NaN) is replaced by the training
mean of that feature.

Which inputs (the probe)
------------------------
The functional graph is built on a fixed set of probe inputs; fitting and prediction must use the
same kind, recorded in the model file (``metadata["topology"]``: ``probe`` ``"train"`` or
``"test"``, ``n_samples``, ``max_dim``, ``max_epsilon``, ``min_persistence``). ``probe="train"``
uses the first ``n_samples`` *training* inputs (no test data at all); the original used the first
1000 test inputs (unlabelled, but from the test set).

Models and predictors
---------------------
:class:`GapModel` is ``gap = intercept + sum_j coef_j (x_j - mean_j) / scale_j``, fitted by
:func:`fit_gap_model` (ridge with an unpenalised intercept; ``ridge=0`` is ordinary least squares).
A :class:`Predictor` names a feature list and how its penalty is chosen; :data:`PREDICTORS` holds
the ones the study compares:

* ``P0``, the papers' law: the gap linear in life and midlife of H1, ordinary least squares;
* ``P1``: ridge on per-node H0/H1 summaries (the penalty chosen by cross-validation over runs
  *inside* the training folds, never on held-out runs);
* baselines: ``mean_gap`` (the mean gap of the training runs), ``train_loss_acc`` (training loss and
  accuracy), ``n_train_arch`` (log training-set size and architecture), ``density_acc`` (mean |corr|
  and training accuracy: density without topology).

Evaluation
----------
:func:`group_cv_predictions` refits a predictor without each group in turn (leave one run out:
groups = runs; leave one group out: groups = e.g. architecture x dataset) and predicts the held-out
rows. :func:`mae`, :func:`spearman` and :func:`paired_bootstrap` (resample runs; the CI of the
difference of two predictors' MAEs on the same held-out predictions) score them.

The shipped model
-----------------
``topodnn predict-gap CHECKPOINT`` uses :data:`DEFAULT_MODEL_PATH` (package data, fitted by
``experiments/study.py``) unless ``--model`` is given. A model file records its *domain*
(networks, datasets, training-set sizes, epochs, learning rate, schedule, probe, the mean gap of
the runs it was fitted on); :func:`predict_gap` reports every way a checkpoint lies outside it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import results
from .summaries import PER_NODE_KEYS, SUMMARY_KEYS

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_STATS",
    "DEFAULT_DIMS",
    "DEFAULT_TOPOLOGY",
    "DEFAULT_MODEL_PATH",
    "TOPOLOGICAL_STATS",
    "feature_names",
    "features_from_summary",
    "is_topological",
    "GapModel",
    "fit_gap_model",
    "Predictor",
    "PREDICTORS",
    "group_cv_predictions",
    "leave_one_run_out",
    "mae",
    "spearman",
    "pearson_r",
    "paired_bootstrap",
    "evaluate_predictors",
    "Observation",
    "collect_observations",
    "observations_to_xy",
    "training_summary",
    "training_reference",
    "labels_as_trained",
    "train_metrics",
    "train_accuracy",
    "checkpoint_summary",
    "summary_cache_path",
    "store_summary",
    "load_cached_summary",
    "fit_gap_from_results",
    "domain_warnings",
    "load_default_model",
    "predict_gap",
]

FORMAT_NAME = "topodnn-gap-model"
FORMAT_VERSION = 1

DEFAULT_STATS = ("life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area")
DEFAULT_DIMS = (1, 2)
#: Statistics a topological feature ``"<stat>_<dim>"`` may name.
TOPOLOGICAL_STATS = tuple(SUMMARY_KEYS) + tuple(PER_NODE_KEYS)

#: Topology settings of the summaries (the original's), unless a model file says otherwise.
DEFAULT_TOPOLOGY = {"probe": "train", "n_samples": 1000, "max_dim": 2, "max_epsilon": 0.3,
                    "min_persistence": 0.02}

#: The model ``topodnn predict-gap`` uses without ``--model`` (written by experiments/study.py).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "gap_model.json"

#: Non-topological features (known without a test set), besides ``arch_<net>``/``dataset_<name>``.
TRAIN_ACC = "train_acc"
TRAIN_LOSS = "train_loss"
LOG_N_TRAIN = "log_n_train"
MEAN_ABS_CORR = "mean_abs_corr"
_PLAIN_EXTRAS = (TRAIN_ACC, TRAIN_LOSS, LOG_N_TRAIN, MEAN_ABS_CORR)
_ONE_HOT = ("arch_", "dataset_")

_TOPO_RE = re.compile(r"(" + "|".join(sorted(TOPOLOGICAL_STATS, key=len, reverse=True)) + r")_(\d+)")


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def feature_names(
    stats: Sequence[str] = DEFAULT_STATS,
    dims: Sequence[int] = DEFAULT_DIMS,
    *,
    with_train_acc: bool = False,
) -> list[str]:
    """Feature names ``"<stat>_<dim>"`` in a fixed order (dimension-major), then ``train_acc``."""
    bad = [s for s in stats if s not in TOPOLOGICAL_STATS]
    if bad:
        raise ValueError(f"unknown summary statistic(s) {bad}; choose from {list(TOPOLOGICAL_STATS)}")
    if not stats or not dims:
        raise ValueError("need at least one statistic and one dimension")
    names = [f"{s}_{int(d)}" for d in dims for s in stats]
    return names + [TRAIN_ACC] if with_train_acc else names


def _split_name(name: str) -> tuple[str, int]:
    m = _TOPO_RE.fullmatch(name)
    if m is None:
        raise ValueError(
            f"feature name {name!r} is neither '<stat>_<dim>' (stat in {list(TOPOLOGICAL_STATS)}) "
            f"nor one of {list(_PLAIN_EXTRAS)}, 'arch_<net>', 'dataset_<name>'"
        )
    return m.group(1), int(m.group(2))


def is_topological(name: str) -> bool:
    """True for ``"<stat>_<dim>"`` features; raises ValueError for a name that is no feature."""
    if name in _PLAIN_EXTRAS or any(name.startswith(p) and len(name) > len(p) for p in _ONE_HOT):
        return False
    _split_name(name)
    return True


def _max_dim_of(names: Sequence[str]) -> int:
    dims = [_split_name(n)[1] for n in names if is_topological(n)]
    return max(dims) if dims else 0


def features_from_summary(
    summary: Mapping[Any, Mapping[str, float]],
    names: Sequence[str],
    *,
    train_acc: Optional[float] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> np.ndarray:
    """Feature vector of one observation (NaN where a statistic is undefined).

    Parameters
    ----------
    summary
        ``{dim: {stat: value}}`` (dimension keys int or str).
    names
        Feature names (see the module notes).
    train_acc
        Training accuracy in points (the ``train_acc`` feature; also read from ``extra``).
    extra
        The other non-topological values: ``train_acc``, ``train_loss``, ``n_train`` (or
        ``log_n_train``), ``mean_abs_corr``, ``net``, ``dataset``.

    Raises
    ------
    ValueError
        A feature whose value is not available (e.g. an H2 feature of a summary computed with
        ``max_dim=1``, or ``train_loss`` not given).
    """
    extra = dict(extra or {})
    if train_acc is not None:
        extra[TRAIN_ACC] = train_acc
    if LOG_N_TRAIN not in extra and extra.get("n_train") is not None:
        extra[LOG_N_TRAIN] = math.log(float(extra["n_train"]))
    out = np.empty(len(names), dtype=float)
    for i, name in enumerate(names):
        if not is_topological(name):
            if name.startswith("arch_") or name.startswith("dataset_"):
                key = "net" if name.startswith("arch_") else "dataset"
                if extra.get(key) is None:
                    raise ValueError(f"feature {name!r} needs the {key} of the observation")
                out[i] = 1.0 if name.split("_", 1)[1] == str(extra[key]) else 0.0
                continue
            value = extra.get(name)
            if value is None or not math.isfinite(float(value)):
                unit = {TRAIN_ACC: " (points)", TRAIN_LOSS: " (nats)"}.get(name, "")
                raise ValueError(f"feature {name!r} needs its value{unit}; none was given")
            out[i] = float(value)
            continue
        stat, dim = _split_name(name)
        entry = summary.get(dim, summary.get(str(dim))) if isinstance(summary, Mapping) else None
        if entry is None:
            raise ValueError(
                f"summary has no homology dimension {dim} (needed by feature {name!r}); compute "
                f"topology with max_dim >= {dim}"
            )
        if stat not in entry:
            raise ValueError(f"summary of dimension {dim} has no statistic {stat!r}"
                             + (" (summarise with n_nodes=)" if stat.endswith("_per_node") else ""))
        value = entry[stat]
        out[i] = math.nan if value is None else float(value)
    return out


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def pearson_r(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences (NaN if either is constant)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc) / den if den > 0 else math.nan


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype=float)
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's r of the ranks, ties averaged; NaN if constant)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman: values must be finite")
    return pearson_r(_ranks(x), _ranks(y))


def mae(pred: Sequence[float], y: Sequence[float]) -> float:
    """Mean absolute error (in the units of ``y``: accuracy points for gaps)."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(y, dtype=float)
    if p.shape != t.shape:
        raise ValueError(f"pred and y differ in shape: {p.shape} and {t.shape}")
    return float(np.mean(np.abs(p - t)))


def paired_bootstrap(
    y: Sequence[float],
    pred_a: Sequence[float],
    pred_b: Sequence[float],
    runs: Sequence[Any],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Bootstrap CI of ``MAE(a) - MAE(b)``, resampling whole runs (the same draws for both).

    Every replicate draws as many runs as there are, with replacement; a run drawn k times
    counts its rows k times. Both predictors are scored on the same drawn rows, so the interval is
    that of the paired difference (negative: ``a`` is better).

    Returns
    -------
    dict
        ``diff`` (the observed MAE difference), ``lo``, ``hi`` (percentile interval at ``level``),
        ``n_boot``, ``level``, ``n_runs``; accuracy points for gaps.
    """
    t = np.asarray(y, dtype=float)
    a = np.asarray(pred_a, dtype=float)
    b = np.asarray(pred_b, dtype=float)
    ids = np.asarray([str(r) for r in runs])
    if not (t.shape == a.shape == b.shape == ids.shape) or t.ndim != 1:
        raise ValueError("y, pred_a, pred_b and runs must be 1-D and of one length")
    if int(n_boot) < 1 or not (0.0 < level < 1.0):
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot!r}, {level!r}")
    uniq, inverse = np.unique(ids, return_inverse=True)
    k = uniq.size
    per_run_diff = np.bincount(inverse, weights=np.abs(a - t) - np.abs(b - t), minlength=k)
    per_run_n = np.bincount(inverse, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(int(n_boot), k))
    weights = np.zeros((int(n_boot), k))
    rows = np.repeat(np.arange(int(n_boot)), k)
    np.add.at(weights, (rows, draws.ravel()), 1.0)
    reps = (weights @ per_run_diff) / (weights @ per_run_n)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return {"diff": float(per_run_diff.sum() / per_run_n.sum()), "lo": float(lo), "hi": float(hi),
            "n_boot": int(n_boot), "level": float(level), "n_runs": int(k)}


# --------------------------------------------------------------------------------------------
# The linear model
# --------------------------------------------------------------------------------------------


def min_observations(n_features: int) -> int:
    """Fewest observations :func:`fit_gap_model` accepts: ``n_features + 2``."""
    return int(n_features) + 2


@dataclass
class GapModel:
    """Linear model ``gap = intercept + sum_j coef_j * (x_j - mean_j) / scale_j``.

    Attributes
    ----------
    feature_names : list of str
        Feature names (see the module notes), in the order of the columns of ``X``.
    coef : ndarray
        Coefficients on standardised features (accuracy points per standard deviation).
    intercept : float
        Predicted gap at the mean feature vector (accuracy points): the mean training gap.
    means, scales : ndarray
        Standardisation (means also impute undefined features).
    ridge : float
        Ridge penalty used (0 = ordinary least squares).
    n_runs : int
        Distinct runs in the training data (= observations when no run ids were given).
    n_observations : int
        Rows used in the fit.
    metadata : dict
        Free-form: ``topology`` (probe settings), ``domain`` (what the model was fitted on),
        ``predictor``, training residual MAE, provenance.
    """

    feature_names: list[str]
    coef: np.ndarray
    intercept: float
    means: np.ndarray
    scales: np.ndarray
    ridge: float
    n_runs: int
    n_observations: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_coefficients(self) -> np.ndarray:
        """Coefficients on the unstandardised features (accuracy points per feature unit)."""
        return self.coef / self.scales

    @property
    def raw_intercept(self) -> float:
        """Intercept on the unstandardised features."""
        return float(self.intercept - np.sum(self.coef * self.means / self.scales))

    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        k = len(self.feature_names)
        if X.ndim == 1:
            X = X.reshape(1, -1) if k else X.reshape(-1, 0)
        if X.ndim != 2 or X.shape[1] != k:
            raise ValueError(
                f"X must have {k} columns ({', '.join(self.feature_names)}); got shape {X.shape}"
            )
        if np.isinf(X).any():
            raise ValueError("X contains inf; features must be finite (NaN = undefined)")
        return X

    def predict(self, X: Any) -> np.ndarray:
        """Predicted gap (accuracy points) for each row of ``X``."""
        X = self._check_X(X)
        Z = (np.where(np.isnan(X), self.means, X) - self.means) / self.scales
        return self.intercept + Z @ self.coef

    def predict_summary(
        self,
        summary: Mapping[Any, Mapping[str, float]],
        *,
        train_acc: Optional[float] = None,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> float:
        """Predicted gap of one observation (see :func:`features_from_summary`)."""
        x = features_from_summary(summary, self.feature_names, train_acc=train_acc, extra=extra)
        return float(self.predict(x.reshape(1, -1))[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "target": "generalisation gap = train accuracy - test accuracy, accuracy points (0-100)",
            "feature_names": list(self.feature_names),
            "coefficients": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
            "means": [float(m) for m in self.means],
            "scales": [float(s) for s in self.scales],
            "ridge": float(self.ridge),
            "n_runs": int(self.n_runs),
            "n_observations": int(self.n_observations),
            "metadata": _jsonable(self.metadata),
        }

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the model as a small JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "model") -> "GapModel":
        if not isinstance(d, Mapping) or d.get("format") != FORMAT_NAME:
            raise ValueError(
                f"{source} is not a topodnn gap model (expected \"format\": \"{FORMAT_NAME}\"); "
                "write one with `topodnn fit-gap`"
            )
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{source} is a gap model of format_version {version!r}, but this topodnn reads "
                f"format_version {FORMAT_VERSION}; refit it with this version's `topodnn fit-gap`"
            )
        try:
            names = [str(n) for n in d["feature_names"]]
            coef = np.asarray(d["coefficients"], dtype=float).reshape(-1)
            means = np.asarray(d["means"], dtype=float).reshape(-1)
            scales = np.asarray(d["scales"], dtype=float).reshape(-1)
            model = cls(
                feature_names=names,
                coef=coef,
                intercept=float(d["intercept"]),
                means=means,
                scales=scales,
                ridge=float(d.get("ridge", 0.0)),
                n_runs=int(d["n_runs"]),
                n_observations=int(d.get("n_observations", d["n_runs"])),
                metadata=dict(d.get("metadata", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: gap model is missing or has a malformed field ({exc})") from None
        k = len(names)
        if not (coef.shape == means.shape == scales.shape == (k,)):
            raise ValueError(f"{source}: coefficients, means and scales must each have {k} entries")
        if not (np.isfinite(coef).all() and np.isfinite(means).all() and (scales > 0).all()
                and math.isfinite(model.intercept)):
            raise ValueError(f"{source}: non-finite coefficients/means or non-positive scales")
        for n in names:
            is_topological(n)
        return model

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "GapModel":
        """Read a model written by :meth:`save`; ValueError for anything else."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise ValueError(f"gap model file {str(p)!r} does not exist") from None
        except OSError as exc:
            raise ValueError(f"cannot read gap model file {str(p)!r}: {exc.strerror or exc}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p} is not a topodnn gap model (not JSON: {exc.msg})") from None
        return cls.from_dict(d, source=str(p))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _check_xy(X: Any, y: Any, feature_names_: Optional[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1 and X.size == 0 and y.ndim == 1:
        X = X.reshape(y.size, 0)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (observations x features), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one gap per row of X ({X.shape[0]}), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y (the gaps) must be finite")
    if np.isinf(X).any():
        raise ValueError("X contains inf; features must be finite (NaN = undefined)")
    if feature_names_ is None:
        names = [f"x{j}_0" for j in range(X.shape[1])]
    else:
        names = [str(n) for n in feature_names_]
        if len(names) != X.shape[1]:
            raise ValueError(f"{len(names)} feature names for {X.shape[1]} columns")
    return X, y, names


def fit_gap_model(
    X: Any,
    y: Any,
    *,
    feature_names: Optional[Sequence[str]] = None,
    ridge: float = 1.0,
    run_ids: Optional[Sequence[Any]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> GapModel:
    """Fit the linear gap model.

    Parameters
    ----------
    X : array_like, shape (n, k)
        Features, one row per observation (a network at one epoch); NaN = undefined. ``k = 0``
        fits the mean gap alone.
    y : array_like, shape (n,)
        True gaps, train accuracy - test accuracy, in accuracy points.
    feature_names : sequence of str, optional
        Column names (see :func:`feature_names`).
    ridge : float, default 1.0
        Ridge penalty on the standardised coefficients (0 = ordinary least squares):
        ``min_b ||y - mean(y) - Z b||^2 + ridge ||b||^2`` with ``Z`` the standardised features.
    run_ids : sequence, optional
        Run of each row; only used to record ``n_runs``.
    metadata : mapping, optional
        Stored in the model file (topology settings, domain, provenance).

    Raises
    ------
    ValueError
        Fewer than ``k + 2`` observations, non-finite gaps, a column with no defined value, or
        shape mismatches.
    """
    X, y, names = _check_xy(X, y, feature_names)
    n, k = X.shape
    need = min_observations(k)
    if n < need:
        raise ValueError(
            f"too few runs to fit the gap model: {n} observation(s) for {k} features; need at least "
            f"{need} (n_features + 2). Add checkpoints/runs or choose fewer features"
        )
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    defined = ~np.isnan(X)
    empty = [names[j] for j in range(k) if not defined[:, j].any()]
    if empty:
        raise ValueError(f"feature(s) {empty} are undefined (NaN) in every observation; drop them")
    means = np.array([X[defined[:, j], j].mean() for j in range(k)])
    Xf = np.where(defined, X, means)
    scales = Xf.std(axis=0) if k else np.zeros(0)
    scales = np.where(scales > 1e-12 * np.maximum(1.0, np.abs(means)), scales, 1.0)
    Z = (Xf - means) / scales
    y_mean = float(y.mean())
    yc = y - y_mean
    if k == 0:
        coef = np.zeros(0)
    else:
        if ridge > 0:
            A = np.vstack([Z, math.sqrt(ridge) * np.eye(k)])
            b = np.concatenate([yc, np.zeros(k)])
        else:
            A, b = Z, yc
        coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    fitted = y_mean + Z @ coef
    meta = dict(metadata or {})
    meta.setdefault("train_mae", float(np.mean(np.abs(fitted - y))))
    if run_ids is not None and len(run_ids) != n:
        raise ValueError(f"run_ids has {len(run_ids)} entries for {n} observations")
    n_runs = len(set(map(str, run_ids))) if run_ids is not None else n
    return GapModel(
        feature_names=names,
        coef=coef,
        intercept=y_mean,
        means=means,
        scales=scales,
        ridge=float(ridge),
        n_runs=int(n_runs),
        n_observations=int(n),
        metadata=meta,
    )


# --------------------------------------------------------------------------------------------
# Predictors and their evaluation
# --------------------------------------------------------------------------------------------


def _inner_folds(groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Masks of ``n_folds`` folds of whole groups (a seeded shuffle of the distinct groups)."""
    uniq = np.unique(groups)
    order = np.random.default_rng(seed).permutation(uniq.size)
    fold_of = {uniq[j]: i % n_folds for i, j in enumerate(order)}
    labels = np.array([fold_of[g] for g in groups])
    return [labels == f for f in range(min(n_folds, uniq.size))]


@dataclass(frozen=True)
class Predictor:
    """A gap predictor: a feature list and how the ridge penalty is set.

    Attributes
    ----------
    name : str
    features : tuple of str
        Feature names (empty: the mean gap).
    ridge : float
        Fixed penalty (0: ordinary least squares), used when ``ridge_grid`` is None.
    ridge_grid : tuple of float, optional
        Candidate penalties; :meth:`fit` picks the one with the smallest MAE of a
        ``inner_folds``-fold cross-validation over the *groups of its training data* (runs), so
        the choice never sees data outside the rows it is fitted on.
    inner_folds : int
    description : str
    """

    name: str
    features: tuple[str, ...]
    ridge: float = 0.0
    ridge_grid: Optional[tuple[float, ...]] = None
    inner_folds: int = 5
    description: str = ""

    @property
    def topological(self) -> bool:
        """True if every feature is topological (and there is at least one)."""
        return bool(self.features) and all(is_topological(f) for f in self.features)

    def choose_ridge(self, X: np.ndarray, y: np.ndarray, groups: Sequence[Any]) -> float:
        """The penalty of ``ridge_grid`` with the least inner cross-validated MAE.

        Inner folds whose training part is too small to fit (fewer than ``k + 2`` rows) are
        skipped; if none is left the middle of the grid is used.
        """
        if self.ridge_grid is None:
            return float(self.ridge)
        grid = [float(a) for a in self.ridge_grid]
        g = np.asarray([str(v) for v in groups])
        need = min_observations(len(self.features))
        folds = [t for t in _inner_folds(g, int(self.inner_folds), seed=0) if (~t).sum() >= need]
        if len(folds) < 2:
            return grid[len(grid) // 2]
        best, best_err = grid[0], math.inf
        for alpha in grid:
            err = 0.0
            for test in folds:
                m = fit_gap_model(X[~test], y[~test], feature_names=self.features, ridge=alpha)
                err += float(np.sum(np.abs(m.predict(X[test]) - y[test])))
            if err < best_err - 1e-12:
                best, best_err = alpha, err
        return best

    def fit(self, X: Any, y: Any, groups: Optional[Sequence[Any]] = None, *,
            metadata: Optional[Mapping[str, Any]] = None) -> GapModel:
        """Fit on ``(X, y)``; ``groups`` (runs) serve the inner choice of the penalty."""
        X, y, _ = _check_xy(X, y, self.features)
        groups = list(range(len(y))) if groups is None else list(groups)
        if len(groups) != len(y):
            raise ValueError(f"groups has {len(groups)} entries for {len(y)} observations")
        alpha = self.choose_ridge(X, y, groups)
        meta = {"predictor": self.name, **dict(metadata or {})}
        if self.ridge_grid is not None:
            meta["ridge_grid"] = list(self.ridge_grid)
        return fit_gap_model(X, y, feature_names=self.features, ridge=alpha, run_ids=groups,
                             metadata=meta)


#: H0/H1 summaries of P1 (per node where they count), available for every architecture.
P1_FEATURES = ("life_0", "n_essential_per_node_0", "life_1", "midlife_1", "betti_max_per_node_1",
               "eps_at_max_1", "n_pairs_per_node_1", "area_per_node_1")

#: The predictors the study compares (see the module notes).
PREDICTORS: dict[str, Predictor] = {
    "P0": Predictor("P0", ("life_1", "midlife_1"), ridge=0.0,
                    description="the papers' law: gap linear in life and midlife of H1 (OLS)"),
    "P1": Predictor("P1", P1_FEATURES, ridge_grid=(0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
                    description="ridge on per-node H0/H1 summaries, penalty by inner CV over runs"),
    "mean_gap": Predictor("mean_gap", (), description="the mean gap of the training runs"),
    "train_loss_acc": Predictor("train_loss_acc", (TRAIN_LOSS, TRAIN_ACC),
                                description="training loss and accuracy (OLS)"),
    "n_train_arch": Predictor("n_train_arch", (LOG_N_TRAIN, "arch_lenet", "arch_conv_2"),
                              description="log training-set size and architecture (OLS)"),
    "density_acc": Predictor("density_acc", (MEAN_ABS_CORR, TRAIN_ACC),
                             description="mean |corr| (density without topology) and training "
                                         "accuracy (OLS)"),
}


def group_cv_predictions(
    predictor: Predictor,
    X: Any,
    y: Any,
    groups: Sequence[Any],
    *,
    inner_groups: Optional[Sequence[Any]] = None,
) -> np.ndarray:
    """Held-out predictions: refit without each group in turn and predict that group's rows.

    Parameters
    ----------
    predictor : Predictor
    X, y
        Features (columns = ``predictor.features``) and gaps (points).
    groups
        The unit held out together: the run of each row (leave one run out) or a coarser group
        (leave one group out).
    inner_groups
        The groups the predictor's inner penalty choice splits by (default ``groups``); with a
        coarse ``groups`` pass the runs.

    Returns
    -------
    ndarray, shape (n,)
        Each row predicted by a model fitted on the rows of the other groups only.
    """
    X, y, _ = _check_xy(X, y, predictor.features)
    g = np.asarray([str(v) for v in groups])
    if g.shape != y.shape:
        raise ValueError(f"groups has {g.size} entries for {y.size} observations")
    inner = g if inner_groups is None else np.asarray([str(v) for v in inner_groups])
    uniq = list(dict.fromkeys(g))
    if len(uniq) < 2:
        raise ValueError(f"cross-validation needs at least 2 groups, got {len(uniq)}")
    pred = np.empty_like(y)
    for grp in uniq:
        test = g == grp
        model = predictor.fit(X[~test], y[~test], inner[~test])
        pred[test] = model.predict(X[test])
    return pred


def leave_one_run_out(
    X: Any,
    y: Any,
    run_ids: Sequence[Any],
    *,
    feature_names: Optional[Sequence[str]] = None,
    ridge: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Leave-one-run-out predictions of the ridge model and their mean absolute error (points).

    Raises
    ------
    ValueError
        Fewer than 2 runs, or a fold whose training part has fewer than ``k + 2`` rows.
    """
    X, y, names = _check_xy(X, y, feature_names)
    ids = [str(r) for r in run_ids]
    if len(ids) != X.shape[0]:
        raise ValueError(f"run_ids has {len(ids)} entries for {X.shape[0]} observations")
    if len(set(ids)) < 2:
        raise ValueError(f"leave-one-run-out needs at least 2 runs, got {len(set(ids))}")
    pred = group_cv_predictions(Predictor("ridge", tuple(names), ridge=float(ridge)), X, y, ids)
    return pred, mae(pred, y)


def evaluate_predictors(
    predictors: Mapping[str, Predictor],
    rows: Sequence[Mapping[str, Any]],
    *,
    schemes: Mapping[str, Sequence[Any]],
    runs: Sequence[Any],
    baselines: Sequence[str] = (),
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score predictors under several hold-out schemes, with paired bootstrap CIs.

    Parameters
    ----------
    predictors
        ``{name: Predictor}``.
    rows
        One mapping per observation with ``gap`` (points), ``summary`` and the non-topological
        values (see :func:`features_from_summary`'s ``extra``).
    schemes
        ``{scheme name: group of each row}``: e.g. ``{"loro": runs, "logo_arch_dataset": ...}``.
    runs
        The run of each row: the bootstrap resamples runs, and inner penalty choices split by
        runs.
    baselines
        Names in ``predictors``: every predictor gets, per scheme, the CI of ``MAE(predictor) -
        MAE(baseline)``.

    Returns
    -------
    dict
        ``{name: {scheme: {"mae", "spearman", "pred", "vs": {baseline: ci}}}}``; MAE in points.
    """
    y = np.array([float(r["gap"]) for r in rows])
    run_list = [str(r) for r in runs]
    out: dict[str, Any] = {}
    preds: dict[tuple[str, str], np.ndarray] = {}
    for name, pr in predictors.items():
        X = np.array([features_from_summary(r["summary"], pr.features, extra=r) for r in rows]) \
            .reshape(len(rows), len(pr.features))
        out[name] = {}
        for scheme, groups in schemes.items():
            pred = group_cv_predictions(pr, X, y, groups, inner_groups=run_list)
            preds[(name, scheme)] = pred
            rho = spearman(pred, y) if np.ptp(pred) > 0 else math.nan
            out[name][scheme] = {"mae": mae(pred, y), "spearman": rho, "pred": pred.tolist()}
    for name in predictors:
        for scheme in schemes:
            out[name][scheme]["vs"] = {
                b: paired_bootstrap(y, preds[(name, scheme)], preds[(b, scheme)], run_list,
                                    n_boot=n_boot, seed=seed)
                for b in baselines if b != name
            }
    return out


# --------------------------------------------------------------------------------------------
# Checkpoints, training data and the pipeline pieces
# --------------------------------------------------------------------------------------------

_CKPT_RE = re.compile(r"ckpt_trl(\d+)_epc(\d+)\.pt$")


def training_reference(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint was trained on: dataset, data_dir, n_train, seed, label noise, recipe.

    Raises
    ------
    ValueError
        "checkpoint has no saved training-data reference" when the dataset name is missing.
    """
    args = ckpt.get("args") if isinstance(ckpt, Mapping) else None
    args = args if isinstance(args, Mapping) else {}
    dataset = ckpt.get("dataset") if isinstance(ckpt, Mapping) else None
    dataset = dataset or args.get("dataset")
    if not dataset:
        raise ValueError(
            "checkpoint has no saved training-data reference (no 'dataset' entry): the training "
            "inputs cannot be reloaded, so the gap cannot be predicted without a test set. Use a "
            "checkpoint written by topodnn.training.train"
        )
    info = ckpt.get("dataset_info") if isinstance(ckpt.get("dataset_info"), Mapping) else {}
    return {
        "dataset": str(dataset),
        "data_dir": args.get("data_dir"),
        "n_train": args.get("n_train"),
        "n_test": args.get("n_test"),
        "n_train_used": info.get("n_train", args.get("n_train")),
        "training_seed": args.get("seed"),
        "permute_labels": float(args.get("permute_labels", 0.0) or 0.0),
        "lr": args.get("lr"),
        "lr_schedule": args.get("lr_schedule", "test_acc"),
        "weight_decay": args.get("weight_decay", 5e-4),
    }


def _train_set(ref: Mapping[str, Any], data_dir: Optional[str] = None) -> Any:
    """The training split (inputs and true labels) a checkpoint refers to, as training loaded it."""
    from topodnn.datasets import load_dataset

    kwargs: dict[str, Any] = {"data_dir": data_dir if data_dir is not None else ref.get("data_dir")}
    if ref.get("n_train") is not None:
        kwargs["n_train"] = int(ref["n_train"])
    if ref.get("n_test") is not None:
        kwargs["n_test"] = int(ref["n_test"])
    # ``seed`` in a checkpoint's args is the training seed (weights, batch order), not the seed of
    # the dataset's train/test split, which training always draws with the default.
    train_set, _test, _info = load_dataset(ref["dataset"], **kwargs)
    if len(train_set) < 2:
        raise ValueError(f"training set of {ref['dataset']!r} has fewer than 2 inputs")
    return train_set


def _test_inputs(ref: Mapping[str, Any], data_dir: Optional[str] = None) -> Any:
    from topodnn.datasets import load_dataset

    _train, test, _info = load_dataset(ref["dataset"], data_dir=data_dir if data_dir is not None
                                       else ref.get("data_dir"))
    return test.tensors[0]


def labels_as_trained(true_labels: Any, permute_labels: float, training_seed: Optional[int]) -> Any:
    """The training labels a run actually used: ``permute_labels`` of them shuffled as training did.

    :func:`topodnn.training.train` draws the permutation with seed ``seed + 0x5EED``; this
    reproduces it, so that the training accuracy of a memorising network is measured against the
    labels it memorised.
    """
    if not permute_labels:
        return true_labels
    from topodnn import training

    if training_seed is None:
        raise ValueError("checkpoint permuted labels but records no training seed; cannot rebuild its labels")
    offset = getattr(training, "_LABEL_SEED_OFFSET", 0x5EED)
    return training.shuffle_labels(true_labels, float(permute_labels), int(training_seed) + offset)[0]


def train_metrics(model: Any, train_set: Any, ref: Mapping[str, Any]) -> tuple[float, float]:
    """(loss in nats, accuracy in points) of ``model`` on its whole training split, labels as trained.

    Evaluated at the checkpoint's weights in eval mode. (The ``train_acc`` that training records
    for epochs >= 1 is the running mean over the epoch's mini-batches, i.e. over changing weights
    and with dropout on; it lags the checkpoint, by tens of points in the first epochs.)
    """
    from torch.utils.data import TensorDataset

    from topodnn.training import evaluate

    images, labels = train_set.tensors[0], train_set.tensors[1]
    labels = labels_as_trained(labels, ref.get("permute_labels", 0.0), ref.get("training_seed"))
    loss, acc = evaluate(model, TensorDataset(images, labels))
    return float(loss), 100.0 * float(acc)


def train_accuracy(model: Any, train_set: Any, ref: Mapping[str, Any]) -> float:
    """Accuracy (points, 0-100) of ``model`` on its whole training split (see :func:`train_metrics`)."""
    return train_metrics(model, train_set, ref)[1]


def training_summary(
    model: Any,
    inputs: Any,
    *,
    n_samples: int = 1000,
    max_dim: int = 2,
    max_epsilon: float = 0.3,
    min_persistence: float = 0.02,
    layers: Optional[Sequence[Any]] = None,
    comm: Any = None,
    return_info: bool = False,
) -> Any:
    """Summary (per node too) of ``model``'s functional graph on the first ``n_samples`` inputs.

    Through :func:`topodnn.pipeline.model_topology`; ``return_info=True`` also returns the graph's
    info dict (``mean_abs_corr``, ``n_nodes`` ...).
    """
    from topodnn.pipeline import model_topology

    topo = model_topology(model, inputs, layers=layers, max_dim=max_dim, max_epsilon=max_epsilon,
                          n_samples=n_samples, comm=comm, progress=False)
    summary = topo.summaries(min_persistence=min_persistence)
    return (summary, topo.info) if return_info else summary


@dataclass
class Observation:
    """One checkpoint: its run, epoch, accuracies (points), losses (nats) and probe summary."""

    run_id: str
    checkpoint: str
    epoch: int
    train_acc: float
    test_acc: float
    summary: dict[int, dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    train_loss: Optional[float] = None
    mean_abs_corr: Optional[float] = None

    @property
    def gap(self) -> float:
        return self.train_acc - self.test_acc

    def extra(self) -> dict[str, Any]:
        """The non-topological values, as :func:`features_from_summary` takes them."""
        return {TRAIN_ACC: self.train_acc, TRAIN_LOSS: self.train_loss,
                MEAN_ABS_CORR: self.mean_abs_corr, "n_train": self.info.get("n_train_used"),
                "net": self.info.get("net"), "dataset": self.info.get("dataset")}


def summary_cache_path(checkpoint: Union[str, os.PathLike]) -> Path:
    """Where the probe summary of a checkpoint is cached (next to it)."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".train_summary.json")


def _topology_key(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in ("n_samples", "max_dim", "max_epsilon", "min_persistence")}


def load_cached_summary(
    path: Union[str, os.PathLike], settings: Mapping[str, Any]
) -> Optional[tuple[dict[int, dict[str, Any]], float, dict[str, Any]]]:
    """(summary, train_acc, extra) from a cache file made with the same settings, else None.

    ``extra`` holds what else the cache recorded (``train_loss``, ``mean_abs_corr``).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(d, dict) or d.get("data") != "train" or not isinstance(d.get("settings"), dict):
        return None
    # Same settings, except that a cache computed to a higher dimension serves a lower one (the
    # diagrams of H0..Hq do not depend on the top dimension computed).
    want, have = _jsonable(_topology_key(settings)), dict(d["settings"])
    if have.pop("max_dim", -1) < want.pop("max_dim") or have != want:
        return None
    if d.get("train_acc") is None or not isinstance(d.get("summary"), dict):
        return None
    summary = {int(k): {s: (math.nan if v is None else v) for s, v in e.items()} for k, e in d["summary"].items()}
    extra = {k: d[k] for k in (TRAIN_LOSS, MEAN_ABS_CORR) if d.get(k) is not None}
    return summary, float(d["train_acc"]), extra


def store_summary(
    path: Union[str, os.PathLike], summary: Mapping[int, Any], train_acc: float, settings: Mapping[str, Any],
    *, extra: Optional[Mapping[str, Any]] = None,
) -> None:
    """Write the cache file read by :func:`load_cached_summary`."""
    Path(path).write_text(
        json.dumps(
            {"data": "train", "settings": _jsonable(_topology_key(settings)), "train_acc": float(train_acc),
             **_jsonable(dict(extra or {})), "summary": _jsonable(summary)},
            indent=1,
        )
    )


def checkpoint_summary(
    checkpoint: Union[str, os.PathLike],
    *,
    n_samples: int = 1000,
    max_dim: int = 2,
    max_epsilon: float = 0.3,
    min_persistence: float = 0.02,
    data_dir: Optional[str] = None,
    cache: bool = True,
    data_cache: Optional[dict] = None,
) -> tuple[dict[int, dict[str, Any]], float, dict[str, Any], dict[str, Any]]:
    """Training-input summary, training accuracy and extras of one checkpoint (cached next to it).

    Returns ``(summary, train_acc, ckpt, extra)``; ``train_acc`` in points (see
    :func:`train_metrics`), ``extra`` with ``train_loss`` (nats) and ``mean_abs_corr``.
    ``cache=False`` ignores an existing cache file and rewrites it with the recomputed summary.
    """
    from topodnn.training import load_checkpoint, model_from_checkpoint

    settings = {"n_samples": int(n_samples), "max_dim": int(max_dim), "max_epsilon": float(max_epsilon),
                "min_persistence": float(min_persistence)}
    cpath = summary_cache_path(checkpoint)
    cached = load_cached_summary(cpath, settings) if cache else None
    if cached is not None:
        ckpt = load_checkpoint(checkpoint)
        training_reference(ckpt)
        return cached[0], cached[1], ckpt, cached[2]
    model, ckpt = model_from_checkpoint(checkpoint)
    ref = training_reference(ckpt)
    key = json.dumps(_jsonable({**ref, "data_dir": data_dir or ref.get("data_dir")}), sort_keys=True)
    if data_cache is not None and key in data_cache:
        train_set = data_cache[key]
    else:
        train_set = _train_set(ref, data_dir)
        if data_cache is not None:
            data_cache[key] = train_set
    summary, info = training_summary(model, train_set.tensors[0], n_samples=n_samples, max_dim=max_dim,
                                     max_epsilon=max_epsilon, min_persistence=min_persistence,
                                     return_info=True)
    loss, acc = train_metrics(model, train_set, ref)
    extra = {TRAIN_LOSS: loss, MEAN_ABS_CORR: info.get("mean_abs_corr")}
    try:  # written (or refreshed, with cache=False) for the next fit or prediction
        store_summary(cpath, summary, acc, settings, extra=extra)
    except OSError:
        pass  # read-only results: recompute next time
    return summary, acc, ckpt, extra


def collect_observations(
    results_dirs: Iterable[Union[str, os.PathLike]],
    *,
    n_samples: int = 1000,
    max_dim: int = 2,
    max_epsilon: float = 0.3,
    min_persistence: float = 0.02,
    epochs: Optional[Sequence[int]] = None,
    data_dir: Optional[str] = None,
    cache: bool = True,
    progress: bool = False,
) -> list[Observation]:
    """(summary, true gap) of every trained checkpoint under the given results directories.

    Checkpoints are the ``ckpt_trl<T>_epc<E>.pt`` files written by :func:`topodnn.training.train`
    (searched recursively); **epoch 0 is skipped** (the untrained network; see the module notes).
    The summary is computed on the checkpoint's first ``n_samples`` training inputs and cached,
    with the training accuracy and loss, as ``<checkpoint stem>.train_summary.json``; a cache made
    with other topology settings is recomputed. True gap = training accuracy
    (:func:`train_metrics`) - the test accuracy the checkpoint's history records for its epoch.
    The run id is ``<directory>:trl<T>``.

    Parameters
    ----------
    epochs
        Use only checkpoints of these epochs (default: all but 0).
    """
    paths: list[Path] = []
    for d in results_dirs:
        d = Path(d)
        if d.is_file() and _CKPT_RE.search(d.name):
            paths.append(d)
        elif d.is_dir():
            paths.extend(sorted(d.rglob("ckpt_trl*_epc*.pt")))
        else:
            raise ValueError(f"{str(d)!r} is neither a results directory nor a checkpoint")
    wanted = None if epochs is None else {int(e) for e in epochs}
    data_cache: dict = {}
    out: list[Observation] = []
    for p in paths:
        m = _CKPT_RE.search(p.name)
        if m is None:
            continue
        trial, epoch = int(m.group(1)), int(m.group(2))
        if epoch == 0 or (wanted is not None and epoch not in wanted):
            continue
        summary, train_acc, ckpt, extra = checkpoint_summary(
            p, n_samples=n_samples, max_dim=max_dim, max_epsilon=max_epsilon,
            min_persistence=min_persistence, data_dir=data_dir, cache=cache, data_cache=data_cache,
        )
        try:  # the history records fractions; the gap model works in accuracy points (0-100)
            history = results.history_from_mapping(ckpt.get("history"))
            test_acc = 100.0 * history.accuracy(int(ckpt.get("epoch", epoch)))[1]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{p}: {exc.args[0]}") from None
        ref = training_reference(ckpt)
        out.append(
            Observation(
                run_id=f"{p.parent.resolve()}:trl{trial}",
                checkpoint=str(p),
                epoch=epoch,
                train_acc=train_acc,
                test_acc=test_acc,
                summary=summary,
                info={"net": ckpt.get("net"), **ref},
                train_loss=extra.get(TRAIN_LOSS),
                mean_abs_corr=extra.get(MEAN_ABS_CORR),
            )
        )
        if progress:
            print(f"[fit-gap] {p}: gap {out[-1].gap:.2f} points", flush=True)
    return out


def observations_to_xy(
    observations: Sequence[Observation], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Stack observations into ``(X, y, run_ids)``."""
    X = np.array([features_from_summary(o.summary, names, extra=o.extra()) for o in observations],
                 dtype=float)
    y = np.array([o.gap for o in observations], dtype=float)
    return X.reshape(len(observations), len(names)), y, [o.run_id for o in observations]


def _domain_of(observations: Sequence[Observation]) -> dict[str, Any]:
    """What a model fitted on these observations has seen (see :func:`domain_warnings`)."""
    infos = [o.info for o in observations]
    n_train = [int(i["n_train_used"]) for i in infos if i.get("n_train_used") is not None]
    return {
        "networks": sorted({str(i.get("net")) for i in infos}),
        "datasets": sorted({str(i.get("dataset")) for i in infos}),
        "n_train": [min(n_train), max(n_train)] if n_train else None,
        "epochs": [min(o.epoch for o in observations), max(o.epoch for o in observations)],
        "lr": sorted({float(i["lr"]) for i in infos if i.get("lr") is not None}),
        "lr_schedule": sorted({str(i.get("lr_schedule")) for i in infos}),
        "weight_decay": sorted({float(i["weight_decay"]) for i in infos if i.get("weight_decay") is not None}),
        "permute_labels": sorted({float(i.get("permute_labels", 0.0)) for i in infos}),
        "mean_gap": float(np.mean([o.gap for o in observations])),
        "n_runs": len({o.run_id for o in observations}),
    }


def fit_gap_from_results(
    results_dirs: Sequence[Union[str, os.PathLike]],
    *,
    names: Sequence[str],
    ridge: float = 1.0,
    epochs: Optional[Sequence[int]] = None,
    n_samples: int = 1000,
    max_epsilon: float = 0.3,
    min_persistence: float = 0.02,
    data_dir: Optional[str] = None,
    cache: bool = True,
    progress: bool = False,
) -> GapModel:
    """Fit a gap model on every trained checkpoint under ``results_dirs`` (``topodnn fit-gap``).

    The probe is the first ``n_samples`` training inputs of each checkpoint; topology up to the
    highest dimension the features name. The model's metadata records the probe, the domain of
    the runs and, with at least two runs, the leave-one-run-out MAE (``loo_mae``, points) and
    Pearson r.

    Raises
    ------
    ValueError
        No trained checkpoint, too few observations, or a feature that cannot be computed.
    """
    names = [str(n) for n in names]
    for n in names:
        is_topological(n)
    topo = {"probe": "train", "n_samples": int(n_samples), "max_dim": max(1, _max_dim_of(names)),
            "max_epsilon": float(max_epsilon), "min_persistence": float(min_persistence)}
    obs = collect_observations(
        results_dirs, epochs=epochs, data_dir=data_dir, cache=cache, progress=progress,
        **{k: v for k, v in topo.items() if k != "probe"},
    )
    if not obs:
        raise ValueError(f"no trained checkpoints (ckpt_trl*_epc*.pt, epoch >= 1) under "
                         f"{[str(d) for d in results_dirs]}")
    X, y, runs = observations_to_xy(obs, names)
    meta: dict[str, Any] = {"topology": topo, "domain": _domain_of(obs),
                            "results_dirs": [str(d) for d in results_dirs]}
    if len(set(runs)) >= 2:
        try:
            pred, loo = leave_one_run_out(X, y, runs, feature_names=names, ridge=ridge)
            meta["loo_mae"] = loo
            meta["loo_pearson_r"] = pearson_r(pred, y)
        except ValueError as exc:
            meta["loo_note"] = str(exc)
    return fit_gap_model(X, y, feature_names=names, ridge=ridge, run_ids=runs, metadata=meta)


def _peek_checkpoint(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The raw checkpoint dict (CPU, tensors and plain containers only), unvalidated.

    Lets :func:`predict_gap` say "no training-data reference" for a checkpoint that lacks one
    rather than a generic "missing entries" from the full loader.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types on corrupt input
        raise ValueError(f"corrupt or unreadable checkpoint {p}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"{p} is not a topodnn checkpoint (not a dict)")
    return ckpt


def domain_warnings(domain: Optional[Mapping[str, Any]], *, net: str, dataset: str, n_train: Optional[int],
                    epoch: int, ref: Mapping[str, Any]) -> list[str]:
    """One line for each way a checkpoint lies outside a model's domain (empty: inside it)."""
    if not domain:
        return []
    out: list[str] = []

    def outside(what: str, value: Any, allowed: Any) -> None:
        out.append(f"{what} {value!r} is outside the gap model's domain ({allowed}); the prediction "
                   f"is an extrapolation")

    if domain.get("networks") and net not in domain["networks"]:
        outside("network", net, ", ".join(domain["networks"]))
    if domain.get("datasets") and dataset not in domain["datasets"]:
        outside("dataset", dataset, ", ".join(domain["datasets"]))
    lo_hi = domain.get("n_train")
    if lo_hi and n_train is not None and not (lo_hi[0] <= n_train <= lo_hi[1]):
        outside("training-set size", n_train, f"{lo_hi[0]}..{lo_hi[1]}")
    ep = domain.get("epochs")
    if ep and not (ep[0] <= epoch <= ep[1]):
        outside("epoch", epoch, f"{ep[0]}..{ep[1]}")
    for key, label in (("lr", "learning rate"), ("lr_schedule", "learning-rate schedule"),
                       ("weight_decay", "weight decay"), ("permute_labels", "fraction of permuted labels")):
        allowed = domain.get(key)
        value = ref.get(key)
        if allowed and value is not None:
            ok = any(value == a or (isinstance(a, (int, float)) and isinstance(value, (int, float))
                                    and math.isclose(float(value), float(a), rel_tol=1e-9, abs_tol=1e-12))
                     for a in allowed)
            if not ok:
                outside(label, value, ", ".join(map(str, allowed)))
    return out


def load_default_model() -> GapModel:
    """The gap model shipped with topodnn (:data:`DEFAULT_MODEL_PATH`)."""
    if not DEFAULT_MODEL_PATH.is_file():
        raise ValueError(f"the shipped gap model {DEFAULT_MODEL_PATH} is missing from this installation; "
                         f"pass a model file written by `topodnn fit-gap` (--model)")
    return GapModel.load(DEFAULT_MODEL_PATH)


def predict_gap(
    checkpoint: Union[str, os.PathLike],
    model_file: Union[None, str, os.PathLike, GapModel] = None,
    *,
    n_samples: Optional[int] = None,
    data_dir: Optional[str] = None,
    train_acc: Optional[float] = None,
) -> dict[str, Any]:
    """Predict the generalisation gap of a checkpoint without its test labels.

    Parameters
    ----------
    checkpoint
        A checkpoint written by :func:`topodnn.training.train`; it must name the dataset (and
        subset) it was trained on.
    model_file
        A gap model file or a loaded :class:`GapModel`; default the shipped one
        (:func:`load_default_model`).
    n_samples
        Probe inputs of the functional graph; default: what the model was fitted with.
    data_dir
        Where the training data lives, overriding the checkpoint's ``data_dir``.
    train_acc
        Training accuracy in points; default: evaluated on the whole training split with the
        labels the network was trained on (:func:`train_metrics`).

    Returns
    -------
    dict
        ``predicted_gap``, ``train_acc``, ``estimated_test_acc``, ``model_mean_gap`` (the mean gap
        of the runs the model was fitted on; accuracy points), ``train_loss`` (nats), ``epoch``,
        ``net``, ``dataset``, ``n_train``, ``probe``, ``domain_warnings`` (one line per way the
        checkpoint lies outside the model's domain), ``summary``.

    Raises
    ------
    ValueError
        "checkpoint has no saved training-data reference" if the checkpoint does not say which
        dataset it was trained on; errors of :meth:`GapModel.load` for a bad model file.
    """
    from topodnn.training import model_from_checkpoint

    if model_file is None:
        gm = load_default_model()
    elif isinstance(model_file, GapModel):
        gm = model_file
    else:
        gm = GapModel.load(model_file)
    training_reference(_peek_checkpoint(checkpoint))  # fail early, before building anything
    model, ckpt = model_from_checkpoint(checkpoint)
    ref = training_reference(ckpt)
    topo = {**DEFAULT_TOPOLOGY, **{k: v for k, v in gm.metadata.get("topology", {}).items() if v is not None}}
    if n_samples is not None:
        topo["n_samples"] = int(n_samples)
    topo["max_dim"] = max(int(topo["max_dim"]), _max_dim_of(gm.feature_names))
    train_set = _train_set(ref, data_dir)
    needs_graph = any(is_topological(n) for n in gm.feature_names) or MEAN_ABS_CORR in gm.feature_names
    summary: dict[int, dict[str, Any]] = {}
    info: dict[str, Any] = {}
    if needs_graph:
        if topo.get("probe", "train") == "test":
            inputs = _test_inputs(ref, data_dir)
        elif topo.get("probe", "train") == "train":
            inputs = train_set.tensors[0]
        else:
            raise ValueError(f"gap model names an unknown probe {topo.get('probe')!r} (train or test)")
        summary, info = training_summary(model, inputs, n_samples=int(topo["n_samples"]),
                                         max_dim=int(topo["max_dim"]), max_epsilon=float(topo["max_epsilon"]),
                                         min_persistence=float(topo["min_persistence"]), return_info=True)
    loss, acc = train_metrics(model, train_set, ref)
    if train_acc is None:
        train_acc = acc
    epoch = int(ckpt.get("epoch", 0))
    net = str(ckpt.get("net"))
    n_train = int(ref["n_train_used"]) if ref.get("n_train_used") is not None else len(train_set)
    extra = {TRAIN_LOSS: loss, MEAN_ABS_CORR: info.get("mean_abs_corr"), "n_train": n_train,
             "net": net, "dataset": ref["dataset"]}
    gap = gm.predict_summary(summary, train_acc=train_acc, extra=extra)
    domain = gm.metadata.get("domain")
    warnings_ = domain_warnings(domain, net=net, dataset=ref["dataset"], n_train=n_train, epoch=epoch, ref=ref)
    if epoch == 0:
        warnings_.insert(0, "epoch 0 is the untrained network; no gap model describes it")
    mean_gap = (domain or {}).get("mean_gap", gm.intercept)
    return {
        "predicted_gap": float(gap),
        "train_acc": float(train_acc),
        "estimated_test_acc": float(train_acc) - float(gap),
        "model_mean_gap": float(mean_gap),
        "train_loss": float(loss),
        "epoch": epoch,
        "net": net,
        "dataset": ref["dataset"],
        "n_train": n_train,
        "probe": {k: topo[k] for k in ("probe", "n_samples", "max_dim", "max_epsilon", "min_persistence")},
        "predictor": gm.metadata.get("predictor"),
        "domain_warnings": warnings_,
        "summary": summary,
    }
