"""The ``dipha`` executable under ``mpirun -n 1`` and ``-n 2`` on DIPHA's and our inputs.

Inputs: DIPHA's sphere files (32 points, full and sparse), a synthetic correlation-like sparse
distance matrix (``--points`` units, distance ``1 - |corr|`` over 1000 samples, edges kept up to
the ``--quantile`` of all distances), optionally any DIPHA file (``--graph``) and the LeNet
functional graph of benchmarks/workloads.py as the original pipeline's own sparse input
(``--workload A``; run with ``--upper_dim 3 --dual`` as the original did). Each input file is
written by a child process. Every run is ``mpirun -n P dipha --benchmark ...``, each rank
wrapped in ``/usr/bin/time`` for its peak resident set (the run's memory is the sum over ranks;
``dipha --benchmark`` itself reports the maximum over ranks, recorded beside). Time: wall time
around ``mpirun`` (start-up included) and dipha's own "Overall running time". The output
files of all runs on one input must be byte-identical (sha256, compared after the last run).

The original DIPHA engine is not installable here, so its time on these inputs is not measured
on this machine and no ratio to it is given.

    PYTHONPATH=python python benchmarks/bench_dipha.py --workload A
    PYTHONPATH=python python benchmarks/bench_dipha.py --points 200 --workload tiny   # checks the script
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import struct
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import workloads  # noqa: E402

REPO = harness.REPO
TIME = "/usr/bin/time"


def find_bin() -> Path:
    """Folder of the ``dipha`` executable: ``$TOPODNN_BIN_DIR``, the development build
    (``build/dev/extern/dipha``), or beside this interpreter."""
    for d in (os.environ.get("TOPODNN_BIN_DIR"), REPO / "build" / "dev" / "extern" / "dipha",
              Path(sys.executable).parent):
        if d and (Path(d) / "dipha").is_file():
            return Path(d)
    sys.exit("dipha executable not found (set TOPODNN_BIN_DIR or run `make dev`)")


def child_synthetic(path: str, n: int, quantile: float, seed: int = 0) -> None:
    """Correlation-like sparse distance matrix: 1 - |corr| of n noisy units over 1000 samples."""
    import numpy as np
    import scipy.sparse as sp

    from topodnn import io

    rng = np.random.default_rng(seed)
    F = rng.standard_normal((1000, 20))
    W = rng.standard_normal((20, n)) * (rng.random(n) < 0.7)
    A = np.tanh(F @ W + 1.5 * rng.standard_normal((1000, n)))
    D = 1.0 - np.abs(np.corrcoef(A.T))
    np.fill_diagonal(D, 0.0)
    t = float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    keep = (D <= t) & ~np.eye(n, dtype=bool)
    rows, cols = np.nonzero(keep)
    io.write_sparse_distance_matrix(path, sp.csr_matrix((D[rows, cols], (rows, cols)), shape=(n, n)))
    harness.emit({"path": path, "n": n, "quantile": quantile, "threshold": t, "edges": int(len(rows) // 2)})


def read_diagram(path: Path) -> Dict[str, Any]:
    """sha256, record count and pairs per homological dimension of a DIPHA diagram file."""
    data = path.read_bytes()
    magic, ftype, count = struct.unpack_from("<qqq", data, 0)
    if ftype != 2 or len(data) != 24 + 24 * count:
        raise ValueError(f"{path} is not a complete DIPHA diagram (type {ftype}, {len(data)} bytes)")
    finite: Dict[int, int] = {}
    essential: Dict[int, int] = {}
    for dim, _, _ in struct.iter_unpack("<qdd", data[24:]):
        if dim < 0:
            essential[-dim - 1] = essential.get(-dim - 1, 0) + 1
        else:
            finite[dim] = finite.get(dim, 0) + 1
    top = max([*finite, *essential, 0])
    return {"sha256": hashlib.sha256(data).hexdigest(), "records": count,
            "pairs": [finite.get(q, 0) + essential.get(q, 0) for q in range(top + 1)],
            "essential": [essential.get(q, 0) for q in range(top + 1)]}


def parser_for(out: Path, rank_dir: Optional[Path], nprocs: int):
    """Reads dipha --benchmark's report, the output file and the ranks' /usr/bin/time files."""
    def parse(stdout: str) -> Dict[str, Any]:
        def grab(pattern: str, cast=float):
            m = re.search(pattern, stdout)
            return cast(m.group(1)) if m else None

        res = {"internal_s": grab(r"Overall running time \(s\): ([\d.]+)"),
               "peak_max_rank_mb": grab(r"Peak RSS, max over ranks \(MB\): ([\d.]+)"),
               "cells": grab(r"Number of cells \(dimension <= upper_dim\): (\d+)", int),
               "received_mb": grab(r"Total received \(MB\): ([\d.]+)"),
               **read_diagram(out)}
        if rank_dir is not None:
            per_rank = []
            for r in range(nprocs):
                f = rank_dir / f"rank_{r}"
                per_rank.append(int(f.read_text().split()[-1]) / 1024.0)  # GNU time %M: KiB
            res["peak_per_rank_mib"] = per_rank
            res["peak_total_mib"] = sum(per_rank)
        return res
    return parse


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--points", type=int, default=1500, help="units of the synthetic graph")
    ap.add_argument("--quantile", type=float, default=0.05, help="fraction of pairs kept as edges")
    ap.add_argument("--graph", type=Path, help="extra DIPHA distance file (e.g. a network's functional graph)")
    ap.add_argument("--graph-dim", type=int, default=2, help="--upper_dim for --graph")
    ap.add_argument("--workload", action="append", default=[], choices=tuple(workloads.WORKLOADS),
                    help="a workload of benchmarks/workloads.py as the original's sparse DIPHA file, "
                    "run with --upper_dim 3 --dual as the original did")
    ap.add_argument("--general-big", action="store_true",
                    help="also run the general path on --graph/--workload inputs (slow)")
    ap.add_argument("--primal-big", action="store_true",
                    help="also run the general path in primal mode on the big inputs (slow)")
    ap.add_argument("--scale", nargs="*", default=[], metavar="N:Q",
                    help="extra synthetic graphs (N units, quantile Q) run on 1 rank, general path --dual only")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TOPODNN_DIPHA_TEST_DATA",
                                                                      REPO.parent / "shared" / "dipha-test-data")))
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child-synthetic", nargs=3, metavar=("PATH", "N", "Q"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_synthetic:
        path, n, q = args.child_synthetic
        child_synthetic(path, int(n), float(q))
        return

    harness.require_topodnn()
    bin_dir = find_bin()
    dipha = bin_dir / "dipha"
    have_time = os.access(TIME, os.X_OK)
    env = harness.mpi_environment()
    me = os.path.abspath(__file__)
    run = harness.BenchmarkRun("dipha", settings={
        "points": args.points, "quantile": args.quantile, "graph": str(args.graph) if args.graph else None,
        "graph_dim": args.graph_dim, "workloads": args.workload, "general_big": args.general_big,
        "primal_big": args.primal_big, "scale": args.scale, "timeout_s": args.timeout,
        "data": str(args.data), "dipha": str(dipha)}, results_dir=Path(args.results_dir))
    run.record["dipha_executable"] = harness.file_fingerprint(dipha)
    run.notes.append("The original DIPHA engine is not installed on this machine: its time on these "
                     "inputs is not measured here and no ratio to it is given.")
    if bin_dir.resolve() != (REPO / "build" / "dev" / "extern" / "dipha").resolve():
        run.notes.append(f"dipha executable from {bin_dir}, not this checkout's development build "
                         "(build/dev/extern/dipha): it may be another version of the code")
    if not have_time:
        run.notes.append(f"{TIME} not found: memory is dipha's own maximum over ranks only, no total")
    tmp = run.tmp

    inputs: List[Dict[str, Any]] = []  # label, path, upper_dim, kind ("small" / "big" / "workload")
    if (args.data / "sphere_3_32.complex").is_file():
        inputs.append({"label": "sphere_3_32 (full, n=32)", "path": args.data / "sphere_3_32.complex",
                       "upper_dim": 3, "kind": "small"})
        inputs.append({"label": "sphere_3_32_0.8 (sparse, n=32)", "path": args.data / "sphere_3_32_0.8.complex",
                       "upper_dim": 3, "kind": "small"})
    else:
        run.notes.append(f"DIPHA's sphere files not found in {args.data}: not run")

    def synthetic(n: int, q: float, kind: str) -> Optional[Dict[str, Any]]:
        p = tmp / f"synthetic_{n}_{q}.complex"
        rec = run.child(harness.python_child(me, "--child-synthetic", p, n, q),
                        label=f"write synthetic graph n={n} q={q}", timeout_s=args.timeout, env=env,
                        meta={"kind": "input"})
        if not rec["ok"]:
            run.notes.append(f"synthetic graph n={n} q={q}: not written ({rec['failure']})")
            return None
        r = rec["result"]
        return {"label": f"synthetic corr. graph (sparse, n={n}, {r['edges']} edges, d<={r['threshold']:.3f})",
                "path": p, "upper_dim": 2, "kind": kind, "edges": r["edges"], "n": n}

    s = synthetic(args.points, args.quantile, "big")
    if s:
        inputs.append(s)
    scale = [x for x in (synthetic(int(spec.split(":")[0]), float(spec.split(":")[1]), "scale")
                         for spec in args.scale) if x]
    if args.graph:
        inputs.append({"label": args.graph.name, "path": args.graph, "upper_dim": args.graph_dim, "kind": "big"})
    for w in args.workload:
        p = tmp / f"workload_{w}.complex"
        if not workloads.is_built(w):
            run.child(workloads.build_argv(w), label=f"{w}: build the matrix", timeout_s=args.timeout,
                      env=env, meta={"kind": "build", "workload": w})
        rec = run.child(harness.python_child(workloads.__file__, "--dipha-file", w, p),
                        label=f"write workload {w} as a DIPHA file", timeout_s=args.timeout, env=env,
                        meta={"kind": "input", "workload": w})
        if rec["ok"]:
            inputs.append({"label": f"LeNet functional graph, workload {w} (the original's sparse input, "
                           f"n={rec['result']['n']}, {rec['result']['edges']} edges)" if w != "tiny" else
                           f"workload tiny as the original's sparse input (n={rec['result']['n']}, "
                           f"{rec['result']['edges']} edges)",
                           "path": p, "upper_dim": 3, "kind": "workload", "workload": w,
                           "edges": rec["result"]["edges"], "n": rec["result"]["n"]}
                          )
        else:
            run.notes.append(f"workload {w}: DIPHA file not written ({rec['failure']})")

    plan = []  # (input, mode name, options, ranks)
    for inp in inputs:
        variants = [("default (fast Rips)", []), ("--general --dual", ["--general", "--dual"])]
        if inp["kind"] == "workload":
            variants = [("default --dual (fast Rips)", ["--dual"])]
            if args.general_big:
                variants.append(("--general --dual", ["--general", "--dual"]))
        elif inp["kind"] == "small" or args.primal_big:
            variants.insert(1, ("--general", ["--general"]))
        for name, opts in variants:
            for P in (1, 2):
                plan.append((inp, name, opts, P))
    for inp in scale:
        plan.append((inp, "--general --dual", ["--general", "--dual"], 1))
    if not args.primal_big:
        run.notes.append("Big inputs run the general path only with --dual (cohomology); primal reduction "
                         "of the top dimension of a Rips complex is much slower (--primal-big).")

    for i, (inp, name, opts, P) in enumerate(plan):
        out = tmp / f"run_{i}.diagram"
        cmd = [str(dipha), "--benchmark", "--upper_dim", str(inp["upper_dim"]), *opts, str(inp["path"]), str(out)]
        rank_dir = None
        if have_time:
            rank_dir = tmp / f"run_{i}_ranks"
            rank_dir.mkdir()
            cmd = ["sh", "-c", f'exec {TIME} -f %M -o "$0/rank_${{OMPI_COMM_WORLD_RANK:-${{PMIX_RANK:-0}}}}" "$@"',
                   str(rank_dir), *cmd]
        run.child(harness.mpirun(P) + cmd, label=f"{inp['label']} | {name} | {P} rank(s)",
                  timeout_s=args.timeout, env=env, parse=parser_for(out, rank_dir, P),
                  meta={"kind": "dipha", "input": inp["label"], "upper_dim": inp["upper_dim"], "mode": name,
                        "options": opts, "ranks": P, "input_kind": inp["kind"]})
    run.record["inputs"] = [{k: (str(v) if isinstance(v, Path) else v) for k, v in inp.items()}
                            for inp in inputs + scale]

    # every run has finished: outputs on the same input must be identical
    by_input: Dict[str, List[Dict[str, Any]]] = {}
    for rec in run.runs:
        if rec["meta"].get("kind") == "dipha" and rec["ok"]:
            by_input.setdefault(rec["meta"]["input"], []).append(rec)
    for label, recs in by_input.items():
        digests = sorted({r["result"]["sha256"] for r in recs})
        run.comparisons.append({"input": label, "runs": len(recs), "rule": "byte-identical output files",
                                "agree": len(digests) == 1, "sha256": digests,
                                "detail": "identical" if len(digests) == 1 else f"{len(digests)} different outputs"})
    path = run.write()
    shutil.rmtree(tmp, ignore_errors=True)
    import report

    print(report.render_dipha(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
