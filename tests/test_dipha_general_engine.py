"""The general engine on known answers and against gudhi (single process, in-process).

Multi-rank behaviour of the same inputs is covered by test_dipha_regression.py.
"""

from __future__ import annotations

import mpi4py.MPI  # noqa: F401  (initialise MPI before the extension)
import numpy as np
import pytest
import scipy.sparse as sp

from topodnn import _core, io


def records(path, upper_dim=None, dual=False, general=True):
    dims, b, d = _core.compute_diagram(str(path), upper_dim, dual, general)
    return [(int(x), float(y), float(z)) for x, y, z in zip(dims, b, d)]


def by_dim(recs, max_q):
    """q -> sorted (k, 2) array, essential deaths as inf (same convention as io.read_diagram)."""
    out = {}
    for q in range(max_q + 1):
        rows = [(b, d) for k, b, d in recs if k == q] + [(b, np.inf) for k, b, _ in recs if k == -q - 1]
        out[q] = np.array(sorted(rows), dtype=float).reshape(-1, 2)
    return out


def gudhi_rips(D, max_dim, threshold=np.inf):
    import gudhi

    rc = gudhi.RipsComplex(distance_matrix=D, max_edge_length=threshold)
    st = rc.create_simplex_tree(max_dimension=max_dim)
    st.compute_persistence(homology_coeff_field=2, min_persistence=0)
    return {q: np.array(sorted(map(tuple, st.persistence_intervals_in_dimension(q) / 2)), dtype=float).reshape(-1, 2)
            for q in range(max_dim)}


def assert_same(ours, ref, max_q):
    for q in range(max_q + 1):
        a, b = ours[q], ref.get(q, np.empty((0, 2)))
        assert a.shape == b.shape, (q, a, b)
        assert np.allclose(a, b, rtol=0, atol=1e-12), (q, a, b)


def test_two_points(tmp_path):
    p = tmp_path / "two.complex"
    io.write_distance_matrix(p, np.array([[0.0, 3.0], [3.0, 0.0]]))
    assert records(p, 1) == [(-1, 0.0, 1.5), (0, 0.0, 1.5)]
    assert records(p, 1, dual=True) == [(-1, 0.0, 1.5), (0, 0.0, 1.5)]
    assert records(p, 2) == [(-1, 0.0, 1.5), (0, 0.0, 1.5)]
    assert records(p, 0) == []  # upper_dim 0: only vertices, top-dimension essentials suppressed
    q = tmp_path / "neg.complex"
    io.write_distance_matrix(q, np.array([[0.0, -1.0], [-1.0, 0.0]]))
    assert records(q, 1) == [(-1, 0.0, 0.0)]  # negative distance clamps to 0: zero-length pair dropped


def test_only_lower_triangle_is_read(tmp_path):
    D = np.array([[0.0, 100.0, 100.0], [1.0, 0.0, 100.0], [2.0, 4.0, 0.0]])
    p = tmp_path / "lower.complex"
    io.write_distance_matrix(p, D)
    assert records(p, 1) == [(-1, 0.0, 2.0), (0, 0.0, 0.5), (0, 0.0, 1.0)]


def test_circle_has_one_long_h1_bar(tmp_path):
    n = 12
    t = 2 * np.pi * np.arange(n) / n
    X = np.c_[np.cos(t), np.sin(t)]
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    p = tmp_path / "circle.complex"
    io.write_distance_matrix(p, D)
    recs = records(p, 2)
    h1 = [(b, d) for k, b, d in recs if k == 1]
    assert len(h1) == 1
    b, d = h1[0]
    assert b == pytest.approx(np.sin(np.pi / n))  # half the side of the 12-gon
    assert d - b > 0.3
    assert [r for r in recs if r[0] < 0] == [(-1, 0.0, max(r[2] for r in recs))]
    assert_same(by_dim(recs, 1), gudhi_rips(D, 2), 1)


def _octahedron(with_solid: bool) -> io.ExplicitComplex:
    """Boundary of the octahedron (a 2-sphere), optionally filled by one 3-cell (Z/2 boundary)."""
    verts = list(range(6))  # antipodal pairs (0,1), (2,3), (4,5)
    edges = [(a, b) for a in verts for b in verts if a < b and a // 2 != b // 2]
    tris = [(x, y, z) for x in (0, 1) for y in (2, 3) for z in (4, 5)]
    eid = {e: 6 + i for i, e in enumerate(edges)}
    dims, values, lists = [0] * 6, [0.0] * 6, [[] for _ in range(6)]
    for a, b in edges:
        dims.append(1)
        values.append(1.0)
        lists.append([a, b])
    for x, y, z in tris:
        dims.append(2)
        values.append(2.0)
        lists.append([eid[(x, y)], eid[(x, z)], eid[(y, z)]])
    if with_solid:
        dims.append(3)
        values.append(3.0)
        lists.append(list(range(6 + len(edges), 6 + len(edges) + len(tris))))
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])])
    return io.ExplicitComplex(form=0, dim=max(dims), dims=np.array(dims), values=np.array(values),
                              offsets=offsets, entries=np.array([c for x in lists for c in x]))


def test_octahedron_explicit(tmp_path):
    hollow = _octahedron(False)
    assert (hollow.dims == 1).sum() == 12 and (hollow.dims == 2).sum() == 8
    p = tmp_path / "oct.complex"
    io.write_explicit_complex(p, hollow)
    base = [(-1, 0.0, 2.0)] + [(0, 0.0, 1.0)] * 5 + [(1, 1.0, 2.0)] * 7
    assert records(p) == base  # the essential H2 class is top-dimensional: suppressed
    solid = tmp_path / "solid.complex"
    io.write_explicit_complex(solid, _octahedron(True))
    assert records(solid) == [(-1, 0.0, 3.0)] + base[1:] + [(2, 2.0, 3.0)]
    assert records(solid, upper_dim=2) == [(-1, 0.0, 3.0)] + base[1:]
    dual = tmp_path / "solid_dual.complex"
    _core.dualize(str(solid), str(dual))
    assert records(dual, dual=True) == records(solid)
    with pytest.raises(ValueError, match="--dual"):
        records(dual)


@pytest.mark.parametrize("seed", range(4))
def test_random_full_rips_vs_gudhi(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n, ud = (16, 3) if seed % 2 else (22, 2)
    X = rng.standard_normal((n, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    p = tmp_path / "full.complex"
    io.write_distance_matrix(p, D)
    ours = records(p, ud)
    assert records(p, ud, dual=True) == ours
    assert len(by_dim(ours, 1)[1]) > 0  # a non-trivial comparison
    assert_same(by_dim(ours, ud - 1), gudhi_rips(D, ud), ud - 1)
    # essential classes die at max_value = half the largest distance
    assert {r[2] for r in ours if r[0] < 0} == {D.max() / 2}


@pytest.mark.parametrize("seed", range(3))
def test_random_sparse_rips_vs_gudhi(seed, tmp_path):
    rng = np.random.default_rng(100 + seed)
    n = 40
    X = rng.random((n, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    t = 0.3
    p = tmp_path / "sparse.complex"
    io.write_sparse_distance_matrix(p, sp.csr_matrix(D * ((D <= t) & ~np.eye(n, dtype=bool))))
    ours = records(p, 2)
    assert records(p, 2, dual=True) == ours
    assert len(by_dim(ours, 1)[1]) > 0 and len(by_dim(ours, 0)[0]) > 1
    assert_same(by_dim(ours, 1), gudhi_rips(D, 2, threshold=t), 1)


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 4), (3, 4, 3, 3)])
def test_random_images_vs_gudhi(shape, tmp_path):
    import gudhi

    rng = np.random.default_rng(len(shape))
    img = rng.integers(0, 12, size=shape).astype(float)  # many ties
    p = tmp_path / "img.complex"
    io.write_image(p, img)
    ours = records(p)
    assert records(p, dual=True) == ours
    cc = gudhi.CubicalComplex(vertices=img)
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0)
    d = len(shape)
    ref = {q: np.array(sorted(map(tuple, cc.persistence_intervals_in_dimension(q))), dtype=float).reshape(-1, 2)
           for q in range(d)}
    assert_same(by_dim(ours, d - 1), ref, d - 1)
    assert {r[2] for r in ours if r[0] < 0} == {img.max()}


def test_sphere_general_matches_regression_file(dipha_test_data):
    recs = records(dipha_test_data / "sphere_3_32.complex", 3)
    ref = io.read_diagram(dipha_test_data / "sphere_3.diagram").records
    assert recs == [tuple(r) for r in ref.tolist()]


def test_degenerate_inputs(tmp_path):
    io.write_image(tmp_path / "line.complex", np.array([3.0, 1.0, 2.0, 0.0, 5.0]))  # 1-D image
    assert records(tmp_path / "line.complex") == [(-1, 0.0, 5.0), (0, 1.0, 2.0)]
    assert records(tmp_path / "line.complex", dual=True) == [(-1, 0.0, 5.0), (0, 1.0, 2.0)]
    io.write_distance_matrix(tmp_path / "n0.complex", np.zeros((0, 0)))
    assert records(tmp_path / "n0.complex", 2) == []
    io.write_distance_matrix(tmp_path / "n1.complex", np.zeros((1, 1)))
    assert records(tmp_path / "n1.complex", 2) == [(-1, 0.0, 0.0)]
    io.write_sparse_distance_matrix(tmp_path / "s3.complex", sp.csr_matrix((3, 3)))  # no edges
    assert records(tmp_path / "s3.complex", 2, dual=True) == [(-1, 0.0, 0.0)] * 3
    empty = io.ExplicitComplex(form=0, dim=0, dims=np.zeros(0, np.int64), values=np.zeros(0),
                               offsets=np.zeros(1, np.int64), entries=np.zeros(0, np.int64))
    io.write_explicit_complex(tmp_path / "e.complex", empty)
    assert records(tmp_path / "e.complex") == []


def test_compute_accepts_mpi4py_communicator(dipha_test_data):
    from mpi4py import MPI

    dims, _, _ = _core.compute_diagram(str(dipha_test_data / "primal_explicit.complex"), comm=MPI.COMM_SELF)
    assert len(dims) == 17


def test_relabelled_vertices_and_shifted_values(tmp_path):
    """Diagram invariant under vertex relabelling; Rips values scale with the distances."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((18, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    perm = rng.permutation(18)
    io.write_distance_matrix(tmp_path / "a.complex", D)
    io.write_distance_matrix(tmp_path / "b.complex", D[np.ix_(perm, perm)])
    io.write_distance_matrix(tmp_path / "c.complex", 4.0 * D)
    a, b, c = (records(tmp_path / f"{x}.complex", 2) for x in "abc")
    assert a == b
    assert c == [(k, 4.0 * x, 4.0 * y) for k, x, y in a]
    img = rng.random((6, 5, 4))
    io.write_image(tmp_path / "i.complex", img)
    io.write_image(tmp_path / "j.complex", img + 10.0)
    io.write_image(tmp_path / "k.complex", img.transpose(2, 0, 1))  # axes permuted
    i, j, k = (records(tmp_path / f"{x}.complex") for x in "ijk")
    assert [(d, x + 10.0, y + 10.0) for d, x, y in i] == j
    assert i == k


def test_dense_and_sparse_input_agree(dipha_test_data, tmp_path):
    full = dipha_test_data / "sphere_3_32.complex"
    _core.full_to_sparse(1e9, str(full), str(tmp_path / "all.complex"))
    assert records(tmp_path / "all.complex", 3) == records(full, 3)
    _core.full_to_sparse(0.5, str(full), str(tmp_path / "half.complex"))
    assert (tmp_path / "half.complex").read_bytes() == (dipha_test_data / "sphere_3_32_0.5.complex").read_bytes()
