"""Betti curves and summaries: hand-computed answers, the original's bugs pinned, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topodnn.summaries import (
    COUNT_KEYS,
    PER_NODE_KEYS,
    SUMMARY_KEYS,
    betti_curve,
    filter_pairs,
    smooth,
    summarise,
    summarise_diagrams,
)

PAIRS = np.array([[0.0, 0.1], [0.05, 0.2], [0.1, 0.15], [0.12, np.inf]])


def brute_beta(pairs: np.ndarray, eps: float) -> int:
    return int(sum(1 for b, d in pairs if b <= eps < d))


def test_betti_curve_events_hand_computed() -> None:
    eps, beta = betti_curve(PAIRS)
    np.testing.assert_array_equal(eps, [0.0, 0.05, 0.1, 0.12, 0.15, 0.2])
    # [0,.05): 1; [.05,.1): 2; [.1,.12): pair0 dead, pair2 born -> 2; [.12,.15): 3;
    # [.15,.2): 2; [.2, inf): only the essential class.
    np.testing.assert_array_equal(beta, [1, 2, 2, 3, 2, 1])
    assert beta.dtype == np.int64


def test_birth_at_eps_counts_death_at_eps_does_not() -> None:
    pairs = np.array([[0.1, 0.2]])
    _, beta = betti_curve(pairs, grid=[0.0999, 0.1, 0.15, 0.2, 0.2001])
    np.testing.assert_array_equal(beta, [0, 1, 1, 0, 0])


def test_zero_persistence_pair_is_never_counted() -> None:
    _, beta = betti_curve([[0.1, 0.1]], grid=[0.0, 0.1, 0.2])
    np.testing.assert_array_equal(beta, [0, 0, 0])


def test_essential_stays_alive_to_the_end() -> None:
    eps, beta = betti_curve([[0.05, np.inf]], grid=5, max_epsilon=0.3)
    np.testing.assert_allclose(eps, np.linspace(0, 0.3, 5))
    np.testing.assert_array_equal(beta, [0, 1, 1, 1, 1])


def test_regression_unsorted_input_gives_the_same_curve() -> None:
    """The original built the curve from unsorted event lists; order must not matter."""
    rng = np.random.default_rng(1)
    births = rng.uniform(0, 0.2, 50)
    pairs = np.column_stack([births, births + rng.uniform(0.001, 0.1, 50)])
    pairs[::7, 1] = np.inf
    order = np.argsort(pairs[:, 0])
    ref = betti_curve(pairs[order])
    for _ in range(5):
        perm = rng.permutation(len(pairs))
        got = betti_curve(pairs[perm])
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    grid = np.linspace(0, 0.3, 101)
    _, beta = betti_curve(pairs[rng.permutation(len(pairs))], grid)
    np.testing.assert_array_equal(beta, [brute_beta(pairs, e) for e in grid])


def test_grid_and_event_curves_agree_at_event_points() -> None:
    rng = np.random.default_rng(2)
    b = rng.uniform(0, 0.25, 200).round(3)  # ties on purpose
    pairs = np.column_stack([b, (b + rng.uniform(0, 0.1, 200)).round(3)])
    eps, beta = betti_curve(pairs)
    _, beta_grid = betti_curve(pairs, grid=eps)
    np.testing.assert_array_equal(beta, beta_grid)
    # the step function is constant between events: check midpoints by brute force
    mids = (eps[:-1] + eps[1:]) / 2
    _, beta_mid = betti_curve(pairs, grid=mids)
    np.testing.assert_array_equal(beta_mid, beta[:-1])
    np.testing.assert_array_equal(beta_mid, [brute_beta(pairs, e) for e in mids])


def test_empty_diagram() -> None:
    eps, beta = betti_curve(np.zeros((0, 2)))
    assert eps.size == 0 and beta.size == 0
    _, beta = betti_curve([], grid=4)
    np.testing.assert_array_equal(beta, [0, 0, 0, 0])
    s = summarise(np.zeros((0, 2)))
    assert s["n_pairs"] == 0 and s["betti_max"] == 0 and s["area"] == 0.0
    assert math.isnan(s["life"]) and math.isnan(s["midlife"]) and math.isnan(s["eps_at_max"])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 3)), "shape"),
        ([[0.1, np.nan]], "NaN"),
        ([[0.2, 0.1]], "dies before"),
        ([[np.inf, np.inf]], "infinite birth"),
    ],
)
def test_bad_pairs_raise(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        betti_curve(bad)
    with pytest.raises(ValueError, match=match):
        summarise(bad)


def test_bad_grid_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        betti_curve(PAIRS, grid=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        betti_curve(PAIRS, grid=np.zeros((2, 2)))


def test_filter_threshold_strict_like_the_original() -> None:
    pairs = np.array([[0.0, 0.02], [0.0, 0.0201], [0.1, 0.11], [0.1, np.inf], [0.3, 0.3]])
    kept = filter_pairs(pairs)
    np.testing.assert_array_equal(kept, pairs[[1, 3]])
    kept = filter_pairs(pairs, 0.02, strict=False)
    np.testing.assert_array_equal(kept, pairs[[0, 1, 3]])
    np.testing.assert_array_equal(filter_pairs(pairs, 0.0), pairs[[0, 1, 2, 3]])
    with pytest.raises(ValueError, match="min_persistence"):
        filter_pairs(pairs, -1)


def test_regression_essential_classes_born_near_the_end_are_filtered() -> None:
    """An essential class has persistence max_epsilon - birth (DIPHA's death = the largest value).

    Taking death = inf literally kept (0.29, inf) and (0.295, inf) and gave β-max 2 at ε 0.295;
    both live less than 0.02 within ε ≤ 0.3 and the original dropped them.
    """
    pairs = np.array([[0.29, np.inf], [0.295, np.inf], [0.2, 0.25]])
    s = summarise(pairs, max_epsilon=0.3, min_persistence=0.02)
    assert s["betti_max"] == 1
    assert s["eps_at_max"] == pytest.approx(0.2)
    assert s["n_pairs"] == 1 and s["n_essential"] == 0
    assert s["life"] == pytest.approx(0.05)
    np.testing.assert_array_equal(filter_pairs(pairs, 0.02, max_epsilon=0.3), pairs[[2]])
    # the essential classes that live long enough within the range stay, with death inf
    kept = filter_pairs(np.array([[0.27, np.inf], [0.285, np.inf]]), 0.02, max_epsilon=0.3)
    np.testing.assert_array_equal(kept, [[0.27, np.inf]])
    # persistence exactly min_persistence (binary-exact values): dropped if strict, kept if not
    exact = np.array([[0.25, np.inf]])
    assert filter_pairs(exact, 0.25, max_epsilon=0.5).shape == (0, 2)
    assert filter_pairs(exact, 0.25, max_epsilon=0.5, strict=False).shape == (1, 2)
    # without max_epsilon the filter cannot judge an essential class and keeps it
    assert filter_pairs(pairs, 0.02).shape == (3, 2)
    with pytest.raises(ValueError, match="max_epsilon"):
        filter_pairs(pairs, 0.02, max_epsilon=-1.0)


def test_counts_per_node() -> None:
    pairs = np.array([[0.0, 0.1], [0.05, 0.2], [0.12, np.inf]])
    plain = summarise(pairs, max_epsilon=0.3)
    s = summarise(pairs, max_epsilon=0.3, n_nodes=410)
    assert tuple(s)[: len(SUMMARY_KEYS)] == SUMMARY_KEYS
    assert set(s) - set(plain) == set(PER_NODE_KEYS)
    for key in COUNT_KEYS:
        assert s[f"{key}_per_node"] == pytest.approx(plain[key] / 410)
    assert s["betti_max_per_node"] == pytest.approx(2 / 410)
    assert s["n_pairs_per_node"] == pytest.approx(3 / 410)
    assert s["area_per_node"] == pytest.approx((0.1 + 0.15 + 0.18) / 410)
    out = summarise_diagrams([pairs, pairs[:1]], max_epsilon=0.3, n_nodes=1820)
    assert out[1]["n_pairs_per_node"] == pytest.approx(1 / 1820)
    # twice the graph with the same cavities per node: the same per-node summaries
    doubled = summarise(np.vstack([pairs, pairs]), max_epsilon=0.3, n_nodes=820)
    assert doubled["betti_max_per_node"] == pytest.approx(s["betti_max_per_node"])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_nodes"):
            summarise(pairs, n_nodes=bad)


def test_summarise_hand_computed() -> None:
    pairs = np.array([[0.0, 0.1], [0.05, 0.2], [0.1, 0.11], [0.12, np.inf]])
    s = summarise(pairs, max_epsilon=0.3)
    # [0.1, 0.11] is dropped (persistence 0.01 <= 0.02); essential death -> 0.3
    b = np.array([0.0, 0.05, 0.12])
    d = np.array([0.1, 0.2, 0.3])
    assert s["n_pairs"] == 3 and s["n_essential"] == 1
    assert s["life"] == pytest.approx(np.mean(d - b))
    assert s["midlife"] == pytest.approx(np.mean((b + d) / 2))
    assert s["betti_max"] == 2
    assert s["eps_at_max"] == pytest.approx(0.05)
    assert s["area"] == pytest.approx(np.sum(d - b))
    assert tuple(s) == SUMMARY_KEYS


def test_regression_midlife_is_the_papers_not_the_originals() -> None:
    """The original computed mean(death) + mean(birth)/2 (operator precedence)."""
    rng = np.random.default_rng(3)
    b = rng.uniform(0, 0.2, 30)
    d = b + rng.uniform(0.03, 0.1, 30)
    s = summarise(np.column_stack([b, d]))
    original = np.mean(d) + np.mean(b) / 2
    assert s["midlife"] == pytest.approx(np.mean((b + d) / 2))
    assert original - s["midlife"] == pytest.approx(np.mean(d) / 2)


def test_area_is_the_integral_of_the_curve() -> None:
    rng = np.random.default_rng(4)
    b = rng.uniform(0, 0.3, 40)
    pairs = np.column_stack([b, b + rng.uniform(0.03, 0.2, 40)])  # some deaths beyond 0.3
    pairs[:3, 1] = np.inf
    s = summarise(pairs, max_epsilon=0.3)
    grid = np.linspace(0, 0.3, 300001)
    _, beta = betti_curve(filter_pairs(pairs, max_epsilon=0.3), grid)
    riemann = float(np.sum(beta[:-1]) * (grid[1] - grid[0]))
    assert s["area"] == pytest.approx(riemann, abs=1e-3)


def test_summary_on_grid_matches_exact_when_grid_holds_events() -> None:
    eps, _ = betti_curve(filter_pairs(PAIRS))
    exact = summarise(PAIRS)
    on_grid = summarise(PAIRS, grid=eps)
    assert exact == on_grid


def test_summarise_diagrams_list_and_dict() -> None:
    dgms = [PAIRS, np.zeros((0, 2)), PAIRS[:2]]
    out = summarise_diagrams(dgms)
    assert sorted(out) == [0, 1, 2]
    assert out[0] == summarise(PAIRS)
    assert out[1]["n_pairs"] == 0
    assert summarise_diagrams({2: PAIRS[:2]})[2] == out[2]


def test_smooth() -> None:
    y = np.array([0, 0, 10, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    np.testing.assert_array_equal(smooth(y, 0.1), y)  # window 1: unchanged
    z = smooth(y, 0.3)  # window 3, centred
    np.testing.assert_allclose(z[:4], [0, 10 / 3, 10 / 3, 10 / 3])
    np.testing.assert_allclose(smooth(np.full(20, 4.0)), 4.0)  # edges not pulled to 0
    assert smooth(np.array([])).size == 0
    with pytest.raises(ValueError, match="fraction"):
        smooth(y, 0)
