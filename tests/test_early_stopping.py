"""Topological early stopping: the rule on synthetic summary sequences with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from topodnn.early_stopping import TopologicalEarlyStopping, choose_stop, signal_value


def summ(eps1: float = 0.1, bmax2: float = 0.0, area2: float = 0.0, bmax1: float = 5.0) -> dict:
    """A summary with the fields the rule reads (other statistics filled plausibly)."""
    base = {"life": 0.05, "midlife": 0.1, "n_pairs": 10, "n_essential": 0}
    return {
        0: {**base, "betti_max": 100, "eps_at_max": 0.0, "area": 3.0},
        1: {**base, "betti_max": bmax1, "eps_at_max": eps1, "area": 0.5},
        2: {**base, "betti_max": bmax2, "eps_at_max": 0.2 if bmax2 else math.nan, "area": area2},
    }


def seq(values, field="bmax2"):
    """Summaries whose default signal (the beta_2 maximum) follows ``values``."""
    return [summ(**{field: v}) for v in values]


def test_monotone_improvement_never_stops_early():
    s = seq(np.linspace(0.05, 0.25, 20))
    stop, best = choose_stop(s, patience=2)
    assert stop is None
    assert best == 19


def test_improvement_then_regression_stops_after_patience_and_picks_best():
    values = [0.05, 0.08, 0.12, 0.15, 0.14, 0.12, 0.10, 0.09, 0.08]
    stop, best = choose_stop(seq(values), patience=3)
    assert best == 3
    assert stop == 6  # epochs 4, 5, 6 did not improve


def test_epochs_are_reported_in_training_epochs():
    values = [0.05, 0.08, 0.12, 0.15, 0.14, 0.12, 0.10]
    stop, best = choose_stop(seq(values), epochs=[0, 2, 4, 6, 8, 10, 12], patience=2)
    assert (stop, best) == (10, 6)


def test_patience_one_stops_at_first_non_improvement():
    stop, best = choose_stop(seq([0.1, 0.2, 0.19, 0.3]), patience=1)
    assert (stop, best) == (2, 1)


def test_recovery_within_patience_resets_the_wait():
    values = [0.1, 0.2, 0.18, 0.17, 0.25, 0.24, 0.23, 0.22]
    stop, best = choose_stop(seq(values), patience=3)
    assert (stop, best) == (7, 4)


def test_min_delta_respected():
    # Gains of 0.003 per evaluation: real improvements without min_delta, noise with 0.01.
    values = [0.100, 0.103, 0.106, 0.109, 0.112, 0.115]
    assert choose_stop(seq(values), patience=3, min_delta=0.0) == (None, 5)
    stop, best = choose_stop(seq(values), patience=3, min_delta=0.01)
    assert best == 0
    assert stop == 3
    # A gain larger than min_delta counts: 0.100 -> 0.115 improves, then plateau.
    stop, best = choose_stop(seq([0.100, 0.115, 0.116, 0.117, 0.118]), patience=3, min_delta=0.01)
    assert (stop, best) == (4, 1)


def test_direction_configurable():
    values = [0.3, 0.25, 0.2, 0.22, 0.24, 0.26]
    assert choose_stop(seq(values), mode="min", patience=3) == (5, 2)
    # The same sequence read as "max": epoch 0 is best and nothing beats it.
    assert choose_stop(seq(values), mode="max", patience=3) == (3, 0)


def test_signal_choice_betti_max_2():
    # beta_2 maximum grows then collapses; eps_at_max_1 stays flat (would stop at once).
    s = [summ(eps1=0.1, bmax2=b) for b in (0, 2, 5, 9, 12, 11, 7, 4, 3)]
    assert choose_stop(s, signal="betti_max_2", patience=2) == (6, 4)
    assert choose_stop(s, signal="eps_at_max_1", patience=2) == (2, 0)


def test_sum_signal_and_callable_signal():
    s = summ(bmax1=5, bmax2=7)
    assert signal_value(s, "betti_max_sum") == 12  # H0 excluded
    assert signal_value(s, lambda x: x[1]["eps_at_max"] * 2) == pytest.approx(0.2)
    # JSON round trip turns dimension keys into strings.
    assert signal_value(json.loads(json.dumps(s)), "betti_max_2") == 7


def test_nan_signal_never_improves_and_leading_nans_are_not_counted():
    values = [math.nan, math.nan, 0.1, 0.2, math.nan, math.nan, math.nan]
    assert choose_stop(seq(values), patience=3) == (6, 3)
    assert choose_stop(seq([math.nan] * 6), patience=2) == (None, None)


def test_smoothing_ignores_a_single_dip():
    values = [0.1, 0.15, 0.2, 0.12, 0.25, 0.3, 0.35]
    assert choose_stop(seq(values), patience=1) == (3, 2)
    stop, best = choose_stop(seq(values), patience=1, smooth=3)
    assert stop is None and best == 6


def test_start_epoch_ignores_warmup():
    values = [0.3, 0.1, 0.12, 0.14, 0.16, 0.15, 0.14, 0.13]
    assert choose_stop(seq(values), patience=3) == (3, 0)
    assert choose_stop(seq(values), patience=3, start_epoch=1) == (7, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "up"}, "mode"),
        ({"patience": 0}, "patience"),
        ({"min_delta": -1.0}, "min_delta"),
        ({"smooth": 0}, "smooth"),
        ({"signal": "wiggle_1"}, "unknown signal"),
        ({"signal": "life_x"}, "dimension"),
        ({"epochs": [0, 1]}, "epochs"),
        ({"epochs": [0, 2, 1]}, "increasing"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        choose_stop(seq([0.1, 0.2, 0.3]), **kwargs)


class _Fake:
    """Stands in for topodnn.pipeline.topology: returns diagrams whose H1 peak follows a script."""

    def __init__(self, eps_sequence):
        self.eps = list(eps_sequence)
        self.calls = 0

    def __call__(self, model, data, **kwargs):
        from topodnn.pipeline import ModelTopology

        e = self.eps[self.calls]
        self.calls += 1
        h0 = np.array([[0.0, 0.01], [0.0, np.inf]])
        # 3 H1 pairs overlapping around e: beta_1 peaks at e (births e-0.01, e-0.005, e).
        h1 = np.array([[e - 0.01, e + 0.05], [e - 0.005, e + 0.06], [e, e + 0.07]])
        return ModelTopology(diagrams=[h0, h1], max_epsilon=kwargs["max_epsilon"], max_dim=1,
                             n_nodes=40, n_samples=20, n_edges=0)


def test_callback_computes_on_schedule_and_stops(monkeypatch):
    import torch
    import topodnn.pipeline as pipeline

    # Signal by evaluation (every 2 epochs): rises to epoch 4, then falls.
    fake = _Fake([0.05, 0.1, 0.15, 0.12, 0.11, 0.10, 0.09])
    monkeypatch.setattr(pipeline, "model_topology", fake)
    data = torch.randn(50, 1, 28, 28)
    cb = TopologicalEarlyStopping(data, every=2, n_samples=20, max_dim=1, patience=2, signal="eps_at_max_1",
                                  start_epoch=0)
    assert cb.inputs.shape[0] == 20
    model = torch.nn.Linear(2, 2)
    stopped_at = None
    for epoch in range(20):
        if cb(epoch, model, {}):
            stopped_at = epoch
            break
    assert stopped_at == 8
    assert cb.stop_epoch == 8 and cb.best_epoch == 4
    assert cb.epochs() == [0, 2, 4, 6, 8]
    assert [round(h["signal"], 6) for h in cb.history] == [0.05, 0.1, 0.15, 0.12, 0.11]
    assert cb.history[0]["summary"][1]["n_pairs_per_node"] == pytest.approx(3 / 40)
    # The offline rule agrees with the online one.
    assert choose_stop(cb.summaries(), epochs=cb.epochs(), patience=2, signal="eps_at_max_1") == (8, 4)


def test_callback_rejects_signal_above_max_dim():
    import torch
    with pytest.raises(ValueError, match="max_dim"):
        TopologicalEarlyStopping(torch.zeros(10, 4), signal="betti_max_2", max_dim=1)


def test_callback_accepts_a_dataset():
    import torch
    from torch.utils.data import TensorDataset

    ds = TensorDataset(torch.arange(30.0).reshape(30, 1), torch.zeros(30, dtype=torch.long))
    cb = TopologicalEarlyStopping(ds, n_samples=12)
    assert cb.inputs.shape == (12, 1)
    assert float(cb.inputs[0, 0]) == 0.0  # first inputs, in order


def test_cli_early_stop(tmp_path, capsys):
    from topodnn.cli import main
    from topodnn.early_stopping import read_records

    records = [{"epoch": e, "summary": s} for e, s in zip(range(0, 14, 2), seq([0.05, 0.1, 0.15, 0.12, 0.11, 0.1, 0.2]))]
    f = tmp_path / "s.json"
    f.write_text(json.dumps(records))
    assert main(["early-stop", str(f), "--patience", "3"]) == 0
    out = capsys.readouterr().out
    assert "stop_epoch: 10" in out and "best_epoch: 4" in out
    # the file written by `topodnn run --early-stop topology` holds the records under "history"
    g = tmp_path / "early_stop_trl0.json"
    g.write_text(json.dumps({"params": {}, "history": records}))
    summaries, epochs = read_records(g)
    assert epochs == list(range(0, 14, 2)) and len(summaries) == 7
    assert main(["early-stop", str(g), "--patience", "2"]) == 0
    assert "stop_epoch: 8" in capsys.readouterr().out


@pytest.mark.parametrize("content, match", [(None, "does not exist"), ("not json", "JSON"),
                                            ('{"a": 1}', "records")])
def test_cli_early_stop_bad_file(tmp_path, capsys, content, match):
    from topodnn.cli import main

    f = tmp_path / "s.json"
    if content is not None:
        f.write_text(content)
    assert main(["early-stop", str(f)]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_defaults_are_the_rule_the_study_froze():
    """The defaults of choose_stop and the callback are the rule chosen on the study's tuning runs."""
    import inspect
    from pathlib import Path

    from topodnn import early_stopping as es

    frozen = json.loads((Path(__file__).parents[1] / "benchmarks/results/study_es_rule.json").read_text())
    rule = frozen["topology_rule"]
    for f in (es.choose_stop, es.TopologicalEarlyStopping.__init__):
        params = inspect.signature(f).parameters
        for name in ("signal", "mode", "patience", "smooth"):
            assert params[name].default == rule[name], (f.__qualname__, name)
    assert inspect.signature(es.TopologicalEarlyStopping.__init__).parameters["start_epoch"].default == rule["start_epoch"]


def test_callback_passes_its_grouping_to_the_topology(monkeypatch):
    import torch
    import topodnn.pipeline as pipeline

    fake = _Fake([0.1, 0.2])
    seen = []

    def spy(*args, **kw):
        seen.append(kw.get("groups"))
        return fake(*args, **kw)

    monkeypatch.setattr(pipeline, "model_topology", spy)
    cb = TopologicalEarlyStopping(torch.randn(30, 4), n_samples=20, max_dim=1, signal="eps_at_max_1",
                                  groups="chunk:4", start_epoch=0)
    cb(0, torch.nn.Linear(4, 2), {})
    assert seen == ["chunk:4"]
    assert cb.params["groups"] == "chunk:4"
    assert TopologicalEarlyStopping(torch.randn(30, 4), n_samples=20, max_dim=1,
                                    signal="eps_at_max_1").params["groups"] == "units"
    with pytest.raises(ValueError, match="chunk"):
        TopologicalEarlyStopping(torch.randn(30, 4), n_samples=20, max_dim=1, signal="eps_at_max_1",
                                 groups="chunk:0")


def test_callback_groups_reach_the_graph(monkeypatch):
    """Not mocked: a grouped callback computes on the grouped graph (fewer nodes)."""
    import torch
    import topodnn.pipeline as pipeline

    real, nodes = pipeline.model_topology, []

    def wrapped(*args, **kw):
        topo = real(*args, **kw)
        nodes.append(topo.n_nodes)
        return topo

    monkeypatch.setattr(pipeline, "model_topology", wrapped)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    data = torch.randn(60, 6)
    for groups in (None, "chunk:4"):
        cb = TopologicalEarlyStopping(data, n_samples=60, max_dim=1, signal="betti_max_1", start_epoch=0,
                                      layers=["1", "2"], groups=groups)
        cb(0, model, {})
    assert nodes[1] < nodes[0]
