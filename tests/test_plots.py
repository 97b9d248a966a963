"""Plots render to valid PNGs with the expected artists, without touching global style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from topodnn.plots import (  # noqa: E402
    plot_betti_curves,
    plot_diagram,
    plot_life_midlife,
    plot_training,
)
from topodnn.summaries import betti_curve, summarise_diagrams  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def diagrams(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for q, k in enumerate((30, 20, 10)):
        b = rng.uniform(0, 0.2, k)
        d = b + rng.uniform(0.0, 0.1, k)
        if q == 0:
            d[0] = np.inf
        out.append(np.column_stack([b, d]))
    return out


def save_png(ax, path: Path) -> None:
    ax.figure.savefig(path)
    plt.close(ax.figure)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_betti_curves_from_diagrams(tmp_path: Path) -> None:
    rc_before = dict(matplotlib.rcParams)
    per_epoch = {e: diagrams(e) for e in (0, 1, 5)}
    ax = plot_betti_curves(per_epoch, dim=1, smooth=True)
    assert len(ax.lines) == 3
    assert ax.get_title() == "betti_1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["epoch 0", "epoch 1", "epoch 5"]
    assert len({tuple(line.get_color()) for line in ax.lines}) == 3
    x, y = ax.lines[0].get_data()
    assert x[0] == 0 and x[-1] == pytest.approx(0.3)
    save_png(ax, tmp_path / "betti.png")
    assert dict(matplotlib.rcParams) == rc_before


def test_betti_curves_from_curves_on_given_axes(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    curves = {e: betti_curve(diagrams(e)[2]) for e in (2, 10)}
    out = plot_betti_curves(curves, dim=2, ax=ax)
    assert out is ax
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), curves[10][1])
    assert ax.lines[0].get_drawstyle() == "steps-post"
    save_png(ax, tmp_path / "curves.png")


def test_betti_curves_missing_dimension_is_a_clear_error() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="no dimension 3"):
        plot_betti_curves({0: diagrams(0)}, dim=3, ax=ax)
    plt.close(fig)


def test_life_midlife(tmp_path: Path) -> None:
    summaries = {e: summarise_diagrams(diagrams(e)) for e in (0, 1, 3)}
    ax = plot_life_midlife(summaries, dim=1)
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 1, 3])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [summaries[e][1]["midlife"] for e in (0, 1, 3)])
    save_png(ax, tmp_path / "life.png")


def test_diagram_essential_at_top(tmp_path: Path) -> None:
    dgms = diagrams(7)
    ax = plot_diagram(dgms)
    assert len(ax.lines) == 2  # diagonal + infinity line
    assert len(ax.collections) == 3
    ys = ax.collections[0].get_offsets()[:, 1]
    finite_max = max(np.max(d[np.isfinite(d)]) for d in dgms)
    assert ys.max() > finite_max
    assert ax.get_yticklabels()[-1].get_text() == "∞"
    save_png(ax, tmp_path / "diagram.png")
    ax = plot_diagram({1: dgms[1][:, :]})
    assert len(ax.lines) == 1  # no essential class, no infinity line
    plt.close(ax.figure)


@pytest.mark.parametrize("as_records", [False, True])
def test_training(tmp_path: Path, as_records: bool) -> None:
    hist = {"epoch": [0, 1, 2], "train_acc": [0.1, 0.6, 0.8], "test_acc": [0.1, 0.55, 0.7]}
    if as_records:
        hist = [dict(zip(hist, v)) for v in zip(*hist.values())]
    ax = plot_training(hist)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.1, 0.55, 0.7])
    save_png(ax, tmp_path / "train.png")
    with pytest.raises(ValueError, match="test accuracy"):
        plot_training({"train_acc": [1.0]})
