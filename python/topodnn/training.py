"""Training with resumable checkpoints, as in the original study but restartable.

The recipe is the original one: SGD (momentum 0.9, weight decay 5e-4),
negative log-likelihood on the networks' log-softmax outputs (= cross-entropy),
training batches of 128 and test batches of 100, an evaluation at epoch 0
before any step, checkpoints of epochs 0..10 and then every ``save_every``
epochs (the last epoch is always saved), the learning rate halved by
``ReduceLROnPlateau(factor=0.5)`` -- with one change: by default the scheduler
follows the *training* loss (``lr_schedule="train_loss"``, mode min). The
original stepped it on the test accuracy (``lr_schedule="test_acc"``, mode
max), so the test set steered training; that makes no run "without a test
set", and it is kept only to reproduce the original. ``lr_schedule="none"``
keeps the learning rate constant.

What the original lacked and this module adds:

* **Resume.** Every finished epoch leaves the full training state on disk
  (model, optimizer, scheduler, random-number generators, history). Restarting
  the same call continues from the latest one and ends with the same weights,
  bit for bit on CPU, as an uninterrupted run.
* **Portable checkpoints.** Tensors are saved on the CPU, so a checkpoint
  written on a GPU loads on a machine without one.
* **Atomic writes.** Checkpoints and the JSON history are written to a
  temporary file in the same folder and renamed, so an interrupted write never
  leaves a truncated file behind.
* **Damage is repaired.** When the latest checkpoint is truncated or corrupt,
  it is moved aside (``<name>.damaged``, with a warning on stderr naming it)
  and training resumes from the last good one; a scheduled checkpoint moved
  aside is written again when training passes its epoch. The result is the
  same, bit for bit, as an uninterrupted run.
* **Clear errors** for a missing, corrupt, foreign or too new checkpoint, and
  for a checkpoint of another network than expected.

The files live in ``<save_path>/<net>_<dataset>/``, whose layout belongs to
:mod:`topodnn.results`: ``ckpt_trl<T>_epc<E>.pt`` (checkpoint of trial ``T``
after epoch ``E``; epoch 0 = initial weights), ``resume_trl<T>.pt`` (state after
the latest finished epoch when that epoch is not on the checkpoint schedule;
deleted when the next scheduled checkpoint is written) and
``history_trl<T>.json`` (per-epoch losses and accuracies, read with
:func:`topodnn.results.read_history`).

Units and conventions: losses are mean negative log-likelihoods (nats per
sample); accuracies are fractions in [0, 1]. The training loss and accuracy of
epoch ``E >= 1`` are running averages over the training pass of that epoch (in
training mode, against the possibly permuted labels the network is trained
on), as in the original; those of epoch 0 come from an evaluation pass over the
training set.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from . import results
from .datasets import canonical_name as _canonical_dataset
from .datasets import load_dataset
from .networks import canonical_name, get_network
from .results import (FORMAT_VERSION, CheckpointError, CheckpointNotFoundError, checkpoint_path, history_path,
                      list_checkpoints, results_dir)

__all__ = [
    "FORMAT_VERSION",
    "LR_SCHEDULES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "train",
    "evaluate",
    "results_dir",
    "checkpoint_path",
    "history_path",
    "list_checkpoints",
    "save_schedule",
    "shuffle_labels",
    "load_checkpoint",
    "load_model",
    "model_from_checkpoint",
]

_HISTORY_SERIES = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s")
# Arguments that must match for a run to be resumed from a checkpoint.
_RESUME_KEYS = ("lr", "permute_labels", "seed", "n_train", "n_test", "batch_size", "lr_schedule",
                "weight_decay")
# What checkpoints written before an argument existed were trained with.
_LEGACY_ARGS = {"lr_schedule": "test_acc", "weight_decay": 5e-4}
#: Learning-rate schedules of :func:`train`: what ReduceLROnPlateau follows, or none.
LR_SCHEDULES = ("train_loss", "test_acc", "none")
_LABEL_SEED_OFFSET = 0x5EED


def save_schedule(n_epochs: int, save_every: int = 1) -> set:
    """Epochs whose checkpoints are kept: 0..10, every ``save_every``-th, and the last."""
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every}")
    epochs = set(range(0, min(10, n_epochs) + 1))
    epochs.update(range(0, n_epochs + 1, save_every))
    epochs.add(n_epochs)
    return epochs


# ----------------------------------------------------------------------------- state


def _to_cpu(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(value) for value in obj)
    return obj


# ----------------------------------------------------------------------------- loading


def load_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint written by :func:`train`, onto the CPU.

    Uses ``torch.load(map_location="cpu", weights_only=True)``: only tensors
    and plain Python containers are unpickled, whatever device wrote the file.

    Raises
    ------
    CheckpointNotFoundError
        The file does not exist (a :class:`FileNotFoundError` and a
        :class:`ValueError`).
    CheckpointError
        The file is corrupt (:class:`topodnn.results.DamagedCheckpoint`, also a
        :class:`topodnn.results.DamagedArtifact`), is not a topodnn checkpoint,
        or has an unknown ``format_version`` (a :class:`ValueError`).
    """
    return results.read_checkpoint(path)


def model_from_checkpoint(path: Union[str, os.PathLike], *, expect_net: Optional[str] = None
                          ) -> Tuple[nn.Module, dict]:
    """Rebuild the network stored in a checkpoint, on the CPU, in eval mode.

    Parameters
    ----------
    path : path-like
        A checkpoint written by :func:`train`.
    expect_net : str, optional
        If given, the checkpoint must be of this network (aliases allowed).

    Returns
    -------
    model : torch.nn.Module
        The network with the checkpoint's weights, in eval mode.
    ckpt : dict
        The whole checkpoint (see :func:`load_checkpoint`).

    Raises
    ------
    CheckpointError
        As :func:`load_checkpoint`; also when the checkpoint is of another
        network than ``expect_net`` (both are named) or its weights do not fit.
    """
    ckpt = load_checkpoint(path)
    stored = str(ckpt["net"])
    if expect_net is not None and canonical_name(expect_net) != canonical_name(stored):
        raise CheckpointError(f"{path} is a checkpoint of network {stored!r}, not of the requested "
                              f"network {canonical_name(expect_net)!r}")
    model = get_network(stored, **ckpt["model_kwargs"])
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {path} do not fit network {stored!r}: {exc}") from exc
    model.eval()
    return model, ckpt


def load_model(path: Union[str, os.PathLike], expect_net: Optional[str] = None) -> nn.Module:
    """The network of a checkpoint, on the CPU, in eval mode (see :func:`model_from_checkpoint`)."""
    return model_from_checkpoint(path, expect_net=expect_net)[0]


# ----------------------------------------------------------------------------- training pieces


def shuffle_labels(labels: torch.Tensor, fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Shuffle the labels of a random fraction of the samples among themselves.

    Parameters
    ----------
    labels : torch.Tensor
        int64 labels, shape ``(N,)``.
    fraction : float
        In [0, 1]: ``round(fraction * N)`` positions are drawn at random and
        their labels permuted at random among them.
    seed : int
        Seed of the draw.

    Returns
    -------
    new_labels : torch.Tensor
        A copy with the permuted labels; the class histogram is unchanged.
    positions : torch.Tensor
        The ``round(fraction * N)`` positions drawn (sorted).

    Notes
    -----
    A label may land on a position of the same class, so the number of labels
    that actually change is smaller than ``round(fraction * N)``: about
    ``(1 - sum_c p_c^2)`` of it (90 % for 10 balanced classes).
    """
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"permute_labels must be a fraction in [0, 1], got {fraction}")
    labels = torch.as_tensor(labels)
    count = int(round(fraction * labels.numel()))
    generator = torch.Generator().manual_seed(int(seed))
    positions = torch.randperm(labels.numel(), generator=generator)[:count].sort().values
    shuffled = positions[torch.randperm(count, generator=generator)]
    new_labels = labels.clone()
    new_labels[positions] = labels[shuffled]
    return new_labels, positions


def evaluate(model: nn.Module, data: TensorDataset, *, batch_size: int = 100,
             device: Union[str, torch.device] = "cpu") -> Tuple[float, float]:
    """Mean negative log-likelihood and accuracy of ``model`` on ``data`` (eval mode, no gradients).

    Returns
    -------
    (loss, accuracy) : tuple of float
        Loss in nats per sample, accuracy as a fraction in [0, 1].
    """
    images, labels = data.tensors[0], data.tensors[1]
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            out = model(x)
            total_loss += float(F.nll_loss(out, y, reduction="sum"))
            correct += int((out.argmax(dim=1) == y).sum())
    n = max(len(labels), 1)
    return total_loss / n, correct / n


def _train_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, batch_size: int, device: torch.device, bar) -> Tuple[float, float]:
    model.train()
    n = len(labels)
    order = torch.randperm(n, generator=generator)
    total_loss, correct, seen = 0.0, 0, 0
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        if len(index) == 1 and n > 1:
            # A trailing batch of one sample breaks batch normalisation; skip it.
            bar.update(1)
            continue
        x, y = images[index].to(device), labels[index].to(device)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = F.nll_loss(out, y)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((out.detach().argmax(dim=1) == y).sum())
        seen += len(index)
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    seen = max(seen, 1)
    return total_loss / seen, correct / seen


def _rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "data_order": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _restore_rng(state: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data_order"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _latest_state(folder: Path, trial: int) -> Optional[Tuple[Path, dict]]:
    """The latest good state of ``trial``; damaged ones are moved aside with a warning on stderr."""
    damaged = []
    found = results.latest_checkpoint(folder, trial, on_damaged=lambda exc, moved: damaged.append((exc, moved)))
    if damaged:
        resume_from = f"epoch {found[1]['epoch']} ({found[0].name})" if found else "the start"
        for exc, moved in damaged:
            print(f"warning: {exc}; moved aside to {moved.name}; training resumes from {resume_from}",
                  file=sys.stderr, flush=True)
    return found


def _sync_history_file(folder: Path, trial: int, history: dict) -> None:
    """Make ``history_trl<T>.json`` say what the checkpoint says (the checkpoint is the reference).

    A crash between the checkpoint's write and the JSON's leaves the JSON behind; a damaged JSON
    is moved aside before it is rewritten.
    """
    try:
        on_disk = results.read_history(folder, trial)
    except FileNotFoundError:
        on_disk = None
    except results.DamagedArtifact as exc:
        moved = results.move_aside(exc.path)
        print(f"warning: {exc}; moved aside to {moved.name}; rewritten from the checkpoint", file=sys.stderr,
              flush=True)
        on_disk = None
    if on_disk != results.history_from_mapping(history):
        results.write_history(folder, trial, history)


def _nonnegative_int(label: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- train


def train(net: str, dataset: str, *, trial: int = 0, lr: float = 0.0005, n_epochs: int = 50,
          save_every: int = 1, permute_labels: float = 0.0, save_path: Union[str, os.PathLike] = "results",
          data_dir: Optional[Union[str, os.PathLike]] = None, batch_size: int = 128, test_batch_size: int = 100,
          seed: Optional[int] = None, resume: bool = True, progress: bool = True,
          callback: Optional[Callable[[int, nn.Module, dict], bool]] = None,
          device: Union[str, torch.device] = "cpu", n_train: Optional[int] = None,
          n_test: Optional[int] = None, lr_schedule: str = "train_loss",
          weight_decay: float = 5e-4) -> dict:
    """Train a network on a dataset, checkpointing every epoch; resumable.

    Parameters
    ----------
    net : str
        Network name (see :data:`topodnn.networks.NETWORKS`).
    dataset : str
        Dataset name (see :data:`topodnn.datasets.DATASETS`); loaded with
        :func:`topodnn.datasets.load_dataset` (the embedded split uses seed 0
        for every trial, so all trials share one test set).
    trial : int
        Trial number; names the files and is the default seed.
    lr : float
        Initial learning rate of SGD (momentum 0.9).
    n_epochs : int
        Number of training epochs (epoch 0 is the evaluation before training).
    save_every : int
        Checkpoint frequency after epoch 10 (epochs 0..10 are always kept).
    permute_labels : float
        Fraction in [0, 1] of training labels shuffled among themselves (the
        memorisation experiments; see :func:`shuffle_labels`). The draw is
        seeded by ``seed + 0x5EED`` and is the same on every resume.
    save_path : path-like
        Results root; files go to ``<save_path>/<net>_<dataset>/``.
    data_dir : path-like, optional
        Folder with the dataset files (None: the embedded MNIST sample).
    batch_size, test_batch_size : int
        Training and evaluation batch sizes.
    seed : int, optional
        Seed of the weight initialisation, dropout and the order of the
        training samples (a seeded :class:`torch.Generator`); default
        ``trial``. Two runs with the same arguments give bit-identical weights
        on CPU.
    resume : bool
        If True and checkpoints of this trial exist, continue from the latest
        one (its arguments must match; an already finished or stopped run
        returns its history). If False, the trial's old checkpoints and
        history are deleted and training starts afresh.
    progress : bool
        Show a tqdm progress bar per epoch on stderr.
    callback : callable, optional
        ``callback(epoch, model, history) -> bool`` called after each epoch's
        evaluation, epoch 0 included; returning True stops training after that
        epoch, whose checkpoint is then written whatever the schedule.
    device : str or torch.device
        Where to train ("cpu", "cuda", ...); checkpoints are always saved on CPU.
    n_train, n_test : int, optional
        Use only the first ``n_train`` training / ``n_test`` test images.
    lr_schedule : {"train_loss", "test_acc", "none"}
        What halves the learning rate (``ReduceLROnPlateau(factor=0.5)``, default patience
        of 10 epochs), stepped after every epoch: ``"train_loss"`` (default) the epoch's
        training loss (mode min), so the test set plays no part in training;
        ``"test_acc"`` the test accuracy (mode max), the original's recipe, which **uses
        the test set during training**; ``"none"`` a constant learning rate. Recorded in
        the checkpoint and checked on resume (checkpoints from before this option were
        trained with ``"test_acc"``).
    weight_decay : float
        L2 penalty of SGD (default 5e-4, the original's; 0 turns it off). Checked on
        resume.

    Returns
    -------
    dict
        The history: ``net``, ``dataset``, ``trial``, ``seed``, the per-epoch
        lists ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``,
        ``test_acc``, ``lr`` (learning rate used during that epoch) and
        ``epoch_time_s`` (wall seconds of training + evaluation), and
        ``stopped_at`` (the epoch at which the callback stopped training, or
        None). Also written to ``history_trl<T>.json``.

    Raises
    ------
    ValueError
        Bad arguments, unknown names, unreadable data, or a checkpoint that
        does not match the requested run (see :class:`CheckpointError`).
    """
    net_name = canonical_name(net)
    dataset_name = _canonical_dataset(dataset)
    trial = _nonnegative_int("trial", trial)
    n_epochs = _nonnegative_int("n_epochs", n_epochs)
    save_every = _nonnegative_int("save_every", save_every, 1)
    batch_size = _nonnegative_int("batch_size", batch_size, 1)
    test_batch_size = _nonnegative_int("test_batch_size", test_batch_size, 1)
    seed = trial if seed is None else _nonnegative_int("seed", seed)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
    if isinstance(weight_decay, bool) or not (isinstance(weight_decay, (int, float))
                                              and math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if callback is not None and not callable(callback):
        raise ValueError("callback must be callable as callback(epoch, model, history) -> bool")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available here; use device='cpu'")

    train_set, test_set, info = load_dataset(dataset_name, data_dir=data_dir, n_train=n_train, n_test=n_test)
    train_images, true_labels = train_set.tensors
    test_images, test_labels = test_set.tensors
    train_labels, _ = shuffle_labels(true_labels, permute_labels, seed + _LABEL_SEED_OFFSET)
    eval_train = TensorDataset(train_images, train_labels)

    folder = results_dir(save_path, net_name, dataset_name)
    folder.mkdir(parents=True, exist_ok=True)
    args = {"lr": float(lr), "permute_labels": float(permute_labels), "seed": int(seed), "n_train": n_train,
            "n_test": n_test, "batch_size": batch_size, "test_batch_size": test_batch_size,
            "data_dir": None if data_dir is None else str(data_dir), "lr_schedule": lr_schedule,
            "weight_decay": float(weight_decay)}
    model_kwargs = {"in_channels": info["in_channels"], "input_size": info["input_size"],
                    "num_classes": info["num_classes"]}

    torch.manual_seed(seed)
    model = get_network(net_name, **model_kwargs).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=float(weight_decay))
    # "none" keeps a scheduler that is never stepped, so every checkpoint has the same layout.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if lr_schedule == "test_acc" else "min", factor=0.5)
    generator = torch.Generator().manual_seed(seed)
    schedule = save_schedule(n_epochs, save_every)

    def snapshot(epoch: int) -> dict:
        return {
            "format_version": FORMAT_VERSION, "net": net_name, "dataset": dataset_name,
            "dataset_info": dict(info), "epoch": epoch, "trial": trial,
            "model_state": _to_cpu(model.state_dict()), "model_kwargs": dict(model_kwargs),
            "optimizer_state": _to_cpu(optimizer.state_dict()), "scheduler_state": scheduler.state_dict(),
            "rng": _rng_state(generator, device), "history": json.loads(json.dumps(history)),
            "args": dict(args), "torch_version": str(torch.__version__),
        }

    def save(epoch: int, force: bool = False) -> None:
        state = snapshot(epoch)
        resume_file = results.resume_path(folder, trial)
        if force or epoch in schedule:
            results.save_checkpoint(checkpoint_path(folder, trial, epoch), state)
            if resume_file.exists():
                resume_file.unlink()
        else:
            results.save_checkpoint(resume_file, state)
        results.write_history(folder, trial, history)

    def stop_requested(epoch: int) -> bool:
        if callback is None:
            return False
        if callback(epoch, model, history):
            history["stopped_at"] = epoch
            return True
        return False

    found = _latest_state(folder, trial) if resume else None
    if not resume:
        results.remove_training_files(folder, trial)
    if found is not None:
        latest, ckpt = found
        if canonical_name(str(ckpt["net"])) != net_name or ckpt["dataset"] != dataset_name \
                or int(ckpt["trial"]) != trial:
            raise CheckpointError(f"{latest} is a checkpoint of {ckpt['net']!r} on {ckpt['dataset']!r} trial "
                                  f"{ckpt['trial']}, not of {net_name!r} on {dataset_name!r} trial {trial}")
        stored_args = {**_LEGACY_ARGS, **ckpt["args"]}
        mismatched = {key: (stored_args.get(key), args[key]) for key in _RESUME_KEYS
                      if stored_args.get(key) != args[key]}
        if mismatched:
            detail = ", ".join(f"{key}: checkpoint {old!r}, now {new!r}" for key, (old, new) in mismatched.items())
            raise CheckpointError(f"cannot resume from {latest}: it was trained with other arguments ({detail}); "
                                  f"use the same arguments, another save_path, or resume=False")
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        _restore_rng(ckpt["rng"], generator, device)
        history = ckpt["history"]
        start = int(ckpt["epoch"]) + 1
        _sync_history_file(folder, trial, history)
        if history.get("stopped_at") is not None:
            return history
        if start - 1 == n_epochs and latest == results.resume_path(folder, trial):
            # Finished by a run with another schedule: keep the last epoch as a checkpoint.
            save(n_epochs, force=True)
    else:
        history = {"net": net_name, "dataset": dataset_name, "trial": trial, "seed": seed,
                   "permute_labels": float(permute_labels), **{key: [] for key in _HISTORY_SERIES},
                   "stopped_at": None}
        began = time.perf_counter()
        train_loss, train_acc = evaluate(model, eval_train, batch_size=test_batch_size, device=device)
        test_loss, test_acc = evaluate(model, test_set, batch_size=test_batch_size, device=device)
        for key, value in zip(_HISTORY_SERIES, (0, train_loss, train_acc, test_loss, test_acc,
                                                optimizer.param_groups[0]["lr"], time.perf_counter() - began)):
            history[key].append(value)
        stop = stop_requested(0)
        save(0, force=stop)
        if stop:
            return history
        start = 1

    from tqdm import tqdm

    n_batches = math.ceil(len(true_labels) / batch_size)
    for epoch in range(start, n_epochs + 1):
        began = time.perf_counter()
        epoch_lr = optimizer.param_groups[0]["lr"]
        with tqdm(total=n_batches, desc=f"{net_name}/{dataset_name} trial {trial} epoch {epoch}/{n_epochs}",
                  file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True) as bar:
            train_loss, train_acc = _train_epoch(model, train_images, train_labels, optimizer, generator,
                                                 batch_size, device, bar)
        test_loss, test_acc = evaluate(model, test_set, batch_size=test_batch_size, device=device)
        if lr_schedule == "train_loss":
            scheduler.step(train_loss)
        elif lr_schedule == "test_acc":
            scheduler.step(test_acc)
        for key, value in zip(_HISTORY_SERIES, (epoch, train_loss, train_acc, test_loss, test_acc, epoch_lr,
                                                time.perf_counter() - began)):
            history[key].append(value)
        if progress:
            print(f"{net_name}/{dataset_name} trial {trial} epoch {epoch}/{n_epochs}: train loss {train_loss:.4f} "
                  f"acc {train_acc:.4f} | test loss {test_loss:.4f} acc {test_acc:.4f}", file=sys.stderr)
        stop = stop_requested(epoch)
        save(epoch, force=stop)
        if stop:
            break
    return history
