"""The --nproc launcher (topodnn.launcher): which program, which flags, and the real path.

Fake ``mpirun`` / ``mpiexec`` / ``srun`` scripts print the version string of Open MPI, MPICH or
Slurm for ``--version`` and otherwise record their argv (and the root flags in their
environment) as JSON, so the choice and the command line are checked as the program receives
them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import mpi_env, mpirun_path
from topodnn import launcher
from topodnn.launcher import Launcher, LauncherError, find_launcher

VERSIONS = {
    "openmpi": "mpirun (Open MPI) 5.0.11\n\nReport bugs to https://www.open-mpi.org/community/help/",
    "openmpi4": "mpiexec (OpenRTE) 4.1.5\n\nReport bugs to http://www.open-mpi.org/community/help/",
    "mpich": "HYDRA build details:\n    Version:                                 4.1.2\n"
             "    Release Date:                            Wed Jun  7 15:22:45 CDT 2023",
    "intel": "Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619 (id: c2e19c2f3e)",
    "slurm": "slurm 23.02.7",
    "other": "some launcher 1.0",
}

_FAKE = r"""#!{python}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print({version!r})
    sys.exit(0)
with open({log!r}, "a") as f:
    f.write(json.dumps({{"prog": {label!r}, "argv": sys.argv[1:],
                        "root": os.environ.get("OMPI_ALLOW_RUN_AS_ROOT")}}) + "\n")
sys.exit(3)
"""

# A launcher of another MPI library: starts the program N times as separate singletons.
_SINGLETONS = r"""#!{python}
import subprocess, sys
if sys.argv[1:] == ["--version"]:
    print("slurm 23.02.7")
    sys.exit(0)
n = int(sys.argv[sys.argv.index("-n") + 1])
prog = sys.argv[sys.argv.index("-n") + 2:]
sys.exit(max(subprocess.run(prog).returncode for _ in range(n)))
"""


def fake(directory: Path, name: str, version: str, log: Path, label: Optional[str] = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_text(_FAKE.format(python=sys.executable, version=VERSIONS[version], log=str(log),
                              label=label or f"{directory.name}/{name}"))
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return p


def calls(log: Path) -> list:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(launcher.ENV_OVERRIDE, raising=False)


def tiny_graph() -> sp.csr_matrix:
    D = np.array([[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]], dtype=float) * 0.1
    return sp.csr_matrix(D * (D <= 0.15))


# ------------------------------------------------------------------------------------------
# which program


@pytest.mark.parametrize("names, chosen", [
    (["srun", "mpiexec", "mpirun"], "mpirun"),
    (["srun", "mpiexec"], "mpiexec"),
    (["srun"], "srun"),
])
def test_mpirun_then_mpiexec_then_srun_on_path(tmp_path: Path, no_override: None, names: list,
                                               chosen: str) -> None:
    log = tmp_path / "log"
    for n in names:
        fake(tmp_path / "path", n, "slurm" if n == "srun" else "openmpi", log)
    got = find_launcher(bin_dir=tmp_path / "empty", path=str(tmp_path / "path"))
    assert got.argv == (str(tmp_path / "path" / chosen),)


def test_the_environments_own_launcher_first(tmp_path: Path, no_override: None) -> None:
    log = tmp_path / "log"
    fake(tmp_path / "path", "mpirun", "mpich", log)
    own = fake(tmp_path / "venv_bin", "srun", "slurm", log)  # even srun beats PATH's mpirun
    got = find_launcher(bin_dir=tmp_path / "venv_bin", path=str(tmp_path / "path"))
    assert got.argv == (str(own),) and got.kind == "srun"


def test_override_by_name_with_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log"
    fake(tmp_path / "path", "mpirun", "openmpi", log)
    srun = fake(tmp_path / "path", "srun", "slurm", log)
    monkeypatch.setenv(launcher.ENV_OVERRIDE, "srun --mpi=pmix")
    got = find_launcher(bin_dir=tmp_path / "empty", path=str(tmp_path / "path"))
    assert got.argv == (str(srun), "--mpi=pmix") and got.kind == "srun"
    assert got.command(3, ["prog", "a"]) == [str(srun), "--mpi=pmix", "-n", "3", "prog", "a"]


def test_override_by_path(tmp_path: Path, no_override: None) -> None:
    m = fake(tmp_path / "elsewhere", "mpiexec.hydra", "mpich", tmp_path / "log")
    got = find_launcher(str(m), bin_dir=tmp_path / "empty", path=str(tmp_path / "path"))
    assert got.argv == (str(m),) and got.kind == "hydra"


@pytest.mark.parametrize("override, fragment", [
    ("no-such-launcher", "no-such-launcher is not an executable program"),
    ("", "is empty"),
])
def test_bad_override_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         override: str, fragment: str) -> None:
    monkeypatch.setenv(launcher.ENV_OVERRIDE, override)
    with pytest.raises(LauncherError, match=fragment):
        find_launcher(override, bin_dir=tmp_path, path=str(tmp_path))


def test_no_launcher_at_all(tmp_path: Path, no_override: None) -> None:
    with pytest.raises(LauncherError, match="needs an MPI launcher .* or use --nproc 1"):
        find_launcher(bin_dir=tmp_path, path=str(tmp_path))


# ------------------------------------------------------------------------------------------
# which flags


@pytest.mark.parametrize("name, version, kind, flags", [
    ("mpirun", "openmpi", "openmpi", ["-n", "2", "--oversubscribe"]),
    ("mpiexec", "openmpi4", "openmpi", ["-n", "2", "--oversubscribe"]),
    ("mpiexec", "mpich", "hydra", ["-n", "2"]),
    ("mpirun", "intel", "hydra", ["-n", "2"]),
    ("srun", "slurm", "srun", ["-n", "2"]),
    ("mpirun", "other", "unknown", ["-n", "2"]),
])
def test_flags_as_the_launcher_receives_them(tmp_path: Path, no_override: None, name: str,
                                             version: str, kind: str, flags: list) -> None:
    log = tmp_path / "log"
    fake(tmp_path / "path", name, version, log)
    got = find_launcher(bin_dir=tmp_path / "empty", path=str(tmp_path / "path"))
    assert got.kind == kind
    assert got.version == VERSIONS[version].splitlines()[0]
    # the real call: the fake records its argv and fails, which is reported with its exit code
    with pytest.raises(LauncherError, match=f"persistence with {name} -n 2 failed \\(exit 3\\)"):
        launcher.persistence_on_ranks(tiny_graph(), 1, 0.15, 2, tmp_path, got)
    (call,) = calls(log)
    assert call["argv"][:len(flags)] == flags
    assert call["argv"][len(flags):len(flags) + 4] == [sys.executable, "-m", "topodnn", "_persist"]
    assert call["argv"][-2:] == ["--nproc", "2"]
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    expect_root = "1" if (kind == "openmpi" and is_root) else None
    if os.environ.get("OMPI_ALLOW_RUN_AS_ROOT") is None:
        assert call["root"] == expect_root
    assert not list(tmp_path.glob(".graph_*"))  # temporary files removed after a failure too


def test_command_refuses_a_bad_rank_count() -> None:
    with pytest.raises(ValueError, match="nproc must be a positive integer"):
        Launcher(argv=("mpirun",), kind="openmpi").command(0, ["x"])


# ------------------------------------------------------------------------------------------
# the real path


def test_separate_singletons_are_reported_not_computed_twice(tmp_path: Path, no_override: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "path"
    d.mkdir()
    p = d / "srun"
    p.write_text(_SINGLETONS.format(python=sys.executable))
    p.chmod(0o755)
    for k, v in mpi_env().items():
        monkeypatch.setenv(k, v)
    got = find_launcher(bin_dir=tmp_path / "empty", path=str(d))
    with pytest.raises(LauncherError, match="asked for 2 ranks but this process is one of 1"):
        launcher.persistence_on_ranks(tiny_graph(), 1, 0.15, 2, tmp_path, got)


@pytest.mark.parametrize("nproc", [2, 3])
def test_real_launcher_gives_the_in_process_diagrams(tmp_path: Path, nproc: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import topodnn

    rng = np.random.default_rng(nproc)
    X = rng.normal(size=(30, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    thr = float(np.quantile(D, 0.4))
    G = sp.csr_matrix(np.where(D <= thr, D, 0.0))
    for k, v in mpi_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(launcher.ENV_OVERRIDE, mpirun_path())
    got = launcher.persistence_on_ranks(G, 2, thr, nproc, tmp_path)
    want = topodnn.persistence(G, max_dim=2, threshold=thr)
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])])


def test_started_by_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    assert not launcher.started_by_launcher()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert not launcher.started_by_launcher()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert launcher.started_by_launcher()
