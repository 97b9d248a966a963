"""Generalisation-gap model: regression with known answers, model files, checkpoints, commands."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from topodnn.cli import main
from topodnn.gap import (
    FORMAT_VERSION,
    PREDICTORS,
    GapModel,
    Predictor,
    domain_warnings,
    evaluate_predictors,
    feature_names,
    features_from_summary,
    fit_gap_model,
    group_cv_predictions,
    is_topological,
    leave_one_run_out,
    mae,
    paired_bootstrap,
    pearson_r,
    predict_gap,
    spearman,
    training_reference,
)


def linear_data(n_runs=12, per_run=4, noise=0.5, seed=0):
    """Gaps from a known linear law of 3 features, with Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    n = n_runs * per_run
    X = np.column_stack([rng.normal(0.1, 0.02, n), rng.normal(50, 10, n), rng.uniform(0, 1, n)])
    w = np.array([200.0, 0.3, -8.0])
    b = 2.0
    y = b + X @ w + rng.normal(0, noise, n)
    runs = np.repeat(np.arange(n_runs), per_run)
    return X, y, runs, w, b


def test_ols_recovers_known_coefficients():
    X, y, runs, w, b = linear_data(noise=0.0)
    model = fit_gap_model(X, y, ridge=0.0)
    np.testing.assert_allclose(model.raw_coefficients, w, rtol=1e-8)
    assert model.raw_intercept == pytest.approx(b, abs=1e-8)
    np.testing.assert_allclose(model.predict(X), y, atol=1e-8)
    assert model.metadata["train_mae"] < 1e-8


def test_ridge_default_is_close_to_ols_with_noise():
    X, y, runs, w, b = linear_data(noise=0.5)
    model = fit_gap_model(X, y)
    np.testing.assert_allclose(model.raw_coefficients, w, rtol=0.1)


def test_leave_one_run_out_mae_is_at_noise_level():
    noise = 0.5
    X, y, runs, w, b = linear_data(n_runs=20, noise=noise, seed=1)
    pred, mae = leave_one_run_out(X, y, runs, ridge=0.0)
    assert pred.shape == y.shape
    # E|N(0, s)| = s * sqrt(2/pi) ~ 0.40; out-of-sample error is a little larger.
    assert 0.25 < mae < 0.65
    assert pearson_r(pred, y) > 0.99
    # Held-out predictions really are out of sample: each run's prediction differs from the
    # full-data fit.
    full = fit_gap_model(X, y, ridge=0.0).predict(X)
    assert not np.allclose(pred, full)


def test_standardisation_makes_units_irrelevant():
    X, y, runs, w, b = linear_data(noise=0.3)
    a = fit_gap_model(X, y).predict(X)
    Xs = X * np.array([1000.0, 1e-3, 1.0]) + np.array([5.0, -2.0, 0.0])
    np.testing.assert_allclose(fit_gap_model(Xs, y).predict(Xs), a, rtol=1e-9, atol=1e-9)


def test_too_few_runs_error_says_how_many():
    X, y, runs, *_ = linear_data(n_runs=1, per_run=4)
    with pytest.raises(ValueError, match=r"too few runs.*4 observation.*need at least 5"):
        fit_gap_model(X, y)
    with pytest.raises(ValueError, match="at least 2 runs"):
        leave_one_run_out(X, y, runs)


def test_nan_features_are_imputed_with_the_mean():
    X, y, runs, *_ = linear_data(noise=0.1)
    X = X.copy()
    X[3, 0] = np.nan
    model = fit_gap_model(X, y)
    assert np.isfinite(model.coef).all()
    row = X[3].copy()
    row[0] = model.means[0]
    assert model.predict(X[3])[0] == pytest.approx(model.predict(row)[0])
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="undefined"):
        fit_gap_model(X, y)


def test_model_file_round_trip(tmp_path):
    X, y, runs, *_ = linear_data()
    names = ["life_1", "n_pairs_1", "midlife_2"]
    model = fit_gap_model(X, y, feature_names=names, run_ids=runs, metadata={"topology": {"n_samples": 100}})
    assert model.n_runs == 12 and model.n_observations == 48
    path = tmp_path / "gap_model.json"
    model.save(path)
    d = json.loads(path.read_text())
    assert d["format_version"] == FORMAT_VERSION
    assert d["feature_names"] == names and len(d["coefficients"]) == 3
    again = GapModel.load(path)
    np.testing.assert_allclose(again.predict(X), model.predict(X))
    assert again.metadata["topology"]["n_samples"] == 100


def test_model_file_from_another_version_is_rejected(tmp_path):
    X, y, *_ = linear_data()
    path = tmp_path / "m.json"
    fit_gap_model(X, y, feature_names=["life_1", "n_pairs_1", "area_2"]).save(path)
    d = json.loads(path.read_text())
    d["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=rf"format_version {FORMAT_VERSION + 1}.*refit"):
        GapModel.load(path)


@pytest.mark.parametrize("content", ['{"weights": [1, 2]}', "not json", '[1, 2, 3]'])
def test_file_that_is_not_a_gap_model_is_rejected(tmp_path, content):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="not a topodnn gap model"):
        GapModel.load(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        GapModel.load(tmp_path / "nope.json")


def test_feature_names_and_extraction():
    names = feature_names()
    assert len(names) == 12 and names[0] == "life_1" and names[-1] == "area_2"
    summary = {
        1: {"life": 0.05, "midlife": 0.1, "betti_max": 7, "eps_at_max": 0.12, "n_pairs": 30, "area": 0.4},
        "2": {"life": math.nan, "midlife": None, "betti_max": 0, "eps_at_max": math.nan, "n_pairs": 0, "area": 0.0},
    }
    x = features_from_summary(summary, names)
    assert x[2] == 7 and x[4] == 30
    assert np.isnan(x[6]) and np.isnan(x[7]) and x[10] == 0
    with pytest.raises(ValueError, match="max_dim >= 3"):
        features_from_summary(summary, ["life_3"])
    with pytest.raises(ValueError, match="unknown summary statistic"):
        feature_names(["wiggle"], [1])


def test_checkpoint_without_training_data_reference(tmp_path):
    with pytest.raises(ValueError, match="checkpoint has no saved training-data reference"):
        training_reference({"net": "lenet", "epoch": 3, "model_state": {}})
    ref = training_reference({"dataset": "mnist", "args": {"n_train": 500, "seed": 1, "permute_labels": 0.2}})
    assert ref["dataset"] == "mnist" and ref["n_train"] == 500 and ref["permute_labels"] == 0.2

    import torch
    from topodnn import training
    from topodnn.networks import get_network

    # A checkpoint as training writes it, minus its reference to the training data.
    ckpt = tmp_path / "ckpt_trl0_epc1.pt"
    torch.save({"format_version": training.FORMAT_VERSION, "net": "lenet", "epoch": 1, "trial": 0,
                "model_state": get_network("lenet").state_dict(), "history": {}, "args": {"lr": 0.01}}, ckpt)
    X, y, *_ = linear_data()
    model_file = tmp_path / "m.json"
    fit_gap_model(X, y, feature_names=["life_1", "n_pairs_1", "area_2"]).save(model_file)
    with pytest.raises(ValueError, match="checkpoint has no saved training-data reference"):
        predict_gap(ckpt, model_file)


def test_train_acc_feature(tmp_path):
    X, y, runs, *_ = linear_data(noise=0.0)
    names = feature_names(["life"], [1], with_train_acc=True)
    assert names == ["life_1", "train_acc"]
    summary = {1: {"life": 0.05}}
    x = features_from_summary(summary, names, train_acc=80.0)
    assert list(x) == [0.05, 80.0]
    with pytest.raises(ValueError, match="train_acc"):
        features_from_summary(summary, names)
    model = fit_gap_model(X[:, :2], y, feature_names=names, ridge=0.0)
    model.save(tmp_path / "m.json")
    again = GapModel.load(tmp_path / "m.json")
    assert again.predict_summary(summary, train_acc=80.0) == pytest.approx(
        model.predict(np.array([0.05, 80.0]))[0]
    )


def _tiny_runs(results):
    from topodnn.training import train

    for trial, perm in ((0, 0.0), (1, 0.5)):
        train(
            "lenet_300_100", "mnist", trial=trial, n_epochs=3, save_every=1, permute_labels=perm,
            save_path=str(results), n_train=300, n_test=200, progress=False, lr=0.01,
        )


def test_fit_gap_command_on_cached_summaries(tmp_path, capsys):
    """fit-gap over real checkpoints whose training-data summaries are cached (no engine needed)."""
    from topodnn.gap import collect_observations, store_summary, summary_cache_path

    results = tmp_path / "results"
    _tiny_runs(results)
    ckpts = sorted(results.rglob("ckpt_trl*_epc*.pt"))
    assert len(ckpts) == 8  # epochs 0..3 of two runs
    settings = {"n_samples": 200, "max_dim": 2, "max_epsilon": 0.3, "min_persistence": 0.02}
    rng = np.random.default_rng(3)
    for ck in ckpts:
        summ = {d: {"life": float(rng.uniform(0.01, 0.1)), "midlife": 0.2, "betti_max": 3, "eps_at_max": 0.2,
                    "n_pairs": int(rng.integers(1, 50)), "area": 0.3, "n_essential": 0} for d in (0, 1, 2)}
        store_summary(summary_cache_path(ck), summ, train_acc=50.0, settings=settings)
    obs = collect_observations([results], n_samples=200)
    # epoch 0 (the untrained networks) is never an observation
    assert len(obs) == 6 and len({o.run_id for o in obs}) == 2 and {o.epoch for o in obs} == {1, 2, 3}
    assert all(o.train_acc == 50.0 and 0.0 <= o.test_acc <= 100.0 for o in obs)
    assert collect_observations([results], n_samples=200, epochs=[0, 2])[0].epoch == 2
    out = tmp_path / "gap_model.json"
    assert main(["fit-gap", str(results), "--out", str(out), "--n-samples", "200",
                 "--stats", "life,n_pairs", "--dims", "1", "--ridge", "0"]) == 0
    model = GapModel.load(out)
    assert model.n_runs == 2 and model.n_observations == 6
    assert model.feature_names == ["life_1", "n_pairs_1"]
    assert model.metadata["topology"]["probe"] == "train"
    domain = model.metadata["domain"]
    assert domain["networks"] == ["lenet_300_100"] and domain["epochs"] == [1, 3]
    assert domain["n_train"] == [300, 300] and domain["permute_labels"] == [0.0, 0.5]
    assert domain["mean_gap"] == pytest.approx(np.mean([o.gap for o in obs]))
    assert "fitted on 6 checkpoints from 2 runs" in capsys.readouterr().out


def _pipeline_available() -> str:
    try:
        import topodnn.datasets  # noqa: F401
        import topodnn.engine  # noqa: F401
        import topodnn.graph  # noqa: F401
        import topodnn.networks  # noqa: F401
        import topodnn.summaries  # noqa: F401
        import topodnn.training  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        return f"pipeline piece missing: {exc}"
    return ""


@pytest.mark.skipif(bool(_pipeline_available()), reason=_pipeline_available() or "ok")
def test_commands_on_a_tiny_run(tmp_path, capsys):
    results = tmp_path / "results"
    _tiny_runs(results)
    out = tmp_path / "gap_model.json"
    assert main(["fit-gap", str(results), "--out", str(out), "--n-samples", "200",
                 "--stats", "n_pairs_per_node", "--dims", "1", "--ridge", "1", "--no-cache"]) == 0
    model = GapModel.load(out)
    assert model.n_runs == 2 and model.n_observations == 6  # epochs 1..3 of two runs
    assert model.metadata["topology"]["probe"] == "train"
    text = capsys.readouterr().out
    assert "leave-one-run-out MAE" in text
    # The summaries were cached next to the trained checkpoints, with the training accuracy.
    caches = sorted(results.rglob("*.train_summary.json"))
    assert len(caches) == 6
    assert all(0.0 <= json.loads(c.read_text())["train_acc"] <= 100.0 for c in caches)
    ckpts = sorted(results.rglob("ckpt_trl1_epc3.pt"))
    assert ckpts
    assert main(["predict-gap", str(ckpts[0]), "--model", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert res["estimated_test_acc"] == pytest.approx(res["train_acc"] - res["predicted_gap"])
    assert 0.0 <= res["train_acc"] <= 100.0
    assert res["model_mean_gap"] == pytest.approx(model.metadata["domain"]["mean_gap"])
    assert res["domain_warnings"] == [] and captured.err == ""
    # outside the domain: a warning on stderr, the prediction still made
    assert main(["predict-gap", str(sorted(results.rglob("ckpt_trl1_epc0.pt"))[0]), "--model", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning: epoch 0 is the untrained network" in captured.err
    assert "predicted gap" in captured.out


# --------------------------------------------------------------------------------------------
# predictors and their evaluation, on synthetic data with known answers


def law_data(n_runs=30, per_run=6, noise=0.3, seed=0):
    """Gaps from y = 2 * life + noise; midlife is an unrelated nuisance feature."""
    rng = np.random.default_rng(seed)
    n = n_runs * per_run
    life = rng.uniform(0.0, 10.0, n)
    midlife = rng.uniform(0.0, 10.0, n)
    y = 2.0 * life + rng.normal(0.0, noise, n)
    runs = np.repeat([f"run{i}" for i in range(n_runs)], per_run)
    summaries = [{1: {"life": a, "midlife": b}} for a, b in zip(life, midlife)]
    return np.column_stack([life, midlife]), y, runs, summaries


def test_p0_recovers_the_law():
    X, y, runs, _ = law_data()
    model = PREDICTORS["P0"].fit(X, y, runs)
    assert model.feature_names == ["life_1", "midlife_1"] and model.ridge == 0.0
    np.testing.assert_allclose(model.raw_coefficients, [2.0, 0.0], atol=0.03)
    assert model.raw_coefficients[0] == pytest.approx(2.0, abs=0.02)
    assert model.raw_intercept == pytest.approx(0.0, abs=0.5)
    assert PREDICTORS["P0"].topological and not PREDICTORS["train_loss_acc"].topological


class _Recorder(Predictor):
    """A predictor that remembers the groups of every fit."""

    seen: list = []

    def fit(self, X, y, groups=None, *, metadata=None):
        _Recorder.seen.append(set(groups))
        return super().fit(X, y, groups, metadata=metadata)


def test_leave_one_run_out_never_sees_the_held_out_run():
    X, y, runs, _ = law_data(n_runs=8)
    _Recorder.seen = []
    rec = _Recorder("rec", ("life_1", "midlife_1"))
    pred = group_cv_predictions(rec, X, y, runs)
    assert len(_Recorder.seen) == 8
    for held_out, seen in zip(dict.fromkeys(runs), _Recorder.seen):
        assert held_out not in seen and len(seen) == 7
    # and the predictions of a run do not move when its own gaps do (no leakage), P1's inner
    # choice of the penalty included
    for predictor in (PREDICTORS["P0"], Predictor("ridge-cv", ("life_1", "midlife_1"),
                                                   ridge_grid=(0.01, 1.0, 100.0), inner_folds=3)):
        base = group_cv_predictions(predictor, X, y, runs)
        y2 = y.copy()
        y2[runs == "run3"] += 1000.0
        moved = group_cv_predictions(predictor, X, y2, runs)
        np.testing.assert_allclose(moved[runs == "run3"], base[runs == "run3"])
        assert not np.allclose(moved[runs != "run3"], base[runs != "run3"])
    assert mae(pred, y) == pytest.approx(np.mean(np.abs(pred - y)))


def test_leave_one_group_out_holds_out_whole_groups():
    X, y, runs, _ = law_data(n_runs=12)
    groups = np.array([r[-1] for r in runs])  # runs grouped by their last digit
    _Recorder.seen = []
    group_cv_predictions(_Recorder("rec", ("life_1",)), X[:, :1], y, groups, inner_groups=runs)
    for held_out, seen in zip(dict.fromkeys(groups), _Recorder.seen):
        assert not any(r[-1] == held_out for r in seen)  # inner groups are runs, none held out


def test_mean_gap_predictor_predicts_the_mean_of_the_other_runs():
    X, y, runs, _ = law_data(n_runs=5, per_run=3)
    pred = group_cv_predictions(PREDICTORS["mean_gap"], np.zeros((len(y), 0)), y, runs)
    for r in set(runs):
        assert np.allclose(pred[runs == r], y[runs != r].mean())


def test_ridge_penalty_chosen_inside_the_training_data():
    X, y, runs, _ = law_data(noise=0.3)
    p = Predictor("cv", ("life_1", "midlife_1"), ridge_grid=(1e-3, 1e4))
    model = p.fit(X, y, runs)
    assert model.ridge == 1e-3  # a huge penalty would shrink the true law away
    assert model.metadata["ridge_grid"] == [1e-3, 1e4] and model.metadata["predictor"] == "cv"
    # a pure-noise target: shrinking to the mean is better
    noise = np.random.default_rng(1).normal(size=len(y))
    assert p.fit(X, noise, runs).ridge == 1e4


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    for _ in range(20):
        a = rng.integers(0, 6, 40).astype(float)  # many ties
        b = a + rng.normal(0, 2, 40)
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_paired_bootstrap_covers_a_known_difference():
    rng = np.random.default_rng(4)
    n_runs, per_run = 200, 5
    runs = np.repeat(np.arange(n_runs), per_run)
    y = rng.normal(size=n_runs * per_run)
    # errors of constant size: MAE 1 against MAE 3, the difference is -2 in every replicate
    ci = paired_bootstrap(y, y + 1.0, y - 3.0, runs, n_boot=500)
    assert ci["diff"] == pytest.approx(-2.0) and ci["lo"] == pytest.approx(-2.0) and ci["hi"] == pytest.approx(-2.0)
    # Gaussian errors of sd 1 and 2: E|e| = sd * sqrt(2 / pi); the true difference is -sqrt(2/pi)
    truth = -math.sqrt(2.0 / math.pi)
    covered = 0
    for rep in range(40):
        r = np.random.default_rng(100 + rep)
        a = y + r.normal(0, 1, y.size)
        b = y + r.normal(0, 2, y.size)
        ci = paired_bootstrap(y, a, b, runs, n_boot=2000, seed=rep)
        assert ci["lo"] <= ci["diff"] <= ci["hi"] and ci["n_runs"] == n_runs
        covered += ci["lo"] <= truth <= ci["hi"]
    assert covered >= 34  # 95 % intervals: 38 of 40 expected; 34 is p < 0.01 under that
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(y, y, y[:-1], runs)


def test_evaluate_predictors_reports_each_scheme_and_baseline():
    X, y, runs, summaries = law_data(n_runs=10, per_run=4)
    rows = [{"gap": g, "summary": s, "train_acc": 90.0 + g / 10, "train_loss": 0.1} for g, s in zip(y, summaries)]
    groups = np.array([str(int(r[3:]) % 3) for r in runs])
    res = evaluate_predictors({k: PREDICTORS[k] for k in ("P0", "mean_gap", "train_loss_acc")}, rows,
                              schemes={"loro": runs, "logo": groups}, runs=runs,
                              baselines=["mean_gap", "train_loss_acc"], n_boot=200)
    assert set(res) == {"P0", "mean_gap", "train_loss_acc"}
    p0 = res["P0"]["loro"]
    assert p0["mae"] < 0.5 < res["mean_gap"]["loro"]["mae"]
    assert p0["spearman"] > 0.99
    assert p0["vs"]["mean_gap"]["hi"] < 0 and "P0" not in p0["vs"]
    assert set(res["mean_gap"]["logo"]["vs"]) == {"train_loss_acc"}
    assert len(p0["pred"]) == len(rows)


def test_features_beyond_topology():
    summary = {0: {"life": 0.1, "n_essential_per_node": 0.01}, 1: {"life": 0.05, "betti_max_per_node": 0.2}}
    extra = {"train_acc": 99.0, "train_loss": 0.05, "n_train": 1000, "mean_abs_corr": 0.3, "net": "lenet",
             "dataset": "digits"}
    names = ["life_0", "betti_max_per_node_1", "train_loss", "log_n_train", "mean_abs_corr", "arch_lenet",
             "arch_conv_2", "dataset_digits", "arch_lenet_300_100"]
    x = features_from_summary(summary, names, extra=extra)
    np.testing.assert_allclose(x, [0.1, 0.2, 0.05, math.log(1000), 0.3, 1, 0, 1, 0])
    assert not is_topological("arch_lenet_300_100") and is_topological("n_pairs_per_node_2")
    with pytest.raises(ValueError, match="train_loss"):
        features_from_summary(summary, ["train_loss"], extra={})
    with pytest.raises(ValueError, match="neither"):
        is_topological("wiggle_1")
    with pytest.raises(ValueError, match="n_nodes"):
        features_from_summary({1: {"life": 0.1}}, ["area_per_node_1"])


def test_domain_warnings():
    domain = {"networks": ["lenet", "lenet_300_100"], "datasets": ["mnist"], "n_train": [250, 4000],
              "epochs": [1, 60], "lr": [0.01], "lr_schedule": ["train_loss"], "weight_decay": [0.0005],
              "permute_labels": [0.0]}
    ref = {"lr": 0.01, "lr_schedule": "train_loss", "weight_decay": 5e-4, "permute_labels": 0.0}
    assert domain_warnings(domain, net="lenet", dataset="mnist", n_train=1000, epoch=30, ref=ref) == []
    out = domain_warnings(domain, net="conv_2", dataset="digits", n_train=100, epoch=80,
                          ref={**ref, "lr": 0.1, "lr_schedule": "test_acc", "permute_labels": 0.2})
    text = "\n".join(out)
    for word in ("network 'conv_2'", "dataset 'digits'", "training-set size 100", "epoch 80",
                 "learning rate 0.1", "schedule 'test_acc'", "permuted labels 0.2"):
        assert word in text
    assert len(out) == 7
    assert domain_warnings(None, net="x", dataset="y", n_train=1, epoch=1, ref={}) == []


# --------------------------------------------------------------------------------------------
# the shipped model


def test_shipped_model_is_package_data_with_its_domain():
    from topodnn.gap import DEFAULT_MODEL_PATH, load_default_model

    assert DEFAULT_MODEL_PATH.parent.name == "data" and DEFAULT_MODEL_PATH.parent.parent.name == "topodnn"
    model = load_default_model()
    domain = model.metadata["domain"]
    for key in ("networks", "datasets", "n_train", "epochs", "lr", "lr_schedule", "weight_decay",
                "permute_labels", "mean_gap", "n_runs"):
        assert key in domain, key
    assert {"lenet", "lenet_300_100"} <= set(domain["networks"]) and "mnist" in domain["datasets"]
    assert domain["n_train"][0] <= 250 and domain["n_train"][1] >= 4000
    assert domain["epochs"][0] >= 1 and domain["epochs"][1] == 60  # epoch 0 never fitted
    assert model.metadata["topology"]["probe"] == "train"
    assert model.metadata["predictor"] in PREDICTORS
    assert model.feature_names == list(PREDICTORS[model.metadata["predictor"]].features)


@pytest.mark.slow
def test_predict_gap_with_the_shipped_model(tmp_path, capsys):
    from topodnn.gap import load_default_model
    from topodnn.training import train

    train("lenet_300_100", "mnist", n_epochs=2, n_train=300, lr=0.01, save_path=str(tmp_path), progress=False)
    ckpt = tmp_path / "lenet_300_100_mnist" / "ckpt_trl0_epc2.pt"
    assert main(["predict-gap", str(ckpt), "--json"]) == 0  # no --model: the shipped one
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    model = load_default_model()
    assert res["model"] == "shipped" and res["predictor"] == model.metadata["predictor"]
    assert res["model_mean_gap"] == pytest.approx(model.metadata["domain"]["mean_gap"])
    assert math.isfinite(res["predicted_gap"]) and -100 < res["predicted_gap"] < 100
    assert res["estimated_test_acc"] == pytest.approx(res["train_acc"] - res["predicted_gap"])
    assert res["domain_warnings"] == [] and captured.err == ""  # inside the domain: no warning
    assert res["n_train"] == 300 and res["epoch"] == 2 and res["net"] == "lenet_300_100"
    # a checkpoint outside the domain: the prediction comes with a warning on stderr
    train("lenet_300_100", "mnist", n_epochs=1, n_train=100, lr=0.05, save_path=str(tmp_path / "b"),
          progress=False)
    assert main(["predict-gap", str(tmp_path / "b" / "lenet_300_100_mnist" / "ckpt_trl0_epc1.pt")]) == 0
    captured = capsys.readouterr()
    assert "warning: training-set size 100 is outside" in captured.err
    assert "warning: learning rate 0.05 is outside" in captured.err
    assert "the model's mean gap" in captured.out
