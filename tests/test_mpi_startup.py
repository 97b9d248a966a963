"""MPI start-up defaults (topodnn._mpi, extern/dipha/src/mpi_defaults.cpp).

Each case runs in a fresh process with a controlled environment (no inherited MCA settings, a
private $HOME), since MPI is initialised once per process. What Open MPI really used is observed
independently through its own report of the parameters in force at MPI_Init
(``mpi_show_mca_params``), beside the value read back through MPI_T.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from conftest import mpirun_path, topodnn_pythonpath

_LAUNCHER_PREFIXES = ("OMPI_MCA_", "OMPI_COMM_WORLD_", "PMIX_", "PMI_", "SLURM_", "OPAL_")

_CHILD = r"""
import json, os, sys
from topodnn import _core
applied, reason = _core.mpi_defaults()
out = {"applied": applied, "reason": reason}
if sys.argv[1] == "init":
    import topodnn
    MPI = topodnn.init_mpi()
    out["btl"] = _core.mca_parameter("btl")
    out["env_btl"] = os.environ.get("OMPI_MCA_btl")
    out["rank"] = MPI.COMM_WORLD.rank
print("@@@" + json.dumps(out))
"""

_ALREADY = r"""
import json
from mpi4py import MPI
from topodnn import _core
applied, reason = _core.mpi_defaults()
print("@@@" + json.dumps({"applied": applied, "reason": reason, "btl": _core.mca_parameter("btl")}))
"""


def clean_env(home: Path, **extra: str) -> dict:
    """This process's environment without MCA settings or launcher variables, $HOME = home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", HOME=str(home))
    env["PYTHONPATH"] = topodnn_pythonpath(env)
    env.update(extra)
    return env


def run_child(env: dict, mode: str = "init", script: str = _CHILD,
              launcher: Optional[list] = None) -> tuple[list, str]:
    """Run the child script (under ``launcher`` if given); its JSON reports and its stderr."""
    cmd = [*(launcher or []), sys.executable, "-c", script, mode]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out (hang?): {cmd}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line[3:]) for line in proc.stdout.splitlines() if line.startswith("@@@")]
    return reports, proc.stderr


def btl_in_force(stderr: str) -> list:
    """The btl lines of Open MPI's own report of the parameters used at MPI_Init."""
    return [line.split("] ", 1)[-1] for line in stderr.splitlines() if "] btl=" in line]


def test_singleton_excludes_ofi_for_itself_only(tmp_path: Path) -> None:
    (rep,), err = run_child(clean_env(tmp_path, OMPI_MCA_mpi_show_mca_params="all"))
    assert rep["applied"] is True and rep["reason"] == "singleton"
    assert rep["btl"] == "^ofi"
    assert rep["env_btl"] is None  # set through MPI_T: children do not inherit it
    assert btl_in_force(err) == ["btl=^ofi (set)"]


def test_without_the_defaults_open_mpi_keeps_its_own(tmp_path: Path) -> None:
    # The control: plain mpi4py, no topodnn before it.
    (rep,), err = run_child(clean_env(tmp_path, OMPI_MCA_mpi_show_mca_params="all"), script=_ALREADY)
    assert rep == {"applied": False, "reason": "MPI is already initialised", "btl": ""}
    assert btl_in_force(err) == ["btl= (default)"]


def _home_file(home: Path) -> dict:
    (home / ".openmpi").mkdir()
    (home / ".openmpi" / "mca-params.conf").write_text("# user's file\nbtl = self,sm\n")
    return {}


def _listed_file(home: Path) -> dict:
    f = home / "site.conf"
    f.write_text("btl = tcp,self\n")
    return {"OMPI_MCA_mca_base_param_files": str(f)}


@pytest.mark.parametrize("setting, expected, source", [
    (lambda home: {"OMPI_MCA_btl": "self,sm,tcp"}, "self,sm,tcp", "environment"),
    (_home_file, "self,sm", "file"),
    (_listed_file, "tcp,self", "file"),
], ids=["environment", "home-params-file", "mca_base_param_files"])
def test_the_users_btl_wins(tmp_path: Path, setting, expected: str, source: str) -> None:
    env = clean_env(tmp_path, OMPI_MCA_mpi_show_mca_params="all", **setting(tmp_path))
    (rep,), err = run_child(env)
    assert rep["applied"] is False and f'btl is set by the user ("{expected}")' == rep["reason"]
    assert rep["btl"] == expected
    (line,) = btl_in_force(err)
    assert line.startswith(f"btl={expected} ({source}")


def test_ofi_tuning_keeps_ofi(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OMPI_MCA_btl_ofi_provider_include="tcp")
    (rep,), _ = run_child(env)
    assert rep["applied"] is False and "OMPI_MCA_btl_ofi_provider_include=tcp" in rep["reason"]
    assert rep["btl"] == ""


@pytest.mark.parametrize("launcher_env, applied, reason", [
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}, True, "all 4 ranks on this node"),
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, False,
     "the job spans several nodes (OMPI_COMM_WORLD_LOCAL_SIZE=2, OMPI_COMM_WORLD_SIZE=4)"),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, False,
     "the job spans several nodes (OMPI_COMM_WORLD_LOCAL_SIZE=unset, OMPI_COMM_WORLD_SIZE=4)"),
    ({"PMIX_RANK": "0", "SLURM_STEP_NUM_NODES": "1"}, True, "srun step on one node"),
    ({"PMIX_RANK": "0", "SLURM_STEP_NUM_NODES": "3"}, False, "the srun step spans 3 nodes"),
    ({"PMI_RANK": "1", "PMI_SIZE": "2"}, False,
     "started by a launcher that does not tell whether the job is on one node"),
    ({"PMIX_RANK": "0"}, False, "started by a launcher that does not tell whether the job is on one node"),
], ids=["ompi-one-node", "ompi-two-nodes", "ompi-no-local-size", "srun-one-node", "srun-three-nodes",
        "pmi", "pmix"])
def test_decision_from_the_launchers_environment(tmp_path: Path, launcher_env: dict, applied: bool,
                                                 reason: str) -> None:
    # Only the decision: MPI is not initialised (there is no launcher behind these variables).
    (rep,), _ = run_child(clean_env(tmp_path, **launcher_env), mode="decide")
    assert (rep["applied"], rep["reason"]) == (applied, reason)


def _mpirun(*args: str) -> list:
    return [mpirun_path(), "-n", "2", "--oversubscribe", *args]


def test_two_ranks_of_mpirun_on_one_node(tmp_path: Path) -> None:
    reps, _ = run_child(clean_env(tmp_path), launcher=_mpirun())
    assert sorted(r["rank"] for r in reps) == [0, 1]
    for r in reps:
        assert (r["applied"], r["reason"], r["btl"]) == (True, "all 2 ranks on this node", "^ofi")


def test_mpiruns_mca_option_wins(tmp_path: Path) -> None:
    reps, _ = run_child(clean_env(tmp_path), launcher=_mpirun("--mca", "btl", "self,sm,tcp"))
    assert len(reps) == 2
    for r in reps:
        assert (r["applied"], r["btl"]) == (False, "self,sm,tcp")


@pytest.mark.parametrize("user_btl", [None, "self,sm"])
def test_dipha_executable_applies_the_same_rule(tmp_path: Path, bin_dir: Path, dipha_test_data: Path,
                                                user_btl: Optional[str]) -> None:
    extra = {"OMPI_MCA_mpi_show_mca_params": "all"}
    if user_btl:
        extra["OMPI_MCA_btl"] = user_btl
    out = tmp_path / "out.diagram"
    proc = subprocess.run([str(bin_dir / "dipha"), str(dipha_test_data / "ramp_3_16.complex"), str(out)],
                          capture_output=True, text=True, env=clean_env(tmp_path, **extra), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = btl_in_force(proc.stderr)
    assert line == ("btl=^ofi (set)" if user_btl is None else f"btl={user_btl} (environment)")
    assert out.read_bytes() == (dipha_test_data / "ramp_3_16_def.diagram").read_bytes()
