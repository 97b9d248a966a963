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


def mpi_env() -> dict:
    """Environment for mpirun: allow root, keep shared-memory transport only (fast start)."""
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_btl", "self,sm")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    pp = str(REPO / "python")
    env["PYTHONPATH"] = pp + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
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
