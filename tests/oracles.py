"""Independent oracles shared by the tests: gudhi's Vietoris-Rips diagrams and how diagrams are
compared (rows sorted by (birth, death); zero-length pairs are not part of a diagram)."""

from __future__ import annotations

import gudhi
import numpy as np


def sorted_rows(a: np.ndarray) -> np.ndarray:
    """(k, 2) rows sorted by (birth, death)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def gudhi_persistence(st_: "gudhi.SimplexTree", max_dim: int) -> list:
    """Diagrams H0..H_max_dim of a simplex tree after its flag expansion to max_dim + 1, Z/2.

    ``persistence_dim_max``: also when no (max_dim+1)-simplex is present, H_max_dim is the
    complex's top dimension, which gudhi skips by default.
    """
    st_.expansion(max_dim + 1)
    st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True)
    out = []
    for q in range(max_dim + 1):
        b = st_.persistence_intervals_in_dimension(q).reshape(-1, 2)
        out.append(sorted_rows(b[b[:, 0] != b[:, 1]]))
    return out


def gudhi_diagrams(D: np.ndarray, max_dim: int, threshold: float = np.inf) -> list:
    """gudhi's Rips diagrams of a distance matrix; gudhi reads the lower triangle D[i][j], j < i."""
    lower = [list(np.asarray(D, dtype=np.float64)[i, :i]) for i in range(len(D))]
    st_ = gudhi.RipsComplex(distance_matrix=lower, max_edge_length=threshold).create_simplex_tree(
        max_dimension=1
    )
    return gudhi_persistence(st_, max_dim)


def assert_same(ours: list, ref: list) -> None:
    """Same number of dimensions and, in each, exactly the same pairs."""
    assert len(ours) == len(ref)
    for q, (a, b) in enumerate(zip(ours, ref)):
        a, b = sorted_rows(a), sorted_rows(b)
        assert a.shape == b.shape, f"H{q}: {a.shape[0]} pairs, expected {b.shape[0]}"
        np.testing.assert_array_equal(a, b, err_msg=f"H{q}")
