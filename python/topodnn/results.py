"""The results folder of one network on one dataset: its layout, atomic writes, verified reads.

This module is the one owner of the files a run leaves behind. Training, the command line and the
plots ask it for paths, artifacts and their contents; none of them builds a file name or parses a
file itself.

Layout of ``<save_path>/<net>_<dataset>/``
------------------------------------------
=========================================== ===================================================
``ckpt_trl<T>_epc<E>.pt``                   checkpoint of trial ``T`` after epoch ``E`` (epoch 0
                                            = initial weights), written by
                                            :func:`topodnn.training.train`
``resume_trl<T>.pt``                        state after the latest finished epoch when that
                                            epoch is not on the checkpoint schedule
``history_trl<T>.json``                     per-epoch losses and accuracies (:class:`History`)
``dgm_epc<E>_trl<T>.npz``                   persistence diagrams of epoch ``E``: ``dim0``,
                                            ``dim1``, ... ``(k, 2)`` float64 arrays in ε units,
                                            ``inf`` for essential classes, and the settings
                                            ``n_dims``, ``max_epsilon``, ``upper_dim``,
                                            ``n_samples``, ``n_nodes``, ``groups`` (node
                                            grouping, :mod:`topodnn.grouping`; an archive
                                            without it is ungrouped, ``"units"``)
``adj_epc<E>_trl<T>_<max_epsilon>.bin.out`` the same diagram in DIPHA's PERSISTENCE_DIAGRAM
                                            format (type 2), as the original study named it
``summaries_trl<T>.json`` / ``.csv``        per epoch and dimension: life, midlife, ...
``early_stop_trl<T>.json``                  the topological early-stopping record
``betti_<dim>_trl<T>.png``,                 plots
``life_midlife_<dim>_trl<T>.png``,
``training_trl<T>.png``
=========================================== ===================================================

Guarantees
----------
* **Atomic writes.** Every artifact is written to a temporary file in the same folder, flushed,
  fsynced and renamed over its name (:func:`atomic_write`). An interrupted or failed write leaves
  the previous file as it was and no temporary file behind.
* **Verified reads.** A diagram archive must open and hold the expected arrays, shapes, dtypes and
  settings; a DIPHA file must pass :func:`topodnn.io.validate_file`; a JSON file must parse and
  have the expected structure; a checkpoint must load. Anything else is a
  :class:`DamagedArtifact` naming the file and the reason, never a ``BadZipFile``, ``EOFError``
  or unpickling traceback.
* **Nothing is deleted.** A damaged file that is about to be recomputed is moved aside
  (:func:`move_aside`: renamed ``<name>.damaged``, ``<name>.damaged.1``, ...), never removed.

Units: ε is DIPHA's filtration value, half the edge length ``1 - |corr|``; accuracies are fractions
in [0, 1]; losses are mean negative log-likelihoods in nats per sample.
"""

from __future__ import annotations

import csv
import io as _bytes_io
import json
import math
import os
import re
import secrets
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "DamagedArtifact",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DamagedCheckpoint",
    "FORMAT_VERSION",
    "UNGROUPED",
    "History",
    "Diagrams",
    "SUMMARY_CSV_COLUMNS",
    "results_dir",
    "checkpoint_path",
    "resume_path",
    "history_path",
    "diagram_path",
    "dipha_path",
    "summaries_path",
    "early_stop_path",
    "betti_plot_path",
    "life_midlife_plot_path",
    "training_plot_path",
    "list_checkpoints",
    "diagram_epochs",
    "atomic_write",
    "move_aside",
    "save_checkpoint",
    "read_checkpoint",
    "latest_checkpoint",
    "remove_training_files",
    "history_from_mapping",
    "read_history",
    "write_history",
    "write_diagrams",
    "read_diagrams",
    "finished_diagrams",
    "read_summaries",
    "write_summaries",
    "write_early_stop",
    "save_figure",
]

#: Version of the checkpoint layout written by :func:`topodnn.training.train`.
FORMAT_VERSION = 1

_CKPT_RE = re.compile(r"^ckpt_trl(\d+)_epc(\d+)\.pt$")
_DGM_RE = re.compile(r"^dgm_epc(\d+)_trl(\d+)\.npz$")
_DIPHA_RE = re.compile(r"^adj_epc(\d+)_trl(\d+)_(.+)\.bin\.out$")
_REQUIRED_CHECKPOINT_KEYS = ("format_version", "net", "dataset", "dataset_info", "epoch", "trial",
                             "model_state", "model_kwargs", "optimizer_state", "scheduler_state", "rng",
                             "history", "args")
#: Numeric settings stored in a diagram archive besides the arrays (and the text ``groups``).
_DIAGRAM_SETTINGS = ("max_epsilon", "upper_dim", "n_samples")
#: ``groups`` of an archive written before grouping existed, and of a caller that names none.
UNGROUPED = "units"
#: Columns of ``summaries_trl<T>.csv``.
SUMMARY_CSV_COLUMNS = ("epoch", "dim", "life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area",
                       "train_acc", "test_acc", "n_essential")


# ----------------------------------------------------------------------------- errors


class DamagedArtifact(ValueError):
    """A file of a results folder exists but cannot be used: truncated, foreign or inconsistent.

    Attributes
    ----------
    path : pathlib.Path
        The damaged file.
    reason : str
        What is wrong with it, in a few words.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path} is damaged ({reason})")


class CheckpointError(ValueError):
    """A checkpoint is unreadable, foreign, too new, or does not match the request."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


class DamagedCheckpoint(DamagedArtifact, CheckpointError):
    """A checkpoint file is truncated or corrupt (a :class:`DamagedArtifact` and a :class:`CheckpointError`)."""


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- paths


def results_dir(save_path: PathLike, net: str, dataset: str) -> Path:
    """Folder of the results of one network on one dataset: ``<save_path>/<net>_<dataset>``.

    Network and dataset names are canonicalised (``"vgg"`` becomes ``"vgg16"``).
    """
    from .datasets import canonical_name as canonical_dataset
    from .networks import canonical_name

    return Path(save_path) / f"{canonical_name(net)}_{canonical_dataset(dataset)}"


def checkpoint_path(folder: PathLike, trial: int, epoch: int) -> Path:
    """Path of the checkpoint of ``trial`` after ``epoch`` in a results folder."""
    return Path(folder) / f"ckpt_trl{int(trial)}_epc{int(epoch)}.pt"


def resume_path(folder: PathLike, trial: int) -> Path:
    """Path of the rolling state of ``trial`` after an epoch off the checkpoint schedule."""
    return Path(folder) / f"resume_trl{int(trial)}.pt"


def history_path(folder: PathLike, trial: int) -> Path:
    """Path of the JSON history of ``trial`` in a results folder."""
    return Path(folder) / f"history_trl{int(trial)}.json"


def diagram_path(folder: PathLike, epoch: int, trial: int) -> Path:
    """Path of the diagram archive (``.npz``) of ``epoch`` of ``trial``."""
    return Path(folder) / f"dgm_epc{int(epoch)}_trl{int(trial)}.npz"


def dipha_path(folder: PathLike, epoch: int, trial: int, max_epsilon: float) -> Path:
    """Path of the DIPHA diagram file of ``epoch``, named as the original study named it."""
    return Path(folder) / f"adj_epc{int(epoch)}_trl{int(trial)}_{float(max_epsilon)}.bin.out"


def summaries_path(folder: PathLike, trial: int, ext: str = "json") -> Path:
    """Path of ``summaries_trl<T>.json`` (``ext="json"``) or ``.csv`` (``ext="csv"``)."""
    if ext not in ("json", "csv"):
        raise ValueError(f"summaries are written as json or csv, not {ext!r}")
    return Path(folder) / f"summaries_trl{int(trial)}.{ext}"


def early_stop_path(folder: PathLike, trial: int) -> Path:
    """Path of the topological early-stopping record of ``trial``."""
    return Path(folder) / f"early_stop_trl{int(trial)}.json"


def betti_plot_path(folder: PathLike, dim: int, trial: int) -> Path:
    """Path of the Betti-curve plot of dimension ``dim``."""
    return Path(folder) / f"betti_{int(dim)}_trl{int(trial)}.png"


def life_midlife_plot_path(folder: PathLike, dim: int, trial: int) -> Path:
    """Path of the life / midlife plot of dimension ``dim``."""
    return Path(folder) / f"life_midlife_{int(dim)}_trl{int(trial)}.png"


def training_plot_path(folder: PathLike, trial: int) -> Path:
    """Path of the training-curve plot."""
    return Path(folder) / f"training_trl{int(trial)}.png"


def list_checkpoints(folder: PathLike, trial: int) -> Dict[int, Path]:
    """Scheduled checkpoints of one trial in a results folder.

    Returns
    -------
    dict
        ``{epoch: path}`` sorted by epoch; empty if there are none (or no folder). The rolling
        ``resume_trl<T>.pt`` file and files moved aside are not listed. Files are listed, not
        verified (see :func:`read_checkpoint`).
    """
    folder = Path(folder)
    found: Dict[int, Path] = {}
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _CKPT_RE.match(entry.name)
            if match and int(match.group(1)) == int(trial) and entry.is_file():
                found[int(match.group(2))] = entry
    return dict(sorted(found.items()))


def _dipha_files(folder: Path, epoch: int, trial: int) -> list:
    out = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _DIPHA_RE.match(entry.name)
            if match and int(match.group(1)) == int(epoch) and int(match.group(2)) == int(trial):
                out.append(entry)
    return sorted(out)


def diagram_epochs(folder: PathLike, trial: int) -> list:
    """Epochs of ``trial`` with a diagram file (``.npz`` or the original's ``.bin.out``), sorted.

    Files are listed, not verified: a damaged file is reported when it is read.
    """
    folder = Path(folder)
    epochs = set()
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _DGM_RE.match(entry.name) or _DIPHA_RE.match(entry.name)
            if match and int(match.group(2)) == int(trial):
                epochs.add(int(match.group(1)))
    return sorted(epochs)


# ----------------------------------------------------------------------------- writing


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse it
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], Any], *,
                 verify: Optional[Callable[[Path], Any]] = None) -> Path:
    """Write a file atomically: temporary file in the same folder, flush, fsync, rename.

    Parameters
    ----------
    path : path-like
        The file to (re)write. Its folder is created if needed.
    write : callable
        ``write(handle)`` writes the content to a binary file handle.
    verify : callable, optional
        ``verify(temporary_path)`` is called after the content is on disk and before the rename;
        whatever it raises aborts the write.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Until the rename, an existing file at ``path`` is untouched; when ``write`` or ``verify``
    raises, the temporary file is removed and the exception propagates. The temporary file is
    named ``.<name>.<random>.tmp`` and created with the process's umask, so the result has the
    permissions of any other file the process creates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 32-bit random collision
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)
    return path


def move_aside(path: PathLike) -> Path:
    """Rename a damaged file to ``<name>.damaged`` (or ``.damaged.1``, ...) and return the new path.

    Nothing is overwritten: the first free name is taken.
    """
    path = Path(path)
    candidate = path.with_name(path.name + ".damaged")
    n = 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged.{n}")
    os.replace(path, candidate)
    return candidate


def _json_bytes(obj: Any, *, allow_nan: bool) -> bytes:
    return json.dumps(obj, indent=1, allow_nan=allow_nan).encode("utf-8")


def _write_json(path: Path, obj: Any, *, allow_nan: bool = False) -> Path:
    data = _json_bytes(obj, allow_nan=allow_nan)
    return atomic_write(path, lambda handle: handle.write(data))


def _read_json(path: Path) -> Any:
    """Parsed JSON of ``path``; :class:`FileNotFoundError` if missing, :class:`DamagedArtifact` if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DamagedArtifact(path, f"cannot be read: {_first_line(exc)}") from None
    if not raw:
        raise DamagedArtifact(path, "empty file")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedArtifact(path, f"not valid JSON: {_first_line(exc)}") from None


def save_figure(fig: Any, path: PathLike, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG, atomically."""
    return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=dpi))


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint (a dict of tensors and plain containers) with ``torch.save``, atomically."""
    import torch

    return atomic_write(path, lambda handle: torch.save(dict(state), handle))


def read_checkpoint(path: PathLike) -> dict:
    """Read and verify a checkpoint written by :func:`topodnn.training.train`, onto the CPU.

    Uses ``torch.load(map_location="cpu", weights_only=True)``: only tensors and plain Python
    containers are unpickled, whatever device wrote the file.

    Raises
    ------
    CheckpointNotFoundError
        The file does not exist (a :class:`FileNotFoundError` and a :class:`ValueError`).
    DamagedCheckpoint
        The file is empty, truncated, corrupt, holds objects other than tensors and containers,
        or lacks entries of the layout (a :class:`DamagedArtifact` and a :class:`CheckpointError`).
    CheckpointError
        The file is not a topodnn checkpoint or has an unknown ``format_version``.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise DamagedCheckpoint(path, "corrupt checkpoint: empty file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile,
            AttributeError, KeyError, IndexError, TypeError, ImportError) as exc:
        # torch raises many types on corrupt input
        raise DamagedCheckpoint(path, f"corrupt or unreadable checkpoint: {_first_line(exc)}") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a topodnn checkpoint (no format_version)")
    version = ckpt["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format_version {version!r}; this version of topodnn "
                              f"reads format_version {FORMAT_VERSION} (upgrade topodnn to read it)")
    missing = [key for key in _REQUIRED_CHECKPOINT_KEYS if key not in ckpt]
    if missing:
        raise DamagedCheckpoint(path, f"corrupt checkpoint: missing entries {missing}")
    return ckpt


def latest_checkpoint(folder: PathLike, trial: int, *,
                      on_damaged: Optional[Callable[[DamagedCheckpoint, Path], None]] = None
                      ) -> Optional[Tuple[Path, dict]]:
    """The latest good training state of ``trial``: a scheduled checkpoint or the resume file.

    Damaged candidates (see :class:`DamagedCheckpoint`) are moved aside with :func:`move_aside`
    and the next older one is tried.

    Parameters
    ----------
    folder : path-like
        A results folder.
    trial : int
        The trial.
    on_damaged : callable, optional
        ``on_damaged(error, moved_to)`` is called for each damaged file moved aside.

    Returns
    -------
    (path, checkpoint) or None
        The file and its content (see :func:`read_checkpoint`); None if no good state exists.

    Raises
    ------
    CheckpointError
        A candidate is foreign or too new (those are not moved aside).
    """
    folder = Path(folder)

    def damaged(exc: DamagedCheckpoint) -> None:
        moved = move_aside(exc.path)
        if on_damaged is not None:
            on_damaged(exc, moved)

    best: Optional[Tuple[Path, dict]] = None
    resume = resume_path(folder, trial)
    if resume.is_file():
        try:
            best = (resume, read_checkpoint(resume))
        except DamagedCheckpoint as exc:
            damaged(exc)
    for epoch, path in reversed(list(list_checkpoints(folder, trial).items())):
        if best is not None and int(best[1]["epoch"]) >= epoch:
            break
        try:
            ckpt = read_checkpoint(path)
        except DamagedCheckpoint as exc:
            damaged(exc)
            continue
        if best is None or int(ckpt["epoch"]) > int(best[1]["epoch"]):
            best = (path, ckpt)
        break
    return best


def remove_training_files(folder: PathLike, trial: int) -> None:
    """Delete the checkpoints, resume file and history of ``trial`` (a fresh start asked for).

    Files moved aside as damaged are kept.
    """
    folder = Path(folder)
    for path in [*list_checkpoints(folder, trial).values(), resume_path(folder, trial),
                 history_path(folder, trial)]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------- history


@dataclass(frozen=True)
class History:
    """Per-epoch record of one training run, as :func:`topodnn.training.train` writes it.

    Attributes
    ----------
    epochs : tuple of int
        Strictly increasing epochs (0 = evaluation before any step).
    train_acc, test_acc : tuple of float
        Accuracies as fractions in [0, 1], one per epoch.
    train_loss, test_loss : tuple of float or None
        Mean negative log-likelihoods (nats per sample); None when the record has none.
    lr : tuple of float or None
        Learning rate used during each epoch.
    epoch_time_s : tuple of float or None
        Wall seconds of each epoch's training and evaluation.
    stopped_at : int or None
        Epoch at which a callback stopped training.
    meta : dict
        The other entries (``net``, ``dataset``, ``trial``, ``seed``, ``permute_labels``).
    """

    epochs: Tuple[int, ...]
    train_acc: Tuple[float, ...]
    test_acc: Tuple[float, ...]
    train_loss: Optional[Tuple[float, ...]] = None
    test_loss: Optional[Tuple[float, ...]] = None
    lr: Optional[Tuple[float, ...]] = None
    epoch_time_s: Optional[Tuple[float, ...]] = None
    stopped_at: Optional[int] = None
    meta: Optional[dict] = None

    def accuracy(self, epoch: int) -> Tuple[float, float]:
        """``(train_acc, test_acc)`` of ``epoch``, fractions in [0, 1].

        Raises
        ------
        KeyError
            The history has no such epoch.
        """
        try:
            i = self.epochs.index(int(epoch))
        except ValueError:
            raise KeyError(f"the training history has no epoch {epoch} (it has "
                           f"{_epoch_range(self.epochs)})") from None
        return self.train_acc[i], self.test_acc[i]


def _epoch_range(epochs: Sequence[int]) -> str:
    if not epochs:
        return "no epoch"
    return f"epochs {epochs[0]}..{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}"


_SERIES_NAMES = {"train_acc": "train accuracy", "test_acc": "test accuracy", "train_loss": "train loss",
                 "test_loss": "test loss", "lr": "learning rate", "epoch_time_s": "epoch time"}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {value!r}, not a number")
    return float(value)


def history_from_mapping(history: Any) -> History:
    """Parse a training history: the one reader of the layout :func:`topodnn.training.train` writes.

    Parameters
    ----------
    history : dict, list of dicts or History
        The writer's layout: a dict of per-epoch lists ``epoch``, ``train_acc``, ``test_acc``
        (required) and ``train_loss``, ``test_loss``, ``lr``, ``epoch_time_s`` (optional), with
        ``stopped_at`` and the run's names; or the same per-epoch entries as a list of records
        ``{"epoch": e, "train_acc": ..., "test_acc": ...}``.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        A missing or misshapen entry, epochs not strictly increasing, or an accuracy outside
        [0, 1]. Accuracies are fractions; a history in percent is refused, not rescaled.
    """
    if isinstance(history, History):
        return history
    if isinstance(history, (list, tuple)):
        records = list(history)
        if not all(isinstance(r, Mapping) for r in records):
            raise ValueError("a history given as a list must be a list of per-epoch records (dicts)")
        keys = ("epoch", *_SERIES_NAMES)
        columns: dict = {}
        for key in keys:
            present = [key in r for r in records]
            if all(present) and records:
                columns[key] = [r[key] for r in records]
            elif any(present):
                raise ValueError(f"some per-epoch records have {key!r} and others do not")
        history = columns
    if not isinstance(history, Mapping):
        raise ValueError(f"a training history is a dict of per-epoch lists, not {type(history).__name__}")
    for key in ("train_acc", "test_acc", "epoch"):
        if key not in history:
            what = "epochs" if key == "epoch" else _SERIES_NAMES[key]
            raise ValueError(f"the training history has no {what} ({key!r}); it has {sorted(map(str, history))}")
    epochs_raw = history["epoch"]
    if not isinstance(epochs_raw, (list, tuple)):
        raise ValueError(f"'epoch' must be a list, not {type(epochs_raw).__name__}")
    epochs = []
    for e in epochs_raw:
        if isinstance(e, bool) or not isinstance(e, int) or e < 0:
            raise ValueError(f"epochs must be integers >= 0; got {e!r}")
        epochs.append(int(e))
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"epochs are not strictly increasing: {epochs}")
    series: dict = {}
    for key, what in _SERIES_NAMES.items():
        values = history.get(key)
        if values is None and key not in ("train_acc", "test_acc"):
            series[key] = None
            continue
        if not isinstance(values, (list, tuple)) or len(values) != len(epochs):
            size = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise ValueError(f"the {what} ({key!r}) must be a list of one value per epoch ({len(epochs)}); "
                             f"got {size}")
        series[key] = tuple(_number(v, f"the {what} of epoch {e}") for e, v in zip(epochs, values))
    for key in ("train_acc", "test_acc"):
        for e, v in zip(epochs, series[key]):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"the {_SERIES_NAMES[key]} of epoch {e} is {v:g}, not a fraction in [0, 1] "
                                 "(topodnn records accuracies as fractions)")
    stopped = history.get("stopped_at")
    if stopped is not None and (isinstance(stopped, bool) or not isinstance(stopped, int) or stopped not in epochs):
        raise ValueError(f"stopped_at is {stopped!r}, not one of the recorded epochs")
    meta = {k: v for k, v in history.items() if k not in ("epoch", "stopped_at", *_SERIES_NAMES)}
    return History(epochs=tuple(epochs), stopped_at=stopped, meta=meta, **series)


def read_history(folder: PathLike, trial: int) -> History:
    """Read and verify ``history_trl<T>.json`` (see :func:`history_from_mapping`).

    Raises
    ------
    FileNotFoundError
        There is no history file.
    DamagedArtifact
        The file is empty, not JSON, or not a training history.
    """
    path = history_path(folder, trial)
    data = _read_json(path)
    try:
        return history_from_mapping(data)
    except ValueError as exc:
        raise DamagedArtifact(path, str(exc)) from None


def write_history(folder: PathLike, trial: int, history: Mapping[str, Any]) -> Path:
    """Write ``history_trl<T>.json`` atomically (the dict as training keeps it; verified first).

    NaN and infinite losses (a diverged run) are written as JSON's ``NaN`` / ``Infinity``.
    """
    history_from_mapping(history)
    return _write_json(history_path(folder, trial), history, allow_nan=True)


# ----------------------------------------------------------------------------- diagrams


@dataclass(frozen=True)
class Diagrams:
    """The verified persistence diagrams of one epoch.

    Attributes
    ----------
    pairs : list of numpy.ndarray
        ``pairs[q]`` = ``(k, 2)`` float64 array of ``(birth, death)`` of H_q in ε units, ``inf``
        for essential classes.
    path : pathlib.Path
        The file they were read from (``.npz``, or the original's ``.bin.out``).
    max_epsilon : float or None
        Largest filtration value they were computed up to (None when unknown).
    upper_dim, n_samples, n_nodes : int or None
        DIPHA's ``--upper_dim``, the number of inputs and of graph nodes (None for a ``.bin.out``).
    groups : str or None
        Canonical text of the node grouping (:meth:`topodnn.grouping.Groups.text`; ``"units"``:
        every unit a node); None for a ``.bin.out``.
    """

    pairs: list
    path: Path
    max_epsilon: Optional[float] = None
    upper_dim: Optional[int] = None
    n_samples: Optional[int] = None
    n_nodes: Optional[int] = None
    groups: Optional[str] = None

    def settings(self) -> dict:
        """``{"max_epsilon", "upper_dim", "n_samples", "groups"}`` they were computed with."""
        return {"max_epsilon": self.max_epsilon, "upper_dim": self.upper_dim, "n_samples": self.n_samples,
                "groups": self.groups}


def _check_pairs(name: str, arr: np.ndarray) -> None:
    if arr.dtype != np.float64 or arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name!r} has shape {arr.shape} and dtype {arr.dtype}, expected (k, 2) float64")
    if arr.size and (np.isnan(arr).any() or not np.isfinite(arr[:, 0]).all() or (arr[:, 0] < 0).any()
                     or (arr[:, 1] < arr[:, 0]).any()):
        raise ValueError(f"{name!r} holds pairs that are not 0 <= birth <= death (NaN or out of order)")


def _scalar(z: Any, key: str, kind: str) -> Any:
    if key not in z.files:
        raise ValueError(f"no {key!r} entry")
    value = z[key]
    if value.shape != ():
        raise ValueError(f"{key!r} has shape {value.shape}, expected a scalar")
    if kind == "int":
        if not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{key!r} has dtype {value.dtype}, expected an integer")
        return int(value)
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise ValueError(f"{key!r} has dtype {value.dtype}, expected a number")
    return float(value)


def _text(z: Any, key: str, default: str) -> str:
    if key not in z.files:
        return default
    value = z[key]
    if value.shape != () or value.dtype.kind != "U":
        raise ValueError(f"{key!r} has shape {value.shape} and dtype {value.dtype}, expected a string")
    return str(value)


def _load_npz(path: Path) -> Diagrams:
    """Open and verify a diagram archive; raises :class:`DamagedArtifact`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise
    if size == 0:
        raise DamagedArtifact(path, "empty file")
    try:
        with open(path, "rb") as handle:  # our handle: closed whatever np.load makes of the bytes
            try:
                loaded = np.load(handle, allow_pickle=False)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                raise DamagedArtifact(path, f"not a readable npz archive: {_first_line(exc)}") from None
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DamagedArtifact(path, "holds a single array, not an npz archive of diagrams")
            with loaded as z:
                n_dims = _scalar(z, "n_dims", "int")
                settings = {"max_epsilon": _scalar(z, "max_epsilon", "float"),
                            "upper_dim": _scalar(z, "upper_dim", "int"),
                            "n_samples": _scalar(z, "n_samples", "int")}
                n_nodes = _scalar(z, "n_nodes", "int")
                settings["groups"] = _text(z, "groups", UNGROUPED)
                if n_dims < 1 or n_dims != settings["upper_dim"]:
                    raise ValueError(f"n_dims {n_dims} does not match upper_dim {settings['upper_dim']}")
                pairs = []
                for q in range(n_dims):
                    key = f"dim{q}"
                    if key not in z.files:
                        raise ValueError(f"no {key!r} array (n_dims is {n_dims})")
                    arr = z[key]
                    _check_pairs(key, arr)
                    pairs.append(np.array(arr, dtype=np.float64))
    except DamagedArtifact:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError) as exc:
        raise DamagedArtifact(path, f"truncated or corrupt npz archive: {_first_line(exc)}") from None
    except ValueError as exc:
        raise DamagedArtifact(path, str(exc)) from None
    return Diagrams(pairs=pairs, path=path, n_nodes=n_nodes, **settings)


def _load_dipha(path: Path) -> Diagrams:
    """Read and verify a DIPHA diagram file (type 2); raises :class:`DamagedArtifact`."""
    from . import io

    if not path.exists():
        raise FileNotFoundError(f"no diagram file {path}")
    try:
        pairs = io.read_diagram(path).pairs
    except ValueError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        prefix = f"{os.fspath(path)}: "
        raise DamagedArtifact(path, reason[len(prefix):] if reason.startswith(prefix) else reason) from None
    top = max(pairs, default=-1) + 1
    match = _DIPHA_RE.match(path.name)
    try:
        max_epsilon = float(match.group(3)) if match else None
    except ValueError:
        max_epsilon = None
    return Diagrams(pairs=[pairs.get(q, np.zeros((0, 2))) for q in range(top)], path=path,
                    max_epsilon=max_epsilon)


def write_diagrams(folder: PathLike, epoch: int, trial: int, pairs: Sequence[np.ndarray], *,
                   max_epsilon: float, upper_dim: int, n_samples: int, n_nodes: int,
                   essential_death: float, groups: str = UNGROUPED) -> Tuple[Path, Path]:
    """Write the diagrams of one epoch: the DIPHA ``.bin.out`` first, the ``.npz`` last.

    Parameters
    ----------
    folder : path-like
        The results folder.
    epoch, trial : int
        Which epoch of which trial.
    pairs : sequence of (k, 2) arrays
        ``pairs[q]`` for ``q = 0 .. upper_dim - 1``, ε units, ``inf`` for essential classes.
    max_epsilon : float
        Largest filtration value (names the ``.bin.out``).
    upper_dim, n_samples, n_nodes : int
        Settings stored in the archive.
    essential_death : float
        Death stored for essential classes in the DIPHA file: the largest filtration value of
        the complex.
    groups : str
        Canonical text of the node grouping the graph was built with
        (:meth:`topodnn.grouping.Groups.text`; ``"units"``: none).

    Returns
    -------
    (npz_path, dipha_path)

    Notes
    -----
    Both are written atomically and verified before their rename; the archive, whose presence
    marks the epoch as done, comes last. Should the archive's write fail after the DIPHA file's
    (a full disk), the two disagree in their number of pairs unless the diagrams are the same, and
    :func:`finished_diagrams` reports the pair as damaged.
    """
    from . import io

    pairs = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pairs]
    if len(pairs) != int(upper_dim):
        raise ValueError(f"{len(pairs)} diagrams given for upper_dim {upper_dim} (one per dimension "
                         f"0..{int(upper_dim) - 1})")
    # Both contents are built before either file is touched: a failing serialiser changes nothing.
    records = io.records_from_pairs(pairs, essential_death)
    archive = _bytes_io.BytesIO()
    if not isinstance(groups, str) or not groups:
        raise ValueError(f"groups must be the grouping's canonical text (e.g. 'units'), got {groups!r}")
    np.savez(archive, **{f"dim{q}": p for q, p in enumerate(pairs)}, n_dims=len(pairs), n_nodes=int(n_nodes),
             max_epsilon=float(max_epsilon), upper_dim=int(upper_dim), n_samples=int(n_samples),
             groups=np.str_(groups))
    raw = archive.getvalue()
    bin_out = dipha_path(folder, epoch, trial, max_epsilon)
    io.write_diagram(bin_out, records)
    npz = diagram_path(folder, epoch, trial)
    atomic_write(npz, lambda handle: handle.write(raw), verify=lambda tmp: _load_npz(Path(tmp)))
    return npz, bin_out


def read_diagrams(folder: PathLike, epoch: int, trial: int) -> Diagrams:
    """The verified diagrams of one epoch: the ``.npz``, else the original's ``.bin.out``.

    Raises
    ------
    FileNotFoundError
        Neither file exists.
    DamagedArtifact
        The file that exists is damaged (a damaged ``.npz`` is not replaced by a ``.bin.out``).
    """
    folder = Path(folder)
    npz = diagram_path(folder, epoch, trial)
    if npz.exists():
        return _load_npz(npz)
    legacy = _dipha_files(folder, epoch, trial)
    if legacy:
        return _load_dipha(legacy[0])
    raise FileNotFoundError(f"no diagrams of epoch {epoch} of trial {trial} in {folder}")


def finished_diagrams(folder: PathLike, epoch: int, trial: int, settings: Mapping[str, Any]) -> Optional[Diagrams]:
    """The diagrams of an epoch if it is finished with these settings, else None.

    An epoch is finished when its ``.npz`` holds diagrams computed with ``settings``
    (``max_epsilon``, ``upper_dim``, ``n_samples`` and ``groups``, the node grouping's canonical
    text; ``groups`` absent from ``settings`` or from an older archive means ``"units"``, no
    grouping) and its ``.bin.out`` for that ``max_epsilon`` is a valid DIPHA diagram file with as
    many records as the archive has pairs.

    Raises
    ------
    DamagedArtifact
        The ``.npz`` or the ``.bin.out`` is damaged (recompute the epoch; move the file aside
        first with :func:`move_aside`).
    """
    from . import io

    npz = diagram_path(folder, epoch, trial)
    if not npz.exists():
        return None
    dgms = _load_npz(npz)
    if any(float(getattr(dgms, k)) != float(settings[k]) for k in _DIAGRAM_SETTINGS):
        return None
    if dgms.groups != settings.get("groups", UNGROUPED):
        return None
    bin_out = dipha_path(folder, epoch, trial, float(settings["max_epsilon"]))
    if not bin_out.exists():
        return None
    try:
        info = io.validate_file(bin_out)
        if info["type"] != io.PERSISTENCE_DIAGRAM:
            raise ValueError(f"{bin_out}: is a file of type {info['type']}, expected type 2")
        n_pairs = sum(len(p) for p in dgms.pairs)
        if info["count"] != n_pairs:
            raise ValueError(f"{bin_out}: holds {info['count']} records where {npz.name} holds {n_pairs} pairs")
    except ValueError as exc:
        reason = str(exc).strip().splitlines()[0]
        prefix = f"{os.fspath(bin_out)}: "
        raise DamagedArtifact(bin_out, reason[len(prefix):] if reason.startswith(prefix) else reason) from None
    return dgms


# ----------------------------------------------------------------------------- summaries and records


def read_summaries(folder: PathLike, trial: int) -> dict:
    """``summaries_trl<T>.json`` as a dict ``{"epochs": {"<epoch>": entry}, ...}``.

    Returns ``{"epochs": {}}`` if there is no file.

    Raises
    ------
    DamagedArtifact
        The file is empty, not JSON, or not a summaries record (each entry a dict with ``dims``).
    """
    path = summaries_path(folder, trial, "json")
    try:
        data = _read_json(path)
    except FileNotFoundError:
        return {"epochs": {}}
    if not isinstance(data, dict) or not isinstance(data.get("epochs"), dict):
        raise DamagedArtifact(path, "not a summaries record (no 'epochs' table)")
    for epoch, entry in data["epochs"].items():
        if not str(epoch).isdigit() or not isinstance(entry, dict) or not isinstance(entry.get("dims"), dict):
            raise DamagedArtifact(path, f"entry {epoch!r} is not an epoch's summaries")
    return data


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_summaries(folder: PathLike, trial: int, data: Mapping[str, Any]) -> Tuple[Path, Path]:
    """Write ``summaries_trl<T>.json`` and ``.csv`` atomically, epochs in increasing order.

    Non-finite values are written as JSON ``null`` and empty CSV cells.

    Returns
    -------
    (json_path, csv_path)
    """
    epochs = sorted(data["epochs"], key=int)
    data = _finite_or_none({**data, "epochs": {str(e): data["epochs"][e] for e in epochs}})
    # Both contents are built before either file is touched: a failing serialiser changes nothing.
    raw_json = _json_bytes(data, allow_nan=False)
    text = _bytes_io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(SUMMARY_CSV_COLUMNS)
    for e in epochs:
        entry = data["epochs"][str(e)]
        for q in sorted(entry["dims"], key=int):
            row = {"epoch": int(e), "dim": int(q), **entry["dims"][q],
                   "train_acc": entry.get("train_acc"), "test_acc": entry.get("test_acc")}
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in SUMMARY_CSV_COLUMNS])
    raw_csv = text.getvalue().encode("utf-8")
    jpath = atomic_write(summaries_path(folder, trial, "json"), lambda handle: handle.write(raw_json))
    cpath = atomic_write(summaries_path(folder, trial, "csv"), lambda handle: handle.write(raw_csv))
    return jpath, cpath


def write_early_stop(folder: PathLike, trial: int, record: Mapping[str, Any]) -> Path:
    """Write ``early_stop_trl<T>.json`` atomically (numbers that are not plain floats are cast)."""
    data = json.dumps(record, indent=1, default=float).encode("utf-8")
    return atomic_write(early_stop_path(folder, trial), lambda handle: handle.write(data))
