"""Generalisation-gap prediction without a test set.

The gap of a trained network is ``train accuracy - test accuracy`` (accuracy points, 0-100), the
training accuracy evaluated at the checkpoint's weights on its whole training split with the labels
it was trained on (permuted ones included: a memorising network has a large gap). It
correlates with the topology of the network's functional graph; a linear model fitted across
networks, datasets, label noise and epochs predicts it from topological summaries alone, so the
test accuracy of a new network is estimated as ``train accuracy - predicted gap`` without touching
a test set.

Which data
----------
Every summary used here, when fitting and when predicting, is computed on the functional graph of
the first ``n_samples`` inputs of the *training* set, in order (the training split exactly as
:func:`topodnn.datasets.load_dataset` returns it for the dataset, ``data_dir``, ``n_train`` and
``seed`` recorded in the checkpoint; label permutation changes labels only, not inputs). The
original pipeline built the graph on the first 1000 *test* images; that would make "without a test
set" untrue, so it is not done here. For the same reason the diagrams that ``topodnn run``
writes (``dgm_epc<E>_trl<T>.npz``, built on test inputs as in the original) are not used:
``fit-gap`` computes its own training-input summaries and caches them next to each checkpoint
(``<checkpoint stem>.train_summary.json``, tagged with the topology settings). Fitting and prediction must see the same kind of summary: the
model file records ``n_samples``, ``max_dim``, ``max_epsilon`` and ``min_persistence`` and
prediction uses them.

Features
--------
By default the six summaries of :func:`topodnn.summaries.summarise` for H1 and H2 -- ``life``,
``midlife``, ``betti_max``, ``eps_at_max``, ``n_pairs``, ``area`` -- named ``"<stat>_<dim>"``
(12 features; ``feature_names(stats, dims)`` chooses others). A statistic that is undefined (life,
midlife, eps_at_max of a dimension with no pair: NaN) is replaced by the training mean of that
feature, i.e. contributes nothing; the count features (``n_pairs``, ``betti_max`` = 0) still say
that the dimension is empty. ``with_train_acc=True`` (``--with-train-acc``) appends the training
accuracy itself: it is known without a test set, and where labels were noisy it carries what no
function of the network can (two networks computing the same function, trained on clean or on
half-permuted labels, have the same graph but gaps of 0 and about -40 points early in training).

Model
-----
Features are standardised with the training means and standard deviations (a constant feature gets
scale 1). The coefficients solve ridge regression with an unpenalised intercept,

    min_b ||y - mean(y) - Z b||^2 + ridge * ||b||^2,   Z = standardised features,

through ``numpy.linalg.lstsq`` on the augmented system ``[Z; sqrt(ridge) I] b = [y - mean(y); 0]``.
``ridge=0`` is ordinary least squares with intercept. The default ``ridge=1.0`` is negligible next
to the ``n`` rows when the features are independent but keeps collinear ones (``n_pairs``,
``betti_max`` and ``area`` of one dimension move together) from blowing up. Fitting needs at least
``n_features + 2`` observations (one observation = one checkpoint: a network at one epoch), so that
the least-squares fit with intercept keeps a residual degree of freedom.

Validation groups observations by *run* (one training run = all its checkpoints):
:func:`leave_one_run_out` refits without each run in turn and predicts its checkpoints, so no
epoch of a held-out run is seen in training.
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

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_STATS",
    "DEFAULT_DIMS",
    "feature_names",
    "features_from_summary",
    "GapModel",
    "fit_gap_model",
    "leave_one_run_out",
    "pearson_r",
    "Observation",
    "collect_observations",
    "training_summary",
    "training_reference",
    "labels_as_trained",
    "train_accuracy",
    "checkpoint_summary",
    "summary_cache_path",
    "store_summary",
    "load_cached_summary",
    "observations_to_xy",
    "predict_gap",
    "register_cli",
]

FORMAT_NAME = "topodnn-gap-model"
FORMAT_VERSION = 1

DEFAULT_STATS = ("life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area")
DEFAULT_DIMS = (1, 2)

#: Topology settings of the summaries, shared by fitting and prediction unless overridden.
DEFAULT_TOPOLOGY = {"n_samples": 1000, "max_dim": 2, "max_epsilon": 0.3, "min_persistence": 0.02}


#: The one feature that is not topological: the training accuracy (points), known without a test
#: set. Off by default (the method's claim is about topology alone); see the module notes.
TRAIN_ACC = "train_acc"


def feature_names(
    stats: Sequence[str] = DEFAULT_STATS,
    dims: Sequence[int] = DEFAULT_DIMS,
    *,
    with_train_acc: bool = False,
) -> list[str]:
    """Feature names ``"<stat>_<dim>"`` in a fixed order (dimension-major), then ``train_acc``."""
    known = set(DEFAULT_STATS) | {"n_essential"}
    bad = [s for s in stats if s not in known]
    if bad:
        raise ValueError(f"unknown summary statistic(s) {bad}; choose from {sorted(known)}")
    if not stats or not dims:
        raise ValueError("need at least one statistic and one dimension")
    names = [f"{s}_{int(d)}" for d in dims for s in stats]
    return names + [TRAIN_ACC] if with_train_acc else names


def _split_name(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"([a-z_]+)_(\d+)", name)
    if m is None:
        raise ValueError(f"feature name {name!r} is not of the form '<stat>_<dim>' or 'train_acc'")
    return m.group(1), int(m.group(2))


def _check_name(name: str) -> None:
    if name != TRAIN_ACC:
        _split_name(name)


def _max_dim_of(names: Sequence[str]) -> int:
    dims = [_split_name(n)[1] for n in names if n != TRAIN_ACC]
    return max(dims) if dims else 0


def features_from_summary(
    summary: Mapping[Any, Mapping[str, float]],
    names: Sequence[str],
    *,
    train_acc: Optional[float] = None,
) -> np.ndarray:
    """Feature vector of one summary (NaN where a statistic is undefined).

    Parameters
    ----------
    summary
        ``{dim: {stat: value}}`` (dimension keys int or str).
    names
        Feature names ``"<stat>_<dim>"`` (and ``"train_acc"``).
    train_acc
        Training accuracy in points; required when ``names`` holds ``"train_acc"``.

    Raises
    ------
    ValueError
        If a requested dimension or statistic is absent from the summary (e.g. a feature of H2
        with a summary computed with ``max_dim=1``).
    """
    out = np.empty(len(names), dtype=float)
    for i, name in enumerate(names):
        if name == TRAIN_ACC:
            if train_acc is None or not math.isfinite(float(train_acc)):
                raise ValueError("feature 'train_acc' needs the training accuracy (points)")
            out[i] = float(train_acc)
            continue
        stat, dim = _split_name(name)
        entry = summary.get(dim, summary.get(str(dim))) if isinstance(summary, Mapping) else None
        if entry is None:
            raise ValueError(
                f"summary has no homology dimension {dim} (needed by feature {name!r}); compute "
                f"topology with max_dim >= {dim}"
            )
        if stat not in entry:
            raise ValueError(f"summary of dimension {dim} has no statistic {stat!r}")
        value = entry[stat]
        out[i] = math.nan if value is None else float(value)
    return out


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


def min_observations(n_features: int) -> int:
    """Fewest observations :func:`fit_gap_model` accepts: ``n_features + 2``."""
    return int(n_features) + 2


@dataclass
class GapModel:
    """Linear model ``gap = intercept + sum_j coef_j * (x_j - mean_j) / scale_j``.

    Attributes
    ----------
    feature_names : list of str
        ``"<stat>_<dim>"`` names, in the order of the columns of ``X``.
    coef : ndarray
        Coefficients on standardised features (accuracy points per standard deviation).
    intercept : float
        Predicted gap at the mean feature vector (accuracy points).
    means, scales : ndarray
        Standardisation (means also impute undefined features).
    ridge : float
        Ridge penalty used (0 = ordinary least squares).
    n_runs : int
        Distinct runs in the training data (= observations when no run ids were given).
    n_observations : int
        Rows used in the fit.
    metadata : dict
        Free-form: topology settings (``n_samples``, ``max_dim``, ``max_epsilon``,
        ``min_persistence``, ``data``), training residual MAE, where the runs came from.
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
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X must have {len(self.feature_names)} columns ({', '.join(self.feature_names)}); "
                f"got shape {X.shape}"
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
        self, summary: Mapping[Any, Mapping[str, float]], *, train_acc: Optional[float] = None
    ) -> float:
        """Predicted gap of one topological summary (and training accuracy, if a feature)."""
        x = features_from_summary(summary, self.feature_names, train_acc=train_acc)
        return float(self.predict(x)[0])

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
            coef = np.asarray(d["coefficients"], dtype=float)
            means = np.asarray(d["means"], dtype=float)
            scales = np.asarray(d["scales"], dtype=float)
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
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: gap model is missing or has a malformed field ({exc})") from None
        k = len(names)
        if not (coef.shape == means.shape == scales.shape == (k,)):
            raise ValueError(f"{source}: coefficients, means and scales must each have {k} entries")
        if not (np.isfinite(coef).all() and np.isfinite(means).all() and (scales > 0).all()):
            raise ValueError(f"{source}: non-finite coefficients/means or non-positive scales")
        for n in names:
            _check_name(n)
        return model

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "GapModel":
        """Read a model written by :meth:`save`; ValueError for anything else."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise ValueError(f"gap model file {str(p)!r} does not exist") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p} is not a topodnn gap model (not JSON: {exc.msg})") from None
        return cls.from_dict(d, source=str(p))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
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
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
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
        Features, one row per observation (a network at one epoch); NaN = undefined.
    y : array_like, shape (n,)
        True gaps, train accuracy - test accuracy, in accuracy points.
    feature_names : sequence of str, optional
        Column names ``"<stat>_<dim>"`` (see :func:`feature_names`).
    ridge : float, default 1.0
        Ridge penalty on the standardised coefficients (0 = ordinary least squares).
    run_ids : sequence, optional
        Run of each row; only used to record ``n_runs``.
    metadata : mapping, optional
        Stored in the model file (topology settings, provenance).

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
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    defined = ~np.isnan(X)
    empty = [names[j] for j in range(k) if not defined[:, j].any()]
    if empty:
        raise ValueError(f"feature(s) {empty} are undefined (NaN) in every observation; drop them")
    means = np.array([X[defined[:, j], j].mean() for j in range(k)])
    Xf = np.where(defined, X, means)
    scales = Xf.std(axis=0)
    scales = np.where(scales > 1e-12 * np.maximum(1.0, np.abs(means)), scales, 1.0)
    Z = (Xf - means) / scales
    y_mean = float(y.mean())
    yc = y - y_mean
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


def leave_one_run_out(
    X: Any,
    y: Any,
    run_ids: Sequence[Any],
    *,
    feature_names: Optional[Sequence[str]] = None,
    ridge: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Leave-one-run-out predictions and their mean absolute error.

    For each distinct run id, fit on the other runs' rows and predict the held-out run's rows.

    Returns
    -------
    predictions : ndarray, shape (n,)
        Out-of-run predicted gap of every row (accuracy points).
    mae : float
        Mean absolute error of those predictions, accuracy points.

    Raises
    ------
    ValueError
        Fewer than 2 runs, or a fold whose training part has fewer than ``k + 2`` rows.
    """
    X, y, names = _check_xy(X, y, feature_names)
    ids = np.asarray([str(r) for r in run_ids])
    if ids.shape != (X.shape[0],):
        raise ValueError(f"run_ids has {ids.size} entries for {X.shape[0]} observations")
    runs = list(dict.fromkeys(ids))
    if len(runs) < 2:
        raise ValueError(f"leave-one-run-out needs at least 2 runs, got {len(runs)}")
    pred = np.empty_like(y)
    for r in runs:
        test = ids == r
        model = fit_gap_model(X[~test], y[~test], feature_names=names, ridge=ridge)
        pred[test] = model.predict(X[test])
    return pred, float(np.mean(np.abs(pred - y)))


# --------------------------------------------------------------------------------------------
# Checkpoints, training data and the pipeline pieces
# --------------------------------------------------------------------------------------------

_CKPT_RE = re.compile(r"ckpt_trl(\d+)_epc(\d+)\.pt$")


def training_reference(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """Which training data a checkpoint was trained on (dataset, data_dir, n_train, seed).

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
    return {
        "dataset": str(dataset),
        "data_dir": args.get("data_dir"),
        "n_train": args.get("n_train"),
        "n_test": args.get("n_test"),
        "training_seed": args.get("seed"),
        "permute_labels": float(args.get("permute_labels", 0.0) or 0.0),
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
    # the embedded sample's train/test split, which training always draws with the default.
    train_set, _test, _info = load_dataset(ref["dataset"], **kwargs)
    if len(train_set) < 2:
        raise ValueError(f"training set of {ref['dataset']!r} has fewer than 2 inputs")
    return train_set


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


def train_accuracy(model: Any, train_set: Any, ref: Mapping[str, Any]) -> float:
    """Accuracy (points, 0-100) of ``model`` on its whole training split, labels as trained.

    Evaluated at the checkpoint's weights in eval mode. (The ``train_acc`` that training records
    for epochs >= 1 is the running mean over the epoch's mini-batches, i.e. over changing weights
    and with dropout on; it lags the checkpoint, by tens of points in the first epochs.)
    """
    from torch.utils.data import TensorDataset

    from topodnn.training import evaluate

    images, labels = train_set.tensors[0], train_set.tensors[1]
    labels = labels_as_trained(labels, ref.get("permute_labels", 0.0), ref.get("training_seed"))
    return 100.0 * float(evaluate(model, TensorDataset(images, labels))[1])


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
) -> dict[int, dict[str, Any]]:
    """Topological summary of ``model`` on the first ``n_samples`` training inputs."""
    from topodnn.pipeline import topology
    from topodnn.summaries import summarise_diagrams

    model.eval()
    diagrams = topology(
        model,
        inputs[:n_samples],
        layers=layers,
        max_dim=max_dim,
        max_epsilon=max_epsilon,
        n_samples=n_samples,
        comm=comm,
        progress=False,
    )
    return summarise_diagrams(diagrams, min_persistence=min_persistence, max_epsilon=max_epsilon)


@dataclass
class Observation:
    """One checkpoint: its run, epoch, accuracies (points) and training-data summary."""

    run_id: str
    checkpoint: str
    epoch: int
    train_acc: float
    test_acc: float
    summary: dict[int, dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return self.train_acc - self.test_acc


def summary_cache_path(checkpoint: Union[str, os.PathLike]) -> Path:
    """Where the training-data summary of a checkpoint is cached (next to it)."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".train_summary.json")


def _topology_key(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in ("n_samples", "max_dim", "max_epsilon", "min_persistence")}


def load_cached_summary(
    path: Union[str, os.PathLike], settings: Mapping[str, Any]
) -> Optional[tuple[dict[int, dict[str, Any]], float]]:
    """(summary, train_acc) from a cache file made with the same settings, else None."""
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
    return summary, float(d["train_acc"])


def store_summary(
    path: Union[str, os.PathLike], summary: Mapping[int, Any], train_acc: float, settings: Mapping[str, Any]
) -> None:
    """Write the cache file read by :func:`load_cached_summary`."""
    Path(path).write_text(
        json.dumps(
            {"data": "train", "settings": _jsonable(_topology_key(settings)), "train_acc": float(train_acc),
             "summary": _jsonable(summary)},
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
) -> tuple[dict[int, dict[str, Any]], float, dict[str, Any]]:
    """Training-data summary and training accuracy of one checkpoint (cached next to it).

    Returns ``(summary, train_acc, ckpt)``; ``train_acc`` in points, see :func:`train_accuracy`.
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
        return cached[0], cached[1], ckpt
    model, ckpt = model_from_checkpoint(checkpoint)
    ref = training_reference(ckpt)
    key = json.dumps(_jsonable({**ref, "data_dir": data_dir or ref.get("data_dir")}), sort_keys=True)
    if data_cache is not None and key in data_cache:
        train_set = data_cache[key]
    else:
        train_set = _train_set(ref, data_dir)
        if data_cache is not None:
            data_cache[key] = train_set
    summary = training_summary(model, train_set.tensors[0], n_samples=n_samples, max_dim=max_dim,
                               max_epsilon=max_epsilon, min_persistence=min_persistence)
    acc = train_accuracy(model, train_set, ref)
    try:  # written (or refreshed, with cache=False) for the next fit or prediction
        store_summary(cpath, summary, acc, settings)
    except OSError:
        pass  # read-only results: recompute next time
    return summary, acc, ckpt


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
    """(summary, true gap) of every checkpoint under the given results directories.

    Checkpoints are the ``ckpt_trl<T>_epc<E>.pt`` files written by :func:`topodnn.training.train`
    (searched recursively). The summary is computed on the checkpoint's own training inputs (see
    the module notes) and cached, with the training accuracy, as
    ``<checkpoint stem>.train_summary.json``; a cache made with other topology settings is
    recomputed. True gap = training accuracy (:func:`train_accuracy`) - the test accuracy the
    checkpoint's history records for its epoch. The run id is ``<directory>:trl<T>``.

    Parameters
    ----------
    epochs
        Use only checkpoints of these epochs (default: all).
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
        if wanted is not None and epoch not in wanted:
            continue
        summary, train_acc, ckpt = checkpoint_summary(
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
            )
        )
        if progress:
            print(f"[fit-gap] {p}: gap {out[-1].gap:.2f} points", flush=True)
    return out


def observations_to_xy(
    observations: Sequence[Observation], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Stack observations into ``(X, y, run_ids)``."""
    X = np.array([features_from_summary(o.summary, names, train_acc=o.train_acc) for o in observations],
                 dtype=float)
    y = np.array([o.gap for o in observations], dtype=float)
    return X.reshape(len(observations), len(names)), y, [o.run_id for o in observations]


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


def predict_gap(
    checkpoint: Union[str, os.PathLike],
    model_file: Union[str, os.PathLike, GapModel],
    *,
    n_samples: Optional[int] = None,
    data_dir: Optional[str] = None,
    train_acc: Optional[float] = None,
) -> dict[str, Any]:
    """Predict the generalisation gap of a checkpoint from its training data alone.

    Parameters
    ----------
    checkpoint
        A checkpoint written by :func:`topodnn.training.train`; it must name the dataset (and
        subset) it was trained on.
    model_file
        A gap model file (or a loaded :class:`GapModel`).
    n_samples
        Training inputs used for the functional graph; default: what the model was fitted with.
    data_dir
        Where the training data lives, overriding the checkpoint's ``data_dir``.
    train_acc
        Training accuracy in points; default: evaluated on the whole training split with the
        labels the network was trained on (:func:`train_accuracy`).

    Returns
    -------
    dict
        ``predicted_gap``, ``train_acc``, ``estimated_test_acc`` (accuracy points), and
        ``epoch``, ``dataset``, ``summary``.

    Raises
    ------
    ValueError
        "checkpoint has no saved training-data reference" if the checkpoint does not say which
        dataset it was trained on; errors of :meth:`GapModel.load` for a bad model file.
    """
    from topodnn.training import load_checkpoint, model_from_checkpoint

    gm = model_file if isinstance(model_file, GapModel) else GapModel.load(model_file)
    training_reference(_peek_checkpoint(checkpoint))  # fail early, before building anything
    ckpt = load_checkpoint(checkpoint)
    ref = training_reference(ckpt)
    topo = {**DEFAULT_TOPOLOGY, **{k: v for k, v in gm.metadata.get("topology", {}).items() if v is not None}}
    if n_samples is not None:
        topo["n_samples"] = int(n_samples)
    max_dim_needed = _max_dim_of(gm.feature_names)
    topo["max_dim"] = max(int(topo["max_dim"]), max_dim_needed)
    model, ckpt = model_from_checkpoint(checkpoint)
    train_set = _train_set(ref, data_dir)
    summary = training_summary(model, train_set.tensors[0], n_samples=int(topo["n_samples"]),
                               max_dim=int(topo["max_dim"]), max_epsilon=float(topo["max_epsilon"]),
                               min_persistence=float(topo["min_persistence"]))
    epoch = int(ckpt.get("epoch", 0))
    if train_acc is None:
        train_acc = train_accuracy(model, train_set, ref)
    gap = gm.predict_summary(summary, train_acc=train_acc)
    return {
        "predicted_gap": float(gap),
        "train_acc": float(train_acc),
        "estimated_test_acc": float(train_acc) - float(gap),
        "epoch": epoch,
        "dataset": ref["dataset"],
        "summary": summary,
    }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def register_cli(subparsers: Any) -> None:
    """Add ``fit-gap`` and ``predict-gap`` to the ``topodnn`` argparse parser."""
    p = subparsers.add_parser(
        "fit-gap",
        help="fit the generalisation-gap model on results directories",
        description="Fit a linear model of the generalisation gap (train - test accuracy, points) on "
        "topological summaries of the training-data functional graph of every checkpoint under "
        "RESULTS_DIR. Summaries are cached next to the checkpoints.",
    )
    p.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    p.add_argument("--out", default="gap_model.json", help="model file to write (JSON)")
    p.add_argument("--stats", default=",".join(DEFAULT_STATS), help="comma-separated statistics")
    p.add_argument("--dims", default="1,2", help="comma-separated homology dimensions")
    p.add_argument("--ridge", type=float, default=1.0, help="ridge penalty (0 = OLS)")
    p.add_argument("--with-train-acc", action="store_true",
                   help="also use the training accuracy as a (non-topological) feature")
    p.add_argument("--epochs", default=None, help="comma-separated epochs to use (default: all)")
    p.add_argument("--n-samples", type=int, default=DEFAULT_TOPOLOGY["n_samples"])
    p.add_argument("--max-epsilon", type=float, default=DEFAULT_TOPOLOGY["max_epsilon"])
    p.add_argument("--min-persistence", type=float, default=DEFAULT_TOPOLOGY["min_persistence"])
    p.add_argument("--data-dir", default=None, help="override the checkpoints' data directory")
    p.add_argument("--no-cache", action="store_true", help="recompute summaries even where a cache exists (and rewrite the caches)")
    p.set_defaults(func=_cli_fit_gap)

    q = subparsers.add_parser(
        "predict-gap",
        help="predict a checkpoint's generalisation gap without a test set",
        description="Predict train - test accuracy of CHECKPOINT from the topology of its training "
        "data, and the test accuracy it implies.",
    )
    q.add_argument("checkpoint", metavar="CHECKPOINT")
    q.add_argument("--model", required=True, help="gap model file written by fit-gap")
    q.add_argument("--n-samples", type=int, default=None, help="default: the model's")
    q.add_argument("--data-dir", default=None)
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=_cli_predict_gap)


def _csv(text: Optional[str], cast: Any) -> Optional[list]:
    if text is None:
        return None
    return [cast(t) for t in str(text).split(",") if t.strip()]


def _cli_fit_gap(args: Any) -> int:
    stats = _csv(args.stats, str)
    dims = _csv(args.dims, int)
    names = feature_names(stats, dims, with_train_acc=args.with_train_acc)
    topo = {"n_samples": args.n_samples, "max_dim": max(dims), "max_epsilon": args.max_epsilon,
            "min_persistence": args.min_persistence}
    obs = collect_observations(
        args.results_dirs, epochs=_csv(args.epochs, int), data_dir=args.data_dir,
        cache=not args.no_cache, progress=True, **topo,
    )
    if not obs:
        raise ValueError(f"no checkpoints (ckpt_trl*_epc*.pt) under {args.results_dirs}")
    X, y, runs = observations_to_xy(obs, names)
    meta: dict[str, Any] = {"topology": {**topo, "data": "train"}, "results_dirs": args.results_dirs}
    n_runs = len(set(runs))
    if n_runs >= 2:
        try:
            pred, mae = leave_one_run_out(X, y, runs, feature_names=names, ridge=args.ridge)
            meta["loo_mae"] = mae
            meta["loo_pearson_r"] = pearson_r(pred, y)
        except ValueError as exc:
            meta["loo_note"] = str(exc)
    model = fit_gap_model(X, y, feature_names=names, ridge=args.ridge, run_ids=runs, metadata=meta)
    model.save(args.out)
    print(f"fitted on {model.n_observations} checkpoints from {model.n_runs} runs -> {args.out}")
    print(f"training MAE: {model.metadata['train_mae']:.3f} points")
    if "loo_mae" in meta:
        print(f"leave-one-run-out MAE: {meta['loo_mae']:.3f} points (Pearson r {meta['loo_pearson_r']:.3f})")
    return 0


def _cli_predict_gap(args: Any) -> int:
    res = predict_gap(args.checkpoint, args.model, n_samples=args.n_samples, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(_jsonable({k: v for k, v in res.items()}), indent=2))
    else:
        print(f"checkpoint: {args.checkpoint} (epoch {res['epoch']}, trained on {res['dataset']})")
        print(f"train accuracy:          {res['train_acc']:.2f} %")
        print(f"predicted gap:           {res['predicted_gap']:.2f} points")
        print(f"estimated test accuracy: {res['estimated_test_acc']:.2f} %")
    return 0
