"""Start-up cost of MPI in the package's entry points, beside whole processes on the LeNet graph.

Every case is a fresh process started by this script, which only orchestrates (it never imports
numpy, an engine or MPI: see benchmarks/harness.py). Each case runs ``--repeat`` times, the cases
taking turns (round r runs every case once), so that a change of the machine's load during the
run spreads over all of them. Measured: the wall time of the whole process seen from the parent
(interpreter, imports, MPI's start-up and ``mpirun`` included) and, where the process reports
it, the work alone; the report gives the best and the median of the runs of each case.

Start-up, small inputs:

* ``python -c "import numpy"``: the floor under every Python case;
* a singleton ``import mpi4py.MPI`` with Open MPI's defaults, and ``topodnn.init_mpi()`` with the
  package's start-up defaults (:mod:`topodnn._mpi`: ``btl = ^ofi`` on one machine);
* the first ``topodnn.persistence`` call on a 3x3 matrix with the package's defaults (the
  start-up target is the median of this case) and with Open MPI's (``import mpi4py.MPI`` first
  initialises MPI before topodnn can set them);
* ``dipha --benchmark`` on a 32-point full distance matrix, H0-H1, with the package's defaults
  and with Open MPI's own transport list named (``OMPI_MCA_btl=self,ofi,sm,tcp,uct``: a user
  setting, which the defaults leave alone, so every process probes OFI as it did before them);
* ``mpirun -n 2``: ``true`` (the launcher alone), each rank initialising MPI both ways, and
  ``dipha`` on the 32 points both ways.

Whole process on the LeNet graph (``--workload``, default A of benchmarks/workloads.py:
threshold 0.3, H0..H2):

* ripser.py: ``python -c "...; ripser.ripser(D, maxdim=2, thresh=0.3, distance_matrix=True)"``,
  numpy, ripser and the cached matrix (``np.load``) loaded in that process;
* topodnn: the same with ``topodnn.persistence(D, max_dim=2, threshold=0.3)``, MPI initialised by
  ``topodnn.init_mpi()`` just before the call (the call's first step otherwise, so the process
  does the same; the call alone is then the engine's work);
* ``dipha --benchmark --upper_dim 3 --dual`` on the original's sparse input of the workload
  (``workloads.write_dipha_file``), as a singleton with the package's defaults, with Open MPI's
  transport list named, and under ``mpirun -n 2``.

Work alone: ``dipha --benchmark``'s "Overall running time" (from after MPI's start-up and the
command line's check to the diagram written: reading, computing, writing); for the Python
children the call itself, timed in the child (``time.perf_counter``), with the times of the
imports and of loading the matrix beside it.

Before the timed rounds, untimed probes record the ``btl`` in force
(``topodnn._core.mca_parameter``) in each MPI configuration of the Python cases, so the file says
whether the defaults applied. Every ``OMPI_MCA_*`` variable of the calling environment is removed
for the children (and recorded), so that "Open MPI's defaults" are the library's own, and the
entries of ``PYTHONPATH`` are made absolute. ``dipha`` is taken from ``$TOPODNN_BIN_DIR``, the
development build or beside this interpreter (as bench_dipha.py does). One JSON file per run in
benchmarks/results/ (harness.BenchmarkRun); ``python benchmarks/report.py`` rebuilds RESULTS.md.

    PYTHONPATH=python python benchmarks/bench_startup.py                  # --repeat 10
    PYTHONPATH=python python benchmarks/bench_startup.py --repeat 1 --workload tiny --results-dir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_dipha  # noqa: E402  (find_bin, read_diagram, parser_for: no numpy)
import harness  # noqa: E402
import workloads  # noqa: E402

#: Open MPI 5's transports named explicitly: its default set, and a user setting for topodnn.
OPEN_MPI_BTLS = "self,ofi,sm,tcp,uct"
TINY_POINTS = 32
TARGET_CASE = "persistence"  # id of the case the start-up target is about (report.py reads it)

TINY = "np.array([[0., 1., 2.], [1., 0., 1.], [2., 1., 0.]])"
PY_NUMPY = "import numpy"
PY_MPI4PY = "import mpi4py.MPI"
PY_INIT = "import topodnn; topodnn.init_mpi()"
PY_PERSISTENCE = f"import numpy as np, topodnn; topodnn.persistence({TINY}, max_dim=1)"
PY_PERSISTENCE_MPI4PY_FIRST = "import mpi4py.MPI; " + PY_PERSISTENCE

#: Untimed: the btl in force on every rank after MPI is initialised the way FIRST says.
PROBE = """\
import json
{first}
from mpi4py import MPI
from topodnn import _core
comm = MPI.COMM_WORLD
btl = comm.allgather(_core.mca_parameter("btl"))
if comm.rank == 0:
    print("BENCH_RESULT " + json.dumps({{"btl": btl, "ranks": comm.size}}))
"""


def whole_process_code(engine: str, matrix: str, threshold: float, max_dim: int) -> str:
    """``python -c`` text (one line of simple statements) of one whole process of ``engine``
    ("ripser" or "topodnn") on the matrix saved at ``matrix``; it prints its own times."""
    if engine == "ripser":
        imports, init = "import numpy as np, ripser", None
        call = f'ripser.ripser(D, maxdim={max_dim}, thresh={threshold!r}, distance_matrix=True)["dgms"]'
    elif engine == "topodnn":
        imports, init = "import numpy as np, topodnn", "topodnn.init_mpi()"
        call = f"topodnn.persistence(D, max_dim={max_dim}, threshold={threshold!r})"
    else:
        raise ValueError(f"unknown engine {engine!r}")
    fields = ['"import_s": t1 - t0', '"load_s": t2 - t1', '"work_s": t4 - t3', '"pairs": [len(d) for d in dgms]']
    if init is not None:
        fields.insert(2, '"init_mpi_s": t3 - t2')
    return "; ".join([
        "import time", "t0 = time.perf_counter()", imports, "t1 = time.perf_counter()",
        f"D = np.load({json.dumps(matrix)})", "t2 = time.perf_counter()",
        *([init, "t3 = time.perf_counter()"] if init is not None else ["t3 = t2"]),
        f"dgms = {call}", "t4 = time.perf_counter()", "import json",
        'print("BENCH_RESULT " + json.dumps({' + ", ".join(fields) + "}))"])


def child_tiny_file(path: str, n: int = TINY_POINTS, seed: int = 0) -> None:
    """Write the full distance matrix of ``n`` random points in R^3 (seed 0) as a DIPHA file."""
    import numpy as np

    from topodnn import io

    X = np.random.default_rng(seed).normal(size=(n, 3))
    io.write_distance_matrix(path, np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)))
    harness.emit({"path": path, "n": n})


def child_environment() -> tuple:
    """(environment of every child, the ``OMPI_MCA_*`` variables removed from it)."""
    env = harness.mpi_environment()
    removed = {k: env.pop(k) for k in sorted(env) if k.startswith("OMPI_MCA_")}
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep))
    return env, removed


def no_output(_stdout: str) -> Dict[str, Any]:
    """Parser of a case that prints nothing: its exit status and wall time are the result."""
    return {}


def dipha_parser(out: Path, nprocs: int) -> Callable[[str], Dict[str, Any]]:
    """``dipha --benchmark``'s report and output file; ``work_s`` is its overall running time."""
    read = bench_dipha.parser_for(out, None, nprocs)

    def parse(stdout: str) -> Dict[str, Any]:
        res = read(stdout)
        if res["internal_s"] is None:
            raise ValueError("no 'Overall running time' in dipha's output")
        res["work_s"] = res["internal_s"]
        return res
    return parse


def case(cid: str, group: str, title: str, short: str, argv: List[str], *,
         env_added: Optional[Dict[str, str]] = None, work: Optional[str] = None,
         parse: Optional[Callable[[str], Optional[Dict[str, Any]]]] = no_output) -> Dict[str, Any]:
    """One case: ``id``, ``group`` ("startup" or "workload"), ``title``, ``short`` (its name in
    the summary), ``argv``, ``env_added`` (on top of the children's environment), ``work`` (what
    its ``work_s`` is, None if it reports none) and its parser (None: a ``BENCH_RESULT`` line)."""
    return {"id": cid, "group": group, "title": title, "short": short, "argv": [str(a) for a in argv],
            "env_added": dict(env_added or {}), "work": work, "parse": parse}


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--repeat", type=int, default=10, help="fresh processes per case (default 10)")
    ap.add_argument("--workload", default="A", choices=tuple(workloads.WORKLOADS),
                    help="workload of benchmarks/workloads.py for the whole-process cases (default A; "
                    "tiny checks the script)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per child process")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child-tiny-file", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_tiny_file:
        child_tiny_file(args.child_tiny_file)
        return
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    harness.require_topodnn()
    bin_dir = bench_dipha.find_bin()
    dipha = str(bin_dir / "dipha")
    env, removed = child_environment()
    w = args.workload
    threshold, max_dim = workloads.WORKLOADS[w], workloads.MAX_DIM[w]
    run = harness.BenchmarkRun("startup", settings={
        "repeat": args.repeat, "workload": w, "threshold": threshold, "max_dim": max_dim,
        "timeout_s": args.timeout, "order": "round-robin: round r runs every case once",
        "target_case": TARGET_CASE, "dipha": dipha}, results_dir=Path(args.results_dir))
    run.record["removed_from_environment"] = removed
    run.record["child_pythonpath"] = env.get("PYTHONPATH")
    run.record["dipha_executable"] = harness.file_fingerprint(Path(dipha))
    if bin_dir.resolve() != (harness.REPO / "build" / "dev" / "extern" / "dipha").resolve():
        run.notes.append(f"dipha executable from {bin_dir}, not this checkout's development build "
                         "(build/dev/extern/dipha): it may be another version of the code")
    tmp = run.tmp
    py = sys.executable
    me = os.path.abspath(__file__)
    run2 = harness.mpirun(2)
    btl_user = {"OMPI_MCA_btl": OPEN_MPI_BTLS}

    def out_file(cid: str) -> Path:  # the diagram a dipha case writes (each run overwrites it)
        return tmp / f"{cid}.diagram"

    # ------------------------------------------------------------------------------------------
    # Inputs (each written by a child)
    tiny = tmp / f"points{TINY_POINTS}.complex"
    rec = run.child(harness.python_child(me, "--child-tiny-file", tiny), label="write the 32-point matrix",
                    timeout_s=args.timeout, env=env, meta={"kind": "input"})
    tiny_ok = rec["ok"]
    if not tiny_ok:
        run.notes.append(f"the 32-point matrix was not written ({rec['failure']}): its dipha cases not run")
    if not workloads.is_built(w):
        run.child(workloads.build_argv(w), label=f"{w}: build the matrix", timeout_s=max(args.timeout, 1800.0),
                  env=env, meta={"kind": "build", "workload": w})
    desc = run.child(harness.python_child(workloads.__file__, "--describe", w), label=f"{w}: describe",
                     timeout_s=args.timeout, env=env, meta={"kind": "describe", "workload": w})
    sparse = tmp / f"workload_{w}.complex"
    wrote = run.child(harness.python_child(workloads.__file__, "--dipha-file", w, sparse),
                      label=f"write workload {w} as a DIPHA file", timeout_s=args.timeout, env=env,
                      meta={"kind": "input", "workload": w})
    workload_ok = desc["ok"]
    if not desc["ok"]:
        run.notes.append(f"workload {w}: could not be loaded ({desc['failure']}): its cases not run")
    elif not wrote["ok"]:
        run.notes.append(f"workload {w}: DIPHA file not written ({wrote['failure']}): its dipha cases not run")

    # ------------------------------------------------------------------------------------------
    # Probes (untimed): which btl is in force in each MPI configuration of the Python cases
    probes = [("1 process, package defaults", [py, "-c", PROBE.format(first=PY_INIT)], {}),
              ("1 process, mpi4py imported first (Open MPI's defaults)",
               [py, "-c", PROBE.format(first=PY_MPI4PY)], {}),
              (f"1 process, package defaults, OMPI_MCA_btl={OPEN_MPI_BTLS}",
               [py, "-c", PROBE.format(first=PY_INIT)], btl_user),
              ("mpirun -n 2, package defaults", [*run2, py, "-c", PROBE.format(first=PY_INIT)], {}),
              ("mpirun -n 2, mpi4py imported first (Open MPI's defaults)",
               [*run2, py, "-c", PROBE.format(first=PY_MPI4PY)], {})]
    for name, cmd, extra in probes:
        run.child(cmd, label=f"probe: {name}", timeout_s=args.timeout, env={**env, **extra},
                  meta={"kind": "probe", "config": name, "env_added": extra})

    # ------------------------------------------------------------------------------------------
    # Cases
    work_dipha = "dipha --benchmark's Overall running time (after MPI's start-up: read, compute, write)"
    work_call = "the call alone, timed in the process"
    cases = [
        case("numpy", "startup", "python: import numpy (the floor under every Python case)", "import numpy",
             [py, "-c", PY_NUMPY]),
        case("mpi4py", "startup", "python: import mpi4py.MPI (Open MPI's defaults)", "import mpi4py.MPI",
             [py, "-c", PY_MPI4PY]),
        case("init_mpi", "startup", "python: topodnn.init_mpi() (package defaults)", "topodnn.init_mpi()",
             [py, "-c", PY_INIT]),
        case(TARGET_CASE, "startup", "python: first topodnn.persistence, 3x3 (package defaults)",
             "first topodnn.persistence", [py, "-c", PY_PERSISTENCE]),
        case("persistence_mpi4py_first", "startup",
             "python: import mpi4py.MPI, then first topodnn.persistence, 3x3 (Open MPI's defaults)",
             "first topodnn.persistence, mpi4py first", [py, "-c", PY_PERSISTENCE_MPI4PY_FIRST]),
    ]
    if tiny_ok:
        dipha_tiny = [dipha, "--benchmark", "--upper_dim", "2", str(tiny)]
        cases += [
            case("dipha", "startup", f"dipha: {TINY_POINTS}-point full matrix, H0-H1 (package defaults)", "dipha",
                 [*dipha_tiny, out_file("dipha")], work=work_dipha, parse=dipha_parser(out_file("dipha"), 1)),
            case("dipha_btl", "startup",
                 f"dipha: {TINY_POINTS}-point full matrix, H0-H1 (OMPI_MCA_btl={OPEN_MPI_BTLS})",
                 "dipha, Open MPI's btl", [*dipha_tiny, out_file("dipha_btl")], env_added=btl_user,
                 work=work_dipha, parse=dipha_parser(out_file("dipha_btl"), 1)),
        ]
    cases += [
        case("mpirun2_true", "startup", "mpirun -n 2 true (the launcher alone)", "mpirun -n 2 true",
             [*run2, "true"]),
        case("mpirun2_mpi4py", "startup", "mpirun -n 2 python: import mpi4py.MPI (Open MPI's defaults)",
             "mpirun -n 2 import mpi4py.MPI", [*run2, py, "-c", PY_MPI4PY]),
        case("mpirun2_init_mpi", "startup", "mpirun -n 2 python: topodnn.init_mpi() (package defaults)",
             "mpirun -n 2 topodnn.init_mpi()", [*run2, py, "-c", PY_INIT]),
    ]
    if tiny_ok:
        cases += [
            case("mpirun2_dipha", "startup",
                 f"mpirun -n 2 dipha: {TINY_POINTS}-point full matrix, H0-H1 (package defaults)",
                 "mpirun -n 2 dipha", [*run2, *dipha_tiny, out_file("mpirun2_dipha")], work=work_dipha,
                 parse=dipha_parser(out_file("mpirun2_dipha"), 2)),
            case("mpirun2_dipha_btl", "startup",
                 f"mpirun -n 2 dipha: {TINY_POINTS}-point full matrix, H0-H1 (OMPI_MCA_btl={OPEN_MPI_BTLS})",
                 "mpirun -n 2 dipha, Open MPI's btl", [*run2, *dipha_tiny, out_file("mpirun2_dipha_btl")],
                 env_added=btl_user, work=work_dipha, parse=dipha_parser(out_file("mpirun2_dipha_btl"), 2)),
        ]
    if workload_ok:
        matrix = workloads.matrix_path(w)
        what = f"workload {w}, eps <= {threshold}, H0..H{max_dim}"
        cases += [
            case("workload_ripser", "workload", f"ripser.py: {what}", "ripser.py",
                 [py, "-c", whole_process_code("ripser", matrix, threshold, max_dim)], work=work_call, parse=None),
            case("workload_persistence", "workload", f"topodnn.persistence: {what} (package defaults)",
                 "topodnn.persistence", [py, "-c", whole_process_code("topodnn", matrix, threshold, max_dim)],
                 work=work_call, parse=None),
        ]
        if wrote["ok"]:
            dipha_w = [dipha, "--benchmark", "--upper_dim", str(max_dim + 1), "--dual", str(sparse)]
            sparse_what = f"the original's sparse input of workload {w}, --upper_dim {max_dim + 1} --dual"
            cases += [
                case("workload_dipha", "workload", f"dipha: {sparse_what} (package defaults)", "dipha",
                     [*dipha_w, out_file("workload_dipha")], work=work_dipha,
                     parse=dipha_parser(out_file("workload_dipha"), 1)),
                case("workload_dipha_btl", "workload",
                     f"dipha: {sparse_what} (OMPI_MCA_btl={OPEN_MPI_BTLS}: every process probes OFI)",
                     "dipha, Open MPI's btl", [*dipha_w, out_file("workload_dipha_btl")], env_added=btl_user,
                     work=work_dipha, parse=dipha_parser(out_file("workload_dipha_btl"), 1)),
                case("workload_mpirun2_dipha", "workload", f"mpirun -n 2 dipha: {sparse_what} (package defaults)",
                     "mpirun -n 2 dipha", [*run2, *dipha_w, out_file("workload_mpirun2_dipha")], work=work_dipha,
                     parse=dipha_parser(out_file("workload_mpirun2_dipha"), 2)),
            ]
    run.record["cases"] = [{**{k: v for k, v in c.items() if k != "parse"}, "command": shlex.join(c["argv"])}
                           for c in cases]

    for r in range(1, args.repeat + 1):
        for c in cases:
            run.child(c["argv"], label=f"{c['id']} (round {r} of {args.repeat})", timeout_s=args.timeout,
                      env={**env, **c["env_added"]}, parse=c["parse"],
                      meta={"kind": "case", "case": c["id"], "group": c["group"], "round": r})

    path = run.write()
    run.cleanup()
    import report

    print(report.render_startup(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
