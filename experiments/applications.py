"""The two applications of the method, measured: topological early stopping and gap prediction.

For every (network, dataset, label-permutation fraction, trial) the network is trained for
``--epochs`` epochs with a :class:`topodnn.early_stopping.TopologicalEarlyStopping` callback that
computes the functional graph of the first ``--n-samples`` *training* inputs every ``--every``
epochs (H0..H2, eps = (1-|corr|)/2 <= 0.3) and applies the stopping rule online. The callback is
wrapped so that training continues to the last epoch anyway: the test accuracy of every epoch is
then known, and the epoch the rule chose can be compared with the best one. The test set is used
only for this evaluation, never by the rule or the gap model's inputs.

Early stopping (per run): ``chosen_epoch`` = the rule's best epoch (the checkpoint one keeps when
it fires; if it never fires, its best epoch too), ``oracle_epoch`` = the epoch of best test
accuracy among all epochs, ``accuracy_lost`` = test acc(oracle) - test acc(chosen), in points; as a
baseline, the loss of simply keeping the last epoch. Alternative signals are evaluated post hoc on
the same recorded summaries (marked as such in the JSON).

Gap prediction: every topology evaluation is one observation (summary features, true gap = train
accuracy - test accuracy in points, train accuracy as recorded by training). Leave-one-run-out
(all epochs of a run held out together) gives the MAE in accuracy points and Pearson's r of the
held-out predictions; baselines: the mean gap of the other runs, and a one-feature linear model on
the training accuracy. Finally a model fitted on all runs is saved and
:func:`topodnn.gap.predict_gap` is run on one checkpoint end to end.

Datasets (nothing is downloaded):

* ``mnist``: the embedded 5,000-digit real MNIST sample (4,000 train / 1,000 test);
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, UCI), upscaled
  bilinearly to 20x20 and zero-padded to 28x28 like MNIST, split 1,297 train / 500 test with seed
  0, written as MNIST IDX files into the work directory and read through ``load_dataset("mnist",
  data_dir=...)`` (so it exercises the IDX file path);
* ``fashion_mnist``: added when ``--fashion-mnist-dir`` points at its IDX files.

Usage::

    python experiments/applications.py --quick          # smoke run, about 2-3 minutes
    python experiments/applications.py                  # the study (under an hour on 2 cores)

Writes ``<out>/applications.json``, ``<out>/early_stopping.png`` and ``<out>/gap_scatter.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

import torch  # noqa: E402

from topodnn.early_stopping import TopologicalEarlyStopping, choose_stop  # noqa: E402
from topodnn.gap import (  # noqa: E402
    GapModel,
    feature_names,
    features_from_summary,
    fit_gap_model,
    leave_one_run_out,
    pearson_r,
    predict_gap,
    store_summary,
    summary_cache_path,
    train_accuracy,
)

ALT_SIGNALS = ("area_2", "betti_max_2", "eps_at_max_1", "midlife_1", "betti_max_sum")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 2051 if array.ndim == 3 else 2049
    with open(path, "wb") as fh:
        fh.write(struct.pack(">i", magic))
        for d in array.shape:
            fh.write(struct.pack(">i", d))
        fh.write(array.tobytes())


def write_digits_idx(folder: Path, *, n_test: int = 500, seed: int = 0) -> Path:
    """scikit-learn's 8x8 digits as 28x28 MNIST IDX files (see the module notes)."""
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "t10k-labels-idx1-ubyte").exists():
        return folder
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # [0, 1]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))
    imgs = (x[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = d.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:n_test], order[n_test:]
    _write_idx(folder / "train-images-idx3-ubyte", imgs[train])
    _write_idx(folder / "train-labels-idx1-ubyte", labels[train])
    _write_idx(folder / "t10k-images-idx3-ubyte", imgs[test])
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels[test])
    return folder


def dataset_specs(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """label -> {name, data_dir} for load_dataset / train."""
    specs: dict[str, dict[str, Any]] = {}
    for label in args.datasets:
        if label == "mnist":
            specs[label] = {"name": "mnist", "data_dir": None}
        elif label == "digits":
            specs[label] = {"name": "mnist", "data_dir": str(write_digits_idx(work / "digits_idx"))}
        elif label == "fashion_mnist":
            if not args.fashion_mnist_dir:
                raise SystemExit("--datasets fashion_mnist needs --fashion-mnist-dir")
            specs[label] = {"name": "fashion_mnist", "data_dir": args.fashion_mnist_dir}
        else:
            raise SystemExit(f"unknown dataset label {label!r} (mnist, digits, fashion_mnist)")
    return specs


# --------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------


class _Recorder:
    """Runs the early-stopping callback but never lets it stop training (see module notes).

    At every topology epoch it also measures the training accuracy at the epoch's weights on the
    whole training split with the labels as trained (:func:`topodnn.gap.train_accuracy`, the
    definition the gap model uses).
    """

    def __init__(self, es: TopologicalEarlyStopping, train_set: Any, ref: dict) -> None:
        self.es = es
        self.train_set = train_set
        self.ref = ref
        self.fired_at: Optional[int] = None
        self.train_acc: dict[int, float] = {}

    def __call__(self, epoch: int, model: Any, history: Any) -> bool:
        if epoch % self.es.every == 0:
            self.train_acc[epoch] = train_accuracy(model, self.train_set, self.ref)
        if self.es.stop_epoch is None and self.es(epoch, model, history):
            self.fired_at = epoch
        elif self.es.stop_epoch is not None and epoch % self.es.every == 0:
            self.es.evaluate(epoch, model)  # keep recording after the stop, for the study
        return False


def run_one(args: argparse.Namespace, net: str, ds_label: str, spec: dict, perm: float, trial: int,
            work: Path) -> dict[str, Any]:
    from topodnn.datasets import load_dataset
    from topodnn.training import checkpoint_path, results_dir, train

    save_path = work / "runs" / ds_label / f"perm{int(round(perm * 100)):02d}"
    train_set, _test, _info = load_dataset(spec["name"], data_dir=spec["data_dir"], n_train=args.n_train)
    es = TopologicalEarlyStopping(
        train_set, every=args.every, n_samples=args.n_samples, max_dim=2, max_epsilon=0.3,
        signal=args.signal, mode="max", patience=args.patience, min_delta=args.min_delta,
        smooth=args.smooth, start_epoch=args.start_epoch, keep_diagrams=True,
    )
    rec = _Recorder(es, train_set, {"permute_labels": perm, "training_seed": trial})
    t0 = time.perf_counter()
    hist = train(
        net, spec["name"], trial=trial, lr=args.lr, n_epochs=args.epochs, save_every=args.every,
        permute_labels=perm, save_path=str(save_path), data_dir=spec["data_dir"], seed=trial,
        resume=False, progress=False, callback=rec, n_train=args.n_train,
    )
    seconds = time.perf_counter() - t0
    folder = results_dir(save_path, net, spec["name"])
    epochs = list(hist["epoch"])
    train_acc = [100.0 * a for a in hist["train_acc"]]
    test_acc = [100.0 * a for a in hist["test_acc"]]
    evals = []
    for h in es.history:
        e = h["epoch"]
        tr = rec.train_acc[e]
        evals.append({
            "epoch": e, "train_acc": tr, "recorded_train_acc": train_acc[e], "test_acc": test_acc[e],
            "gap": tr - test_acc[e], "signal": h["signal"], "seconds": h["seconds"],
            "summary": h["summary"],
        })
        # Cache the training-input summary next to the checkpoint so that `topodnn fit-gap` on
        # these results directories reuses it instead of recomputing.
        ck = checkpoint_path(folder, trial, e)
        if ck.exists():
            store_summary(summary_cache_path(ck), h["summary"], tr,
                          {"n_samples": args.n_samples, "max_dim": 2, "max_epsilon": 0.3, "min_persistence": 0.02})
    chosen = es.best_epoch if es.best_epoch is not None else epochs[-1]
    oracle = int(np.argmax(test_acc))
    alt = {}
    for sig in ALT_SIGNALS:
        stop, best = choose_stop(es.summaries(), epochs=es.epochs(), signal=sig, patience=args.patience,
                                 min_delta=0.0, smooth=args.smooth, start_epoch=args.start_epoch)
        b = best if best is not None else epochs[-1]
        alt[sig] = {"stop_epoch": stop, "chosen_epoch": b, "accuracy_lost": test_acc[oracle] - test_acc[b]}
    curves = {h["epoch"]: [np.asarray(d).tolist() for d in h["diagrams"][1:3]] for h in es.history}
    return {
        "run_id": f"{net}/{ds_label}/perm{perm:.2f}/trial{trial}",
        "net": net, "dataset": ds_label, "permute_labels": perm, "trial": trial,
        "seconds": seconds, "topology_seconds": float(sum(h["seconds"] for h in es.history)),
        "epochs": epochs, "train_acc": train_acc, "test_acc": test_acc,
        "evaluations": evals,
        "early_stopping": {
            "stop_epoch": es.stop_epoch, "best_epoch": es.best_epoch, "chosen_epoch": chosen,
            "oracle_epoch": oracle, "test_acc_chosen": test_acc[chosen], "test_acc_oracle": test_acc[oracle],
            "accuracy_lost": test_acc[oracle] - test_acc[chosen],
            "last_epoch_lost": test_acc[oracle] - test_acc[-1],
            "epochs_saved": (epochs[-1] - es.stop_epoch) if es.stop_epoch is not None else 0,
            "alternatives_post_hoc": alt,
        },
        "checkpoint_last": str(checkpoint_path(folder, trial, es.history[-1]["epoch"])),
        "_diagrams": curves,
    }


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# --------------------------------------------------------------------------------------------
# analyses and plots
# --------------------------------------------------------------------------------------------


def _loo_block(rows: list, names: list[str], ridge: float) -> dict[str, Any]:
    """Leave-one-run-out of the gap model and two baselines on ``rows`` = (run_id, eval, perm)."""
    X = np.array([features_from_summary(ev["summary"], names, train_acc=ev["train_acc"]) for _, ev, _ in rows])
    y = np.array([ev["gap"] for _, ev, _ in rows])
    ids = [rid for rid, _, _ in rows]
    ids_arr = np.asarray(ids)
    pred, mae = leave_one_run_out(X, y, ids, feature_names=names, ridge=ridge)
    base = np.array([y[ids_arr != rid].mean() for rid in ids])
    tr = np.array([ev["train_acc"] for _, ev, _ in rows])
    pred_tr = np.empty_like(y)
    for rid in dict.fromkeys(ids):
        m = ids_arr == rid
        A = np.column_stack([np.ones((~m).sum()), tr[~m]])
        coef, *_ = np.linalg.lstsq(A, y[~m], rcond=None)
        pred_tr[m] = coef[0] + coef[1] * tr[m]
    return {
        "features": names, "ridge": ridge, "n_observations": len(rows), "n_runs": len(set(ids)),
        "gap_std": float(y.std()),
        "loo_mae": mae, "pearson_r": pearson_r(pred, y),
        "baseline_mean_gap_loo_mae": float(np.mean(np.abs(base - y))),
        "baseline_train_acc_loo_mae": float(np.mean(np.abs(pred_tr - y))),
        "baseline_train_acc_pearson_r": pearson_r(pred_tr, y),
        "_X": X, "_y": y, "_ids": ids, "_pred": pred,
    }


def gap_study(runs: list[dict], names: list[str], ridge: float) -> dict[str, Any]:
    rows = [(r["run_id"], ev, r["permute_labels"]) for r in runs for ev in r["evaluations"]]
    out = _loo_block(rows, names, ridge)
    out["points"] = [
        {"run_id": rid, "epoch": ev["epoch"], "permute_labels": p, "true_gap": float(t), "loo_predicted_gap": float(q)}
        for (rid, ev, p), t, q in zip(rows, out["_y"], out["_pred"])
    ]
    with_acc = names + ["train_acc"]
    variants: dict[str, Any] = {"topology+train_acc": _loo_block(rows, with_acc, ridge)}
    clean = [row for row in rows if row[2] == 0.0]
    if len({row[0] for row in clean}) >= 2:
        for label, nm in (("clean_labels_only", names), ("clean_labels_only+train_acc", with_acc)):
            try:
                variants[label] = _loo_block(clean, nm, ridge)
            except ValueError as exc:
                variants[label] = {"error": str(exc)}
    out["variants"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in variants.items()}
    out["_variant_points"] = variants["topology+train_acc"]
    return out


def plot_early_stopping(runs: list[dict], path: Path, signal: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topodnn.plots import plot_betti_curves

    picks = []
    for perm in sorted({r["permute_labels"] for r in runs}):
        cand = [r for r in runs if r["permute_labels"] == perm and r["net"] == "lenet_300_100"] or \
               [r for r in runs if r["permute_labels"] == perm]
        picks.append(cand[0])
    fig, axes = plt.subplots(len(picks), 3, figsize=(15, 3.8 * len(picks)), squeeze=False)
    for row, r in zip(axes, picks):
        es = r["early_stopping"]
        dg = {e: [np.zeros((0, 2)), np.asarray(d[0]).reshape(-1, 2), np.asarray(d[1]).reshape(-1, 2)]
              for e, d in r["_diagrams"].items()}
        for ax, dim in zip(row[:2], (1, 2)):
            plot_betti_curves(dg, dim, ax=ax, min_persistence=0.02)
            b = es["chosen_epoch"]
            if b in dg:
                from topodnn.summaries import betti_curve, filter_pairs

                eps, beta = betti_curve(filter_pairs(dg[b][dim], 0.02), 301, max_epsilon=0.3)
                ax.plot(eps, beta, color="red", lw=2.5, ls="--", label=f"chosen epoch {b}")
            ax.legend(fontsize=6, ncol=2)
            ax.set_title(f"β{dim}: {r['run_id']}", fontsize=9)
        ax = row[2]
        ax.plot(r["epochs"], r["test_acc"], "k-", label="test acc (%)")
        ax.plot([e["epoch"] for e in r["evaluations"]], [e["train_acc"] for e in r["evaluations"]], "k:",
                label="train acc, labels as trained (%)")
        ax.axvline(es["chosen_epoch"], color="red", ls="--", label=f"chosen {es['chosen_epoch']}")
        if es["stop_epoch"] is not None:
            ax.axvline(es["stop_epoch"], color="orange", label=f"rule fires {es['stop_epoch']}")
        ax.axvline(es["oracle_epoch"], color="green", ls=":", label=f"best test {es['oracle_epoch']}")
        ax.set_xlabel("epoch")
        ax2 = ax.twinx()
        ev = r["evaluations"]
        ax2.plot([e["epoch"] for e in ev], [e["signal"] for e in ev], "b.-", label="signal")
        ax2.set_ylabel(f"signal {signal}", color="b")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"test loss of the choice: {es['accuracy_lost']:.1f} points", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_gap(gap: dict, runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    perm_of = {r["run_id"]: r["permute_labels"] for r in runs}
    panels = [("topology only (the method)", gap), ("topology + training accuracy", gap["_variant_points"])]
    for ax, (title, block) in zip(axes, panels):
        y, pred, ids = block["_y"], block["_pred"], block["_ids"]
        perms = np.array([perm_of[i] for i in ids])
        for perm, colour in zip(sorted(set(perms)), ("tab:blue", "tab:orange", "tab:red", "tab:purple")):
            m = perms == perm
            ax.scatter(y[m], pred[m], s=10, color=colour, alpha=0.7, label=f"{int(perm * 100)} % labels permuted")
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("true gap: train - test accuracy (points)")
        ax.set_ylabel("predicted gap, leave one run out (points)")
        ax.set_title(f"{title}\nMAE {block['loo_mae']:.2f} points, r = {block['pearson_r']:.3f} "
                     f"({block['n_runs']} runs, {block['n_observations']} checkpoints)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: lenet_300_100, 2 trials, 6 epochs")
    p.add_argument("--nets", nargs="+", default=["lenet_300_100", "lenet"])
    p.add_argument("--datasets", nargs="+", default=["mnist", "digits"])
    p.add_argument("--fashion-mnist-dir", default=None)
    p.add_argument("--permute", nargs="+", type=float, default=[0.0, 0.2, 0.5])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--every", type=int, default=2, help="topology every k epochs")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-samples", type=int, default=1000, help="training inputs for the graph")
    p.add_argument("--signal", default="area_2")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--min-delta", type=float, default=0.0)
    p.add_argument("--smooth", type=int, default=1)
    p.add_argument("--start-epoch", type=int, default=1, help="the rule ignores earlier epochs")
    p.add_argument("--stats", default="life,midlife,betti_max,eps_at_max,n_pairs,area")
    p.add_argument("--dims", default="1,2")
    p.add_argument("--ridge", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--work-dir", default="/tmp/topodnn_applications")
    p.add_argument("--out", default=str(HERE.parent / "benchmarks" / "results"))
    p.add_argument("--json-name", default="applications.json")
    args = p.parse_args(argv)
    if args.quick:
        args.nets = ["lenet_300_100"]
        args.permute = [0.0, 0.5]
        args.trials = 2
        args.epochs = 6
        args.every = 1
        args.n_samples = 500
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    out = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    specs = dataset_specs(args, work)
    names = feature_names(args.stats.split(","), [int(d) for d in args.dims.split(",")])
    t_start = time.perf_counter()
    runs = []
    for ds_label, spec in specs.items():
        for net in args.nets:
            for perm in args.permute:
                for trial in range(args.trials):
                    r = run_one(args, net, ds_label, spec, perm, trial, work)
                    es = r["early_stopping"]
                    print(f"{r['run_id']:<40} {r['seconds']:6.1f}s  test best {es['test_acc_oracle']:.1f}@{es['oracle_epoch']}"
                          f"  chosen {es['chosen_epoch']} (stop {es['stop_epoch']}) lost {es['accuracy_lost']:.2f}"
                          f"  last-epoch lost {es['last_epoch_lost']:.2f}", flush=True)
                    runs.append(r)

    lost = [r["early_stopping"]["accuracy_lost"] for r in runs]
    last = [r["early_stopping"]["last_epoch_lost"] for r in runs]
    alt_table = {}
    for sig in ALT_SIGNALS:
        vals = [r["early_stopping"]["alternatives_post_hoc"][sig]["accuracy_lost"] for r in runs]
        alt_table[sig] = {"mean_accuracy_lost": float(np.mean(vals))}
    by_perm = {}
    for perm in args.permute:
        sel = [r for r in runs if r["permute_labels"] == perm]
        by_perm[f"{perm:.2f}"] = {
            "mean_accuracy_lost": float(np.mean([r["early_stopping"]["accuracy_lost"] for r in sel])),
            "mean_last_epoch_lost": float(np.mean([r["early_stopping"]["last_epoch_lost"] for r in sel])),
            "fired": int(sum(r["early_stopping"]["stop_epoch"] is not None for r in sel)),
            "runs": len(sel),
        }

    gap = gap_study(runs, names, args.ridge)
    # End to end: fit on everything, save, and predict one checkpoint from its training data.
    gm = fit_gap_model(gap["_X"], gap["_y"], feature_names=names, ridge=args.ridge, run_ids=gap["_ids"],
                       metadata={"topology": {"n_samples": args.n_samples, "max_dim": 2, "max_epsilon": 0.3,
                                              "min_persistence": 0.02, "data": "train"},
                                 "source": "experiments/applications.py"})
    model_path = work / "gap_model.json"
    gm.save(model_path)
    probe = runs[-1]
    t0 = time.perf_counter()
    pg = predict_gap(probe["checkpoint_last"], GapModel.load(model_path))
    probe_true = probe["evaluations"][-1]["gap"]

    plot_early_stopping(runs, out / "early_stopping.png", args.signal)
    plot_gap(gap, runs, out / "gap_scatter.png")
    result = {
        "what": "topological early stopping and generalisation-gap prediction, training inputs only",
        "machine": f"{os.cpu_count()} CPU cores, torch threads {args.threads}",
        "config": {k: v for k, v in vars(args).items()},
        "datasets": {k: v for k, v in specs.items()},
        "n_runs": len(runs),
        "wall_seconds": time.perf_counter() - t_start,
        "early_stopping": {
            "rule": {"signal": args.signal, "mode": "max", "patience": args.patience,
                     "min_delta": args.min_delta, "smooth": args.smooth, "every": args.every,
                     "start_epoch": args.start_epoch},
            "mean_accuracy_lost": float(np.mean(lost)),
            "median_accuracy_lost": float(np.median(lost)),
            "max_accuracy_lost": float(np.max(lost)),
            "mean_last_epoch_lost": float(np.mean(last)),
            "fired": int(sum(r["early_stopping"]["stop_epoch"] is not None for r in runs)),
            "by_permute_labels": by_perm,
            "alternative_signals_post_hoc": alt_table,
        },
        "gap": {k: v for k, v in gap.items() if not k.startswith("_")} | {
            "predict_gap_example": {
                "checkpoint": probe["checkpoint_last"], "predicted_gap": pg["predicted_gap"],
                "true_gap": probe_true, "train_acc": pg["train_acc"],
                "estimated_test_acc": pg["estimated_test_acc"], "true_test_acc": probe["test_acc"][-1],
                "seconds": time.perf_counter() - t0,
                "note": "model fitted on all runs, this one included (an end-to-end check, not a validation)",
            },
        },
        "runs": [_clean(r) for r in runs],
    }
    for r in result["runs"]:
        for ev in r["evaluations"]:
            ev.pop("summary", None)
    (out / args.json_name).write_text(json.dumps(_clean(result), indent=1) + "\n")
    es = result["early_stopping"]
    print(f"\n{len(runs)} runs in {result['wall_seconds']:.0f} s")
    print(f"early stopping ({args.signal}, patience {args.patience}): mean test accuracy lost "
          f"{es['mean_accuracy_lost']:.2f} points (keeping the last epoch: {es['mean_last_epoch_lost']:.2f}); "
          f"rule fired in {es['fired']}/{len(runs)} runs")
    for sig, v in alt_table.items():
        print(f"  post hoc {sig:<14} mean lost {v['mean_accuracy_lost']:.2f}")
    print(f"gap: leave-one-run-out MAE {gap['loo_mae']:.2f} points, Pearson r {gap['pearson_r']:.3f} "
          f"(baselines: mean gap MAE {gap['baseline_mean_gap_loo_mae']:.2f}, train-acc-only MAE "
          f"{gap['baseline_train_acc_loo_mae']:.2f})")
    for label, v in gap["variants"].items():
        if "loo_mae" in v:
            print(f"  {label:<28} MAE {v['loo_mae']:.2f}, r {v['pearson_r']:.3f} (mean-gap baseline "
                  f"{v['baseline_mean_gap_loo_mae']:.2f}, train-acc-only {v['baseline_train_acc_loo_mae']:.2f}, "
                  f"gap std {v['gap_std']:.2f})")
    print(f"predict_gap on {probe['checkpoint_last']}: predicted {pg['predicted_gap']:.2f}, true {probe_true:.2f}")
    print(f"wrote {out / args.json_name}, {out / 'early_stopping.png'}, {out / 'gap_scatter.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
