"""DIPHA's own regression suite: byte-identical diagrams for 1, 2 and 3 ranks.

Each rank count is one ``mpirun`` of a small driver that calls the ``dipha`` command line
(``topodnn._core.run_dipha``: the same code as the executable, minus MPI_Init) for every case,
primal and ``--dual`` where allowed, default and ``--general`` paths for distance matrices.
Random inputs (full and sparse distance matrices, images) are run the same way and must give
identical files for every rank count and for primal / dual.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_dipha_batch, run_mpi

# (input, upper_dim or None, expected diagram)
IMAGE_CASES = [
    ("smooth_16.complex", None, "smooth_def.diagram"),
    ("smooth_16.complex", 2, "smooth_2.diagram"),
    ("noise_3_16.complex", None, "noise_3_16_def.diagram"),
    ("noise_4_8.complex", None, "noise_4_8_def.diagram"),
    ("ramp_3_16.complex", None, "ramp_3_16_def.diagram"),
    ("ramp_4_8.complex", None, "ramp_4_8_def.diagram"),
]
RIPS_CASES = [
    ("sphere_3_32.complex", 3, "sphere_3.diagram"),
    ("sphere_3_32.complex", 2, "sphere_2.diagram"),
    ("sphere_3_32.complex", 1, "sphere_1.diagram"),
    ("sphere_3_32_2.complex", 3, "sphere_3_2.diagram"),
    ("sphere_3_32_0.8.complex", 3, "sphere_3_0.8.diagram"),
    ("sphere_3_32_0.5.complex", 2, "sphere_2_0.5.diagram"),
    ("sphere_3_32_0.3.complex", 2, "sphere_1_0.3.diagram"),
]
RANKS = (1, 2, 3)


def _jobs():
    """(job id, input, options, expected file or None) for every run of the matrix."""
    jobs = []
    for inp, ud, exp in IMAGE_CASES:
        for dual in (False, True):
            opts = (["--upper_dim", str(ud)] if ud is not None else []) + (["--dual"] if dual else [])
            jobs.append((f"{exp}|{'dual' if dual else 'primal'}|general", inp, opts, exp))
    for inp, ud, exp in RIPS_CASES:
        for dual in (False, True):
            for path in ("default", "general"):
                opts = ["--upper_dim", str(ud)] + (["--dual"] if dual else [])
                opts += ["--general"] if path == "general" else []
                jobs.append((f"{inp}@{ud}|{'dual' if dual else 'primal'}|{path}", inp, opts, exp))
    jobs.append(("explicit|primal|general", "primal_explicit.complex", [], "explicit.diagram"))
    jobs.append(("explicit|dual|general", "dual_explicit.complex", ["--dual"], "explicit.diagram"))
    return jobs


JOBS = _jobs()

# Random inputs (generated once per session): name -> (file, upper_dim)
RANDOM_INPUTS = ["rand_full_a", "rand_full_b", "rand_sparse", "rand_image_3d", "rand_image_2d"]



@pytest.fixture(scope="session")
def random_inputs(tmp_path_factory):
    """Random inputs written with topodnn.io: (path, upper_dim or None) per name."""
    import scipy.sparse as sp

    from topodnn import io

    d = tmp_path_factory.mktemp("random_inputs")
    rng = np.random.default_rng(12345)
    out = {}
    for name, n, dim, ud in (("rand_full_a", 18, 3, 3), ("rand_full_b", 24, 2, 2)):
        X = rng.standard_normal((n, dim))
        D = np.linalg.norm(X[:, None] - X[None], axis=-1)
        io.write_distance_matrix(d / f"{name}.complex", D)
        out[name] = (d / f"{name}.complex", ud)
    X = rng.random((40, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    mask = (D <= 0.35) & ~np.eye(40, dtype=bool)
    io.write_sparse_distance_matrix(d / "rand_sparse.complex", sp.csr_matrix(D * mask))
    out["rand_sparse"] = (d / "rand_sparse.complex", 2)
    io.write_image(d / "rand_image_3d.complex", rng.integers(0, 20, size=(5, 7, 6)).astype(float))
    out["rand_image_3d"] = (d / "rand_image_3d.complex", None)
    io.write_image(d / "rand_image_2d.complex", rng.random((9, 11)))
    out["rand_image_2d"] = (d / "rand_image_2d.complex", None)
    return out


def _random_jobs(random_inputs):
    jobs = []
    for name, (path, ud) in random_inputs.items():
        for dual in (False, True):
            opts = (["--upper_dim", str(ud)] if ud is not None else []) + (["--dual"] if dual else [])
            opts += ["--general"]
            jobs.append((f"{name}|{'dual' if dual else 'primal'}", str(path), opts))
    return jobs


@pytest.fixture(scope="session")
def driver_runs(dipha_test_data, random_inputs, tmp_path_factory):
    """Runs every job once per rank count; returns {P: (output dir, {job id: exit status}, stderr)}."""
    results = {}
    for P in RANKS:
        out = tmp_path_factory.mktemp(f"ranks{P}")
        argvs = []
        for job_id, inp, opts, _ in JOBS:
            argvs.append((job_id, ["dipha", *opts, dipha_test_data / inp, out / _fname(job_id)]))
        for job_id, inp, opts in _random_jobs(random_inputs):
            argvs.append((job_id, ["dipha", *opts, inp, out / _fname(job_id)]))
        res = run_dipha_batch(P, argvs, out)
        results[P] = (out, {j: rc for j, (rc, _) in res.items()}, {j: t for j, (_, t) in res.items()})
    return results


def _fname(job_id: str) -> str:
    return job_id.replace("|", "__").replace("@", "_ud") + ".out"


@pytest.mark.parametrize("nprocs", RANKS)
@pytest.mark.parametrize("job", JOBS, ids=[j[0] for j in JOBS])
def test_regression_byte_identical(job, nprocs, driver_runs, dipha_test_data):
    job_id, _, _, expected = job
    out, rcs, stderr = driver_runs[nprocs]
    produced = out / _fname(job_id)
    assert rcs[job_id] == 0, f"dipha failed for {job_id} with {nprocs} ranks:\n{stderr[job_id][-2000:]}"
    assert produced.read_bytes() == (dipha_test_data / expected).read_bytes()


@pytest.mark.parametrize("name", RANDOM_INPUTS)
def test_random_inputs_rank_and_dual_independent(name, driver_runs):
    ref_dir, rcs1, _ = driver_runs[1]
    assert rcs1[f"{name}|primal"] == 0
    ref = (ref_dir / _fname(f"{name}|primal")).read_bytes()
    assert len(ref) > 48  # a non-trivial diagram
    for P in RANKS:
        out, rcs, _ = driver_runs[P]
        for mode in ("primal", "dual"):
            assert rcs[f"{name}|{mode}"] == 0
            assert (out / _fname(f"{name}|{mode}")).read_bytes() == ref, (P, mode)


def test_dualize_reproduces_dual_explicit(dipha_test_data, bin_dir, tmp_path):
    for P in (1, 2):
        out = tmp_path / f"dual{P}.complex"
        run_mpi(P, [bin_dir / "dualize", dipha_test_data / "primal_explicit.complex", out], check=True)
        assert out.read_bytes() == (dipha_test_data / "dual_explicit.complex").read_bytes()
    back = tmp_path / "primal.complex"
    run_mpi(1, [bin_dir / "dualize", dipha_test_data / "dual_explicit.complex", back], check=True)
    assert back.read_bytes() == (dipha_test_data / "primal_explicit.complex").read_bytes()


def test_executable_regression_subset(dipha_test_data, bin_dir, tmp_path):
    """The dipha executable itself on every regression input (ranks and mode varied)."""
    cases = [(inp, ud, exp) for inp, ud, exp in IMAGE_CASES + RIPS_CASES]
    for k, (inp, ud, exp) in enumerate(cases):
        P = 1 + k % 3
        opts = (["--upper_dim", str(ud)] if ud is not None else []) + (["--dual"] if k % 2 else [])
        if inp.startswith("sphere"):
            opts.append("--general")
        out = tmp_path / f"{k}.diagram"
        proc = run_mpi(P, [bin_dir / "dipha", *opts, dipha_test_data / inp, out])
        assert proc.returncode == 0, (inp, opts, proc.stderr[-2000:])
        assert out.read_bytes() == (dipha_test_data / exp).read_bytes(), (inp, opts, P)
    for P, (inp, opts) in ((2, ("primal_explicit.complex", [])), (3, ("dual_explicit.complex", ["--dual"]))):
        out = tmp_path / f"explicit{P}.diagram"
        run_mpi(P, [bin_dir / "dipha", *opts, dipha_test_data / inp, out], check=True)
        assert out.read_bytes() == (dipha_test_data / "explicit.diagram").read_bytes()


@pytest.mark.parametrize("upper", ["0.3", "0.5", "0.8", "2"])
def test_full_to_sparse_reproduces_sparse_files(upper, dipha_test_data, bin_dir, tmp_path):
    out = tmp_path / "s.complex"
    run_mpi(1, [bin_dir / "full_to_sparse_distance_matrix", upper, dipha_test_data / "sphere_3_32.complex", out],
            check=True)
    assert out.read_bytes() == (dipha_test_data / f"sphere_3_32_{upper}.complex").read_bytes()
