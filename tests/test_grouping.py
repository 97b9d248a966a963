"""Node grouping: a node is the mean of consecutive units of a layer (topodnn.grouping).

Oracles: numpy on the full-resolution activation matrix (means, ``numpy.array_split`` for balanced
splits, ``numpy.corrcoef`` for distances), ripser for the diagrams, and hand-computed allocations.
"""

from __future__ import annotations

import json
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_mpi
from topodnn import pipeline, results
from topodnn.graph import collect_activations, correlation_distances, functional_graph
from topodnn.grouping import parse_groups, resolve_groups, unit_ranges

LAYERS = ["act1", "act2", "hid", "out"]
SIZES = [100, 27, 13, 5]  # act1 4x5x5, act2 3x3x3, hid 13, out 5


class Net(nn.Module):
    """conv(1->4, 3x3) 'act1' (4x5x5) -> conv(4->3, 3x3) 'act2' (3x3x3) -> fc 'hid' (13) -> 'out' (5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 3, 3)
        self.act2 = nn.ReLU()
        self.fc1 = nn.Linear(27, 13)
        self.hid = nn.Tanh()
        self.fc2 = nn.Linear(13, 5)
        self.out = nn.LogSoftmax(dim=1)
        self.functional_layers = list(LAYERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.out(self.fc2(self.hid(self.fc1(h.flatten(1)))))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(80, 1, 7, 7, generator=torch.Generator().manual_seed(3))


def full(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Each layer's full-resolution activations (float64), split from the ungrouped matrix."""
    X, names, sizes = collect_activations(model, x, dtype=np.float64, progress=False)
    assert names == LAYERS and sizes == SIZES
    return np.split(X, np.cumsum(sizes)[:-1], axis=1)


def chunk_means(A: np.ndarray, k: int) -> np.ndarray:
    return np.column_stack([A[:, s : s + k].mean(axis=1) for s in range(0, A.shape[1], k)])


def split_means(A: np.ndarray, n: int) -> np.ndarray:
    return np.column_stack([A[:, idx].mean(axis=1) for idx in np.array_split(np.arange(A.shape[1]), n)])


def reference_distances(X: np.ndarray) -> np.ndarray:
    """1 - |corr| from numpy.corrcoef, constant columns at distance 1, zero diagonal."""
    const = np.ptp(X, axis=0) == 0
    C = np.zeros((X.shape[1], X.shape[1]))
    live = ~const
    C[np.ix_(live, live)] = np.corrcoef(X[:, live].T)
    D = 1.0 - np.abs(C)
    np.fill_diagonal(D, 0.0)
    return D


def channel_reference(layers: list[np.ndarray]) -> np.ndarray:
    m = layers[0].shape[0]
    return np.hstack([layers[0].reshape(m, 4, 25).mean(-1), layers[1].reshape(m, 3, 9).mean(-1),
                      layers[2], layers[3]])


# ------------------------------------------------------------------------------ means


def test_channel_is_the_mean_over_spatial_positions(net: Net, x: torch.Tensor) -> None:
    layers = full(net, x)
    G, names, sizes, groups = collect_activations(net, x, dtype=np.float64, progress=False,
                                                  groups="channel", return_groups=True)
    assert sizes == [4, 3, 13, 5] and names == LAYERS
    assert [g.shape for g in groups] == [(4, 5, 5), (3, 3, 3), (13,), (5,)]
    np.testing.assert_allclose(G, channel_reference(layers), rtol=1e-13, atol=1e-13)
    # linear layers keep their units, bit for bit
    assert np.array_equal(G[:, 7:20], layers[2]) and np.array_equal(G[:, 20:], layers[3])
    np.testing.assert_array_equal(groups[0].ranges(), [[0, 25], [25, 50], [50, 75], [75, 100]])


@pytest.mark.parametrize("k", [1, 4, 7, 16, 27, 100, 1000])
def test_chunks_are_means_of_consecutive_units(net: Net, x: torch.Tensor, k: int) -> None:
    layers = full(net, x)
    G, _, sizes, groups = collect_activations(net, x, dtype=np.float64, progress=False,
                                              groups={"chunk": k}, return_groups=True)
    assert sizes == [-(-s // k) for s in SIZES]
    want = np.hstack([chunk_means(A, k) for A in layers])
    np.testing.assert_allclose(G, want, rtol=1e-13, atol=1e-13)
    for g, s in zip(groups, SIZES):
        r = g.ranges()
        lengths = r[:, 1] - r[:, 0]
        assert (lengths[:-1] == min(k, s)).all() and lengths[-1] == s - (len(r) - 1) * min(k, s)
    if k == 16:  # hid (13 units) and out (5): one node each, the mean of all their units
        assert sizes == [7, 2, 1, 1]
        np.testing.assert_array_equal(groups[0].ranges()[-1], [96, 100])  # last chunk shorter
        np.testing.assert_allclose(G[:, -1], layers[3].mean(axis=1), rtol=1e-13)
    if k == 1:
        assert np.array_equal(G, np.hstack(layers))


def test_total_nodes_shared_in_proportion(net: Net, x: torch.Tensor) -> None:
    layers = full(net, x)
    G, _, sizes, groups = collect_activations(net, x, dtype=np.float64, progress=False,
                                              groups={"nodes": 20}, return_groups=True)
    # quotas 20 * (100, 27, 13, 5) / 145 = 13.79, 3.72, 1.79, 0.69: floors (at least 1) 13, 3, 1, 1;
    # the two left go to the largest remainders, act1 and hid (tied at 115/145)
    assert sizes == [14, 3, 2, 1]
    want = np.hstack([split_means(A, n) for A, n in zip(layers, sizes)])
    np.testing.assert_allclose(G, want, rtol=1e-13, atol=1e-13)
    assert groups[0].as_info() == [[0, 16, 8], [16, 100, 7]]
    # every unit its own node: the same matrix as no grouping
    G145, _, sizes145 = collect_activations(net, x, dtype=np.float64, progress=False,
                                            groups="nodes:145")
    assert sizes145 == SIZES and np.array_equal(G145, np.hstack(layers))


def test_per_layer_specs(net: Net, x: torch.Tensor) -> None:
    layers = full(net, x)
    spec = {"act1": "channel", "act2": {"nodes": 4}, "hid": "chunk:5", "out": None}
    G, _, sizes = collect_activations(net, x, dtype=np.float64, progress=False, groups=spec)
    assert sizes == [4, 4, 3, 5]
    want = np.hstack([layers[0].reshape(80, 4, 25).mean(-1), split_means(layers[1], 4),
                      chunk_means(layers[2], 5), layers[3]])
    np.testing.assert_allclose(G, want, rtol=1e-13, atol=1e-13)
    # unnamed layers keep their units
    G2, _, sizes2 = collect_activations(net, x, dtype=np.float64, progress=False,
                                        groups={"act2": "channel"})
    assert sizes2 == [100, 3, 13, 5]
    assert np.array_equal(G2[:, :100], layers[0]) and np.array_equal(G2[:, 103:], np.hstack(layers[2:]))


def test_node_order_and_unit_ranges(net: Net, x: torch.Tensor) -> None:
    for spec in ("channel", "chunk:6", "nodes:31", {"act1": "nodes:9", "hid": "chunk:4"}):
        _, _, sizes, groups = collect_activations(net, x, progress=False, groups=spec,
                                                  return_groups=True)
        for g, size, units in zip(groups, sizes, SIZES):
            r = g.ranges()
            assert r.shape == (size, 2) == (g.n_nodes, 2)
            # ordered by first unit, consecutive, disjoint, covering the layer
            assert r[0, 0] == 0 and r[-1, 1] == units and (r[1:, 0] == r[:-1, 1]).all()
            assert (r[:, 1] > r[:, 0]).all()
            np.testing.assert_array_equal(unit_ranges(g.as_info()), r)


def test_info_says_how_nodes_were_grouped(net: Net, x: torch.Tensor) -> None:
    S, info = functional_graph(net, x, threshold=0.6, groups={"chunk": 16}, progress=False,
                               return_info=True)
    assert info["groups"] == "chunk:16"
    assert info["units_per_layer"] == SIZES and info["nodes_per_layer"] == [7, 2, 1, 1]
    assert info["n_nodes"] == 11 == S.shape[0]
    assert info["layer_shapes"] == {"act1": [4, 5, 5], "act2": [3, 3, 3], "hid": [13], "out": [5]}
    assert info["node_units"] == {"act1": [[0, 100, 16]], "act2": [[0, 27, 16]],
                                  "hid": [[0, 13, 13]], "out": [[0, 5, 5]]}
    json.dumps(info["node_units"])  # plain lists
    _, info = functional_graph(net, x, threshold=0.6, progress=False, return_info=True)
    assert info["groups"] == "units" and info["nodes_per_layer"] == info["units_per_layer"] == SIZES
    assert info["node_units"]["act1"] == [[0, 100, 1]]


# ------------------------------------------------------------------------------ distances


def dead_channel_net() -> Net:
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():  # channel 2 of act1: ReLU of a negative constant, 0 on every input
        model.conv1.weight[2] = 0.0
        model.conv1.bias[2] = -1.0
    return model


def test_constant_groups_are_at_distance_one(x: torch.Tensor, capsys: pytest.CaptureFixture) -> None:
    model = dead_channel_net()
    D, info = functional_graph(model, x, groups="channel", progress=True, return_info=True)
    assert info["constant_units"] == {"act1": 1, "act2": 0, "hid": 0, "out": 0}
    assert (np.delete(D[2], 2) == 1.0).all() and (np.delete(D[:, 2], 2) == 1.0).all()
    err = capsys.readouterr().err
    assert "1 constant nodes (group means)" in err and "act1: 1/4" in err
    # a chunk straddling live units and the dead channel (units 50..74) is not constant
    _, info = functional_graph(model, x, groups={"chunk": 30}, progress=False, return_info=True)
    assert info["constant_units"]["act1"] == 0
    _, info = functional_graph(model, x, groups={"chunk": 25}, progress=False, return_info=True)
    assert info["constant_units"]["act1"] == 1
    _, info = functional_graph(model, x, progress=False, return_info=True)
    assert info["constant_units"]["act1"] == 25


@pytest.mark.parametrize("spec", ["channel", {"chunk": 6}, {"nodes": 40}])
def test_grouped_distances_are_those_of_the_group_means(x: torch.Tensor, spec) -> None:
    model = dead_channel_net()
    layers = full(model, x)
    if spec == "channel":
        M = channel_reference(layers)
    elif "chunk" in spec:
        M = np.hstack([chunk_means(A, 6) for A in layers])
    else:
        M = np.hstack([split_means(A, n) for A, n in zip(layers, [28, 7, 4, 1])])
    ref = reference_distances(M)
    D = functional_graph(model, x, groups=spec, progress=False)
    np.testing.assert_allclose(D, ref, rtol=0, atol=1e-12)
    S = functional_graph(model, x, groups=spec, threshold=0.5, dtype=np.float64, block_size=7,
                         progress=False)
    n = ref.shape[0]
    off = ~np.eye(n, dtype=bool)
    rows = np.repeat(np.arange(n), np.diff(S.indptr))
    P = np.zeros((n, n), dtype=bool)
    P[rows, S.indices] = True
    near = np.abs(ref - 0.5) < 1e-9
    assert np.array_equal(P[~near], ((ref <= 0.5) & off)[~near])
    np.testing.assert_allclose(S.data, ref[rows, S.indices], rtol=0, atol=1e-12)


def test_topology_with_groups_is_persistence_of_the_grouped_graph(net: Net, x: torch.Tensor) -> None:
    from ripser import ripser

    from topodnn.engine import persistence

    for spec in ("channel", {"chunk": 5}):
        dgms = pipeline.topology(net, x, max_dim=2, max_epsilon=0.3, groups=spec, dtype=np.float64,
                                 progress=False)
        G, _, _ = collect_activations(net, x, dtype=np.float64, progress=False, groups=spec)
        S = correlation_distances(G, 0.6, progress=False)
        S.data *= 0.5
        by_hand = persistence(S, max_dim=2, threshold=0.3)
        for a, b in zip(dgms, by_hand):
            np.testing.assert_array_equal(a, b)
        # and ripser on the dense matrix of the numpy means
        layers = full(net, x)
        M = channel_reference(layers) if spec == "channel" else np.hstack([chunk_means(A, 5) for A in layers])
        ref = ripser(reference_distances(M) / 2, maxdim=2, thresh=0.3, distance_matrix=True)["dgms"]
        for a, b in zip(dgms, ref):
            a = a[a[:, 1] > a[:, 0]].astype(np.float32)
            b = b[b[:, 1] > b[:, 0]].astype(np.float32)
            a = a[np.lexsort((a[:, 1], a[:, 0]))]
            b = b[np.lexsort((b[:, 1], b[:, 0]))]
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    mt = pipeline.model_topology(net, x, max_dim=1, groups="channel", progress=False)
    assert mt.n_nodes == 25 and mt.info["groups"] == "channel"
    assert "groups" in pipeline.GRAPH_ARGS


def test_grouped_activations_never_form_the_full_matrix() -> None:
    """numpy allocations are traced: the ungrouped call allocates the full matrix, grouped ones
    only the grouped one (plus small per-batch pieces)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU())
    x = torch.randn(300, 1, 20, 20)
    full_bytes = 300 * 64 * 400 * 8
    peaks = {}
    for spec in (None, "channel", {"nodes": 500}):
        tracemalloc.start()
        X, _, _ = collect_activations(model, x, layers=["1"], dtype=np.float64, groups=spec,
                                      progress=False)
        peaks[str(spec)] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del X
    assert peaks["None"] >= full_bytes
    # the grouped matrices are 0.15 and 1.2 MB; numpy's reduction buffers add a few MB at most
    assert peaks["channel"] < full_bytes / 10 and peaks["{'nodes': 500}"] < full_bytes / 10


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("spec, fragment", [
    ("chanel", "'chanel' is not a grouping"),
    ("chunk:x", "needs an integer after 'chunk:'"),
    ("nodes:", "needs an integer after 'nodes:'"),
    ({"chunk": 4, "nodes": 10}, "is ambiguous"),
    ({"chunk": 4, "act1": "channel"}, "mixes the keyword 'chunk' with layer names ['act1']"),
    ({}, "names no layer"),
    ({"nope": "channel"}, "not recorded: ['nope']"),
    ({"act1": {"act2": "channel"}}, "do not nest"),
    ({"act1": 3}, "got int 3"),
    ({"chunk": 0}, "integer >= 1"),
    ({"chunk": 2.5}, "integer >= 1"),
    ({"nodes": True}, "integer >= 1"),
    ("chunk:-3", "integer >= 1"),
    ({"hid": "channel"}, "'hid' has per-sample output shape (13,), which has no channels"),
    ({"act2": {"nodes": 28}}, "'act2' asked for 28 nodes but has 27 units"),
    ({"nodes": 3}, "there are 4 layers"),
    ({"nodes": 146}, "146 nodes asked for but the layers have 145 units"),
    (5, "groups must be None, 'units', 'channel'"),
    (["channel"], "groups must be"),
])
def test_ambiguous_or_unfit_specs_are_refused(net: Net, x: torch.Tensor, spec, fragment) -> None:
    with pytest.raises(ValueError) as info:
        functional_graph(net, x, groups=spec, threshold=0.6, progress=False)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_canonical_text() -> None:
    assert parse_groups(None).text() == parse_groups("units").text() == "units"
    assert parse_groups({"chunk": np.int64(16)}).text() == parse_groups(" chunk:16 ").text() == "chunk:16"
    assert parse_groups({"nodes": 2000}).text() == "nodes:2000"
    a = parse_groups({"b": "channel", "a": {"chunk": 3}, "c": None})
    b = parse_groups({"a": "chunk:3", "b": "channel"})
    assert a == b and a.text() == '{"a": "chunk:3", "b": "channel"}'
    assert parse_groups({"a": "units"}).text() == "units"
    g = resolve_groups(parse_groups("channel"), ["c", "f"], [(2, 3, 3), (7,)])
    assert [lg.n_nodes for lg in g] == [2, 7] and g[1].is_units and not g[0].is_units


# ------------------------------------------------------------------------------ MPI


MPI_CASES = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from torch import nn
    from mpi4py import MPI
    from topodnn.graph import functional_graph
    from topodnn.pipeline import topology

    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    outcomes = {}

    def case(name, fn):
        try:
            fn()
            outcomes[name] = "ok"
        except Exception as exc:
            outcomes[name] = f"{type(exc).__name__}: {exc}"

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 8), nn.Tanh())
    x = torch.randn(40, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    kw = dict(layers=["1", "4"], comm=comm, progress=False)
    case("groups_differ", lambda: functional_graph(
        model, x, threshold=0.5, groups="channel" if rank == 1 else {"chunk": 4}, **kw))
    case("groups_bad_on_one_rank", lambda: functional_graph(
        model, x, threshold=0.5, groups="chanel" if rank == 1 else "channel", **kw))
    case("groups_unfit", lambda: functional_graph(model, x, threshold=0.5, groups={"nodes": 10**6}, **kw))
    case("topology_groups_differ", lambda: topology(
        model, x, max_dim=1, groups="chunk:4" if rank == 0 else "chunk:5", **kw))
    G = functional_graph(model, x, threshold=0.5, groups="channel", **kw)
    H = functional_graph(model, x, threshold=0.5, groups="channel", layers=["1", "4"], progress=False)
    outcomes["still_in_step"] = bool(np.array_equal(G.indices, H.indices) and np.array_equal(G.data, H.data)
                                     and G.shape == (11, 11))
    everyone = comm.gather(outcomes, root=0)
    if rank == 0:
        print("OUTCOMES " + json.dumps(everyone), flush=True)
    """
)


def test_mpi_ranks_agree_on_the_grouping(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    script = tmp_path / "cases.py"
    script.write_text(MPI_CASES)
    proc = run_mpi(2, [sys.executable, script], timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES "))
    result = json.loads(line[len("OUTCOMES "):])
    assert len(result) == 2

    def same_everywhere(name: str, *fragments: str) -> None:
        messages = [r[name] for r in result]
        assert len(set(messages)) == 1 and messages[0].startswith("ValueError: "), (name, messages)
        for f in fragments:
            assert f in messages[0], (name, f, messages[0])

    same_everywhere("groups_differ", "functional_graph: the ranks were given different inputs",
                    "groups: chunk:4 on rank 0; channel on rank 1")
    same_everywhere("groups_bad_on_one_rank", "'chanel' is not a grouping", "(on rank 1 of 2)")
    same_everywhere("groups_unfit", "1000000 nodes asked for but the layers have 56 units",
                    "(on rank 0 of 2)")
    same_everywhere("topology_groups_differ", "groups: chunk:4 on rank 0; chunk:5 on rank 1")
    assert all(r["still_in_step"] is True for r in result)


# ------------------------------------------------------------------------------ results and CLI


def test_results_settings_hold_the_grouping(tmp_path: Path) -> None:
    pairs = [np.array([[0.0, 0.1], [0.0, np.inf]]), np.array([[0.1, 0.2]])]
    base = {"max_epsilon": 0.3, "upper_dim": 2, "n_samples": 200}
    results.write_diagrams(tmp_path, 3, 0, pairs, n_nodes=90, essential_death=0.29, groups="channel",
                           **base)
    got = results.read_diagrams(tmp_path, 3, 0)
    assert got.groups == "channel" and got.settings() == {**base, "groups": "channel"}
    assert results.finished_diagrams(tmp_path, 3, 0, {**base, "groups": "channel"}) is not None
    assert results.finished_diagrams(tmp_path, 3, 0, {**base, "groups": "chunk:16"}) is None
    assert results.finished_diagrams(tmp_path, 3, 0, base) is None  # no grouping named: ungrouped
    # an archive written before grouping existed (no 'groups' entry) is ungrouped
    npz = results.diagram_path(tmp_path, 3, 0)
    with np.load(npz) as z:
        old = {k: z[k] for k in z.files if k != "groups"}
    np.savez(npz, **old)
    assert results.read_diagrams(tmp_path, 3, 0).groups == "units"
    assert results.finished_diagrams(tmp_path, 3, 0, base) is not None
    assert results.finished_diagrams(tmp_path, 3, 0, {**base, "groups": "channel"}) is None


def test_cli_groups_flag_recomputes_epochs_of_another_grouping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from topodnn.cli import main

    common = ["--net", "lenet", "--dataset", "mnist", "--save-path", str(tmp_path), "--n-train", "300",
              "--n-test", "200", "--no-progress", "--n-samples", "200", "--upper-dim", "2"]
    assert main(["run", "--n_epochs_train", "0", "--epochs_test", "0", *common]) == 0
    folder = tmp_path / "lenet_mnist"
    npz = folder / "dgm_epc0_trl0.npz"
    with np.load(npz) as z:
        assert str(z["groups"]) == "units" and int(z["n_nodes"]) == 1820
    capsys.readouterr()

    def run(*extra: str) -> str:
        assert main(["run", "--train", "0", "--epochs_test", "0", *common, *extra]) == 0
        return capsys.readouterr().out

    out = run("--groups", "channel")
    assert "results exist" not in out and "90 nodes (groups channel)" in out
    with np.load(npz) as z:
        assert str(z["groups"]) == "channel" and int(z["n_nodes"]) == 10 + 20 + 50 + 10
    assert "results exist" in run("--groups", "channel")
    out = run("--groups", "chunk:16")
    assert "results exist" not in out and "115 nodes (groups chunk:16)" in out  # 90 + 20 + 4 + 1
    summary = json.loads((folder / "summaries_trl0.json").read_text())
    assert summary["epochs"]["0"]["groups"] == "chunk:16"
    for bad, fragment in (("chanel", "'chanel' is not a grouping"), ("chunk:0", "integer >= 1")):
        assert main(["run", "--train", "0", "--epochs_test", "0", *common, "--groups", bad]) == 2
        err = capsys.readouterr().err
        assert "--groups" in err and fragment in err
