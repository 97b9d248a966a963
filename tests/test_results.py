"""topodnn.results: the layout of a results folder, atomic writes, verified reads, damage moved aside."""

from __future__ import annotations

import json
import os
import random
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from topodnn import io, results
from topodnn.results import DamagedArtifact

SETTINGS = {"max_epsilon": 0.3, "upper_dim": 2, "n_samples": 200}


def some_pairs(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    h0 = np.column_stack([np.zeros(20), rng.uniform(0.01, 0.3, 20)])
    h0[-1, 1] = np.inf
    b = rng.uniform(0.05, 0.2, 7)
    h1 = np.column_stack([b, b + rng.uniform(0.01, 0.1, 7)])
    return [h0, h1]


def write_epoch(folder: Path, epoch: int = 5, trial: int = 0, seed: int = 0) -> tuple[Path, Path]:
    return results.write_diagrams(folder, epoch, trial, some_pairs(seed), n_nodes=1820,
                                  essential_death=0.29, **SETTINGS)


def temporaries(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def random_bytes(n: int = 3000) -> bytes:
    return bytes(random.Random(5).randrange(256) for _ in range(n))


# ------------------------------------------------------------------------------ layout


def test_layout_of_a_results_folder(tmp_path: Path) -> None:
    folder = results.results_dir(tmp_path, "vgg", "mnist")
    assert folder == tmp_path / "vgg16_mnist"
    names = {
        results.checkpoint_path(folder, 2, 7): "ckpt_trl2_epc7.pt",
        results.resume_path(folder, 2): "resume_trl2.pt",
        results.history_path(folder, 2): "history_trl2.json",
        results.diagram_path(folder, 7, 2): "dgm_epc7_trl2.npz",
        results.dipha_path(folder, 7, 2, 0.3): "adj_epc7_trl2_0.3.bin.out",
        results.summaries_path(folder, 2): "summaries_trl2.json",
        results.summaries_path(folder, 2, "csv"): "summaries_trl2.csv",
        results.early_stop_path(folder, 2): "early_stop_trl2.json",
        results.betti_plot_path(folder, 1, 2): "betti_1_trl2.png",
        results.life_midlife_plot_path(folder, 1, 2): "life_midlife_1_trl2.png",
        results.training_plot_path(folder, 2): "training_trl2.png",
    }
    for path, name in names.items():
        assert path == folder / name
    with pytest.raises(ValueError, match="json or csv"):
        results.summaries_path(folder, 0, "txt")


def test_listings_ignore_moved_aside_and_temporary_files(tmp_path: Path) -> None:
    for name in ("ckpt_trl0_epc0.pt", "ckpt_trl0_epc10.pt", "ckpt_trl0_epc2.pt", "ckpt_trl1_epc3.pt",
                 "ckpt_trl0_epc4.pt.damaged", ".ckpt_trl0_epc5.pt.1a2b.tmp", "dgm_epc1_trl0.npz",
                 "dgm_epc2_trl0.npz.damaged", "dgm_epc3_trl1.npz", "adj_epc4_trl0_0.3.bin.out",
                 "adj_epc6_trl0_0.3.bin.out.damaged", ".dgm_epc7_trl0.npz.ab12.tmp", "dgm_epc8_trl0.tmp.npz"):
        (tmp_path / name).write_bytes(b"x")
    assert list(results.list_checkpoints(tmp_path, 0)) == [0, 2, 10]
    assert list(results.list_checkpoints(tmp_path, 1)) == [3]
    assert results.diagram_epochs(tmp_path, 0) == [1, 4]
    assert results.diagram_epochs(tmp_path, 1) == [3]
    assert results.list_checkpoints(tmp_path / "none", 0) == {} and results.diagram_epochs(tmp_path / "none", 0) == []


# ------------------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.bin"
    results.atomic_write(path, lambda h: h.write(b"first"))
    assert path.read_bytes() == b"first"

    def partial(handle):
        handle.write(b"sec")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        results.atomic_write(path, partial)
    assert path.read_bytes() == b"first" and temporaries(path.parent) == []

    def refuse(tmp):
        assert tmp.parent == path.parent and tmp.read_bytes() == b"second"  # on disk, under another name
        raise ValueError("not valid")

    with pytest.raises(ValueError, match="not valid"):
        results.atomic_write(path, lambda h: h.write(b"second"), verify=refuse)
    assert path.read_bytes() == b"first" and temporaries(path.parent) == []
    results.atomic_write(path, lambda h: h.write(b"second"), verify=lambda tmp: None)
    assert path.read_bytes() == b"second"


def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = results.atomic_write(tmp_path / "f", lambda h: h.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failing_serialisers_leave_the_previous_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_epoch(tmp_path)
    history = {"epoch": [0, 1], "train_acc": [0.1, 0.5], "test_acc": [0.1, 0.4]}
    results.write_history(tmp_path, 0, history)
    results.write_summaries(tmp_path, 0, {"epochs": {"5": {"train_acc": 0.5, "dims": {"0": {"life": 0.1}}}}})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def savez_fails(handle, **arrays):
        handle.write(b"PK\x03\x04 part of an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_fails)
    with pytest.raises(OSError, match="disk full"):
        write_epoch(tmp_path, seed=1)
    monkeypatch.undo()

    class Boom(Exception):
        pass

    def writer_fails(*args, **kwargs):
        raise Boom

    monkeypatch.setattr(results.csv, "writer", writer_fails)
    with pytest.raises(Boom):
        results.write_summaries(tmp_path, 0, {"epochs": {"6": {"dims": {}}}})
    monkeypatch.undo()
    monkeypatch.setattr(json, "dumps", writer_fails)
    with pytest.raises(Boom):
        results.write_history(tmp_path, 0, {**history, "epoch": [0, 2]})
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before and temporaries(tmp_path) == []
    assert results.finished_diagrams(tmp_path, 5, 0, SETTINGS) is not None


def test_diagram_files_that_disagree_are_damaged(tmp_path: Path) -> None:
    # the archive's write failed after the DIPHA file's: the two hold different diagrams
    _, bin_out = write_epoch(tmp_path)
    io.write_diagram(bin_out, io.records_from_pairs([some_pairs(0)[0], some_pairs(0)[1][:3]], 0.29))
    with pytest.raises(DamagedArtifact, match="holds 23 records where dgm_epc5_trl0.npz holds 27 pairs"):
        results.finished_diagrams(tmp_path, 5, 0, SETTINGS)


def test_move_aside_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "dgm_epc1_trl0.npz"
    moved = []
    for content in (b"a", b"b", b"c"):
        path.write_bytes(content)
        moved.append(results.move_aside(path))
    assert [p.name for p in moved] == ["dgm_epc1_trl0.npz.damaged", "dgm_epc1_trl0.npz.damaged.1",
                                       "dgm_epc1_trl0.npz.damaged.2"]
    assert [p.read_bytes() for p in moved] == [b"a", b"b", b"c"] and not path.exists()


# ------------------------------------------------------------------------------ diagrams


def test_diagrams_round_trip(tmp_path: Path) -> None:
    npz, bin_out = write_epoch(tmp_path)
    assert (npz.name, bin_out.name) == ("dgm_epc5_trl0.npz", "adj_epc5_trl0_0.3.bin.out")
    got = results.read_diagrams(tmp_path, 5, 0)
    assert got.path == npz and got.settings() == {**SETTINGS, "groups": "units"} and got.n_nodes == 1820
    for a, b in zip(got.pairs, some_pairs()):
        np.testing.assert_array_equal(a, b)
    assert results.finished_diagrams(tmp_path, 5, 0, SETTINGS) is not None
    assert results.finished_diagrams(tmp_path, 5, 0, {**SETTINGS, "n_samples": 100}) is None
    assert results.finished_diagrams(tmp_path, 6, 0, SETTINGS) is None
    # the DIPHA file holds the same pairs, essential classes with the given death
    rec = io.read_diagram(bin_out).records
    assert (rec["death"][rec["dim"] < 0] == 0.29).all() and len(rec) == 27
    with pytest.raises(FileNotFoundError):
        results.read_diagrams(tmp_path, 6, 0)
    with pytest.raises(ValueError, match="3 diagrams given for upper_dim 2"):
        results.write_diagrams(tmp_path, 6, 0, some_pairs() + [np.zeros((0, 2))], n_nodes=1,
                               essential_death=0.3, **SETTINGS)


def _npz_bytes(tmp_path: Path, **arrays) -> bytes:
    path = tmp_path / "scratch.npz"
    np.savez(path, **arrays)
    raw = path.read_bytes()
    path.unlink()
    return raw


def damaged_archives(tmp_path: Path, good: bytes) -> dict:
    pairs = some_pairs()
    base = dict(dim0=pairs[0], dim1=pairs[1], n_dims=2, n_nodes=1820, **SETTINGS)
    npy = tmp_path / "scratch.npy"
    np.save(npy, pairs[0])
    flipped = bytearray(good)
    flipped[good.index(pairs[0].tobytes()) + 8] ^= 0xFF  # inside dim0's data: the CRC no longer matches
    return {
        "truncated": (good[: len(good) // 2], "not a readable npz archive"),
        "truncated_tail": (good[:-10], "not a readable npz archive"),
        "zero_length": (b"", "empty file"),
        "json": (json.dumps({"dim0": [[0, 1]]}).encode(), "not a readable npz archive"),
        "random_bytes": (random_bytes(), "not a readable npz archive"),
        "npy": (npy.read_bytes(), "a single array"),
        "bit_flip": (bytes(flipped), "corrupt npz archive"),
        "missing_array": (_npz_bytes(tmp_path, **{k: v for k, v in base.items() if k != "dim1"}), "no 'dim1'"),
        "missing_setting": (_npz_bytes(tmp_path, **{k: v for k, v in base.items() if k != "upper_dim"}),
                            "no 'upper_dim'"),
        "wrong_dtype": (_npz_bytes(tmp_path, **{**base, "dim1": pairs[1].astype(np.float32)}), "float32"),
        "wrong_shape": (_npz_bytes(tmp_path, **{**base, "dim1": pairs[1].ravel()}), "shape (14,)"),
        "nan": (_npz_bytes(tmp_path, **{**base, "dim1": np.full((1, 2), np.nan)}), "NaN"),
        "dims_mismatch": (_npz_bytes(tmp_path, **{**base, "n_dims": 1}), "n_dims 1 does not match upper_dim 2"),
    }


def test_damaged_archives_are_one_clear_error(tmp_path: Path) -> None:
    npz, _ = write_epoch(tmp_path)
    good = npz.read_bytes()
    for name, (content, reason) in damaged_archives(tmp_path, good).items():
        npz.write_bytes(content)
        for read in (lambda: results.read_diagrams(tmp_path, 5, 0),
                     lambda: results.finished_diagrams(tmp_path, 5, 0, SETTINGS)):
            with pytest.raises(DamagedArtifact) as info:
                read()
            exc = info.value
            assert isinstance(exc, ValueError) and not isinstance(exc, zipfile.BadZipFile), name
            assert exc.path == npz and reason in exc.reason, (name, exc.reason)
            assert str(exc) == f"{npz} is damaged ({exc.reason})" and "\n" not in str(exc), name
            assert exc.__suppress_context__ or exc.__cause__ is None, name


@pytest.mark.parametrize("cut", [0, 10, 30, -1])
def test_damaged_dipha_file_is_reported_not_skipped(tmp_path: Path, cut: int) -> None:
    _, bin_out = write_epoch(tmp_path)
    raw = bin_out.read_bytes()
    bin_out.write_bytes(raw[:cut] if cut >= 0 else raw + b"\0")
    with pytest.raises(DamagedArtifact) as info:
        results.finished_diagrams(tmp_path, 5, 0, SETTINGS)
    assert info.value.path == bin_out and str(bin_out) not in info.value.reason
    # the original's layout alone (no archive): read from the .bin.out, which is verified too
    results.diagram_path(tmp_path, 5, 0).unlink()
    with pytest.raises(DamagedArtifact, match=r"adj_epc5_trl0_0\.3\.bin\.out is damaged"):
        results.read_diagrams(tmp_path, 5, 0)
    bin_out.write_bytes(raw)
    got = results.read_diagrams(tmp_path, 5, 0)
    assert got.path == bin_out and got.max_epsilon == 0.3 and got.n_nodes is None


def test_missing_dipha_file_means_not_finished(tmp_path: Path) -> None:
    _, bin_out = write_epoch(tmp_path)
    bin_out.unlink()
    assert results.finished_diagrams(tmp_path, 5, 0, SETTINGS) is None


# ------------------------------------------------------------------------------ history


TRAINING_HISTORY = {"net": "lenet", "dataset": "mnist", "trial": 0, "seed": 0, "permute_labels": 0.0,
                    "epoch": [0, 1, 2], "train_loss": [2.3, 1.2, float("nan")], "train_acc": [0.1, 0.6, 0.8],
                    "test_loss": [2.3, 1.0, 0.9], "test_acc": [0.1, 0.55, 0.7], "lr": [0.01] * 3,
                    "epoch_time_s": [0.1, 0.2, 0.2], "stopped_at": None}


def test_history_reader(tmp_path: Path) -> None:
    results.write_history(tmp_path, 3, TRAINING_HISTORY)
    hist = results.read_history(tmp_path, 3)
    assert hist.epochs == (0, 1, 2) and hist.test_acc == (0.1, 0.55, 0.7) and hist.lr == (0.01,) * 3
    assert np.isnan(hist.train_loss[2]) and hist.stopped_at is None and hist.meta["net"] == "lenet"
    assert hist.accuracy(1) == (0.6, 0.55)
    with pytest.raises(KeyError, match="no epoch 5"):
        hist.accuracy(5)
    records = [{"epoch": e, "train_acc": a, "test_acc": b}
               for e, a, b in zip(hist.epochs, hist.train_acc, hist.test_acc)]
    as_records = results.history_from_mapping(records)
    assert as_records.epochs == hist.epochs and as_records.test_acc == hist.test_acc
    assert as_records.train_loss is None
    assert results.history_from_mapping(hist) is hist
    with pytest.raises(FileNotFoundError):
        results.read_history(tmp_path, 4)


@pytest.mark.parametrize("change, message", [
    ({"test_acc": [10.0, 55.0, 70.0]}, "not a fraction in [0, 1]"),
    ({"epoch": [0, 2, 1]}, "not strictly increasing"),
    ({"epoch": [0, 1]}, "one value per epoch (2)"),
    ({"test_acc": None}, "no test accuracy"),
    ({"train_acc": [0.1, "x", 0.2]}, "not a number"),
    ({"stopped_at": 7}, "stopped_at"),
])
def test_history_refuses_what_it_cannot_read_unambiguously(change: dict, message: str) -> None:
    bad = {**TRAINING_HISTORY, **change}
    bad = {k: v for k, v in bad.items() if v is not None or k == "stopped_at"}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        results.history_from_mapping(bad)
    with pytest.raises(ValueError, match="records"):
        results.history_from_mapping([{"epoch": 0, "train_acc": 0.1, "test_acc": 0.1}, {"epoch": 1}])


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b'{"epoch": [0, 1], "train', "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[1, 2, 3]", "per-epoch records"),
    (b'{"epoch": [0], "train_acc": [55.0], "test_acc": [0.5]}', "not a fraction"),
])
def test_damaged_history_file(tmp_path: Path, content: bytes, reason: str) -> None:
    results.history_path(tmp_path, 0).write_bytes(content)
    with pytest.raises(DamagedArtifact, match="history_trl0.json is damaged") as info:
        results.read_history(tmp_path, 0)
    assert reason in info.value.reason


# ------------------------------------------------------------------------------ summaries and records


def test_summaries_round_trip_and_damage(tmp_path: Path) -> None:
    assert results.read_summaries(tmp_path, 0) == {"epochs": {}}
    data = {"net": "lenet", "epochs": {"10": {"train_acc": 0.9, "test_acc": float("nan"),
                                              "dims": {"1": {"life": 0.1, "eps_at_max": float("inf")},
                                                       "0": {"life": 0.2}}},
                                       "2": {"train_acc": 0.5, "test_acc": 0.4, "dims": {"0": {"life": 0.3}}}}}
    jpath, cpath = results.write_summaries(tmp_path, 0, data)
    back = results.read_summaries(tmp_path, 0)
    assert list(back["epochs"]) == ["2", "10"]
    assert back["epochs"]["10"]["test_acc"] is None and back["epochs"]["10"]["dims"]["1"]["eps_at_max"] is None
    lines = cpath.read_text().splitlines()
    assert lines[0].split(",") == list(results.SUMMARY_CSV_COLUMNS)
    assert [line.split(",")[:2] for line in lines[1:]] == [["2", "0"], ["10", "0"], ["10", "1"]]
    for content in (b"", jpath.read_bytes()[:40], b'{"epochs": []}', b'{"epochs": {"x": {"dims": {}}}}',
                    b'{"epochs": {"3": {"life": 1}}}'):
        jpath.write_bytes(content)
        with pytest.raises(DamagedArtifact, match="summaries_trl0.json is damaged"):
            results.read_summaries(tmp_path, 0)


def test_early_stop_record(tmp_path: Path) -> None:
    path = results.write_early_stop(tmp_path, 1, {"stop_epoch": 3, "signal": np.float32(0.5)})
    assert path.name == "early_stop_trl1.json" and json.loads(path.read_text())["signal"] == 0.5


def test_save_figure_is_atomic(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([0, 1], [0, 1])
    path = results.save_figure(fig, results.training_plot_path(tmp_path, 0))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    good = path.read_bytes()

    class Broken:
        def savefig(self, handle, **kwargs):
            handle.write(b"\x89PNG half")
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError):
        results.save_figure(Broken(), path)
    assert path.read_bytes() == good and temporaries(tmp_path) == []


# ------------------------------------------------------------------------------ checkpoints


def test_damaged_checkpoints_are_typed(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt_trl0_epc1.pt"
    results.save_checkpoint(path, {"format_version": results.FORMAT_VERSION, "w": torch.ones(1000)})
    good = path.read_bytes()
    for content in (b"", good[: len(good) // 2], random_bytes(), b'{"format_version": 1}'):
        path.write_bytes(content)
        with pytest.raises(results.DamagedCheckpoint) as info:
            results.read_checkpoint(path)
        assert isinstance(info.value, results.CheckpointError) and isinstance(info.value, DamagedArtifact)
        assert str(info.value).startswith(f"{path} is damaged (corrupt") and "\n" not in str(info.value)
    path.write_bytes(good)
    with pytest.raises(results.DamagedCheckpoint, match="missing entries"):
        results.read_checkpoint(path)
    with pytest.raises(results.CheckpointNotFoundError):
        results.read_checkpoint(tmp_path / "none.pt")


def test_latest_checkpoint_moves_damaged_ones_aside(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from topodnn import training

    training.train("lenet_300_100", "mnist", n_epochs=2, save_path=tmp_path, n_train=64, n_test=50,
                   batch_size=32, progress=False)
    folder = results.results_dir(tmp_path, "lenet_300_100", "mnist")
    last = results.checkpoint_path(folder, 0, 2)
    last.write_bytes(last.read_bytes()[:500])
    seen = []
    path, ckpt = results.latest_checkpoint(folder, 0, on_damaged=lambda exc, moved: seen.append((exc.path, moved)))
    assert path == results.checkpoint_path(folder, 0, 1) and ckpt["epoch"] == 1
    assert seen == [(last, folder / "ckpt_trl0_epc2.pt.damaged")] and not last.exists()
    assert torch.equal(ckpt["model_state"]["fc1.weight"],
                       results.read_checkpoint(results.checkpoint_path(folder, 0, 1))["model_state"]["fc1.weight"])
