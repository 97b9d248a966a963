"""Command-line behaviour of dipha, dualize and full_to_sparse_distance_matrix on bad input.

Every failure must end with exit status 1 on a clean shutdown (no MPI_Abort, no core dump, no
hang; runs use 2 ranks and a timeout) and exactly one "<prog>: error: ..." line on stderr,
printed once (rank 0 only), naming the file and the problem.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_dipha_batch, run_mpi

NPROCS = 2


def _error_lines(proc, prog="dipha"):
    return [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{prog}: error:")]


def _assert_clean_failure(proc, prog="dipha"):
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    text = proc.stdout + proc.stderr
    for bad in ("MPI_ABORT", "core dumped", "Segmentation", "terminate called"):
        assert bad not in text, text
    lines = _error_lines(proc, prog)
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def out_path(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_out") / "out.diagram"


def _check_error_text(rc, text, prog="dipha"):
    assert rc == 1, text
    lines = [ln for ln in text.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def bad_file_runs(bad_files, tmp_path_factory):
    """All malformed files through the dipha command line, 2 ranks, one mpirun."""
    out = tmp_path_factory.mktemp("bad_runs")
    jobs = [(name, ["dipha", "--upper_dim", "2", path, out / "o.diagram"]) for name, (path, _) in bad_files.items()]
    return run_dipha_batch(NPROCS, jobs, out)


def test_bad_files_give_one_line_errors(bad_files, bad_file_runs):
    """Each malformed file: line == 'dipha: error: ' + the ValueError text of topodnn.io."""
    from topodnn import io

    for name, (path, fragment) in bad_files.items():
        line = _check_error_text(*bad_file_runs[name])
        assert str(path) in line and fragment in line, (name, line)
        with pytest.raises(ValueError) as exc:
            io.validate_file(path)
        assert line == f"dipha: error: {exc.value}", name


@pytest.mark.parametrize("name", ["bad_magic", "sparse_not_symmetric"])
def test_bad_files_executable(name, bad_files, bin_dir, out_path):
    path, fragment = bad_files[name]
    proc = run_mpi(NPROCS, [bin_dir / "dipha", "--upper_dim", "2", path, out_path], timeout=30)
    line = _assert_clean_failure(proc)
    assert str(path) in line and fragment in line


USAGE_CASES = [
    ([], "expected an input and an output"),
    (["only_one"], "expected an input and an output"),
    (["--bogus", "IN", "OUT"], "unknown option '--bogus'"),
    (["--upper_dim", "IN", "OUT"], "--upper_dim needs an integer value"),
    (["--upper_dim", "abc", "IN", "OUT"], "'abc' is not an integer"),
    (["--upper_dim", "2x", "IN", "OUT"], "'2x' is not an integer"),
    (["--upper_dim", "-1", "IN", "OUT"], "must be >= 0"),
    (["--upper_dim", "99999999999999999999", "IN", "OUT"], "is not an integer"),
    (["--dual", "OUT"], "expected an input and an output file name after the options"),
]


def _usage_argv(args, dipha_test_data):
    return [dipha_test_data / "sphere_3_32.complex" if a == "IN" else ("/tmp/x.diagram" if a == "OUT" else a)
            for a in args]


def test_usage_errors(dipha_test_data, tmp_path):
    jobs = [(str(k), ["dipha", *_usage_argv(a, dipha_test_data)]) for k, (a, _) in enumerate(USAGE_CASES)]
    res = run_dipha_batch(NPROCS, jobs, tmp_path)
    for k, (args, fragment) in enumerate(USAGE_CASES):
        rc, text = res[str(k)]
        assert fragment in _check_error_text(rc, text), args
        assert text.count("Usage: dipha") == 1  # usage text printed once (rank 0)


@pytest.mark.parametrize("k", [2, 5])
def test_usage_errors_executable(k, bin_dir, dipha_test_data):
    args, fragment = USAGE_CASES[k]
    proc = run_mpi(NPROCS, [bin_dir / "dipha", *_usage_argv(args, dipha_test_data)], timeout=30)
    assert fragment in _assert_clean_failure(proc)
    assert proc.stderr.count("Usage: dipha") == 1


def test_help(bin_dir):
    proc = run_mpi(NPROCS, [bin_dir / "dipha", "--help"], timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.count("Usage: dipha") == 1 and "--general" in proc.stdout


@pytest.fixture(scope="module")
def misc_runs(dipha_test_data, tmp_path_factory):
    """Input / output / size errors through the dipha command line, 2 ranks, one mpirun."""
    from topodnn import io

    t = tmp_path_factory.mktemp("misc_runs")
    out = t / "o.diagram"
    io.write_distance_matrix(t / "n64.complex", np.ones((64, 64)))
    io.write_distance_matrix(t / "n200.complex", np.ones((200, 200)))
    data = dipha_test_data
    jobs = {
        "missing": ["dipha", t / "nope.complex", out],
        "diagram": ["dipha", data / "explicit.diagram", out],
        "no_ud_full": ["dipha", data / "sphere_3_32.complex", out],
        "no_ud_full_general": ["dipha", "--general", data / "sphere_3_32.complex", out],
        "no_ud_sparse": ["dipha", data / "sphere_3_32_0.5.complex", out],
        "no_ud_sparse_general": ["dipha", "--general", data / "sphere_3_32_0.5.complex", out],
        "dual_on_primal": ["dipha", "--dual", data / "primal_explicit.complex", out],
        "primal_on_dual": ["dipha", data / "dual_explicit.complex", out],
        "out_dir_missing": ["dipha", data / "smooth_16.complex", t / "no_such_dir" / "o.diagram"],
        "out_is_dir": ["dipha", data / "smooth_16.complex", t],
        # a huge complex must be refused by the output check, before anything is built
        "out_checked_first": ["dipha", "--general", "--upper_dim", "8", t / "n200.complex",
                              t / "no_such_dir" / "o.diagram"],
        "overflow": ["dipha", "--general", "--upper_dim", "62", t / "n64.complex", out],
        "too_big": ["dipha", "--general", "--upper_dim", "8", t / "n200.complex", out],
    }
    return t, run_dipha_batch(NPROCS, list(jobs.items()), t)


@pytest.mark.parametrize(
    "job, fragments",
    [
        ("missing", ["nope.complex", "cannot open"]),
        ("diagram", ["explicit.diagram", "persistence diagram"]),
        ("no_ud_full", ["sphere_3_32.complex", "no --upper_dim specified"]),
        ("no_ud_full_general", ["sphere_3_32.complex", "no --upper_dim specified"]),
        ("no_ud_sparse", ["sphere_3_32_0.5.complex", "no --upper_dim specified"]),
        ("no_ud_sparse_general", ["sphere_3_32_0.5.complex", "no --upper_dim specified"]),
        ("dual_on_primal", ["primal_explicit.complex", "dualize"]),
        ("primal_on_dual", ["dual_explicit.complex", "--dual"]),
        ("out_dir_missing", ["no_such_dir/o.diagram", "does not exist"]),
        ("out_is_dir", ["is a directory"]),
        ("out_checked_first", ["no_such_dir/o.diagram", "does not exist"]),
        ("overflow", ["n64.complex", "overflows a 64-bit cell count"]),
        ("too_big", ["n200.complex", "more than the physical memory", "cells"]),
    ],
)
def test_input_and_output_errors(job, fragments, misc_runs):
    _, res = misc_runs
    line = _check_error_text(*res[job])
    for f in fragments:
        assert f in line, line


def test_errors_executable(dipha_test_data, bin_dir, tmp_path):
    line = _assert_clean_failure(
        run_mpi(NPROCS, [bin_dir / "dipha", "--dual", dipha_test_data / "primal_explicit.complex", tmp_path / "o"]))
    assert "primal_explicit.complex" in line and "dualize" in line
    bad = tmp_path / "no_such_dir" / "out.diagram"
    line = _assert_clean_failure(run_mpi(NPROCS, [bin_dir / "dipha", dipha_test_data / "smooth_16.complex", bad]))
    assert str(bad) in line and "does not exist" in line


def test_tiny_inputs_with_more_ranks_than_work(bin_dir, tmp_path):
    """Ranks without cells must still take part (no 'complex too small')."""
    from topodnn import io

    p = tmp_path / "two.complex"
    io.write_distance_matrix(p, np.array([[0.0, 3.0], [3.0, 0.0]]))
    for extra in ([], ["--dual"]):
        out = tmp_path / "two.diagram"
        run_mpi(3, [bin_dir / "dipha", "--general", "--upper_dim", "1", *extra, p, out], check=True, timeout=30)
        rec = io.read_diagram(out).records
        assert rec.tolist() == [(-1, 0.0, 1.5), (0, 0.0, 1.5)]
    img = tmp_path / "one.complex"
    io.write_image(img, np.array([[5.0]]))
    out = tmp_path / "one.diagram"
    run_mpi(3, [bin_dir / "dipha", img, out], check=True, timeout=30)
    assert io.read_diagram(out).records.tolist() == [(-1, 5.0, 5.0)]


def test_dualize_errors(dipha_test_data, bin_dir, out_path):
    line = _assert_clean_failure(
        run_mpi(NPROCS, [bin_dir / "dualize", dipha_test_data / "sphere_3_32.complex", out_path]), "dualize")
    assert "sphere_3_32.complex" in line and "expected type 0 (explicit complex)" in line
    _assert_clean_failure(run_mpi(NPROCS, [bin_dir / "dualize", "x"]), "dualize")
    _assert_clean_failure(run_mpi(NPROCS, [bin_dir / "dualize", "--bogus", "x", "y"]), "dualize")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["0.5", "IN"], "expected exactly 3 arguments, got 2"),
        (["0.5", "IN", "OUT", "extra"], "expected exactly 3 arguments, got 4"),
        (["half", "IN", "OUT"], "'half' is not a number"),
    ],
)
def test_full_to_sparse_usage(args, fragment, bin_dir, dipha_test_data, tmp_path):
    argv = [dipha_test_data / "sphere_3_32.complex" if a == "IN" else (tmp_path / "o" if a == "OUT" else a)
            for a in args]
    proc = run_mpi(1, [bin_dir / "full_to_sparse_distance_matrix", *argv], timeout=30)
    line = _assert_clean_failure(proc, "full_to_sparse_distance_matrix")
    assert fragment in line
    assert "Usage: full_to_sparse_distance_matrix" in proc.stderr


def test_full_to_sparse_rejects_wrong_type(bin_dir, dipha_test_data, tmp_path):
    proc = run_mpi(1, [bin_dir / "full_to_sparse_distance_matrix", "1", dipha_test_data / "smooth_16.complex",
                       tmp_path / "o"])
    line = _assert_clean_failure(proc, "full_to_sparse_distance_matrix")
    assert "smooth_16.complex" in line and "expected type 7 (distance matrix)" in line


def test_benchmark_table(dipha_test_data, bin_dir, tmp_path):
    proc = run_mpi(NPROCS, [bin_dir / "dipha", "--benchmark", "--general", "--upper_dim", "2",
                            dipha_test_data / "sphere_3_32.complex", tmp_path / "o.diagram"], check=True)
    out = proc.stdout
    assert out.count("Number of processes used: 2") == 1
    for phase in ("load input", "filtration sort", "pass dim 2", "pass dim 1", "write diagram"):
        assert phase in out
    assert "peak RSS" in out and "received (MB)" in out and "Overall running time" in out
    # the reduction is really split: partially reduced columns travel from rank 1 to rank 0
    reduction_mb = sum(float(ln.split()[2]) for ln in out.splitlines() if ln.strip().endswith(("pass dim 2", "pass dim 1")))
    assert reduction_mb > 0
    assert (tmp_path / "o.diagram").read_bytes() == (dipha_test_data / "sphere_2.diagram").read_bytes()
