"""Under mpirun the Python entry points agree on their verdict before any collective: bad input on
one rank, or inputs that differ between ranks, raise the same ValueError on every rank and none
hangs (a hang fails the run by its timeout)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from conftest import run_mpi

pytest.importorskip("mpi4py")

# Every case runs on every rank; each rank records "ok" or "<Type>: <message>"; rank 0 prints the
# outcomes of all ranks as one JSON line. After the bad cases a good call checks that the ranks
# are still in step (the same collectives in the same order).
HARNESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size, last = comm.rank, comm.size, comm.size - 1
    outcomes = {}

    def case(name, fn):
        try:
            fn()
            out = "ok"
        except Exception as exc:
            out = f"{type(exc).__name__}: {exc}"
        outcomes[name] = out
    """
)

PERSISTENCE_CASES = HARNESS + textwrap.dedent(
    """
    import scipy.sparse as sp
    from topodnn.engine import persistence

    rng = np.random.default_rng(0)
    X = rng.normal(size=(14, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))

    def with_nan_on(r):
        E = D.copy()
        if rank == r:
            E[4, 2] = E[2, 4] = np.nan
        return E

    case("nan_on_rank_0", lambda: persistence(with_nan_on(0), 1, comm=comm))
    case("nan_on_last_rank", lambda: persistence(with_nan_on(last), 1, comm=comm))
    case("max_dim_on_one_rank", lambda: persistence(D, -1 if rank == 1 else 1, comm=comm))
    case("threshold_on_one_rank",
         lambda: persistence(D, 1, "0.5" if rank == last else 0.5, comm=comm))
    dup = sp.coo_matrix(([0.3, 0.4, 0.3], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    ok = sp.coo_matrix(([0.3, 0.3], ([0, 1], [1, 0])), shape=(2, 2))
    case("sparse_duplicates_on_one_rank", lambda: persistence(dup if rank == 1 else ok, 0, comm=comm))
    C = 1 - np.abs(np.corrcoef(np.random.default_rng(1).normal(size=(12, 30))))  # not bit-symmetric
    case("corrcoef_on_every_rank", lambda: persistence(C, 1, comm=comm))
    good = persistence(D, 2, comm=comm)
    ref = persistence(D, 2)
    outcomes["still_in_step"] = all(np.array_equal(a, b) for a, b in zip(good, ref))
    everyone = comm.gather(outcomes, root=0)
    if rank == 0:
        print("OUTCOMES " + json.dumps(everyone), flush=True)
    """
)

GRAPH_CASES = HARNESS + textwrap.dedent(
    """
    import torch
    from torch import nn
    from topodnn.graph import correlation_distances, functional_graph
    from topodnn.pipeline import topology

    def model(perturb=False):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU())
        if perturb:
            with torch.no_grad():
                m[0].weight[3, 2] += 1e-3
        return m

    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(2))
    kw = dict(layers=["1", "3"], comm=comm, progress=False)

    case("graph_threshold_differs",
         lambda: functional_graph(model(), x, threshold=0.6 if rank == 1 else 0.5, **kw))
    case("graph_n_samples_differs",
         lambda: functional_graph(model(), x, n_samples=30 if rank == last else 40, **kw))
    case("graph_weights_differ",
         lambda: functional_graph(model(perturb=rank == 1), x, threshold=0.5, **kw))
    y = x.clone()
    if rank == last:
        y[7, 1] += 1.0
    case("graph_data_differs", lambda: functional_graph(model(), y, threshold=0.5, **kw))
    case("graph_bad_threshold_on_one_rank",
         lambda: functional_graph(model(), x, threshold="0.5" if rank == 1 else 0.5, **kw))
    case("graph_forward_fails_on_rank_0",
         lambda: functional_graph(model(), torch.randn(40, 6), threshold=0.5, **kw))
    case("topology_epsilon_differs",
         lambda: topology(model(), x, max_dim=1, max_epsilon=0.3 if rank == 0 else 0.25, **kw))
    case("topology_n_samples_differs",
         lambda: topology(model(), x, max_dim=1, n_samples=20 if rank == 1 else 40, **kw))
    case("topology_weights_differ",
         lambda: topology(model(perturb=rank == last), x, max_dim=1, **kw))
    case("topology_max_dim_on_one_rank",
         lambda: topology(model(), x, max_dim=-1 if rank == last else 1, **kw))
    A = np.random.default_rng(3).normal(size=(20, 30))
    case("correlations_threshold_differs",
         lambda: correlation_distances(A, 0.5 if rank == 0 else 0.7, comm=comm, progress=False))
    good = topology(model(), x, max_dim=1, **kw)
    ref = topology(model(), x, max_dim=1, layers=["1", "3"], progress=False)
    outcomes["still_in_step"] = all(np.array_equal(a, b) for a, b in zip(good, ref))
    everyone = comm.gather(outcomes, root=0)
    if rank == 0:
        print("OUTCOMES " + json.dumps(everyone), flush=True)
    """
)


def outcomes(tmp_path, script: str, nprocs: int) -> list[dict]:
    path = tmp_path / "cases.py"
    path.write_text(script)
    proc = run_mpi(nprocs, [sys.executable, path], timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES "))
    result = json.loads(line[len("OUTCOMES "):])
    assert len(result) == nprocs
    return result


def same_error_everywhere(result: list[dict], name: str, *fragments: str) -> str:
    """Every rank raised the same ValueError, containing every fragment; returns the message."""
    messages = [r[name] for r in result]
    assert all(m.startswith("ValueError: ") for m in messages), (name, messages)
    assert len(set(messages)) == 1, (name, messages)
    for f in fragments:
        assert f in messages[0], (name, f, messages[0])
    return messages[0]


@pytest.fixture(scope="module", params=[2, 3])
def persistence_outcomes(request, tmp_path_factory):
    return request.param, outcomes(tmp_path_factory.mktemp("p"), PERSISTENCE_CASES, request.param)


@pytest.fixture(scope="module", params=[2, 3])
def graph_outcomes(request, tmp_path_factory):
    return request.param, outcomes(tmp_path_factory.mktemp("g"), GRAPH_CASES, request.param)


def test_nan_on_one_rank_raises_on_every_rank(persistence_outcomes):
    P, result = persistence_outcomes
    same_error_everywhere(result, "nan_on_rank_0", "NaN", f"(on rank 0 of {P})")
    same_error_everywhere(result, "nan_on_last_rank", "NaN", f"(on rank {P - 1} of {P})")


def test_bad_max_dim_or_threshold_on_one_rank_raises_on_every_rank(persistence_outcomes):
    P, result = persistence_outcomes
    same_error_everywhere(result, "max_dim_on_one_rank", "max_dim must lie in", f"(on rank 1 of {P})")
    same_error_everywhere(result, "threshold_on_one_rank", "threshold must be a real number",
                          f"(on rank {P - 1} of {P})")
    same_error_everywhere(result, "sparse_duplicates_on_one_rank", "2 times", f"(on rank 1 of {P})")


def test_good_input_after_bad_input_is_computed_in_step(persistence_outcomes):
    _, result = persistence_outcomes
    assert all(r["corrcoef_on_every_rank"] == "ok" for r in result), result
    assert all(r["still_in_step"] is True for r in result)


def test_graph_arguments_that_differ_raise_on_every_rank(graph_outcomes):
    P, result = graph_outcomes
    others = "ranks 0, 2" if P == 3 else "rank 0"
    same_error_everywhere(result, "graph_threshold_differs", "functional_graph: the ranks were given "
                          "different inputs", f"threshold: 0.5 on {others}; 0.6 on rank 1")
    first = "ranks 0, 1" if P == 3 else "rank 0"
    same_error_everywhere(result, "graph_n_samples_differs",
                          f"n_samples: 40 on {first}; 30 on rank {P - 1}")
    msg = same_error_everywhere(result, "graph_weights_differ", "model parameters and buffers: hash")
    assert "threshold" not in msg and "n_samples" not in msg
    same_error_everywhere(result, "graph_data_differs", "data: Tensor (40, 5), first 40 samples hash")


def test_graph_bad_input_raises_on_every_rank(graph_outcomes):
    P, result = graph_outcomes
    same_error_everywhere(result, "graph_bad_threshold_on_one_rank", "threshold must be a number",
                          f"(on rank 1 of {P})")
    same_error_everywhere(result, "graph_forward_fails_on_rank_0", "model failed on a batch",
                          f"(on rank 0 of {P})")
    same_error_everywhere(result, "correlations_threshold_differs",
                          "correlation_distances: the ranks were given different inputs", "threshold")


def test_topology_arguments_that_differ_raise_on_every_rank(graph_outcomes):
    P, result = graph_outcomes
    same_error_everywhere(result, "topology_epsilon_differs", "topology: the ranks were given",
                          "max_epsilon: 0.3 on rank 0")
    same_error_everywhere(result, "topology_n_samples_differs", "n_samples: 40", "20 on rank 1")
    same_error_everywhere(result, "topology_weights_differ", "model parameters and buffers")
    same_error_everywhere(result, "topology_max_dim_on_one_rank", "max_dim must lie in",
                          f"(on rank {P - 1} of {P})")
    assert all(r["still_in_step"] is True for r in result)
