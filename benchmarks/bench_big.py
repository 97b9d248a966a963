"""Big networks: H0..H1 of the ResNet18 and VGG16 functional graphs, topodnn against giotto-ph.

For each network (32x32 single-channel inputs: the embedded MNIST digits zero-padded from 28x28,
the classic LeNet-5 input size), in order, each step its own fresh process started by this
script (which only orchestrates, see benchmarks/harness.py):

1. build: train ``--epochs`` epochs on the 4,000 training digits (0 keeps the random
   initialisation), build the functional graph of the first 1000 test digits with
   ``topodnn.functional_graph(..., threshold=0.6)`` (every unit its own node, no grouping;
   block-wise sparse construction), halve it to the original's eps = (1 - |corr|) / 2 and save
   it to ``benchmarks/.cache/<net>_epochs<E>_graph.npz`` (``--reuse-graph`` takes a saved one);
2. ours: ``topodnn.persistence(G, max_dim=1, threshold=0.3)`` on the saved graph, under
   ``mpirun -n P`` for each P of ``--ranks`` (``comm=MPI.COMM_WORLD``);
3. giotto-ph: ``gph.ripser_parallel(G, metric="precomputed", maxdim=1, thresh=0.3,
   n_threads=T)`` on the same file, for each T of ``--gph-threads``; a crash (giotto-ph
   segfaults on the VGG16 graph) is recorded with its signal.

Every engine child runs under an address-space limit (``--memory-limit-gib``, default 20 GiB on
this 24 GiB machine) so that a runaway peer cannot take the machine down; the limit is recorded.
Diagrams are compared once every child has finished (harness.RULES). One JSON file per run in
benchmarks/results/.

    PYTHONPATH=python python benchmarks/bench_big.py resnet18 vgg16 --epochs 1
    PYTHONPATH=python python benchmarks/bench_big.py lenet --epochs 0 --timeout 600  # checks the script
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

MAX_DIM = 1
THRESHOLD = 0.3  # eps = (1 - |corr|) / 2 <= 0.3, i.e. |corr| >= 0.4
GRAPH_THRESHOLD = 0.6  # functional_graph's 1 - |corr| cut, twice THRESHOLD


def graph_path(net: str, epochs: int) -> Path:
    return harness.CACHE / f"{net}_epochs{epochs}_graph.npz"


# ----------------------------------------------------------------------------------------------
# Children


def padded_mnist():
    import torch.nn.functional as F

    from topodnn import datasets

    train, test, _ = datasets.load_dataset("mnist")
    background = float(train.tensors[0].min())  # a normalised 0 pixel

    def pad(x):
        return F.pad(x, (2, 2, 2, 2), value=background)

    return (pad(train.tensors[0]), train.tensors[1]), (pad(test.tensors[0]), test.tensors[1])


def child_build(net: str, epochs: int, threads: int, out: str) -> None:
    """Train, build the functional graph, save it (eps units); one result line."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    import topodnn
    from topodnn import networks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = padded_mnist()
    model = networks.get_network(net, in_channels=1, input_size=32)
    n_nodes = sum(networks.count_nodes(model, (1, 32, 32)).values())
    t0 = time.perf_counter()
    loss = None
    if epochs:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        g = torch.Generator().manual_seed(0)
        model.train()
        for ep in range(epochs):
            perm = torch.randperm(len(ytr), generator=g)
            for i in range(0, len(ytr), 128):
                idx = perm[i:i + 128]
                opt.zero_grad()
                loss = torch.nn.functional.nll_loss(model(xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
            print(f"{net}: epoch {ep + 1}/{epochs} loss {loss.item():.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xte[i:i + 100]).argmax(1) == yte[i:i + 100]).sum())
                      for i in range(0, len(yte), 100))
    t0 = time.perf_counter()
    G = topodnn.functional_graph(model, xte, n_samples=1000, threshold=GRAPH_THRESHOLD, progress=True)
    graph_s = time.perf_counter() - t0
    peak_graph = harness.self_peak()["ru_maxrss_mib"]
    G.data *= 0.5
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp.npz"
    sp.save_npz(tmp, G, compressed=False)
    os.replace(tmp, out)
    harness.emit({"net": net, "epochs": epochs, "units": int(n_nodes), "graph_nodes": int(G.shape[0]),
                  "edges": int(G.nnz // 2), "test_acc": correct / len(yte), "train_s": train_s,
                  "graph_s": graph_s, "torch_threads": threads, "peak_after_graph_mib": peak_graph,
                  "peak_mib": harness.self_peak()["ru_maxrss_mib"], "graph_file": out,
                  "last_loss": None if loss is None else float(loss.item()),
                  "max_eps": float(np.max(G.data)) if G.nnz else None})


def child_describe(path: str) -> None:
    import scipy.sparse as sp

    G = sp.load_npz(path)
    n = int(G.shape[0])
    harness.emit({"graph_nodes": n, "edges": int(G.nnz // 2),
                  "density": (G.nnz / 2) / (n * (n - 1) / 2) if n > 1 else 0.0,
                  "max_eps": float(G.data.max()) if G.nnz else None})


def child_engine(engine: str, workers: int, path: str, out: str) -> None:
    """ours (under mpirun, ``workers`` ranks) or giotto-ph (``workers`` threads) on the saved
    graph: import, one call; one result line."""
    import numpy as np
    import scipy.sparse as sp

    G = sp.load_npz(path)
    comm = None
    if engine == "giotto-ph":
        G = G.tocoo()
    t0 = time.perf_counter()
    if engine == "ours":
        import topodnn

        MPI = topodnn.init_mpi()  # as the README tells MPI scripts to (not mpi4py first)
        comm = MPI.COMM_WORLD
        if comm.size != workers:
            raise SystemExit(f"ours-r{workers} needs {workers} ranks, got {comm.size}")

        module = {"name": "topodnn", "version": topodnn.__version__,
                  "path": os.path.dirname(topodnn.__file__)}
        import_s = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        comm.Barrier()
        t = time.perf_counter()
        dgms = topodnn.persistence(G, max_dim=MAX_DIM, threshold=THRESHOLD, comm=comm, verbose=True)
        call_s = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
    else:
        import gph

        module = {"name": "gph", "version": gph.__version__, "path": os.path.dirname(gph.__file__)}
        import_s = time.perf_counter() - t0
        t = time.perf_counter()
        dgms = gph.ripser_parallel(G, metric="precomputed", maxdim=MAX_DIM, thresh=THRESHOLD,
                                   n_threads=workers)["dgms"]
        call_s = time.perf_counter() - t
    peaks = harness.mpi_peaks(comm)
    if comm is None or comm.rank == 0:
        harness.save_diagrams(out, dgms)
        harness.emit({"engine": engine, "workers": workers, "ranks": peaks["ranks"], "module": module,
                      "import_s": import_s, "first_call_s": call_s,
                      "import_plus_first_call_s": import_s + call_s,
                      "pairs": [int(len(d)) for d in dgms],
                      "essential": [int(np.isinf(np.asarray(d)[:, 1]).sum()) if len(d) else 0 for d in dgms],
                      **{k: peaks[k] for k in ("peak_total_mib", "peak_per_rank_mib", "vmhwm_total_mib")},
                      "diagrams": out})


# ----------------------------------------------------------------------------------------------
# Parent


def int_list(text: str) -> list:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("nets", nargs="*", default=["resnet18", "vgg16"],
                    help="topodnn.networks names (default resnet18 vgg16; lenet to check the script)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs before the graph (0: untrained)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the build step")
    ap.add_argument("--ranks", type=int_list, default=[1], help="our engine's rank counts, e.g. 1,2")
    ap.add_argument("--gph-threads", type=int_list, default=[1], help="giotto-ph's thread counts, e.g. 1,2")
    ap.add_argument("--no-gph", action="store_true", help="our engine only")
    ap.add_argument("--reuse-graph", action="store_true",
                    help="take the saved graph of an earlier build if there is one (its build is not "
                    "part of this run's record then)")
    ap.add_argument("--memory-limit-gib", type=float, default=20.0,
                    help="address-space limit of every engine child (0: none)")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds per child process")
    ap.add_argument("--results-dir", default=str(harness.RESULTS_DIR),
                    help="folder of the JSON file (default benchmarks/results; a scratch folder for checks)")
    ap.add_argument("--child-build", nargs=4, metavar=("NET", "EPOCHS", "THREADS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--child-describe", metavar="GRAPH", help=argparse.SUPPRESS)
    ap.add_argument("--child-engine", nargs=4, metavar=("ENGINE", "WORKERS", "GRAPH", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_build:
        net, epochs, threads, out = args.child_build
        child_build(net, int(epochs), int(threads), out)
        return
    if args.child_describe:
        child_describe(args.child_describe)
        return
    if args.child_engine:
        engine, workers, path, out = args.child_engine
        child_engine(engine, int(workers), path, out)
        return

    if args.epochs < 0:
        raise SystemExit("--epochs must be >= 0")
    harness.require_topodnn()
    env = harness.mpi_environment()
    me = os.path.abspath(__file__)
    limit = args.memory_limit_gib or None
    run = harness.BenchmarkRun("big", settings={
        "nets": args.nets, "epochs": args.epochs, "torch_threads": args.threads, "ranks": args.ranks,
        "gph_threads": [] if args.no_gph else args.gph_threads, "reuse_graph": args.reuse_graph,
        "memory_limit_gib": limit, "timeout_s": args.timeout, "max_dim": MAX_DIM,
        "threshold": THRESHOLD, "graph_threshold": GRAPH_THRESHOLD, "rules": harness.RULES},
        results_dir=Path(args.results_dir))
    run.record["graphs"] = {}
    for net in args.nets:
        gp = graph_path(net, args.epochs)
        info: Dict[str, Any] = {"file": os.path.relpath(gp, harness.REPO)}
        if args.reuse_graph and gp.exists():
            info["built_in_this_run"] = False
            run.notes.append(f"{net}: graph {info['file']} reused from an earlier build; its "
                             "training and graph times are not part of this record")
        else:
            build = run.child(harness.python_child(me, "--child-build", net, args.epochs, args.threads, gp),
                              label=f"{net}: train {args.epochs} epoch(s) + functional graph",
                              timeout_s=args.timeout, env=env, meta={"kind": "build", "net": net})
            info["built_in_this_run"] = True
            if not build["ok"]:
                run.notes.append(f"{net}: the graph could not be built ({build['failure']})")
                run.record["graphs"][net] = info
                continue
        info["fingerprint"] = harness.file_fingerprint(gp)
        desc = run.child(harness.python_child(me, "--child-describe", gp), label=f"{net}: describe graph",
                         timeout_s=args.timeout, env=env, meta={"kind": "describe", "net": net})
        if desc["ok"]:
            info.update(desc["result"])
        run.record["graphs"][net] = info
        plan = [("ours", p) for p in args.ranks] + ([] if args.no_gph else
                                                     [("giotto-ph", t) for t in args.gph_threads])
        for engine, workers in plan:
            label = f"ours-r{workers}" if engine == "ours" else f"gph-t{workers}"
            out = run.tmp / f"{net}_{label}.npz"
            argv = harness.python_child(me, "--child-engine", engine, workers, gp, out)
            if engine == "ours":
                argv = harness.mpirun(workers) + argv
            run.child(argv, label=f"{net}: {label}", timeout_s=args.timeout, env=env,
                      memory_limit_gib=limit,
                      meta={"kind": "engine", "net": net, "engine": engine, "workers": workers,
                            "engine_label": label, "rule": "exact" if engine == "ours" else "float32"})

    # every child has finished: compare the diagrams
    for net in args.nets:
        done = {r["meta"]["engine_label"]: r for r in run.runs
                if r["meta"].get("kind") == "engine" and r["meta"]["net"] == net and r["ok"]}
        ref_label = next((k for k in sorted(done) if k.startswith("ours")), None)
        if ref_label is None:
            continue
        ref = harness.load_diagrams(done[ref_label]["result"]["diagrams"])
        for label, rec in done.items():
            other = harness.load_diagrams(rec["result"]["diagrams"])
            cmp = harness.compare_diagrams(ref, other, rec["meta"]["rule"])
            run.comparisons.append({"net": net, "reference": ref_label, "other": label,
                                    "digest_other": harness.diagram_digest(other), **cmp})
    path = run.write()
    run.cleanup()
    import report

    print(report.render_big(run.record, link=False))
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
