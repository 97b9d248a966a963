"""Vietoris-Rips persistence of the LeNet functional graph: topodnn against giotto-ph and ripser.py.

Every engine runs in its own fresh process, one after another, started by this script, which
only orchestrates (it never imports an engine nor loads the matrix, see benchmarks/harness.py):

* ``ours-r1``, ``ours-r2``: ``mpirun -n P python bench_persistence.py --child ...`` with
  ``topodnn.persistence(D, max_dim, threshold, comm=MPI.COMM_WORLD)`` on P ranks, MPI started
  by ``MPI = topodnn.init_mpi()`` as the README's MPI scripts do (the import time includes it);
* ``ours-t1``, ``ours-t2``: ``topodnn.persistence(..., n_threads=T)`` in one process, run only if
  ``topodnn.persistence`` has an ``n_threads`` parameter (``inspect.signature``, in a child);
* ``ours-c1``, ``ours-c2``: the same with ``collapse_edges=True`` (3 rounds of edge collapse);
* ``gph-t1``, ``gph-t2``: ``gph.ripser_parallel(D, metric="precomputed", maxdim, thresh,
  n_threads=T)``;
* ``ripser``: ``ripser.ripser(D, maxdim, thresh, distance_matrix=True)``.

Each child loads the cached matrix (numpy and the matrix are not timed), then times the import
of its engine, the first call, and R further calls (``--repeat``); it reports the peak memory of
each rank (``ru_maxrss``; the run's figure is the sum over ranks) and the pairs per dimension,
and writes its diagrams to a temporary ``.npz``. Once every child has finished, the diagrams are
compared with ``ours-r1``'s (exact for our engine, float32 rule for the peers: harness.RULES).
One JSON file per run goes to benchmarks/results/; ``python benchmarks/report.py`` rebuilds
RESULTS.md from those files.

    PYTHONPATH=python python benchmarks/bench_persistence.py A B --repeat 3
    PYTHONPATH=python python benchmarks/bench_persistence.py tiny --repeat 1   # checks the script
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import workloads  # noqa: E402

ENGINES = ("ours-r1", "ours-r2", "ours-t1", "ours-t2", "ours-c1", "ours-c2", "gph-t1", "gph-t2", "ripser")
REFERENCE = "ours-r1"


def engine_spec(label: str) -> Dict[str, Any]:
    """What ``label`` runs: engine family, how the workers are made, how many, agreement rule."""
    if label.startswith("ours-r"):
        return {"engine": "ours", "mode": "ranks", "workers": int(label[6:]), "rule": "exact"}
    if label.startswith("ours-t"):
        return {"engine": "ours", "mode": "threads", "workers": int(label[6:]), "rule": "exact"}
    if label.startswith("ours-c"):  # threads, with edge collapse (collapse_edges=True)
        return {"engine": "ours", "mode": "threads", "workers": int(label[6:]), "rule": "exact",
                "collapse": True}
    if label.startswith("gph-t"):
        return {"engine": "giotto-ph", "mode": "threads", "workers": int(label[5:]), "rule": "float32"}
    if label == "ripser":
        return {"engine": "ripser.py", "mode": "serial", "workers": 1, "rule": "float32"}
    raise SystemExit(f"unknown engine {label!r}; choose from {', '.join(ENGINES)}")


# ----------------------------------------------------------------------------------------------
# Children


def child_probe() -> None:
    """Does topodnn.persistence accept n_threads? (imports topodnn.engine only: numpy, no _core)"""
    import inspect

    import topodnn
    from topodnn.engine import persistence

    harness.emit({"n_threads": "n_threads" in inspect.signature(persistence).parameters,
                  "topodnn": topodnn.__version__, "topodnn_path": os.path.dirname(topodnn.__file__)})


def child_engine(label: str, matrix: str, threshold: float, max_dim: int, repeat: int, out: str) -> None:
    """One engine on one matrix: import, first call, ``repeat`` more calls; one result line."""
    import numpy as np

    spec = engine_spec(label)
    D = np.load(matrix)
    comm = None
    t0 = time.perf_counter()
    if spec["engine"] == "ours":
        if spec["mode"] == "ranks":
            import topodnn

            MPI = topodnn.init_mpi()  # as the README tells MPI scripts to (not mpi4py first)
            comm = MPI.COMM_WORLD
            if comm.size != spec["workers"]:
                raise SystemExit(f"{label} needs {spec['workers']} ranks, got {comm.size}")
        import topodnn
        from topodnn import persistence

        module = {"name": "topodnn", "version": topodnn.__version__,
                  "path": os.path.dirname(topodnn.__file__)}
        if spec["mode"] == "ranks":
            def call():
                return persistence(D, max_dim, threshold, comm=comm)
        else:
            collapse = spec.get("collapse", False)

            def call():
                return persistence(D, max_dim, threshold, n_threads=spec["workers"],
                                   collapse_edges=collapse)
    elif spec["engine"] == "giotto-ph":
        import gph

        module = {"name": "gph", "version": gph.__version__, "path": os.path.dirname(gph.__file__)}

        def call():
            return gph.ripser_parallel(D, metric="precomputed", maxdim=max_dim, thresh=threshold,
                                       n_threads=spec["workers"])["dgms"]
    else:
        import ripser

        module = {"name": "ripser", "version": ripser.__version__,
                  "path": os.path.dirname(ripser.__file__)}

        def call():
            return ripser.ripser(D, maxdim=max_dim, thresh=threshold, distance_matrix=True)["dgms"]
    import_s = time.perf_counter() - t0

    def timed():
        if comm is not None:
            comm.Barrier()
        t = time.perf_counter()
        result = call()
        dt = time.perf_counter() - t
        return result, (dt if comm is None else comm.allreduce(dt, op=MPI.MAX))

    if comm is not None:
        import_s = comm.allreduce(import_s, op=MPI.MAX)
    dgms, first_s = timed()
    repeat_s: List[float] = [timed()[1] for _ in range(repeat)]
    peaks = harness.mpi_peaks(comm)
    if comm is None or comm.rank == 0:
        harness.save_diagrams(out, dgms)
        harness.emit({
            **spec, "label": label, "ranks": peaks["ranks"], "module": module,
            "import_s": import_s, "first_call_s": first_s, "import_plus_first_call_s": import_s + first_s,
            "repeat_s": repeat_s, "best_s": min(repeat_s) if repeat_s else None,
            "pairs": [int(len(d)) for d in dgms],
            "essential": [int(np.isinf(np.asarray(d)[:, 1]).sum()) if len(d) else 0 for d in dgms],
            **{k: peaks[k] for k in ("peak_total_mib", "peak_per_rank_mib", "vmhwm_total_mib")},
            "diagrams": out,
        })


# ----------------------------------------------------------------------------------------------
# Parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("workloads", nargs="*", default=["A", "B"], help="A, B or tiny (default A B)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="calls after the first in each process; 'best' is the fastest of them")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"comma-separated subset of {','.join(ENGINES)}")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per child process")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child", nargs=6, metavar=("ENGINE", "MATRIX", "THRESHOLD", "MAX_DIM", "REPEAT", "OUT"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        child_probe()
        return
    if args.child:
        label, matrix, thr, max_dim, repeat, out = args.child
        child_engine(label, matrix, float(thr), int(max_dim), int(repeat), out)
        return

    for w in args.workloads:
        workloads.check_name(w)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        engine_spec(e)
    if args.repeat < 0:
        raise SystemExit("--repeat must be >= 0")
    harness.require_topodnn()
    env = harness.mpi_environment()
    me = os.path.abspath(__file__)
    run = harness.BenchmarkRun("persistence", settings={
        "workloads": args.workloads, "engines": engines, "repeat": args.repeat,
        "timeout_s": args.timeout, "reference": REFERENCE, "rules": harness.RULES},
        results_dir=Path(args.results_dir))

    probe = run.child(harness.python_child(me, "--probe"), label="probe n_threads", timeout_s=300,
                      env=env, meta={"kind": "probe"})
    threads_ok = bool(probe["ok"] and probe["result"]["n_threads"])
    run.record["ours_n_threads"] = threads_ok
    if not threads_ok and any(engine_spec(e)["engine"] == "ours" and engine_spec(e)["mode"] == "threads"
                              for e in engines):
        why = ("topodnn.persistence has no n_threads parameter (inspect.signature)" if probe["ok"]
               else f"the probe failed ({probe['failure']})")
        run.notes.append(f"ours-t1/ours-t2 not run: {why}")

    for w in args.workloads:
        if not workloads.is_built(w):
            run.child(workloads.build_argv(w), label=f"{w}: build the matrix", timeout_s=args.timeout,
                      env=env, meta={"kind": "build", "workload": w})
        desc = run.child(harness.python_child(workloads.__file__, "--describe", w),
                         label=f"{w}: describe", timeout_s=600, env=env,
                         meta={"kind": "describe", "workload": w})
        if not desc["ok"]:
            run.notes.append(f"workload {w}: could not be loaded ({desc['failure']})")
            continue
        d = desc["result"]
        for label in engines:
            spec = engine_spec(label)
            if spec["engine"] == "ours" and spec["mode"] == "threads" and not threads_ok:
                continue
            out = str(run.tmp / f"{w}_{label}.npz")
            argv = harness.python_child(me, "--child", label, workloads.matrix_path(w), d["threshold"],
                                        d["max_dim"], args.repeat, out)
            if spec["mode"] == "ranks":
                argv = harness.mpirun(spec["workers"]) + argv
            run.child(argv, label=f"{w}: {label}", timeout_s=args.timeout, env=env,
                      meta={"kind": "engine", "workload": w, **spec, "engine_label": label})

    # every child has finished: only now may this process load diagrams (numpy)
    for w in args.workloads:
        done = {r["meta"]["engine_label"]: r for r in run.runs
                if r["meta"].get("kind") == "engine" and r["meta"]["workload"] == w and r["ok"]}
        ref_label = REFERENCE if REFERENCE in done else next(
            (k for k in done if engine_spec(k)["engine"] == "ours"), None)
        if ref_label is None:
            run.notes.append(f"workload {w}: no run of our engine finished, diagrams not compared")
            continue
        ref = harness.load_diagrams(done[ref_label]["result"]["diagrams"])
        for label, rec in done.items():
            other = harness.load_diagrams(rec["result"]["diagrams"])
            cmp = harness.compare_diagrams(ref, other, engine_spec(label)["rule"])
            run.comparisons.append({"workload": w, "reference": ref_label, "other": label,
                                    "digest_other": harness.diagram_digest(other), **cmp})
    path = run.write()
    run.cleanup()
    import report

    print(report.render_persistence(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
