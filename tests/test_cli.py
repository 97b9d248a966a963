"""The ``topodnn`` command line on a tiny run: outputs, resume, and one-line errors (exit 2)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import topodnn_pythonpath
from topodnn import cli, results
from topodnn.cli import main
from topodnn.io import read_diagram, records_from_pairs, write_diagram

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


TINY = ["--n-train", "300", "--n-test", "200", "--no-progress"]
TOPO = ["--n-samples", "200", "--upper-dim", "2"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeNet trained for one epoch on 300 embedded MNIST digits (checkpoints 0 and 1)."""
    save = tmp_path_factory.mktemp("results")
    rc = main(["run", "--net", "lenet", "--dataset", "mnist", "--trial", "0",
               "--n_epochs_train", "1", "--epochs_test", "0 1", "--train", "1",
               "--build_graph", "0", "--save-path", str(save), *TINY])
    assert rc == 0
    folder = save / "lenet_mnist"
    assert (folder / "ckpt_trl0_epc0.pt").exists() and (folder / "ckpt_trl0_epc1.pt").exists()
    return save


@pytest.fixture(scope="module")
def topology_run(trained: Path) -> Path:
    """The tiny run's topology at epochs 0 and 1 (H0, H1 on 200 test inputs)."""
    rc = main(["run", "--train", "0", "--epochs_test", "0 1", "--save-path", str(trained),
               *TINY, *TOPO])
    assert rc == 0
    return trained / "lenet_mnist"


# ------------------------------------------------------------------------------ parsing


def test_epoch_lists_in_every_spelling() -> None:
    assert cli.parse_epochs("1 5 10") == [1, 5, 10]
    assert cli.parse_epochs(["10", "1", "5"]) == [1, 5, 10]
    assert cli.parse_epochs(["1,5", "5 10"]) == [1, 5, 10]
    with pytest.raises(cli.CLIError, match="non-negative integers"):
        cli.parse_epochs("1 x")
    with pytest.raises(cli.CLIError, match="non-negative"):
        cli.parse_epochs("-1")


def test_original_and_hyphenated_flags_parse_alike() -> None:
    p = cli.build_parser()
    a = p.parse_args(["run", "--net", "lenet", "--dataset", "mnist", "--trial", "0", "--lr",
                      "0.0005", "--n_epochs_train", "50", "--epochs_test", "1 5 10 20 30 40 50",
                      "--graph_type", "functional", "--train", "1", "--build_graph", "1"])
    b = p.parse_args(["run", "--n-epochs-train", "50", "--epochs-test", "1", "5", "10", "20",
                      "30", "40", "50", "--build-graph", "1"])
    assert a.n_epochs_train == b.n_epochs_train == 50
    assert cli.parse_epochs(a.epochs_test) == cli.parse_epochs(b.epochs_test)
    assert (a.upper_dim, a.max_epsilon, a.n_samples, a.nproc) == (3, 0.3, 1000, 1)
    v = p.parse_args(["visualise", "--trial", "0", "--net", "lenet", "--dataset", "mnist",
                      "--epochs", "0", "1", "3", "--dim", "1"])
    assert v.func is cli.cmd_visualise and v.dim == 1
    assert p.parse_args(["run", "--net", "resnet"]).net == "resnet18"  # alias


def test_lr_schedule_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from topodnn.training import load_checkpoint

    p = cli.build_parser()
    assert p.parse_args(["run"]).lr_schedule == "train_loss"
    assert p.parse_args(["run", "--lr_schedule", "none"]).lr_schedule == "none"
    rc, _, err = run_cli(capsys, "run", "--lr-schedule", "validation")
    assert rc == 2 and "--lr-schedule" in err
    rc, _, _ = run_cli(capsys, "run", "--net", "lenet_300_100", "--n_epochs_train", "1",
                       "--build_graph", "0", "--lr-schedule", "test_acc", "--save-path",
                       str(tmp_path), *TINY)
    assert rc == 0
    ckpt = load_checkpoint(tmp_path / "lenet_300_100_mnist" / "ckpt_trl0_epc1.pt")
    assert ckpt["args"]["lr_schedule"] == "test_acc" and ckpt["scheduler_state"]["mode"] == "max"
    # resuming with another schedule is refused in one line
    rc, _, err = run_cli(capsys, "run", "--net", "lenet_300_100", "--n_epochs_train", "2",
                         "--build_graph", "0", "--save-path", str(tmp_path), *TINY)
    assert rc == 2 and "lr_schedule: checkpoint 'test_acc', now 'train_loss'" in err


def test_run_on_digits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from topodnn.training import load_checkpoint

    rc, _, err = run_cli(capsys, "run", "--net", "lenet_300_100", "--dataset", "digits",
                         "--n_epochs_train", "1", "--build_graph", "0", "--save-path",
                         str(tmp_path), "--n-train", "100", "--n-test", "50", "--no-progress")
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "lenet_300_100_digits" / "ckpt_trl0_epc1.pt")
    assert ckpt["dataset"] == "digits" and ckpt["dataset_info"]["n_train"] == 100


def test_demo_epochs() -> None:
    assert cli.demo_epochs(6) == [0, 1, 2, 4, 6]
    assert cli.demo_epochs(1) == [0, 1]
    assert cli.demo_epochs(12) == [0, 1, 2, 4, 6, 10, 12]


def test_python_dash_m_topodnn() -> None:
    env = dict(os.environ, PYTHONPATH=topodnn_pythonpath())
    proc = subprocess.run([sys.executable, "-m", "topodnn", "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0
    for word in ("run", "visualise", "demo"):
        assert word in proc.stdout


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--net", "nosuchnet"], "unknown network 'nosuchnet'; valid names: lenet"),
        (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid names: mnist"),
        (["visualise", "--net", "nosuchnet"], "valid names: lenet"),
        (["run", "--train", "2"], "expected 0 or 1"),
        (["run", "--upper-dim", "0"], "positive integer"),
    ],
)
def test_bad_names_and_values_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                     message: str) -> None:
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    assert message in err
    assert "Traceback" not in err


def test_unwritable_save_path_fails_before_training(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rc, _, err = run_cli(capsys, "run", "--n_epochs_train", "1", "--epochs_test", "1",
                         "--save-path", str(blocker / "results"), *TINY)
    assert rc == 2
    assert err.startswith("topodnn: error: cannot write results to")
    assert len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"


def test_bad_numbers_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run_cli(capsys, "run", "--max-epsilon", "0.7", "--save-path", str(tmp_path))
    assert rc == 2 and "--max-epsilon must be in (0, 0.5]" in err
    rc, _, err = run_cli(capsys, "run", "--n_epochs_train", "2", "--epochs_test", "1 5",
                         "--save-path", str(tmp_path))
    assert rc == 2 and "epoch(s) 5 but training stops at --n_epochs_train 2" in err
    rc, _, err = run_cli(capsys, "run", "--epochs_test", "1 a", "--save-path", str(tmp_path))
    assert rc == 2 and "got 'a'" in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_missing_checkpoint_lists_available(capsys: pytest.CaptureFixture[str],
                                            trained: Path) -> None:
    rc, _, err = run_cli(capsys, "run", "--train", "0", "--epochs_test", "0 7",
                         "--save-path", str(trained), "--force", *TINY, *TOPO)
    assert rc == 2
    folder = trained / "lenet_mnist"
    assert err.strip() == f"topodnn: error: no checkpoint for epoch 7 in {folder}; available: 0 1"


def test_checkpoint_of_another_network(capsys: pytest.CaptureFixture[str], trained: Path,
                                       tmp_path: Path) -> None:
    other = tmp_path / "lenet_300_100_mnist"
    other.mkdir()
    shutil.copy(trained / "lenet_mnist" / "ckpt_trl0_epc0.pt", other / "ckpt_trl0_epc0.pt")
    rc, _, err = run_cli(capsys, "run", "--net", "lenet_300_100", "--train", "0",
                         "--epochs_test", "0", "--save-path", str(tmp_path), *TINY, *TOPO)
    assert rc == 2
    assert "checkpoint of network 'lenet'" in err and "lenet_300_100" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_more_samples_than_test_inputs(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    rc, _, err = run_cli(capsys, "run", "--train", "0", "--epochs_test", "0", "--force",
                         "--save-path", str(trained), *TINY, "--n-samples", "500")
    assert rc == 2
    assert "--n-samples 500 is more than the 200 test inputs available" in err


# ------------------------------------------------------------------------------ files


def read_dipha(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic, ftype, count = struct.unpack("<qqq", raw[:24])
    assert (magic, ftype) == (8067171840, 2)
    assert len(raw) == 24 + 24 * count
    return np.frombuffer(raw[24:], dtype=[("dim", "<i8"), ("birth", "<f8"), ("death", "<f8")])


def test_dipha_diagram_records_layout(tmp_path: Path) -> None:
    # the records are built by topodnn.io.records_from_pairs (the CLI's own builder was removed)
    dgms = [np.array([[0.0, 0.2], [0.0, np.inf], [0.0, 0.1]]),
            np.array([[0.15, 0.25], [0.12, np.inf]])]
    path = tmp_path / "adj_epc0_trl0_0.3.bin.out"
    write_diagram(path, records_from_pairs(dgms, 0.29))
    rec = read_dipha(path)
    assert rec.tolist() == [(-2, 0.12, 0.29), (-1, 0.0, 0.29), (0, 0.0, 0.1), (0, 0.0, 0.2),
                            (1, 0.15, 0.25)]
    back = results.read_diagrams(tmp_path, 0, 0)
    assert back.path == path and back.max_epsilon == 0.3
    for got, want in zip(back.pairs, dgms):
        np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])])


def fake_results(folder: Path, epochs: list[int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for e in epochs:
        dgms = []
        for q, k in enumerate((50, 30, 10)):
            b = rng.uniform(0, 0.2, k) if q else np.zeros(k)
            d = b + rng.uniform(0.01, 0.1, k)
            d[:1] = np.inf
            dgms.append(np.column_stack([b, d]))
        np.savez(folder / f"dgm_epc{e}_trl0.npz", **{f"dim{q}": d for q, d in enumerate(dgms)},
                 n_dims=3, max_epsilon=0.3, upper_dim=3, n_samples=1000, n_nodes=50)


def test_visualise_from_saved_diagrams(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "lenet_mnist"
    fake_results(folder, [0, 1, 5])
    rc, out, err = run_cli(capsys, "visualise", "--trial", "0", "--net", "lenet", "--dataset",
                           "mnist", "--epochs", "0", "1", "5", "--dim", "2",
                           "--save-path", str(tmp_path))
    assert rc == 0, err
    for name in ("betti_2_trl0.png", "life_midlife_2_trl0.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["epoch", "life", "midlife"])
    rows = [line.split() for line in lines[header + 1: header + 4]]
    assert [r[0] for r in rows] == ["0", "1", "5"]
    from topodnn.summaries import summarise

    with np.load(folder / "dgm_epc5_trl0.npz") as z:
        s = summarise(z["dim2"])
    assert float(rows[2][1]) == pytest.approx(s["life"], abs=1e-4)
    assert float(rows[2][2]) == pytest.approx(s["midlife"], abs=1e-4)
    assert int(rows[2][3]) == s["betti_max"] and int(rows[2][5]) == s["n_pairs"]


def test_visualise_reads_the_originals_diagram_files(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "lenet_mnist"
    folder.mkdir()
    dgms = [np.array([[0.0, 0.1], [0.0, np.inf]]), np.array([[0.1, 0.2], [0.12, 0.18]])]
    for e in (1, 3):
        write_diagram(folder / f"adj_epc{e}_trl0_0.3.bin.out", records_from_pairs(dgms, 0.3))
    rc, out, _ = run_cli(capsys, "visualise", "--epochs", "1", "3", "--dim", "1",
                         "--save-path", str(tmp_path))
    assert rc == 0
    assert (folder / "betti_1_trl0.png").exists()
    assert "0.0800" in out  # life of H1: mean(0.1, 0.06)


def test_visualise_missing_epoch_lists_available(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    folder = tmp_path / "lenet_mnist"
    fake_results(folder, [0, 2])
    rc, _, err = run_cli(capsys, "visualise", "--epochs", "0", "1", "3", "--save-path",
                         str(tmp_path))
    assert rc == 2
    assert err.strip() == f"topodnn: error: no results for epoch 1 3 in {folder}; available " \
                          "epochs: 0 2"
    rc, _, err = run_cli(capsys, "visualise", "--dim", "4", "--save-path", str(tmp_path))
    assert rc == 2 and "no H4 in the saved diagrams" in err
    rc, _, err = run_cli(capsys, "visualise", "--save-path", str(tmp_path / "empty"))
    assert rc == 2 and "no results for trial 0" in err


# ------------------------------------------------------------------------------ full runs


def test_run_writes_diagrams_and_summaries(topology_run: Path) -> None:
    folder = topology_run
    with open(folder / "summaries_trl0.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], r["dim"]) for r in rows] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    assert list(rows[0]) == list(cli.CSV_COLUMNS)
    hist = json.loads((folder / "history_trl0.json").read_text())
    assert float(rows[2]["test_acc"]) == pytest.approx(hist["test_acc"][1])
    assert float(rows[2]["train_acc"]) == pytest.approx(hist["train_acc"][1])
    data = json.loads((folder / "summaries_trl0.json").read_text())
    assert sorted(data["epochs"]) == ["0", "1"]
    assert data["epochs"]["1"]["n_nodes"] == 1820
    for e in (0, 1):
        with np.load(folder / f"dgm_epc{e}_trl0.npz") as z:
            dgms = [z["dim0"], z["dim1"]]
            assert int(z["n_dims"]) == 2
        assert np.all(dgms[0][:, 0] == 0)
        finite = np.concatenate([d[np.isfinite(d)] for d in dgms])
        assert finite.min() >= 0 and finite.max() <= 0.3
        rec = read_dipha(folder / f"adj_epc{e}_trl0_0.3.bin.out")
        keys = list(zip(rec["dim"], rec["birth"], rec["death"]))
        assert keys == sorted(keys)
        assert set(np.unique(rec["dim"])) <= {-2, -1, 0, 1}
        essential = rec["death"][rec["dim"] < 0]
        assert essential.size and np.all(essential == rec["death"].max())
        assert 0.25 < essential[0] <= 0.3
        back = read_diagram(folder / f"adj_epc{e}_trl0_0.3.bin.out").pairs
        for got, want in zip((back[q] for q in range(2)), dgms):
            assert got.shape == want.shape
            np.testing.assert_array_equal(np.sort(got[:, 0]), np.sort(want[:, 0]))
            np.testing.assert_array_equal(np.sort(got[:, 1]), np.sort(want[:, 1]))


def test_run_agrees_with_ripser_on_the_same_graph(topology_run: Path) -> None:
    ripser = pytest.importorskip("ripser")
    from topodnn import datasets, graph, training

    model, _ = training.model_from_checkpoint(topology_run / "ckpt_trl0_epc1.pt")
    _, test, _ = datasets.load_dataset("mnist", n_test=200)
    g = graph.functional_graph(model, test.tensors[0], n_samples=200, threshold=0.6,
                               progress=False)
    g = g.tocoo()
    g.data = g.data * 0.5
    ref = ripser.ripser(g, maxdim=1, thresh=0.3, distance_matrix=True)["dgms"]
    with np.load(topology_run / "dgm_epc1_trl0.npz") as z:
        ours = [z["dim0"], z["dim1"]]
    for a, b in zip(ours, ref):
        # ripser works in float32: compare in float32 so that births closer than its precision
        # sort the same way on both sides
        a = a[a[:, 1] > a[:, 0]].astype(np.float32)
        b = b[b[:, 1] > b[:, 0]].astype(np.float32)
        a = a[np.lexsort((a[:, 1], a[:, 0]))]
        b = b[np.lexsort((b[:, 1], b[:, 0]))]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_rerun_skips_finished_epochs_and_force_recomputes(capsys: pytest.CaptureFixture[str],
                                                         topology_run: Path) -> None:
    npz = topology_run / "dgm_epc1_trl0.npz"
    before = npz.stat().st_mtime_ns
    rc, out, _ = run_cli(capsys, "run", "--train", "1", "--n_epochs_train", "1", "--epochs_test",
                         "0 1", "--save-path", str(topology_run.parent), *TINY, *TOPO)
    assert rc == 0
    assert out.count("results exist") == 2
    assert npz.stat().st_mtime_ns == before
    # other settings are not reused silently
    rc, out, _ = run_cli(capsys, "run", "--train", "0", "--epochs_test", "1", "--save-path",
                         str(topology_run.parent), *TINY, "--n-samples", "150", "--upper-dim", "2")
    assert rc == 0 and "results exist" not in out and "epoch 1:" in out
    rc, out, _ = run_cli(capsys, "run", "--train", "0", "--epochs_test", "1", "--force",
                         "--save-path", str(topology_run.parent), *TINY, *TOPO)
    assert rc == 0 and "results exist" not in out
    with np.load(npz) as z:
        assert int(z["n_samples"]) == 200


def test_visualise_after_run(capsys: pytest.CaptureFixture[str], topology_run: Path) -> None:
    rc, out, _ = run_cli(capsys, "visualise", "--trial", "0", "--net", "lenet", "--dataset",
                         "mnist", "--epochs", "0", "1", "--dim", "1", "--save-path",
                         str(topology_run.parent))
    assert rc == 0
    assert (topology_run / "betti_1_trl0.png").read_bytes()[:8] == PNG_MAGIC
    assert (topology_run / "life_midlife_1_trl0.png").read_bytes()[:8] == PNG_MAGIC
    assert "H1" in out and "midlife" in out


def test_demo_reuses_the_run(capsys: pytest.CaptureFixture[str], topology_run: Path) -> None:
    """The demo is run + visualise: on finished checkpoints and results it only plots."""
    rc, out, _ = run_cli(capsys, "demo", "--epochs", "1", "--save-path", str(topology_run.parent),
                         *TOPO, "--no-progress")
    assert rc == 0
    assert out.count("results exist") == 2
    for dim in (0, 1):
        assert (topology_run / f"betti_{dim}_trl0.png").exists()
    assert (topology_run / "training_trl0.png").read_bytes()[:8] == PNG_MAGIC
    assert "demo finished" in out


def test_nproc_2_gives_the_same_diagrams(capsys: pytest.CaptureFixture[str],
                                         topology_run: Path, tmp_path: Path) -> None:
    save = tmp_path / "res"
    shutil.copytree(topology_run, save / "lenet_mnist")
    rc, out, err = run_cli(capsys, "run", "--train", "0", "--epochs_test", "1", "--force",
                           "--nproc", "2", "--save-path", str(save), *TINY, *TOPO)
    assert rc == 0, err
    assert "(2 proc)" in out
    with np.load(topology_run / "dgm_epc1_trl0.npz") as a, \
            np.load(save / "lenet_mnist" / "dgm_epc1_trl0.npz") as b:
        for q in range(2):
            x, y = a[f"dim{q}"], b[f"dim{q}"]
            np.testing.assert_array_equal(x[np.lexsort(x.T[::-1])], y[np.lexsort(y.T[::-1])])


def test_diagram_file_equals_the_dipha_executables(topology_run: Path, tmp_path: Path,
                                                   bin_dir: Path) -> None:
    """Our .bin.out is byte for byte what ``dipha --upper_dim 2 --dual`` writes for the graph."""
    exe = str(bin_dir / "dipha")  # the executables that go with the imported topodnn
    from topodnn import datasets, graph, training

    model, _ = training.model_from_checkpoint(topology_run / "ckpt_trl0_epc1.pt")
    _, test, _ = datasets.load_dataset("mnist", n_test=200)
    g = graph.functional_graph(model, test.tensors[0], n_samples=200, threshold=0.6,
                               progress=False)
    graph.save_dipha(tmp_path / "graph.bin", g)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([exe, "--upper_dim", "2", "--dual", str(tmp_path / "graph.bin"),
                           str(tmp_path / "out.bin")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = (topology_run / "adj_epc1_trl0_0.3.bin.out").read_bytes()
    assert ours == (tmp_path / "out.bin").read_bytes()


def test_early_stop_topology(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``--early-stop topology`` evaluates the training inputs' topology and stops the run.

    The signal is pinned to a constant, so the rule's outcome is known: epoch 1 is the best
    (epoch 0 is ignored), epoch 2 does not improve and patience 1 stops there.
    """
    from topodnn import early_stopping

    seen = []

    def constant(summary, signal):
        seen.append(sorted(summary))
        return 1.0

    monkeypatch.setattr(early_stopping, "signal_value", constant)
    argv = ["run", "--n_epochs_train", "4", "--epochs_test", "1 4", "--save-path", str(tmp_path),
            "--early-stop", "topology", "--es-every", "1", "--es-patience", "1", *TINY, *TOPO]
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0, out
    assert seen == [[0, 1, 2]] * 3  # epochs 0, 1, 2, each with H0..H2
    folder = tmp_path / "lenet_mnist"
    record = json.loads((folder / "early_stop_trl0.json").read_text())
    assert record["stop_epoch"] == 2 and record["best_epoch"] == 1
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]
    assert record["params"]["data"] == "training inputs"
    assert "stopped at epoch 2; keep the checkpoint of epoch 1" in out
    assert "no topology for epoch(s) 4" in out
    assert (folder / "dgm_epc1_trl0.npz").exists() and not (folder / "dgm_epc4_trl0.npz").exists()
    history = json.loads((folder / "history_trl0.json").read_text())
    assert history["stopped_at"] == 2 and history["epoch"][-1] == 2
    # the same command again: the run is finished, nothing is retrained or re-evaluated
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0 and seen == [[0, 1, 2]] * 3
    assert json.loads((folder / "early_stop_trl0.json").read_text()) == record


def test_early_stop_topology_takes_the_runs_grouping(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--groups`` reaches the early-stopping evaluations too (recorded in their parameters)."""
    argv = ["run", "--n_epochs_train", "2", "--epochs_test", "2", "--save-path", str(tmp_path),
            "--early-stop", "topology", "--es-every", "1", "--es-patience", "5", "--groups", "channel",
            *TINY, *TOPO]
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0, out
    record = json.loads((tmp_path / "lenet_mnist" / "early_stop_trl0.json").read_text())
    assert record["params"]["groups"] == "channel"
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]


def test_early_stop_bad_signal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run_cli(capsys, "run", "--n_epochs_train", "1", "--epochs_test", "1",
                         "--save-path", str(tmp_path), "--early-stop", "topology",
                         "--es-signal", "area_5", *TINY, *TOPO)
    assert rc == 2 and "--early-stop topology" in err and "area_5" in err


# ------------------------------------------------------------------------------ damaged files


def _same_command(save: Path) -> list[str]:
    """The command that computed ``topology_run``, on another results root."""
    return ["run", "--train", "0", "--epochs_test", "0 1", "--save-path", str(save), *TINY, *TOPO]


def _copy_run(topology_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "res" / "lenet_mnist"
    shutil.copytree(topology_run, folder)
    return folder


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "zero_length": lambda raw: b"",
    "json": lambda raw: json.dumps({"dim0": [[0.0, 1.0]]}).encode(),
    "random_bytes": lambda raw: np.random.default_rng(3).bytes(2048),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_run_recomputes_a_damaged_diagram_archive(capsys: pytest.CaptureFixture[str],
                                                  topology_run: Path, tmp_path: Path,
                                                  damage: str) -> None:
    folder = _copy_run(topology_run, tmp_path)
    npz = folder / "dgm_epc1_trl0.npz"
    bin_out = folder / "adj_epc1_trl0_0.3.bin.out"
    clean, clean_bin = _arrays(npz), bin_out.read_bytes()
    bad = DAMAGE[damage](npz.read_bytes())
    npz.write_bytes(bad)
    rc, out, err = run_cli(capsys, *_same_command(folder.parent))
    assert rc == 0, err
    said = [line for line in out.splitlines() if " is damaged (" in line]
    assert len(said) == 1 and said[0].startswith(f"epoch 1: {npz} is damaged (")
    assert "; recomputing" in said[0] and "Traceback" not in out + err
    assert "epoch 0: results exist" in out
    # nothing the user had is lost, and the repaired epoch equals the clean run's
    assert (folder / "dgm_epc1_trl0.npz.damaged").read_bytes() == bad
    repaired = _arrays(npz)
    assert repaired.keys() == clean.keys()
    for key in clean:
        np.testing.assert_array_equal(repaired[key], clean[key])
    assert bin_out.read_bytes() == clean_bin
    # the same command again: nothing left to repair
    rc, out, _ = run_cli(capsys, *_same_command(folder.parent))
    assert rc == 0 and out.count("results exist") == 2 and " is damaged (" not in out


@pytest.mark.parametrize("keep", [0, 30, 100])
def test_run_recomputes_a_damaged_dipha_file(capsys: pytest.CaptureFixture[str],
                                             topology_run: Path, tmp_path: Path, keep: int) -> None:
    """A truncated .bin.out used to be skipped as finished (only the .npz was looked at)."""
    folder = _copy_run(topology_run, tmp_path)
    bin_out = folder / "adj_epc0_trl0_0.3.bin.out"
    clean = bin_out.read_bytes()
    bin_out.write_bytes(clean[:keep])
    rc, out, err = run_cli(capsys, *_same_command(folder.parent))
    assert rc == 0, err
    said = [line for line in out.splitlines() if " is damaged (" in line]
    assert len(said) == 1 and said[0].startswith(f"epoch 0: {bin_out} is damaged (")
    assert bin_out.read_bytes() == clean
    assert (folder / "adj_epc0_trl0_0.3.bin.out.damaged").read_bytes() == clean[:keep]


def test_visualise_names_a_damaged_diagram(capsys: pytest.CaptureFixture[str], topology_run: Path,
                                           tmp_path: Path) -> None:
    folder = _copy_run(topology_run, tmp_path)
    npz = folder / "dgm_epc1_trl0.npz"
    bad = npz.read_bytes()[:100]
    npz.write_bytes(bad)
    argv = ["visualise", "--epochs", "0", "1", "--dim", "1", "--save-path", str(folder.parent)]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    assert err.startswith(f"topodnn: error: {npz} is damaged (") and len(err.strip().splitlines()) == 1
    assert "`topodnn run` with the arguments that computed it recomputes it" in err
    assert npz.read_bytes() == bad and not list(folder.glob("*.damaged"))  # visualise only reads
    assert run_cli(capsys, *_same_command(folder.parent))[0] == 0
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err


@pytest.mark.parametrize("content", [b"", b'{"epochs": {"0": ', b"[]"])
def test_run_rebuilds_damaged_summaries_from_the_diagrams(capsys: pytest.CaptureFixture[str],
                                                          topology_run: Path, tmp_path: Path,
                                                          content: bytes) -> None:
    folder = _copy_run(topology_run, tmp_path)
    summaries = folder / "summaries_trl0.json"
    clean_csv = (folder / "summaries_trl0.csv").read_bytes()
    clean = json.loads(summaries.read_text())
    summaries.write_bytes(content)
    rc, out, err = run_cli(capsys, *_same_command(folder.parent))
    assert rc == 0, err
    assert f"{summaries} is damaged (" in out and "rebuilding it from the diagrams" in out
    assert (folder / "summaries_trl0.json.damaged").read_bytes() == content
    rebuilt = json.loads(summaries.read_text())
    timings = ("time_graph_s", "time_persistence_s")  # not kept in the diagrams
    assert {e: {k: v for k, v in entry.items() if k not in timings}
            for e, entry in rebuilt["epochs"].items()} == \
        {e: {k: v for k, v in entry.items() if k not in timings} for e, entry in clean["epochs"].items()}
    assert (folder / "summaries_trl0.csv").read_bytes() == clean_csv


def test_run_resumes_from_the_last_good_checkpoint(capsys: pytest.CaptureFixture[str],
                                                    trained: Path, tmp_path: Path) -> None:
    import torch

    from topodnn import training

    folder = tmp_path / "lenet_mnist"
    shutil.copytree(trained / "lenet_mnist", folder)
    last, history = folder / "ckpt_trl0_epc1.pt", folder / "history_trl0.json"
    clean_weights = training.load_checkpoint(last)["model_state"]
    clean_history = json.loads(history.read_text())
    last.write_bytes(last.read_bytes()[:777])
    history.write_bytes(history.read_bytes()[:50])
    argv = ["run", "--net", "lenet", "--dataset", "mnist", "--trial", "0", "--n_epochs_train", "1",
            "--epochs_test", "0 1", "--train", "1", "--build_graph", "0", "--save-path", str(tmp_path),
            *TINY]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: {last} is damaged (corrupt")
    assert warnings[0].endswith("moved aside to ckpt_trl0_epc1.pt.damaged; training resumes from epoch 0 "
                                "(ckpt_trl0_epc0.pt)")
    assert warnings[1].startswith(f"warning: {history} is damaged (not valid JSON")
    assert warnings[1].endswith("moved aside to history_trl0.json.damaged; rewritten from the checkpoint")
    assert (folder / "ckpt_trl0_epc1.pt.damaged").exists() and (folder / "history_trl0.json.damaged").exists()
    repaired = training.load_checkpoint(last)["model_state"]
    assert all(torch.equal(repaired[k], clean_weights[k]) for k in clean_weights)
    times = "epoch_time_s"
    assert {k: v for k, v in json.loads(history.read_text()).items() if k != times} == \
        {k: v for k, v in clean_history.items() if k != times}


def test_a_damaged_checkpoint_of_an_asked_epoch_is_one_line(capsys: pytest.CaptureFixture[str],
                                                             trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lenet_mnist"
    shutil.copytree(trained / "lenet_mnist", folder)
    ckpt = folder / "ckpt_trl0_epc0.pt"
    ckpt.write_bytes(b"")
    rc, _, err = run_cli(capsys, "run", "--train", "0", "--epochs_test", "0", "--force",
                         "--save-path", str(tmp_path), *TINY, *TOPO)
    assert rc == 2
    assert err.startswith(f"topodnn: error: {ckpt} is damaged (corrupt checkpoint: empty file)")
    assert len(err.strip().splitlines()) == 1
