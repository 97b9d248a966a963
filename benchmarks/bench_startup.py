"""Start-up cost of MPI in the package's entry points, each measured in a fresh process.

Cases (wall time of the whole child process, ``--repeat`` runs each, best and median reported):

* a singleton ``import mpi4py.MPI`` with Open MPI's defaults, and ``topodnn.init_mpi()`` with the
  package's start-up defaults (:mod:`topodnn._mpi`: ``btl = ^ofi`` on one machine);
* the first ``topodnn.persistence`` call on a tiny matrix, with and without those defaults
  (without: mpi4py initialises MPI before topodnn does);
* the ``dipha`` executable on a small full distance matrix, with the defaults and with Open MPI's
  own transport list named explicitly (``OMPI_MCA_btl=self,ofi,sm,tcp,uct``, which the defaults
  leave alone as a user setting);
* ``mpirun -n 2``: ``true`` (the launcher alone), each rank initialising MPI both ways, and
  ``dipha``.

Every ``OMPI_MCA_*`` variable of the calling environment is removed for the children (and listed
in the output), so that "Open MPI's defaults" are the library's own. The children import the same
topodnn as this script (``PYTHONPATH``); ``dipha`` is taken from ``$TOPODNN_BIN_DIR``, the
development build or next to ``sys.executable``.

Raw results (command, machine, load average before and after, every time) are written as JSON to
``benchmarks/results/startup.json`` (``--out``). Start-up of a single process is short and
mostly one process's own work, so the best of several runs is fairly robust on a loaded machine;
the median shows the spread.

Usage::

    python benchmarks/bench_startup.py [--repeat 10] [--out benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "startup.json"
#: Open MPI 5's transports named explicitly: its default set, and a user setting for topodnn.
OPEN_MPI_BTLS = "self,ofi,sm,tcp,uct"

PY_MPI4PY = "import mpi4py.MPI"
PY_INIT = "import topodnn; topodnn.init_mpi()"
PY_PERSISTENCE = ("import numpy as np, topodnn; "
                  "topodnn.persistence(np.array([[0., 1., 2.], [1., 0., 1.], [2., 1., 0.]]), max_dim=1)")
PY_PERSISTENCE_MPI4PY_FIRST = "import mpi4py.MPI; " + PY_PERSISTENCE


def find_bin() -> Optional[Path]:
    for d in (os.environ.get("TOPODNN_BIN_DIR"), REPO / "build" / "dev" / "extern" / "dipha",
              Path(sys.executable).parent):
        if d and (Path(d) / "dipha").is_file():
            return Path(d)
    return None


def find_mpirun() -> Optional[str]:
    env = os.environ.get("TOPODNN_MPIRUN")
    if env:
        return env
    local = Path(sys.executable).parent / "mpirun"
    return str(local) if local.is_file() else shutil.which("mpirun")


def child_env() -> tuple[dict, list]:
    import topodnn

    env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_MCA_")}
    removed = sorted(k for k in os.environ if k.startswith("OMPI_MCA_"))
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    root = str(Path(topodnn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env, removed


def time_case(argv: list, env: dict, repeat: int) -> list:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-500:]}")
    return times


def version_line(argv: list) -> str:
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return next((ln.strip() for ln in out.stdout.splitlines() if ln.strip()), "")


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=10, help="runs per case (default 10)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    from topodnn import io

    env, removed = child_env()
    py = sys.executable
    bin_dir, mpirun = find_bin(), find_mpirun()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3))
    matrix = work / "points32.complex"
    io.write_distance_matrix(matrix, np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)))
    out_diagram = str(work / "out.diagram")

    cases = [
        ("python: import mpi4py.MPI (Open MPI's defaults)", [py, "-c", PY_MPI4PY], {}),
        ("python: topodnn.init_mpi() (package defaults)", [py, "-c", PY_INIT], {}),
        ("python: first topodnn.persistence, 3x3 (package defaults)", [py, "-c", PY_PERSISTENCE], {}),
        ("python: first topodnn.persistence, 3x3 (mpi4py first: Open MPI's defaults)",
         [py, "-c", PY_PERSISTENCE_MPI4PY_FIRST], {}),
    ]
    if bin_dir is not None:
        dipha = [str(bin_dir / "dipha"), "--upper_dim", "2", str(matrix), out_diagram]
        cases += [
            ("dipha: 32-point full matrix, H0-H1 (package defaults)", dipha, {}),
            (f"dipha: 32-point full matrix, H0-H1 (OMPI_MCA_btl={OPEN_MPI_BTLS})", dipha,
             {"OMPI_MCA_btl": OPEN_MPI_BTLS}),
        ]
    if mpirun is not None:
        run2 = [mpirun, "-n", "2", "--oversubscribe"]
        cases += [
            ("mpirun -n 2 true (the launcher alone)", [*run2, "true"], {}),
            ("mpirun -n 2 python: import mpi4py.MPI (Open MPI's defaults)", [*run2, py, "-c", PY_MPI4PY], {}),
            ("mpirun -n 2 python: topodnn.init_mpi() (package defaults)", [*run2, py, "-c", PY_INIT], {}),
        ]
        if bin_dir is not None:
            cases.append(("mpirun -n 2 dipha: 32-point full matrix (package defaults)", [*run2, *dipha], {}))

    load_before = list(os.getloadavg())
    results = []
    for name, cmd, extra in cases:
        times = time_case(cmd, {**env, **extra}, args.repeat)
        results.append({"case": name, "argv": cmd, "env_added": extra, "times_s": times,
                        "best_s": min(times), "median_s": statistics.median(times)})
        print(f"{min(times):8.3f} s best  {statistics.median(times):8.3f} s median   {name}",
              flush=True)
    load_after = list(os.getloadavg())
    shutil.rmtree(work, ignore_errors=True)

    record = {
        "command": [sys.executable, *sys.argv],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "mpirun": version_line([mpirun]) if mpirun else None,
                    "dipha": str(bin_dir / "dipha") if bin_dir else None},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "repeat": args.repeat,
        "removed_from_environment": removed,
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
