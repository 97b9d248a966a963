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
The layout belongs to :mod:`topodnn.results`, which writes every file atomically and verifies it
on read:

* ``ckpt_trl<T>_epc<E>.pt``, ``history_trl<T>.json``: written by :mod:`topodnn.training`.
* ``adj_epc<E>_trl<T>_<max_epsilon>.bin.out``: the diagram in DIPHA's PERSISTENCE_DIAGRAM format
  (type 2), as the original named it: essential classes of dimension q stored as dim = −q−1 with
  death = the largest filtration value of the complex (half the largest distance ≤ 2·max_epsilon).
* ``dgm_epc<E>_trl<T>.npz``: ``dim0``, ``dim1``, … (k, 2) float64 arrays, ε units, ``inf`` for
  essential classes, plus the settings they were computed with (``--groups`` included).
* ``summaries_trl<T>.json`` / ``.csv``: per epoch and dimension: life, midlife, betti_max,
  eps_at_max, n_pairs, area (:func:`topodnn.summaries.summarise`, pairs with persistence ≤
  ``--min-persistence`` = 0.02 dropped first), train and test accuracy.
* ``betti_<dim>_trl<T>.png``, ``life_midlife_<dim>_trl<T>.png``: written by ``visualise``.

An epoch whose ``.npz`` holds diagrams of the same settings and whose ``.bin.out`` is a valid
DIPHA file is skipped (``--force`` recomputes).

Damaged files
-------------
``run`` repairs what it finds damaged (truncated, empty or foreign files): it moves the file aside
as ``<name>.damaged`` (nothing is deleted), says ``epoch E: <path> is damaged (<reason>);
recomputing`` and computes that epoch again; a damaged ``summaries_trl<T>.json`` is rebuilt from
the diagrams; a damaged latest checkpoint or history is repaired by training (see
:mod:`topodnn.training`). ``visualise`` only reads: a damaged diagram is an error (exit 2) that
names the file and says that ``topodnn run`` with the arguments that computed it recomputes it.

MPI (``--nproc P``)
-------------------
With ``P > 1`` the persistence step runs on P MPI ranks started by :mod:`topodnn.launcher`
(``mpirun``, ``mpiexec`` or ``srun``, the environment's own first; ``$TOPODNN_MPIRUN``
overrides): ``<launcher> -n P <python> -m topodnn _persist IN OUT ...`` on the thresholded
functional graph that the single-process front end wrote next to the results. Training and graph
building stay in the calling process. ``topodnn`` itself must not be started under ``mpirun``.

Errors in the input (unknown network, missing checkpoint, unwritable save path …) are printed as
one line on stderr and the exit status is 2. Set ``TOPODNN_TRACEBACK=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from . import early_stopping, results
from .summaries import summarise_diagrams

__all__ = ["main", "build_parser", "CLIError", "parse_epochs"]

PROG = "topodnn"
#: Columns of ``summaries_trl<T>.csv``.
CSV_COLUMNS = results.SUMMARY_CSV_COLUMNS


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


def _groups(value: str) -> str:
    """``--groups``: the grouping's canonical text (:func:`topodnn.grouping.parse_groups`)."""
    from .grouping import parse_groups

    try:
        return parse_groups(value).text()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc} (the command line takes units, channel, chunk:K or nodes:N)") from None


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
    r.add_argument("--es-signal", dest="es_signal", default=early_stopping.DEFAULT_SIGNAL,
                   help="early stopping: signal '<stat>_<dim>', e.g. area_2, betti_max_2 (default "
                   f"{early_stopping.DEFAULT_SIGNAL}: the study's frozen rule)")
    r.add_argument("--es-patience", dest="es_patience", type=_positive_int,
                   default=early_stopping.DEFAULT_PATIENCE,
                   help="early stopping: evaluations without improvement before stopping (default "
                   f"{early_stopping.DEFAULT_PATIENCE})")
    r.add_argument("--groups", type=_groups, default="units", metavar="units|channel|chunk:K|nodes:N",
                   help="nodes of the functional graph: units (every unit, default), channel (a conv "
                   "channel's mean is one node), chunk:K (means of K consecutive units of a layer), "
                   "nodes:N (N nodes in all); for big networks (see topodnn.grouping). Recorded "
                   "with the diagrams: epochs computed with another grouping are recomputed")
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
    w.add_argument("--nproc", type=_positive_int, default=None)
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
    e.add_argument("--signal", default=early_stopping.DEFAULT_SIGNAL,
                   help=f"'<stat>_<dim>' or '<stat>_sum' (default {early_stopping.DEFAULT_SIGNAL})")
    e.add_argument("--mode", default="max", choices=("max", "min"),
                   help="'max': the signal grows while the network learns (default)")
    e.add_argument("--patience", type=_positive_int, default=early_stopping.DEFAULT_PATIENCE,
                   help=f"evaluations without improvement before stopping (default "
                   f"{early_stopping.DEFAULT_PATIENCE})")
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
    return results.results_dir(save_path, net, dataset)


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


def _fmt_epochs(epochs: Iterable[int]) -> str:
    epochs = list(epochs)
    return " ".join(str(e) for e in epochs) if epochs else "none"


def _accuracies(history: Optional["results.History"], epoch: int) -> tuple[Any, Any]:
    """(train_acc, test_acc) of ``epoch``, fractions, or (None, None) when not recorded."""
    if history is None or epoch not in history.epochs:
        return None, None
    return history.accuracy(epoch)


def _file_history(folder: Path, trial: int) -> Optional["results.History"]:
    """The run's ``history_trl<T>.json``, or None (with a warning when it is damaged)."""
    try:
        return results.read_history(folder, trial)
    except FileNotFoundError:
        return None
    except results.DamagedArtifact as exc:
        _say(f"warning: {exc}; accuracies are taken from the checkpoints (`topodnn run` with "
             f"--train 1 and the same arguments rewrites it)", True)
        return None


def _checkpoint_history(path: Path, ckpt: dict) -> "results.History":
    try:
        return results.history_from_mapping(ckpt["history"])
    except ValueError as exc:
        raise CLIError(f"{path}: {exc}") from None


def _launcher() -> Any:
    """The MPI launcher for ``--nproc`` (:func:`topodnn.launcher.find_launcher`)."""
    from . import launcher

    try:
        return launcher.find_launcher()
    except launcher.LauncherError as exc:
        raise CLIError(str(exc)) from None


def _persistence(graph: Any, max_dim: int, threshold: float, nproc: int,
                 workdir: Path) -> list[np.ndarray]:
    """Persistence of a sparse graph in filtration units, in process or on ``nproc`` ranks."""
    if nproc <= 1:
        from .engine import persistence

        return _as_dgms(persistence(graph, max_dim=max_dim, threshold=threshold))
    from . import launcher

    try:
        return launcher.persistence_on_ranks(graph, max_dim, threshold, nproc, workdir,
                                             _launcher())
    except launcher.LauncherError as exc:
        raise CLIError(str(exc)) from None


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
    from .launcher import started_by_launcher

    if started_by_launcher():
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
        _launcher()
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
            keep_diagrams=False, progress=args.progress,
            groups=None if args.groups == results.UNGROUPED else args.groups)
    except ValueError as exc:
        raise CLIError(f"--early-stop topology: {exc}") from None


def _report_early_stop(args: argparse.Namespace, folder: Path, es: Any, history: dict) -> None:
    """Write ``early_stop_trl<T>.json`` (rule, evaluations, chosen epoch) and say the outcome."""
    stopped = history.get("stopped_at")
    path = results.early_stop_path(folder, args.trial)
    if not es.history and path.exists():  # a finished run resumed: nothing new was evaluated
        _say(f"early stopping: recorded in {path} (training had stopped at epoch {stopped})", True)
        return
    record = {
        "params": es.params,
        "stop_epoch": stopped,
        "best_epoch": es.best_epoch,
        "history": [{k: v for k, v in h.items() if k != "diagrams"} for h in es.history],
    }
    results.write_early_stop(folder, args.trial, record)
    if stopped is None:
        _say(f"early stopping: the rule did not fire; best epoch by {es.params['signal']}: "
             f"{es.best_epoch} ({path})", True)
    else:
        _say(f"early stopping: stopped at epoch {stopped}; keep the checkpoint of epoch "
             f"{es.best_epoch} ({path})", True)


def topology_per_epoch(args: argparse.Namespace, folder: Path,
                       epochs: Sequence[int]) -> dict[str, Any]:
    """Functional graph + persistence + summaries for each epoch; returns the summaries data.

    Finished epochs (same settings, verified files) are skipped; a damaged diagram file is moved
    aside and its epoch recomputed.
    """
    settings = {"max_epsilon": float(args.max_epsilon), "upper_dim": int(args.upper_dim),
                "n_samples": int(args.n_samples), "groups": args.groups}
    file_history = _file_history(folder, args.trial)
    summaries = _summaries_to_update(folder, args, file_history)
    todo = []
    for e in epochs:
        if not args.force:
            try:
                done = results.finished_diagrams(folder, e, args.trial, settings)
            except results.DamagedArtifact as exc:
                moved = results.move_aside(exc.path)
                _say(f"epoch {e}: {exc}; recomputing (the damaged file is kept as {moved.name})",
                     True)
                done = None
            if done is not None:
                # summaries are cheap: refresh them (the --min-persistence may have changed)
                _record_summary(summaries, args, e, done, file_history, {})
                _say(f"epoch {e}: results exist in {folder} (skipped; --force recomputes)",
                     args.progress)
                continue
        todo.append(e)
    if summaries["epochs"]:
        results.write_summaries(folder, args.trial, summaries)
    if not todo:
        return summaries
    ckpts = results.list_checkpoints(folder, args.trial)
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
            progress=args.progress, return_info=True, groups=args.groups)
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
        npz, _ = results.write_diagrams(folder, e, args.trial, dgms, n_nodes=n_nodes,
                                        essential_death=top_value, **settings)
        written = results.Diagrams(pairs=dgms, path=npz, n_nodes=n_nodes, **settings)
        te = _record_summary(summaries, args, e, written, _checkpoint_history(ckpts[e], ckpt), {
                                 "time_graph_s": round(t_graph, 3),
                                 "time_persistence_s": round(t_pers, 3)})
        results.write_summaries(folder, args.trial, summaries)
        counts = " ".join(f"H{q} {len(d)}" for q, d in enumerate(dgms))
        acc = "" if te is None else f", test acc {te:.4g}"
        grouped = "" if args.groups == results.UNGROUPED else f" (groups {args.groups})"
        _say(f"epoch {e}: {n_nodes} nodes{grouped}, graph {t_graph:.1f} s, persistence {t_pers:.1f} s "
             f"({args.nproc} proc), pairs {counts}{acc}", args.progress)
    return summaries


def _summaries_to_update(folder: Path, args: argparse.Namespace,
                         history: Optional["results.History"]) -> dict[str, Any]:
    """The run's summaries record; a damaged one is moved aside and rebuilt from the diagrams."""
    try:
        data = results.read_summaries(folder, args.trial)
    except results.DamagedArtifact as exc:
        moved = results.move_aside(exc.path)
        _say(f"{exc}; rebuilding it from the diagrams (the damaged file is kept as "
             f"{moved.name})", True)
        data = {"epochs": {}}
        for e in results.diagram_epochs(folder, args.trial):
            try:
                dgms = results.read_diagrams(folder, e, args.trial)
            except results.DamagedArtifact:
                continue  # reported and recomputed when its epoch is asked for
            if dgms.n_nodes is not None:  # the original's .bin.out alone holds no settings
                _record_summary(data, args, e, dgms, history, {})
    data.update({"net": args.net, "dataset": args.dataset, "trial": args.trial})
    return data


def _record_summary(data: dict[str, Any], args: argparse.Namespace, epoch: int,
                    dgms: "results.Diagrams", history: Optional["results.History"],
                    extra: dict[str, Any]) -> Any:
    """Summarise one epoch's diagrams into the summaries record ``data``; returns test acc."""
    old = data["epochs"].get(str(epoch)) or {}
    tr, te = _accuracies(history, epoch)
    if tr is None and te is None:  # no readable history: keep what was recorded when computed
        tr, te = old.get("train_acc"), old.get("test_acc")
    summ = summarise_diagrams(list(dgms.pairs), min_persistence=args.min_persistence,
                              max_epsilon=dgms.max_epsilon)
    entry = {k: v for k, v in old.items() if k in ("time_graph_s", "time_persistence_s")}
    entry.update({"train_acc": tr, "test_acc": te, "max_epsilon": dgms.max_epsilon,
                  "upper_dim": dgms.upper_dim, "n_samples": dgms.n_samples,
                  "min_persistence": float(args.min_persistence), "n_nodes": dgms.n_nodes,
                  "groups": dgms.groups,
                  **extra, "dims": {str(q): s for q, s in summ.items()}})
    data["epochs"][str(epoch)] = entry
    return te


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
    available = results.diagram_epochs(folder, args.trial)
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
    """Write ``betti_<dim>_trl<T>.png`` and ``life_midlife_<dim>_trl<T>.png`` and print tables.

    Raises
    ------
    CLIError
        A diagram file is damaged (it is named; ``topodnn run`` with the arguments that computed
        it recomputes it) or lacks a requested dimension.
    """
    from matplotlib.figure import Figure

    from .plots import plot_betti_curves, plot_life_midlife

    diagrams: dict[int, list[np.ndarray]] = {}
    max_eps = 0.3
    for e in epochs:
        try:
            dg = results.read_diagrams(folder, e, trial)
        except results.DamagedArtifact as exc:
            raise CLIError(f"{exc}; `topodnn run` with the arguments that computed it recomputes "
                           f"it") from None
        diagrams[e] = dg.pairs
        if dg.max_epsilon is not None:
            max_eps = dg.max_epsilon
    try:
        data = results.read_summaries(folder, trial)
    except results.DamagedArtifact as exc:
        out(f"warning: {exc}; the table shows no test accuracy (`topodnn run` rebuilds it)")
        data = {"epochs": {}}
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
        betti_png = results.save_figure(fig, results.betti_plot_path(folder, dim, trial))
        fig = Figure(figsize=(6.4, 4.8))
        ax = fig.subplots()
        plot_life_midlife(per_epoch, dim, ax=ax)
        ax.set_title(f"life and midlife of H{dim}: {folder.name}, trial {trial}")
        life_png = results.save_figure(fig, results.life_midlife_plot_path(folder, dim, trial))
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
    done = set(results.list_checkpoints(folder, args.trial))
    # Resume: train only when a requested checkpoint is missing (training resumes itself; the
    # checkpoints may be of a run with other arguments, which the demo then only reads).
    run_args.train = int(args.force or not set(epochs) <= done)
    cmd_run(run_args)
    visualise(folder, args.trial, epochs, list(range(args.upper_dim)),
              min_persistence=args.min_persistence)
    _plot_history(folder, args.trial)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; results in {folder}", flush=True)
    return 0


def _plot_history(folder: Path, trial: int) -> None:
    from matplotlib.figure import Figure

    from .plots import plot_training

    try:
        hist = results.read_history(folder, trial)
    except FileNotFoundError:
        return
    except results.DamagedArtifact as exc:
        print(f"warning: {exc}; no training plot (`topodnn run` rewrites it from the checkpoint)")
        return
    fig = Figure(figsize=(6.4, 4.8))
    plot_training(hist, ax=fig.subplots())
    out = results.save_figure(fig, results.training_plot_path(folder, trial))
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
    from . import launcher

    try:
        launcher.persist_worker(args.input, args.output, args.max_dim, args.threshold, args.nproc)
    except launcher.LauncherError as exc:
        raise CLIError(str(exc)) from None
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
