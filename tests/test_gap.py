"""Generalisation-gap model: regression with known answers, model files, checkpoints, commands."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from topodnn.gap import (
    FORMAT_VERSION,
    GapModel,
    feature_names,
    features_from_summary,
    fit_gap_model,
    leave_one_run_out,
    pearson_r,
    predict_gap,
    register_cli,
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
    with pytest.raises(ValueError, match=r"format_version 2.*refit"):
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

    torch = pytest.importorskip("torch")
    training = pytest.importorskip("topodnn.training", reason="topodnn.training not available")
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
            "lenet_300_100", "mnist", trial=trial, n_epochs=2, save_every=1, permute_labels=perm,
            save_path=str(results), n_train=300, n_test=200, progress=False, lr=0.01,
        )


def test_fit_gap_command_on_cached_summaries(tmp_path, capsys):
    """fit-gap over real checkpoints whose training-data summaries are cached (no engine needed)."""
    pytest.importorskip("topodnn.training", reason="topodnn.training not available")
    from topodnn.gap import collect_observations, store_summary, summary_cache_path

    results = tmp_path / "results"
    _tiny_runs(results)
    ckpts = sorted(results.rglob("ckpt_trl*_epc*.pt"))
    assert len(ckpts) == 6  # epochs 0..2 of two runs
    settings = {"n_samples": 200, "max_dim": 2, "max_epsilon": 0.3, "min_persistence": 0.02}
    rng = np.random.default_rng(3)
    for ck in ckpts:
        summ = {d: {"life": float(rng.uniform(0.01, 0.1)), "midlife": 0.2, "betti_max": 3, "eps_at_max": 0.2,
                    "n_pairs": int(rng.integers(1, 50)), "area": 0.3, "n_essential": 0} for d in (0, 1, 2)}
        store_summary(summary_cache_path(ck), summ, train_acc=50.0, settings=settings)
    obs = collect_observations([results], n_samples=200)
    assert len(obs) == 6 and len({o.run_id for o in obs}) == 2
    assert all(o.train_acc == 50.0 and 0.0 <= o.test_acc <= 100.0 for o in obs)
    # A cache written with other settings is not used (it would need the engine to recompute).
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    out = tmp_path / "gap_model.json"
    args = parser.parse_args(["fit-gap", str(results), "--out", str(out), "--n-samples", "200",
                              "--stats", "life,n_pairs", "--dims", "1"])
    assert args.func(args) == 0
    model = GapModel.load(out)
    assert model.n_runs == 2 and model.n_observations == 6
    assert model.feature_names == ["life_1", "n_pairs_1"]
    assert model.metadata["topology"]["data"] == "train"
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
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    out = tmp_path / "gap_model.json"
    args = parser.parse_args(
        ["fit-gap", str(results), "--out", str(out), "--n-samples", "200",
         "--stats", "life", "--dims", "1", "--ridge", "1", "--no-cache"]
    )
    assert args.func(args) == 0
    model = GapModel.load(out)
    assert model.n_runs == 2 and model.n_observations == 6  # epochs 0..2 of two runs
    assert model.metadata["topology"]["data"] == "train"
    text = capsys.readouterr().out
    assert "leave-one-run-out MAE" in text
    # The summaries were cached next to the checkpoints, with the measured training accuracy.
    caches = sorted(results.rglob("*.train_summary.json"))
    assert len(caches) == 6
    assert all(0.0 <= json.loads(c.read_text())["train_acc"] <= 100.0 for c in caches)
    ckpts = sorted(results.rglob("ckpt_trl1_epc2.pt"))
    assert ckpts
    args = parser.parse_args(["predict-gap", str(ckpts[0]), "--model", str(out), "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["estimated_test_acc"] == pytest.approx(res["train_acc"] - res["predicted_gap"])
    assert 0.0 <= res["train_acc"] <= 100.0
