"""Big networks end to end: VGG16 and ResNet18 functional graphs and their persistence to H1.

For each network (32x32 single-channel inputs: the embedded MNIST digits zero-padded from 28x28,
the classic LeNet-5 input size): train ``--epochs`` epochs on the 4,000 training digits (0 keeps
the random initialisation), build the functional graph of the first 1000 test digits with
``topodnn.functional_graph(..., threshold=0.6)`` (every unit its own node, no grouping; block-wise
sparse construction), halve it to the original's eps = (1 - |corr|) / 2 and compute H0..H1 with
``topodnn.persistence(max_dim=1, threshold=0.3)``. Each network runs in its own process, so the
reported peak RSS (``ru_maxrss``) is that network's alone. Results are printed and recorded in
benchmarks/.cache/big_results.json and the "## Big networks" section of benchmarks/RESULTS.md.

    PYTHONPATH=python .venv/bin/python benchmarks/bench_big.py resnet18 vgg16 --epochs 1
    PYTHONPATH=python .venv/bin/python benchmarks/bench_big.py resnet18 --epochs 1 --peer-only

``--peer`` / ``--peer-only`` add giotto-ph (one thread) on the same graph, in its own process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
RESULTS_JSON = os.path.join(CACHE, "big_results.json")
SECTION = "## Big networks"

sys.path.insert(0, HERE)
from _results import replace_section  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0**2


def padded_mnist():
    import torch.nn.functional as F

    from topodnn import datasets

    train, test, _ = datasets.load_dataset("mnist")
    background = float(train.tensors[0].min())  # a normalised 0 pixel

    def pad(x):
        return F.pad(x, (2, 2, 2, 2), value=background)

    return (pad(train.tensors[0]), train.tensors[1]), (pad(test.tensors[0]), test.tensors[1])


def run_one(net: str, epochs: int, threads: int) -> dict:
    import numpy as np
    import torch

    import topodnn
    from topodnn import networks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = padded_mnist()
    model = networks.get_network(net, in_channels=1, input_size=32)
    n_nodes = sum(networks.count_nodes(model, (1, 32, 32)).values())
    t0 = time.perf_counter()
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
    t_train = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = float(sum((model(xte[i:i + 100]).argmax(1) == yte[i:i + 100]).sum() for i in range(0, len(yte), 100))) / len(yte)
    t0 = time.perf_counter()
    G = topodnn.functional_graph(model, xte, n_samples=1000, threshold=0.6, progress=True)
    t_graph = time.perf_counter() - t0
    peak_graph = peak_gib()
    edges = G.nnz // 2  # symmetric, no diagonal
    G.data *= 0.5
    import scipy.sparse as sp

    os.makedirs(CACHE, exist_ok=True)  # kept for re-running the engine alone (eps units)
    sp.save_npz(os.path.join(CACHE, f"{net}_epochs{epochs}_graph.npz"), G, compressed=False)
    t0 = time.perf_counter()
    dgms = topodnn.persistence(G, max_dim=1, threshold=0.3, verbose=True)
    t_pers = time.perf_counter() - t0
    np.savez(os.path.join(CACHE, f"{net}_epochs{epochs}_ours.npz"), *dgms)
    return {
        "net": net, "nodes": int(n_nodes), "graph_nodes": int(G.shape[0]), "edges": int(edges),
        "density": edges / (G.shape[0] * (G.shape[0] - 1) / 2), "epochs": epochs, "test_acc": acc,
        "train_s": t_train, "graph_s": t_graph, "persistence_s": t_pers,
        "peak_graph_gib": peak_graph, "peak_gib": peak_gib(),
        "pairs": [int(len(d)) for d in dgms],
        "essential": [int(np.isinf(d[:, 1]).sum()) for d in dgms],
        "threads": threads, "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load1": os.getloadavg()[0],
    }


def run_peer(net: str, epochs: int) -> dict:
    """giotto-ph (1 thread) on the graph that run_one saved; compares with our diagrams."""
    import numpy as np
    import scipy.sparse as sp
    from gph import ripser_parallel

    G = sp.load_npz(os.path.join(CACHE, f"{net}_epochs{epochs}_graph.npz")).tocoo()
    t0 = time.perf_counter()
    ref = ripser_parallel(G, metric="precomputed", maxdim=1, thresh=0.3, n_threads=1)["dgms"]
    t = time.perf_counter() - t0
    ours = os.path.join(CACHE, f"{net}_epochs{epochs}_ours.npz")
    if not os.path.exists(ours):
        return {"peer_s": t, "peer_peak_gib": peak_gib(), "peer_agree": None}
    agree = True
    with np.load(ours) as z:
        for q, b in enumerate(ref):
            a = z[f"arr_{q}"].astype(np.float32)  # giotto-ph computes in float32
            b = b[b[:, 1] > b[:, 0]].astype(np.float32)
            a = a[np.lexsort((a[:, 1], a[:, 0]))]
            b = b[np.lexsort((b[:, 1], b[:, 0]))]
            agree &= a.shape == b.shape and np.array_equal(a, b)
    return {"peer_s": t, "peer_peak_gib": peak_gib(), "peer_agree": bool(agree)}


def write_section(rows: list) -> None:
    lines = [
        SECTION,
        "",
        "`PYTHONPATH=python .venv/bin/python benchmarks/bench_big.py resnet18 vgg16 --epochs E` "
        "(one process per network; 32x32 inputs: the embedded MNIST digits zero-padded; every unit "
        "its own node; graph = `functional_graph(threshold=0.6)` over 1000 test digits, i.e. eps "
        "<= 0.3; persistence = `topodnn.persistence(max_dim=1, threshold=0.3)`, one rank). "
        "Peak = ru_maxrss of the process (interpreter, torch, the model and the graph included).",
        "",
        "giotto-ph (`--peer`): `ripser_parallel(maxdim=1, thresh=0.3, n_threads=1)` on the same saved "
        "graph in a fresh process; 'agree' compares its diagrams with ours in float32.",
        "",
        "| net | trained epochs (test acc) | nodes | edges (density) | train s | graph s | H0..H1 s "
        "| peak after graph GiB | peak GiB | pairs H0 / H1 | giotto-ph 1 thr s / peak GiB (agree) | load1 | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "peer_s" in r:
            agree = {True: "yes", False: "NO", None: "not compared"}[r["peer_agree"]]
            peer = f"{r['peer_s']:.1f} / {r['peer_peak_gib']:.2f} ({agree})"
        else:
            peer = r.get("peer_error", "not run")
        lines.append(
            f"| {r['net']} | {r['epochs']} ({100 * r['test_acc']:.1f} %) | {r['graph_nodes']:,} | {r['edges']:,} ({100 * r['density']:.1f} %) "
            f"| {r['train_s']:.0f} | {r['graph_s']:.1f} | {r['persistence_s']:.1f} "
            f"| {r['peak_graph_gib']:.2f} | {r['peak_gib']:.2f} | {r['pairs'][0]:,} / {r['pairs'][1]:,} "
            f"| {peer} | {r['load1']:.1f} | {r['date']} |"
        )
    lines.append("")
    replace_section(SECTION, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nets", nargs="*", default=["resnet18", "vgg16"])
    ap.add_argument("--epochs", type=int, default=1, help="training epochs before the graph (0: untrained)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--peer", action="store_true",
                    help="also run giotto-ph on each network's graph (its own process, after ours)")
    ap.add_argument("--peer-only", action="store_true",
                    help="only giotto-ph, on the graphs and diagrams a previous run saved")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-peer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.epochs, args.threads)), flush=True)
        return
    if args.one_peer:
        print("RESULT " + json.dumps(run_peer(args.one_peer, args.epochs)), flush=True)
        return
    os.makedirs(CACHE, exist_ok=True)
    old = json.load(open(RESULTS_JSON)) if os.path.exists(RESULTS_JSON) else []
    def measure(flag: str, net: str) -> dict:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, flag, net, "--epochs", str(args.epochs),
                               "--threads", str(args.threads)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        sys.stderr.write(proc.stderr)
        res = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not res:
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exit {proc.returncode}")
            last = (proc.stderr.strip().splitlines() or [how])[-1][:200]
            if flag == "--one-peer":  # the peer failing is a result too
                return {"peer_error": f"failed after {time.perf_counter() - t0:.0f} s ({how}): {last}"}
            sys.exit(f"{net}: the measurement ({flag}) failed (exit {proc.returncode}): {last}")
        return json.loads(res[-1][7:])

    for net in args.nets:
        if args.peer_only:
            rows = [r for r in old if r["net"] == net and r["epochs"] == args.epochs]
            if not rows:
                sys.exit(f"{net}: no earlier run with --epochs {args.epochs} to compare with")
            row = {**rows[-1], **measure("--one-peer", net)}
        else:
            row = measure("--one", net)
            if args.peer:
                row.update(measure("--one-peer", net))
        print(json.dumps(row, indent=1))
        old = [r for r in old if not (r["net"] == net and r["epochs"] == row["epochs"])] + [row]
        with open(RESULTS_JSON, "w") as fh:
            json.dump(old, fh, indent=1)
    write_section(sorted(old, key=lambda r: (r["net"], r["epochs"])))


if __name__ == "__main__":
    main()
