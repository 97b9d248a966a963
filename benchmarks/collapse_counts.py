"""Edge collapse on the benchmark workloads: operation counts, no timings.

For workloads A and B (benchmarks/workloads.py) and k rounds of the engine's edge collapse
(``_core._collapse_edges``; -1: until a round removes no edge), one row each: edges and triangles
left (the 2-simplices of the flag complex), edges moved and removed, the dominator tests' adjacency
look-ups and the common-neighbour listing steps. With ``--gudhi``, the edges left by
``gudhi.SimplexTree.collapse_edges`` for the same number of rounds (1 and 5), on the same graph.

    PYTHONPATH=python .venv/bin/python benchmarks/collapse_counts.py [A B] [--gudhi]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402

ROUNDS = (1, 2, 3, 5, -1)


def triangles(n: int, u: np.ndarray, v: np.ndarray) -> int:
    A = sp.coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)).tocsr()
    A = A + A.T
    return int(round((A @ A).multiply(A).sum() / 6))


def gudhi_edges(n: int, u, v, w, rounds: int) -> int:
    import gudhi

    st = gudhi.SimplexTree()
    st.insert_batch(np.arange(n)[None, :], np.zeros(n))
    st.insert_edges_from_coo_matrix(sp.coo_matrix((w, (u, v)), shape=(n, n)))
    st.collapse_edges(nb_iterations=rounds)
    return st.num_simplices() - n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="*", default=["A", "B"])
    ap.add_argument("--gudhi", action="store_true", help="also gudhi's edge count for 1 and 5 rounds")
    args = ap.parse_args()
    import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
    from topodnn import _core

    print("| workload | rounds | rounds run | edges | triangles | moved | removed | look-ups | listing steps |"
          + (" gudhi edges |" if args.gudhi else ""))
    print("|---" * (10 if args.gudhi else 9) + "|")
    for name in args.workloads:
        D, thr = workloads.load(name)
        n = len(D)
        # the engine's edges: the lower triangle (row i > column j)
        i, j = np.tril_indices(n, -1)
        keep = D[i, j] <= thr
        u, v, w = j[keep].astype(np.int64), i[keep].astype(np.int64), D[i, j][keep]
        print(f"| {name} | 0 | 0 | {len(u)} | {triangles(n, u, v)} | | | | |" + (" |" if args.gudhi else ""),
              flush=True)
        for k in ROUNDS:
            cu, cv, _, c = _core._collapse_edges(n, u, v, w, k)
            theirs = f" {gudhi_edges(n, u, v, w, k)} |" if args.gudhi and k in (1, 5) else (" |" if args.gudhi else "")
            print(f"| {name} | {k} | {len(c['edges_after_round'])} | {len(cu)} | {triangles(n, cu, cv)} | {c['moved']} "
                  f"| {c['removed']} | {c['lookups']} | {c['neighbour_steps']} |" + theirs, flush=True)


if __name__ == "__main__":
    main()
