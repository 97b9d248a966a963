"""Benchmark of the ``dipha`` executable under ``mpirun -n 1`` and ``-n 2``.

Inputs: DIPHA's sphere files (32 points, full and sparse), a synthetic correlation-like sparse
distance matrix (``--points`` units, distance ``1 - |corr|`` of 1000 samples, edges kept up to the
``--quantile`` of all distances), and optionally any DIPHA sparse/full file given with ``--graph``
(e.g. the functional graph of a network). Each run uses ``--benchmark``; wall time is measured
around mpirun, peak memory is the largest resident set size over ranks reported by ``dipha``.
Results are printed and written to the "## dipha executable" section of benchmarks/RESULTS.md.

Usage::

    python benchmarks/bench_dipha.py [--points 1500] [--quantile 0.05] [--graph FILE --graph-dim 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SECTION = "## dipha executable"


def find_bin() -> Path:
    for d in (os.environ.get("TOPODNN_BIN_DIR"), REPO / "build" / "dev" / "extern" / "dipha",
              Path(sys.executable).parent):
        if d and (Path(d) / "dipha").is_file():
            return Path(d)
    sys.exit("dipha executable not found (set TOPODNN_BIN_DIR or run `make dev`)")


def mpirun() -> str:
    local = Path(sys.executable).parent / "mpirun"
    return os.environ.get("TOPODNN_MPIRUN", str(local) if local.is_file() else "mpirun")


def env() -> dict:
    e = dict(os.environ)
    e.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    e.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    e.setdefault("OMPI_MCA_btl", "self,sm")
    return e


def synthetic_graph(path: Path, n: int, quantile: float, seed: int = 0) -> tuple[float, int]:
    """Correlation-like sparse distance matrix: 1 - |corr| of n noisy units over 1000 samples.

    Returns (threshold, number of edges).
    """
    import scipy.sparse as sp

    sys.path.insert(0, str(REPO / "python"))
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
    M = sp.csr_matrix((D[rows, cols], (rows, cols)), shape=(n, n))
    io.write_sparse_distance_matrix(path, M)
    return t, len(rows) // 2


def run(bin_dir: Path, nprocs: int, opts: list, inp: Path, out: Path, timeout: float) -> dict:
    cmd = [mpirun(), "-n", str(nprocs), "--oversubscribe", str(bin_dir / "dipha"), "--benchmark", *opts,
           str(inp), str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env())
    except subprocess.TimeoutExpired:
        return {"ok": False, "note": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        return {"ok": False, "note": (err[0] if err else proc.stderr.strip()[-200:])}
    peak = re.search(r"Peak RSS, max over ranks \(MB\): ([\d.]+)", proc.stdout)
    internal = re.search(r"Overall running time \(s\): ([\d.]+)", proc.stdout)
    cells = re.search(r"Number of cells \(dimension <= upper_dim\): (\d+)", proc.stdout)
    recv = re.search(r"Total received \(MB\): ([\d.]+)", proc.stdout)
    records = (out.stat().st_size - 24) // 24
    return {"ok": True, "wall": wall, "internal": float(internal.group(1)) if internal else None,
            "peak_mb": float(peak.group(1)) if peak else None, "cells": int(cells.group(1)) if cells else None,
            "recv_mb": float(recv.group(1)) if recv else None, "records": records,
            "digest": out.read_bytes()}


def write_section(text: str, results_md: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _results import replace_section

    replace_section(SECTION, text, str(results_md))


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1500, help="units of the synthetic graph")
    ap.add_argument("--quantile", type=float, default=0.05, help="fraction of pairs kept as edges")
    ap.add_argument("--graph", type=Path, help="extra DIPHA distance file (e.g. a network's functional graph)")
    ap.add_argument("--graph-dim", type=int, default=2, help="--upper_dim for --graph")
    ap.add_argument("--workload", action="append", default=[], choices=("A", "B"),
                    help="the LeNet functional graph of benchmarks/workloads.py as the original's "
                    "sparse DIPHA file, run with --upper_dim 3 --dual as the original did")
    ap.add_argument("--general-big", action="store_true",
                    help="also run the general path on --graph/--workload inputs (slow)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TOPODNN_DIPHA_TEST_DATA",
                                                                      REPO.parent / "shared" / "dipha-test-data")))
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    ap.add_argument("--primal-big", action="store_true",
                    help="also run the general path in primal mode on the big inputs (slow)")
    ap.add_argument("--scale", nargs="*", default=[], metavar="N:Q",
                    help="extra synthetic graphs (N units, quantile Q) run on 1 rank, general path --dual only")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = ap.parse_args(argv)
    bin_dir = find_bin()
    tmp = Path(tempfile.mkdtemp(prefix="bench_dipha_"))

    inputs = []  # (label, path, upper_dim, big)
    if (args.data / "sphere_3_32.complex").is_file():
        inputs.append(("sphere_3_32 (full, n=32)", args.data / "sphere_3_32.complex", 3, False))
        inputs.append(("sphere_3_32_0.8 (sparse, n=32)", args.data / "sphere_3_32_0.8.complex", 3, False))
    syn = tmp / "synthetic.complex"
    t, edges = synthetic_graph(syn, args.points, args.quantile)
    inputs.append((f"synthetic corr. graph (sparse, n={args.points}, {edges} edges, d<={t:.3f})", syn, 2, True))
    scale = []
    for spec in args.scale:
        n_s, q_s = spec.split(":")
        p = tmp / f"scale_{n_s}_{q_s}.complex"
        t_s, e_s = synthetic_graph(p, int(n_s), float(q_s))
        scale.append((f"synthetic corr. graph (sparse, n={n_s}, {e_s} edges, d<={t_s:.3f})", p, 2))
    if args.graph:
        inputs.append((f"{args.graph.name}", args.graph, args.graph_dim, True))
    for w in args.workload:
        sys.path.insert(0, str(REPO / "benchmarks"))
        import workloads

        p = tmp / f"workload_{w}.complex"
        e_w = workloads.write_dipha_file(w, str(p))
        inputs.append((f"LeNet functional graph, workload {w} (the original's sparse input, n=1820, "
                       f"{e_w} edges)", p, 3, "workload"))

    rows = []
    for label, path, ud, big in inputs:
        variants = [("default (fast Rips)", []), ("--general --dual", ["--general", "--dual"])]
        if big == "workload":
            variants = [("default --dual (fast Rips)", ["--dual"])]
            if args.general_big:
                variants.append(("--general --dual", ["--general", "--dual"]))
        elif not big or args.primal_big:
            variants.insert(1, ("--general", ["--general"]))
        for name, opts in variants:
            for P in (1, 2):
                r = run(bin_dir, P, ["--upper_dim", str(ud), *opts], path, tmp / "out.diagram", args.timeout)
                rows.append((label, ud, name, P, r))
                if r["ok"]:
                    print(f"{label:60s} ud={ud} {name:20s} P={P}: {r['wall']:8.2f} s wall, "
                          f"peak {r['peak_mb']:.0f} MB/rank, {r['records']} records")
                else:
                    print(f"{label:60s} ud={ud} {name:20s} P={P}: FAILED: {r['note']}")

    for label, path, ud in scale:
        r = run(bin_dir, 1, ["--upper_dim", str(ud), "--general", "--dual"], path, tmp / "out.diagram", args.timeout)
        rows.append((label, ud, "--general --dual", 1, r))
        print(f"{label:60s} ud={ud} --general --dual P=1: " + (f"{r['wall']:8.2f} s wall, peak {r['peak_mb']:.0f} MB"
                                                               if r["ok"] else f"FAILED: {r['note']}"))

    # outputs of successful runs on the same input must agree
    agree = {}
    for label, _, _, _, r in rows:
        if r["ok"]:
            agree.setdefault(label, set()).add(r["digest"])

    lines = [SECTION, "",
             f"`python benchmarks/bench_dipha.py --points {args.points} --quantile {args.quantile}"
             + (f" --scale {' '.join(args.scale)}" if args.scale else "")
             + "".join(f" --workload {w}" for w in args.workload) + "` on "
             f"{os.cpu_count()} cores ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
             "Wall time around `mpirun`; peak RSS is the maximum over ranks from `--benchmark`. "
             "Ranks > cores are oversubscribed.", "",
             "| input | --upper_dim | mode | ranks | wall (s) | dipha internal (s) | peak RSS/rank (MB) | "
             "received (MB) | cells | records |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, ud, name, P, r in rows:
        if r["ok"]:
            cells = r["cells"] if r["cells"] is not None else "-"
            lines.append(f"| {label} | {ud} | {name} | {P} | {r['wall']:.2f} | {r['internal']:.2f} | "
                         f"{r['peak_mb']:.0f} | {r['recv_mb']:.2f} | {cells} | {r['records']} |")
        else:
            lines.append(f"| {label} | {ud} | {name} | {P} | - | - | - | - | - | failed: {r['note']} |")
    lines.append("")
    for label, digests in agree.items():
        lines.append(f"- {label}: {'all successful runs wrote identical diagrams' if len(digests) == 1 else 'DIAGRAMS DIFFER'}")
    for label, ud, name, P, r in rows:
        if r["ok"] and "workload A" in label:
            lines.append(f"- {label}, {P} rank(s): {r['internal']:.2f} s inside dipha, {r['wall']:.2f} s "
                         f"around mpirun (start-up included); the original engine took about 47.7 s "
                         f"with 2 processes on such a graph: {47.7 / r['internal']:.0f}x "
                         f"({47.7 / r['wall']:.0f}x counting mpirun's start-up).")
    if not args.primal_big:
        lines.append("- Big inputs run the general path only with `--dual` (cohomology); primal reduction of "
                     "the top dimension of a Rips complex is much slower (use `--primal-big`).")
    lines.append("")
    write_section("\n".join(lines) + "\n", args.results)
    print(f"wrote section '{SECTION}' of {args.results}")


if __name__ == "__main__":
    main()
