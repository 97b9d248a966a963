"""Training: checkpoints, history, resume equivalence, atomic writes, loading errors, label permutation."""

import json
import random
import shutil

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is several times faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

import topodnn.training as training
from topodnn import results
from topodnn.networks import get_network
from topodnn.training import (FORMAT_VERSION, CheckpointError, CheckpointNotFoundError, list_checkpoints,
                              load_checkpoint, load_model, model_from_checkpoint, results_dir, save_schedule,
                              shuffle_labels, train)

# Tiny runs on the embedded MNIST sample; LeNet has dropout, so RNG restoring is exercised.
SMALL = dict(n_train=192, n_test=100, batch_size=64, progress=False)


class Interrupt(Exception):
    """Stands for a crash or Ctrl-C in the middle of a run."""


def interrupt_at(epoch):
    def callback(e, _model, _history):
        if e == epoch:
            raise Interrupt
        return False
    return callback


def weights(path):
    return load_checkpoint(path)["model_state"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def strip_times(history):
    return {k: v for k, v in history.items() if k != "epoch_time_s"}


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run."""
    root = tmp_path_factory.mktemp("reference")
    history = train("lenet", "mnist", n_epochs=3, save_path=root, **SMALL)
    return root, history


def test_run_writes_checkpoints_and_history(reference):
    root, history = reference
    folder = results_dir(root, "lenet", "mnist")
    assert folder == root / "lenet_mnist"
    assert sorted(list_checkpoints(folder, 0)) == [0, 1, 2, 3]
    assert list_checkpoints(folder, 1) == {}
    assert history["epoch"] == [0, 1, 2, 3]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s"):
        assert len(history[key]) == 4, key
    assert all(0.0 <= a <= 1.0 for a in history["train_acc"] + history["test_acc"])
    assert history["lr"] == [0.0005] * 4
    assert history["stopped_at"] is None
    on_disk = json.loads((folder / "history_trl0.json").read_text())
    assert on_disk == history
    assert leftovers(folder) == []
    assert not (folder / "resume_trl0.pt").exists()
    ckpt = load_checkpoint(folder / "ckpt_trl0_epc3.pt")
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["epoch"] == 3 and ckpt["trial"] == 0
    assert ckpt["net"] == "lenet" and ckpt["dataset"] == "mnist"
    assert ckpt["args"]["lr"] == 0.0005 and ckpt["args"]["seed"] == 0 and ckpt["args"]["n_train"] == 192
    assert ckpt["history"]["epoch"] == [0, 1, 2, 3]
    assert set(ckpt["rng"]) >= {"torch", "data_order"}
    assert ckpt["optimizer_state"]["param_groups"][0]["momentum"] == 0.9
    assert ckpt["optimizer_state"]["param_groups"][0]["weight_decay"] == 5e-4
    # the default scheduler follows the training loss (the original's followed the test accuracy)
    assert ckpt["scheduler_state"]["mode"] == "min" and ckpt["scheduler_state"]["factor"] == 0.5
    assert ckpt["args"]["lr_schedule"] == "train_loss"


def test_epoch_zero_is_the_untrained_network(reference):
    root, history = reference
    folder = results_dir(root, "lenet", "mnist")
    torch.manual_seed(0)
    fresh = get_network("lenet").state_dict()
    assert_same_weights(weights(folder / "ckpt_trl0_epc0.pt"), fresh)
    assert not torch.equal(weights(folder / "ckpt_trl0_epc1.pt")["conv1.weight"], fresh["conv1.weight"])
    # Epoch 0 test metrics are those of the untrained network.
    model, _ = model_from_checkpoint(folder / "ckpt_trl0_epc0.pt")
    from topodnn.datasets import load_dataset

    _, test, _ = load_dataset("mnist", n_test=100)
    loss, acc = training.evaluate(model, test)
    assert loss == pytest.approx(history["test_loss"][0]) and acc == pytest.approx(history["test_acc"][0])


def test_checkpoints_are_saved_on_cpu(reference):
    root, _ = reference
    ckpt = load_checkpoint(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc2.pt")
    tensors = list(ckpt["model_state"].values())
    for state in ckpt["optimizer_state"]["state"].values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)


def test_rerun_is_bit_identical_and_resume_equals_uninterrupted(reference, tmp_path):
    root, history = reference
    ref_folder = results_dir(root, "lenet", "mnist")
    # 2 epochs, then the same call with n_epochs=3: continues from epoch 2.
    first = train("lenet", "mnist", n_epochs=2, save_path=tmp_path, **SMALL)
    assert first["epoch"] == [0, 1, 2]
    folder = results_dir(tmp_path, "lenet", "mnist")
    assert_same_weights(weights(folder / "ckpt_trl0_epc2.pt"), weights(ref_folder / "ckpt_trl0_epc2.pt"))
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert_same_weights(weights(folder / "ckpt_trl0_epc3.pt"), weights(ref_folder / "ckpt_trl0_epc3.pt"))
    assert strip_times(resumed) == strip_times(history)
    ckpt, ref = (load_checkpoint(f / "ckpt_trl0_epc3.pt") for f in (folder, ref_folder))
    for key, state in ckpt["optimizer_state"]["state"].items():
        assert torch.equal(state["momentum_buffer"], ref["optimizer_state"]["state"][key]["momentum_buffer"])
    # A finished run is not retrained; a stale JSON history is rewritten from the checkpoint.
    (folder / "history_trl0.json").write_text("{}")
    again = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert again == resumed
    assert json.loads((folder / "history_trl0.json").read_text()) == resumed


def test_interrupted_run_loses_no_finished_epoch(reference, tmp_path):
    root, history = reference
    with pytest.raises(Interrupt):
        train("lenet", "mnist", n_epochs=3, save_path=tmp_path, callback=interrupt_at(2), **SMALL)
    folder = results_dir(tmp_path, "lenet", "mnist")
    assert sorted(list_checkpoints(folder, 0)) == [0, 1]
    assert json.loads((folder / "history_trl0.json").read_text())["epoch"] == [0, 1]
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert strip_times(resumed) == strip_times(history)
    assert_same_weights(weights(folder / "ckpt_trl0_epc3.pt"),
                        weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc3.pt"))
    assert leftovers(folder) == []


def test_resume_between_scheduled_checkpoints(reference, tmp_path, monkeypatch):
    # Keep only epochs 0 and the last on the schedule: the other epochs live in the rolling resume file.
    root, history = reference
    monkeypatch.setattr(training, "save_schedule", lambda n, every=1: {0, n})
    with pytest.raises(Interrupt):
        train("lenet", "mnist", n_epochs=3, save_path=tmp_path, callback=interrupt_at(3), **SMALL)
    folder = results_dir(tmp_path, "lenet", "mnist")
    assert sorted(list_checkpoints(folder, 0)) == [0]
    assert load_checkpoint(folder / "resume_trl0.pt")["epoch"] == 2
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert strip_times(resumed) == strip_times(history)
    assert sorted(list_checkpoints(folder, 0)) == [0, 3]
    assert not (folder / "resume_trl0.pt").exists()
    assert_same_weights(weights(folder / "ckpt_trl0_epc3.pt"),
                        weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc3.pt"))


def test_save_schedule():
    assert save_schedule(50, 10) == set(range(11)) | {20, 30, 40, 50}
    assert save_schedule(23, 5) == set(range(11)) | {15, 20, 23}
    assert save_schedule(3, 1) == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        save_schedule(5, 0)


def test_resume_refuses_other_arguments(reference, tmp_path):
    train("lenet", "mnist", n_epochs=1, save_path=tmp_path, **SMALL)
    with pytest.raises(CheckpointError, match=r"lr: checkpoint 0\.0005, now 0\.01"):
        train("lenet", "mnist", n_epochs=2, save_path=tmp_path, lr=0.01, **SMALL)
    # resume=False starts afresh (old files of the trial removed) and reproduces the reference.
    root, history = reference
    fresh = train("lenet", "mnist", n_epochs=1, save_path=tmp_path, resume=False, **SMALL)
    assert strip_times(fresh) == strip_times({k: v[:2] if isinstance(v, list) else v for k, v in history.items()})


def test_seed_and_trial(tmp_path, reference):
    root, _ = reference
    other = train("lenet", "mnist", n_epochs=1, trial=1, save_path=tmp_path, **SMALL)
    assert other["seed"] == 1
    folder = results_dir(tmp_path, "lenet", "mnist")
    assert sorted(list_checkpoints(folder, 1)) == [0, 1]
    assert not torch.equal(weights(folder / "ckpt_trl1_epc0.pt")["fc1.weight"],
                           weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc0.pt")["fc1.weight"])
    same = train("lenet", "mnist", n_epochs=1, trial=2, seed=0, save_path=tmp_path, **SMALL)
    assert same["seed"] == 0
    assert_same_weights(weights(folder / "ckpt_trl2_epc1.pt"),
                        weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc1.pt"))


def test_callback_stops_training(tmp_path):
    calls = []

    def stop_at_one(epoch, model, history):
        calls.append((epoch, len(history["epoch"]), isinstance(model, torch.nn.Module)))
        return epoch == 1

    history = train("lenet_300_100", "mnist", n_epochs=5, save_path=tmp_path, callback=stop_at_one, **SMALL)
    assert calls == [(0, 1, True), (1, 2, True)]
    assert history["epoch"] == [0, 1] and history["stopped_at"] == 1
    folder = results_dir(tmp_path, "lenet_300_100", "mnist")
    assert sorted(list_checkpoints(folder, 0)) == [0, 1]
    # Rerunning the same command does not undo the decision.
    assert train("lenet_300_100", "mnist", n_epochs=5, save_path=tmp_path, **SMALL) == history


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    train("lenet_300_100", "mnist", n_epochs=1, save_path=tmp_path, **{**SMALL, "progress": True})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1/1" in captured.err


def test_load_model_checks_the_network(reference):
    root, _ = reference
    path = results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc1.pt"
    model = load_model(path, expect_net="lenet")
    assert not model.training
    assert_same_weights(model.state_dict(), weights(path))
    with pytest.raises(ValueError, match=r"'lenet'.*'vgg16'"):
        load_model(path, expect_net="vgg")
    with pytest.raises(ValueError, match="unknown network"):
        load_model(path, expect_net="lenet5")


def test_loading_errors(tmp_path, reference):
    missing = tmp_path / "ckpt_trl0_epc9.pt"
    with pytest.raises(CheckpointNotFoundError, match="ckpt_trl0_epc9.pt"):
        load_checkpoint(missing)
    assert issubclass(CheckpointNotFoundError, FileNotFoundError) and issubclass(CheckpointError, ValueError)

    root, _ = reference
    good = (results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc1.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a topodnn checkpoint"):
        load_checkpoint(foreign)

    future = tmp_path / "future.pt"
    ckpt = load_checkpoint(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc1.pt")
    torch.save({**ckpt, "format_version": FORMAT_VERSION + 1}, future)
    with pytest.raises(CheckpointError, match=f"format_version {FORMAT_VERSION + 1}"):
        load_checkpoint(future)

    # Arbitrary pickled objects are refused (weights_only loading).
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "obj": Interrupt()}, evil)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(evil)


def test_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    # Checkpoints are written through topodnn.results (moved there from training._atomic_write).
    target = tmp_path / "ckpt.pt"
    results.save_checkpoint(target, {"a": torch.ones(3)})

    def failing_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        results.save_checkpoint(target, {"a": torch.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(3))


def copy_run(reference, tmp_path):
    """A copy of the reference run's folder, to damage."""
    root, _ = reference
    folder = results_dir(tmp_path, "lenet", "mnist")
    shutil.copytree(results_dir(root, "lenet", "mnist"), folder)
    return folder


DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "zero_length": lambda raw: b"",
    "garbage": lambda raw: bytes(random.Random(7).randrange(256) for _ in range(4096)),
    "json": lambda raw: b'{"epoch": [0, 1]}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_last_checkpoint_falls_back_to_the_last_good_one(reference, tmp_path, capsys, damage):
    root, history = reference
    folder = copy_run(reference, tmp_path)
    last = folder / "ckpt_trl0_epc3.pt"
    bad = DAMAGE[damage](last.read_bytes())
    last.write_bytes(bad)
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    err = capsys.readouterr().err
    assert f"warning: {last} is damaged (" in err
    assert "moved aside to ckpt_trl0_epc3.pt.damaged; training resumes from epoch 2 (ckpt_trl0_epc2.pt)" in err
    # nothing the user had is lost: the damaged file is kept aside, byte for byte
    assert (folder / "ckpt_trl0_epc3.pt.damaged").read_bytes() == bad
    # the scheduled checkpoint is written again, bit-identical to the uninterrupted run's
    assert sorted(list_checkpoints(folder, 0)) == [0, 1, 2, 3]
    assert_same_weights(weights(last), weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc3.pt"))
    assert strip_times(resumed) == strip_times(history)
    assert strip_times(json.loads((folder / "history_trl0.json").read_text())) == strip_times(history)
    assert leftovers(folder) == []
    # the same command again: nothing to repair, nothing retrained
    assert train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL) == resumed
    assert "damaged" not in capsys.readouterr().err


def test_several_damaged_checkpoints_fall_back_further(reference, tmp_path, capsys):
    root, history = reference
    folder = copy_run(reference, tmp_path)
    for epoch in (2, 3):
        (folder / f"ckpt_trl0_epc{epoch}.pt").write_bytes(b"\x00" * 100)
    (folder / "ckpt_trl0_epc3.pt.damaged").write_bytes(b"an older damaged copy")
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if line.startswith("warning:")]) == 2
    assert all("training resumes from epoch 1 (ckpt_trl0_epc1.pt)" in line for line in err if "warning" in line)
    assert (folder / "ckpt_trl0_epc3.pt.damaged").read_bytes() == b"an older damaged copy"
    assert (folder / "ckpt_trl0_epc3.pt.damaged.1").read_bytes() == b"\x00" * 100
    assert (folder / "ckpt_trl0_epc2.pt.damaged").exists()
    ref_folder = results_dir(root, "lenet", "mnist")
    for epoch in (2, 3):
        assert_same_weights(weights(folder / f"ckpt_trl0_epc{epoch}.pt"),
                            weights(ref_folder / f"ckpt_trl0_epc{epoch}.pt"))
    assert strip_times(resumed) == strip_times(history)


def test_damaged_resume_file_falls_back_to_the_scheduled_checkpoint(reference, tmp_path, monkeypatch, capsys):
    root, history = reference
    monkeypatch.setattr(training, "save_schedule", lambda n, every=1: {0, n})
    with pytest.raises(Interrupt):
        train("lenet", "mnist", n_epochs=3, save_path=tmp_path, callback=interrupt_at(3), **SMALL)
    folder = results_dir(tmp_path, "lenet", "mnist")
    resume = folder / "resume_trl0.pt"
    resume.write_bytes(resume.read_bytes()[:1000])
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert "resume_trl0.pt is damaged" in capsys.readouterr().err
    assert (folder / "resume_trl0.pt.damaged").exists() and not resume.exists()
    assert strip_times(resumed) == strip_times(history)
    assert_same_weights(weights(folder / "ckpt_trl0_epc3.pt"),
                        weights(results_dir(root, "lenet", "mnist") / "ckpt_trl0_epc3.pt"))


def test_every_checkpoint_damaged_starts_afresh(reference, tmp_path, capsys):
    root, history = reference
    folder = copy_run(reference, tmp_path)
    for path in list_checkpoints(folder, 0).values():
        path.write_bytes(b"")
    resumed = train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert capsys.readouterr().err.count("training resumes from the start") == 4
    assert strip_times(resumed) == strip_times(history)
    assert len(list(folder.glob("*.damaged"))) == 4


def test_foreign_last_checkpoint_is_refused_not_moved(reference, tmp_path):
    folder = copy_run(reference, tmp_path)
    torch.save({"state_dict": {}}, folder / "ckpt_trl0_epc3.pt")
    with pytest.raises(CheckpointError, match="not a topodnn checkpoint"):
        train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    assert (folder / "ckpt_trl0_epc3.pt").exists() and not list(folder.glob("*.damaged"))


@pytest.mark.parametrize("content", [None, b"", b'{"epoch": [0, 1', b'{"epoch": [0], "train_acc": [55.0], '
                                                                 b'"test_acc": [0.5]}'])
def test_damaged_history_is_rewritten_from_the_checkpoint(reference, tmp_path, capsys, content):
    _, history = reference
    folder = copy_run(reference, tmp_path)
    path = folder / "history_trl0.json"
    good = path.read_bytes()
    bad = good[: len(good) // 3] if content is None else content
    path.write_bytes(bad)
    with pytest.raises(results.DamagedArtifact, match="history_trl0.json is damaged"):
        results.read_history(folder, 0)
    train("lenet", "mnist", n_epochs=3, save_path=tmp_path, **SMALL)
    err = capsys.readouterr().err
    assert f"warning: {path} is damaged (" in err and "rewritten from the checkpoint" in err
    assert path.read_bytes() == good
    assert (folder / "history_trl0.json.damaged").read_bytes() == bad
    assert results.read_history(folder, 0).test_acc == tuple(history["test_acc"])


def test_shuffle_labels():
    labels = torch.arange(4000) % 10
    new, positions = shuffle_labels(labels, 0.5, seed=3)
    assert len(positions) == 2000 and len(set(positions.tolist())) == 2000
    untouched = torch.ones(4000, dtype=torch.bool)
    untouched[positions] = False
    assert torch.equal(new[untouched], labels[untouched])
    assert torch.equal(torch.bincount(new), torch.bincount(labels))
    changed = int((new != labels).sum())
    assert 0.85 * 2000 < changed <= 2000  # same-class swaps keep ~10 % of the drawn labels
    again, _ = shuffle_labels(labels, 0.5, seed=3)
    assert torch.equal(again, new)
    assert not torch.equal(shuffle_labels(labels, 0.5, seed=4)[0], new)
    assert torch.equal(shuffle_labels(labels, 0.0, seed=3)[0], labels)
    assert len(shuffle_labels(labels[:7], 0.5, seed=0)[1]) == round(3.5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            shuffle_labels(labels, bad, seed=0)


def test_permuted_labels_are_trained_on(tmp_path):
    history = train("lenet_300_100", "mnist", n_epochs=1, save_path=tmp_path, permute_labels=1.0, **SMALL)
    ckpt = load_checkpoint(results_dir(tmp_path, "lenet_300_100", "mnist") / "ckpt_trl0_epc1.pt")
    assert ckpt["args"]["permute_labels"] == 1.0 and history["permute_labels"] == 1.0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError) as info:
        train("lenet", "imagenet", save_path=tmp_path, progress=False)
    for name in ("mnist", "fashion_mnist", "cifar10", "svhn"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown network"):
        train("lenet7", "mnist", save_path=tmp_path, progress=False)
    for kwargs in ({"lr": 0}, {"n_epochs": -1}, {"save_every": 0}, {"batch_size": 0}, {"permute_labels": 2.0},
                   {"callback": 3}, {"device": "nonsense"}):
        with pytest.raises(ValueError):
            train("lenet", "mnist", save_path=tmp_path, **{**SMALL, "n_epochs": 1, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_request_without_cuda(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        train("lenet", "mnist", save_path=tmp_path, device="cuda", **{**SMALL, "n_epochs": 1})


class _RecordingPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """ReduceLROnPlateau that records what it is stepped on."""

    created = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.metrics = []
        _RecordingPlateau.created.append(self)

    def step(self, metrics, *args, **kwargs):
        self.metrics.append(float(metrics))
        return super().step(metrics, *args, **kwargs)


@pytest.mark.parametrize("schedule, mode, series", [("train_loss", "min", "train_loss"),
                                                    ("test_acc", "max", "test_acc"),
                                                    ("none", None, None)])
def test_lr_schedule_follows_what_it_names(tmp_path, monkeypatch, schedule, mode, series):
    _RecordingPlateau.created = []
    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", _RecordingPlateau)
    history = train("lenet_300_100", "mnist", n_epochs=3, save_path=tmp_path, lr_schedule=schedule, **SMALL)
    (sched,) = _RecordingPlateau.created
    if series is None:
        assert sched.metrics == []  # constant learning rate
    else:
        assert sched.mode == mode
        assert sched.metrics == pytest.approx(history[series][1:])
    ckpt = load_checkpoint(results_dir(tmp_path, "lenet_300_100", "mnist") / "ckpt_trl0_epc3.pt")
    assert ckpt["args"]["lr_schedule"] == schedule
    assert ckpt["args"]["weight_decay"] == 5e-4


def test_default_training_never_reads_the_test_set(tmp_path):
    """With the default schedule the test set changes the evaluations only, never the weights."""
    small = {**SMALL, "n_test": 100}
    a = train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path / "a", **small)
    small["n_test"] = 37
    b = train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path / "b", **small)
    assert a["train_loss"] == b["train_loss"] and a["test_acc"] != b["test_acc"]
    assert_same_weights(weights(results_dir(tmp_path / "a", "lenet_300_100", "mnist") / "ckpt_trl0_epc2.pt"),
                        weights(results_dir(tmp_path / "b", "lenet_300_100", "mnist") / "ckpt_trl0_epc2.pt"))


def test_resume_checks_schedule_and_weight_decay(tmp_path):
    train("lenet_300_100", "mnist", n_epochs=1, save_path=tmp_path, **SMALL)
    with pytest.raises(CheckpointError, match=r"lr_schedule: checkpoint 'train_loss', now 'test_acc'"):
        train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path, lr_schedule="test_acc", **SMALL)
    with pytest.raises(CheckpointError, match=r"weight_decay: checkpoint 0\.0005, now 0\.0"):
        train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path, weight_decay=0.0, **SMALL)
    # A checkpoint from before the options existed was trained on the test accuracy with 5e-4.
    path = results_dir(tmp_path, "lenet_300_100", "mnist") / "ckpt_trl0_epc1.pt"
    ckpt = load_checkpoint(path)
    del ckpt["args"]["lr_schedule"], ckpt["args"]["weight_decay"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"lr_schedule: checkpoint 'test_acc', now 'train_loss'"):
        train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path, **SMALL)
    resumed = train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path, lr_schedule="test_acc", **SMALL)
    assert resumed["epoch"] == [0, 1, 2]


@pytest.mark.parametrize("schedule, decay", [("test_acc", 5e-4), ("none", 0.0)])
def test_resume_is_bit_identical_for_every_schedule(tmp_path, schedule, decay):
    kw = dict(save_path=tmp_path / "whole", lr_schedule=schedule, weight_decay=decay, lr=0.05, **SMALL)
    whole = train("lenet_300_100", "mnist", n_epochs=3, **kw)
    kw["save_path"] = tmp_path / "parts"
    train("lenet_300_100", "mnist", n_epochs=2, **kw)
    parts = train("lenet_300_100", "mnist", n_epochs=3, **kw)
    assert strip_times(parts) == strip_times(whole)
    assert_same_weights(weights(results_dir(tmp_path / "whole", "lenet_300_100", "mnist") / "ckpt_trl0_epc3.pt"),
                        weights(results_dir(tmp_path / "parts", "lenet_300_100", "mnist") / "ckpt_trl0_epc3.pt"))


def test_bad_schedule_and_weight_decay(tmp_path):
    with pytest.raises(ValueError, match="lr_schedule must be one of train_loss, test_acc, none"):
        train("lenet_300_100", "mnist", n_epochs=1, save_path=tmp_path, lr_schedule="val", **SMALL)
    for bad in (-1e-4, float("nan"), "0"):
        with pytest.raises(ValueError, match="weight_decay"):
            train("lenet_300_100", "mnist", n_epochs=1, save_path=tmp_path, weight_decay=bad, **SMALL)
