"""Shared fixtures: DIPHA regression data, the engine's executables, and an mpirun helper."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
EXECUTABLES = ("dipha", "dualize", "full_to_sparse_distance_matrix")


def _require_data() -> bool:
    return os.environ.get("TOPODNN_REQUIRE_TEST_DATA", "") == "1"


@pytest.fixture(scope="session")
def dipha_test_data() -> Path:
    """Directory of the DIPHA regression files.

    ``$TOPODNN_DIPHA_TEST_DATA``, else ``<repo>/../shared/dipha-test-data``. Missing data skips
    the test, or fails it when ``TOPODNN_REQUIRE_TEST_DATA=1``.
    """
    env = os.environ.get("TOPODNN_DIPHA_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "dipha-test-data"
    if not (path / "sphere_3_32.complex").is_file():
        msg = (
            f"DIPHA regression data not found at {path} "
            "(set TOPODNN_DIPHA_TEST_DATA to the directory holding DIPHA's test_data files)"
        )
        if _require_data():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _find_bin_dir() -> Optional[Path]:
    candidates = []
    env = os.environ.get("TOPODNN_BIN_DIR")
    if env:
        candidates.append(Path(env))
    dev = REPO / "build" / "dev" / "extern" / "dipha"
    installed = Path(sys.executable).parent
    # A development import (PYTHONPATH=python) goes with the development build's executables.
    try:
        import topodnn

        dev_import = Path(topodnn.__file__).resolve().is_relative_to(REPO / "python")
    except ImportError:
        dev_import = False
    candidates += [dev, installed] if dev_import else [installed, dev]
    for c in candidates:
        if all((c / name).is_file() and os.access(c / name, os.X_OK) for name in EXECUTABLES):
            return c
    return None


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Directory holding dipha, dualize and full_to_sparse_distance_matrix.

    ``$TOPODNN_BIN_DIR``, else next to ``sys.executable`` (installed console scripts), else the
    development build ``build/dev/extern/dipha``; when topodnn itself is imported from the source
    tree (``PYTHONPATH=python``) the development build is tried before the installed scripts.
    """
    d = _find_bin_dir()
    if d is None:
        msg = "dipha executables not found (set TOPODNN_BIN_DIR or run `make dev`)"
        if _require_data():
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def mpirun_path() -> str:
    """The mpirun to use: ``$TOPODNN_MPIRUN``, next to ``sys.executable``, or on PATH."""
    env = os.environ.get("TOPODNN_MPIRUN")
    if env:
        return env
    local = Path(sys.executable).parent / "mpirun"
    if local.is_file():
        return str(local)
    found = shutil.which("mpirun")
    if found is None:
        pytest.skip("mpirun not found")
    return found


def topodnn_pythonpath(env: Optional[dict] = None) -> str:
    """PYTHONPATH under which a child process imports the same topodnn as this one.

    The source tree (``python/``) for a development build, site-packages for an installed one:
    a child must never pick up the sources of an installed package (they hold no ``_core``).
    """
    import topodnn

    root = str(Path(topodnn.__file__).resolve().parent.parent)
    old = (env if env is not None else os.environ).get("PYTHONPATH")
    return root + (os.pathsep + old if old else "")


def mpi_env() -> dict:
    """Environment for mpirun: allow root, keep shared-memory transport only (fast start)."""
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_btl", "self,sm")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env["PYTHONPATH"] = topodnn_pythonpath(env)
    return env


def run_mpi(
    nprocs: int, argv: Sequence[str], timeout: float = 60.0, check: bool = False
) -> subprocess.CompletedProcess:
    """Run ``mpirun -n nprocs --oversubscribe argv...``; text output captured.

    A run exceeding ``timeout`` seconds fails the test (a hang is a bug).
    """
    cmd = [mpirun_path(), "-n", str(nprocs), "--oversubscribe", *map(str, argv)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env())
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s (hang?): {' '.join(cmd)}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# Fast MPI start in this process too (topodnn._core links libmpi; mpi4py initialises it).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
os.environ.setdefault("OMPI_MCA_btl", "self,sm")


# ------------------------------------------------------------------------------------------
# Malformed DIPHA files: name -> (file, expected fragment of the one-line message)

MAGIC = 8067171840


def _i8(*words) -> bytes:
    import numpy as np

    return np.array(words, dtype="<i8").tobytes()


def _f8(*words) -> bytes:
    import numpy as np

    return np.array(words, dtype="<f8").tobytes()


def _sparse(n, rows, vals=None) -> bytes:
    flat = [j for r in rows for j in r]
    v = vals if vals is not None else [1.0] * len(flat)
    return _i8(MAGIC, 8, n, *[len(r) for r in rows], *flat) + _f8(*v)


def _explicit(form, dims, values, offsets, entries, N=None, d=2) -> bytes:
    N = len(dims) if N is None else N
    return (_i8(MAGIC, 0, form, N, d, *dims) + _f8(*values) + _i8(*offsets[:-1], offsets[-1], *entries))


# one filled triangle in boundary form: vertices 0-2, edges 3 {0,1}, 4 {0,2}, 5 {1,2}, triangle 6
TRI_DIMS = [0, 0, 0, 1, 1, 1, 2]
TRI_VALUES = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
TRI_OFFSETS = [0, 0, 0, 0, 2, 4, 6, 9]
TRI_ENTRIES = [0, 1, 0, 2, 1, 2, 3, 4, 5]


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, dipha_test_data):
    """Malformed input files: ``{name: (path, expected message fragment)}``."""
    d = tmp_path_factory.mktemp("bad_files")
    sphere = (dipha_test_data / "sphere_3_32.complex").read_bytes()
    cases = {
        "bad_magic": (_i8(12345) + sphere[8:], "not a DIPHA file"),
        "reserved_type": (_i8(MAGIC, 5, 0), "reserved"),
        "unknown_type": (_i8(MAGIC, 42, 0), "unknown file type 42"),
        "too_short": (sphere[:10], "too short"),
        "truncated_full": (sphere[:-8], "truncated file: the header implies 8216 bytes but the file has 8208"),
        "oversized_full": (sphere + _f8(0.0), "oversized file: the header implies 8216 bytes but the file has 8224"),
        "negative_points": (_i8(MAGIC, 7, -3), "negative number of points"),
        "sparse_negative_count": (_i8(MAGIC, 8, 2, -1, 1, 0) + _f8(1.0), "negative neighbour count"),
        "sparse_not_ascending": (_sparse(3, [[2, 1], [0], [0]]), "not strictly ascending"),
        "sparse_self_entry": (_sparse(2, [[0, 1], [0]]), "self entry"),
        "sparse_not_symmetric": (_sparse(3, [[1], [0, 2], []]), "not symmetric"),
        "sparse_index_out_of_range": (_sparse(2, [[1], [0, 7]]), "out of range"),
        "sparse_truncated": (_sparse(3, [[1], [0, 2], [1]])[:-8], "truncated file"),
        "explicit_negative_cells": (_i8(MAGIC, 0, 0, -1, 2, 0), "negative number of cells"),
        "explicit_offsets_decreasing": (
            _explicit(0, TRI_DIMS, TRI_VALUES, [0, 0, 0, 0, 2, 1, 6, 9], TRI_ENTRIES), "offsets decreasing"),
        "explicit_offset_out_of_range": (
            _explicit(0, TRI_DIMS, TRI_VALUES, [0, 0, 0, 0, 2, 4, 60, 9], TRI_ENTRIES), "out of range"),
        "explicit_cell_id_out_of_range": (
            _explicit(0, TRI_DIMS, TRI_VALUES, TRI_OFFSETS, TRI_ENTRIES[:-1] + [70]), "cell id 70 out of range"),
        "explicit_truncated": (_explicit(0, TRI_DIMS, TRI_VALUES, TRI_OFFSETS, TRI_ENTRIES)[:-16], "truncated file"),
        "image_dim_zero": (_i8(MAGIC, 1, 1, 0) + _f8(1.0), "image dimension must be positive"),
        "image_resolution_zero": (_i8(MAGIC, 1, 0, 2, 3, 0), "resolution along axis 1 must be positive"),
        "image_truncated": (_i8(MAGIC, 1, 4, 2, 2, 2) + _f8(1.0, 2.0, 3.0), "truncated file"),
    }
    out = {}
    for name, (data, fragment) in cases.items():
        p = d / f"{name}.complex"
        p.write_bytes(data)
        out[name] = (p, fragment)
    return out


# ------------------------------------------------------------------------------------------
# Many dipha command lines in one mpirun (start-up of MPI dominates small runs)

_BATCH_DRIVER = r"""
import json, sys
import mpi4py.MPI as MPI
from topodnn import _core
jobs = json.load(open(sys.argv[1]))
rank = MPI.COMM_WORLD.rank
rcs = {}
for job_id, argv in jobs:
    if rank == 0:
        sys.stderr.write("@@@JOB " + job_id + "\n")
    sys.stderr.flush()
    MPI.COMM_WORLD.Barrier()
    rcs[job_id] = _core.run_dipha(argv)
    sys.stderr.flush()
    MPI.COMM_WORLD.Barrier()
if rank == 0:
    sys.stderr.write("@@@END\n")
    json.dump(rcs, open(sys.argv[2], "w"))
"""


def run_dipha_batch(nprocs: int, jobs, workdir: Path, timeout: float = 120.0) -> dict:
    """Run ``dipha`` command lines (``[(job_id, argv)]``, argv[0] = "dipha") in one mpirun.

    Uses ``topodnn._core.run_dipha``, the code of the executable without MPI_Init. Returns
    ``{job_id: (exit status, stderr text of that job)}``.
    """
    import json

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "jobs.json").write_text(json.dumps([(j, [str(a) for a in argv]) for j, argv in jobs]))
    (workdir / "driver.py").write_text(_BATCH_DRIVER)
    proc = run_mpi(nprocs, [sys.executable, workdir / "driver.py", workdir / "jobs.json", workdir / "rcs.json"],
                   timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rcs = json.loads((workdir / "rcs.json").read_text())
    texts, current = {}, None
    for line in proc.stderr.splitlines():
        if line.startswith("@@@JOB "):
            current = line[7:]
            texts[current] = []
        elif line.startswith("@@@END"):
            current = None
        elif current is not None:
            texts[current].append(line)
    return {j: (rcs[j], "\n".join(texts.get(j, []))) for j, _ in jobs}
