"""topodnn.pipeline: model → functional graph → diagrams in ε = (1 − |corr|)/2 → summaries."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from ripser import ripser
from torch import nn

import topodnn
from topodnn import pipeline
from topodnn.graph import functional_graph
from topodnn.pipeline import (
    EPSILON_PER_DISTANCE,
    distance_of_epsilon,
    epsilon_of_distance,
    graph_topology,
    model_topology,
    topology,
)
from topodnn.summaries import summarise_diagrams

from small_nets import SmallConv


@pytest.fixture
def small_model() -> SmallConv:
    torch.manual_seed(0)
    return SmallConv()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _sorted_positive(d: np.ndarray) -> np.ndarray:
    d = d[d[:, 1] > d[:, 0]]
    return d[np.lexsort((d[:, 1], d[:, 0]))]


def test_the_convention_is_half_the_distance() -> None:
    assert EPSILON_PER_DISTANCE == 0.5
    assert epsilon_of_distance(0.6) == pytest.approx(0.3)
    assert distance_of_epsilon(0.3) == pytest.approx(0.6)
    np.testing.assert_array_equal(epsilon_of_distance(np.array([0.0, 1.0])), [0.0, 0.5])


def test_topology_matches_ripser_on_halved_graph(small_model: SmallConv) -> None:
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    dgms = topology(small_model, x, layers=["act2", "out"], max_dim=1, max_epsilon=0.3,
                    dtype=np.float64, progress=False)
    D = functional_graph(small_model, x, layers=["act2", "out"], progress=False) / 2
    ref = ripser(D, maxdim=1, thresh=0.3, distance_matrix=True)["dgms"]
    assert len(dgms) == 2
    for got, want in zip(dgms, ref):
        got, want = _sorted_positive(got), _sorted_positive(want)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_topodnn_topology_is_the_pipeline_s() -> None:
    assert topodnn.topology is pipeline.topology


def test_model_topology_hands_halved_graph_to_engine(
    small_model: SmallConv, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring, whatever the engine: the graph cut at 2 max_epsilon and halved."""
    calls = []

    def fake_persistence(distances, max_dim=1, threshold=np.inf, *, comm=None, verbose=False):
        calls.append((distances.copy(), max_dim, threshold, comm))
        return [np.zeros((0, 2))] * (max_dim + 1)

    from topodnn import engine

    monkeypatch.setattr(engine, "persistence", fake_persistence)
    out = model_topology(small_model, images, max_dim=2, max_epsilon=0.25, dtype=np.float64,
                         block_size=40, progress=False)
    assert len(out.diagrams) == 3 and len(calls) == 1
    G, max_dim, thr, comm = calls[0]
    assert max_dim == 2 and thr == 0.25 and comm is None
    full = functional_graph(small_model, images, dtype=np.float64, progress=False)
    want = (full <= 0.5) & ~np.eye(full.shape[0], dtype=bool)
    got = G.toarray() != 0
    got |= sp.csr_matrix((np.ones(G.nnz), G.indices, G.indptr), shape=G.shape).toarray() != 0
    assert np.array_equal(got, want)
    np.testing.assert_allclose(G.toarray()[want], full[want] / 2, atol=1e-12, rtol=0)
    assert out.n_nodes == full.shape[0] and out.n_samples == 60
    assert out.n_edges == int(want.sum()) // 2
    assert out.max_epsilon == 0.25 and out.max_dim == 2
    assert set(out.timings) == {"graph", "persistence"}


def test_graph_topology_leaves_the_graph_alone_by_default() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    D /= D.max()
    keep = (D <= 0.6) & ~np.eye(30, dtype=bool)
    G = sp.csr_matrix((D[keep], np.nonzero(keep)), shape=D.shape)
    before = G.data.copy()
    dgms = graph_topology(G, max_dim=1, max_epsilon=0.3)
    np.testing.assert_array_equal(G.data, before)
    ref = ripser(D / 2, maxdim=1, thresh=0.3, distance_matrix=True)["dgms"]
    for got, want in zip(dgms, ref):
        np.testing.assert_allclose(_sorted_positive(got), _sorted_positive(want), atol=1e-12)


def test_summaries_use_the_topology_s_max_epsilon(small_model: SmallConv, images: torch.Tensor) -> None:
    out = model_topology(small_model, images, max_dim=1, max_epsilon=0.2, progress=False)
    n = out.n_nodes
    assert out.summaries() == summarise_diagrams(out.diagrams, max_epsilon=0.2, n_nodes=n)
    assert out.summaries(min_persistence=0.0) == summarise_diagrams(
        out.diagrams, max_epsilon=0.2, min_persistence=0.0, n_nodes=n)


@pytest.mark.parametrize("eps", [0.0, 0.6, -1, "0.3", None])
def test_bad_max_epsilon(small_model: SmallConv, images: torch.Tensor, eps) -> None:
    with pytest.raises(ValueError, match="max_epsilon"):
        model_topology(small_model, images, max_epsilon=eps, progress=False)


def test_threshold_is_set_by_the_pipeline(small_model: SmallConv, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="threshold"):
        topology(small_model, images, threshold=0.2, progress=False)
    with pytest.raises(ValueError, match="max_dim"):
        topology(small_model, images, max_dim=-1, progress=False)


def test_graph_topology_refuses_a_dense_matrix() -> None:
    with pytest.raises(ValueError, match="scipy.sparse"):
        graph_topology(np.zeros((3, 3)))


def test_model_topology_summaries_are_per_node_too(small_model: SmallConv, images: torch.Tensor) -> None:
    topo = model_topology(small_model, images, max_dim=1, n_samples=40, progress=False)
    s = topo.summaries()
    for q in (0, 1):
        assert s[q]["n_pairs_per_node"] == pytest.approx(s[q]["n_pairs"] / topo.n_nodes)
        assert s[q]["betti_max_per_node"] == pytest.approx(s[q]["betti_max"] / topo.n_nodes)
