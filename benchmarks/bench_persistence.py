"""Benchmark of topodnn.persistence against ripser.py and giotto-ph on the LeNet functional graph.

Run under MPI, e.g.::

    mpirun -n 1 python benchmarks/bench_persistence.py A B
    mpirun -n 2 python benchmarks/bench_persistence.py A B --no-peers

Every rank computes its share; rank 0 then runs each peer in a fresh subprocess (own peak
memory) on the same matrix while the other ranks wait without spinning, checks that the
diagrams agree, prints one table and records the rows in benchmarks/.cache/persistence_results.json,
from which the "## Vietoris–Rips persistence" section of benchmarks/RESULTS.md is regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import workloads  # noqa: E402
from _results import RESULTS_MD, replace_section  # noqa: E402

RESULTS_JSON = os.path.join(workloads.CACHE, "persistence_results.json")
SECTION = "## Vietoris–Rips persistence"
MAX_DIM = 2


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_peer(kind: str, name: str, out: str, repeat: str = "1") -> None:
    """Child process: one peer on workload `name`, best of `repeat` calls; writes time, peak
    memory and diagrams."""
    D, thr = workloads.load(name)
    if kind == "ripser":
        from ripser import ripser

        def call():
            return ripser(D, maxdim=MAX_DIM, thresh=thr, distance_matrix=True)["dgms"]
    else:
        import gph

        threads = int(kind[len("gph"):])

        def call():
            return gph.ripser_parallel(D, metric="precomputed", maxdim=MAX_DIM, thresh=thr,
                                       n_threads=threads)["dgms"]
    dt = np.inf
    for _ in range(int(repeat)):
        t = time.perf_counter()
        dgms = call()
        dt = min(dt, time.perf_counter() - t)
    np.savez(out, time=dt, peak=peak_mib(), *[np.asarray(a, dtype=np.float64) for a in dgms])


def clean(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    a = a[a[:, 0] != a[:, 1]]
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def agree(ours: list, theirs: list) -> str:
    """'yes' if every dimension has the same pairs (up to float32 rounding of the peers)."""
    for q, (a, b) in enumerate(zip(ours, theirs)):
        a, b = clean(a), clean(b)
        if a.shape != b.shape:
            return f"no (H{q}: {len(a)} vs {len(b)} pairs)"
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(fa, fb) or not np.allclose(a[fa], b[fb], rtol=1e-6, atol=1e-7):
            return f"no (H{q} values)"
    return "yes"


def wait_quietly(comm) -> None:
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.05)


def write_section(rows: list) -> None:
    lines = [
        SECTION,
        "",
        "`mpirun -n P python benchmarks/bench_persistence.py A B [--repeat R]` (H0..H2 of the 1820-unit",
        "LeNet functional graph on 1000 held-out MNIST digits (benchmarks/workloads.py), distance",
        "(1 - |corr|) / 2; A: threshold 0.3, B: 0.42). Time = wall time of the call on the same matrix",
        "in the same run, best of R calls (column 'best of') for us and for each peer; peak = ru_maxrss per",
        "process (ours: max over ranks; peers: each in a fresh subprocess). Ratio < 1: we are faster.",
        "",
        "| workload | edges | ranks | best of | ours (s) | ripser.py (s) | giotto-ph 1 thr (s) | giotto-ph 2 thr (s) "
        "| ours / gph-1 | ours / gph-2 | peak ours / rank (MiB) | peak gph-1 (MiB) | peak gph-2 (MiB) | agree | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x, fmt="{:.2f}"):
        return "–" if x is None else fmt.format(x)

    for r in sorted(rows, key=lambda r: (r["workload"], r["ranks"])):
        g1, g2 = r.get("gph1"), r.get("gph2")
        lines.append(
            f"| {r['workload']} (thr {r['threshold']}) | {r['edges']} | {r['ranks']} | {r.get('repeat', 1)} | {f(r['ours'])} | "
            f"{f(r.get('ripser'))} | {f(g1)} | {f(g2)} | "
            f"{f(r['ours'] / g1 if g1 else None)} | {f(r['ours'] / g2 if g2 else None)} | "
            f"{f(r['peak_ours'], '{:.0f}')} | {f(r.get('peak_gph1'), '{:.0f}')} | {f(r.get('peak_gph2'), '{:.0f}')} | "
            f"{r['agree']} | {r['machine']} | {r['date']} |"
        )
    lines.append("")
    replace_section(SECTION, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="*", default=["A", "B"])
    ap.add_argument("--no-peers", action="store_true", help="time topodnn only")
    ap.add_argument("--peers", default="ripser,gph1,gph2", help="comma-separated subset of ripser,gph1,gph2")
    ap.add_argument("--peer-timeout", type=float, default=600.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="time ours and each peer this many times, keep the best of each")
    ap.add_argument("--peer", nargs=4, metavar=("KIND", "WORKLOAD", "OUT", "REPEAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        run_peer(*args.peer)
        return

    from mpi4py import MPI

    from topodnn.engine import persistence

    comm = MPI.COMM_WORLD
    rows = []
    for name in args.workloads:
        D, thr = workloads.load(name)
        edges = int((D[np.triu_indices(len(D), 1)] <= thr).sum())
        best = np.inf
        for _ in range(args.repeat):
            comm.Barrier()
            t = time.perf_counter()
            ours = persistence(D, MAX_DIM, thr, comm=comm)
            dt = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
            best = min(best, dt)
        peak = comm.allreduce(peak_mib(), op=MPI.MAX)
        row = dict(workload=name, threshold=thr, edges=edges, ranks=comm.size, repeat=args.repeat, ours=best, peak_ours=peak,
                   agree="not checked", machine=f"{platform.machine()} {os.cpu_count()} cores",
                   date=time.strftime("%Y-%m-%d"))
        if comm.rank == 0 and not args.no_peers:
            verdicts = []
            for kind in args.peers.split(","):
                with tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "peer.npz")
                    try:
                        subprocess.run([sys.executable, __file__, "--peer", kind, name, out, str(args.repeat)], check=True,
                                       timeout=args.peer_timeout)
                    except subprocess.TimeoutExpired:
                        verdicts.append(f"{kind}: timed out")
                        continue
                    z = np.load(out)
                    row[kind] = float(z["time"])
                    row["peak_" + kind] = float(z["peak"])
                    theirs = [z[f"arr_{q}"] for q in range(MAX_DIM + 1)]
                    verdicts.append(f"{kind}: {agree(ours, theirs)}")
            row["agree"] = "; ".join(verdicts)
        if not args.no_peers:
            wait_quietly(comm)
        rows.append(row)
        if comm.rank == 0:
            print(f"{name}: ranks {comm.size} ours {best:.3f}s peak/rank {peak:.0f} MiB "
                  + " ".join(f"{k} {row[k]:.3f}s ({row['peak_' + k]:.0f} MiB)" for k in ("ripser", "gph1", "gph2") if k in row)
                  + f" | {row['agree']} | pairs {[len(a) for a in ours]}", flush=True)
    if comm.rank == 0:
        os.makedirs(workloads.CACHE, exist_ok=True)
        stored = json.load(open(RESULTS_JSON)) if os.path.exists(RESULTS_JSON) else []
        for row in rows:
            old = [r for r in stored if (r["workload"], r["ranks"]) == (row["workload"], row["ranks"])]
            if args.no_peers and old:  # keep the peers' numbers of an earlier full run
                for k in ("ripser", "gph1", "gph2", "peak_ripser", "peak_gph1", "peak_gph2"):
                    if k in old[0]:
                        row[k] = old[0][k]
                row["agree"] = f"peers from an earlier run ({old[0].get('agree', '')})"
            stored = [r for r in stored if (r["workload"], r["ranks"]) != (row["workload"], row["ranks"])] + [row]
        with open(RESULTS_JSON, "w") as fh:
            json.dump(stored, fh, indent=1)
        write_section(stored)
        print("\n".join(l for l in open(RESULTS_MD).read().split("\n") if l.startswith("|")))


if __name__ == "__main__":
    main()
