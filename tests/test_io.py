"""topodnn.io: DIPHA readers/writers (byte-exact round trips, layouts, validation)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

from topodnn import io


def test_read_diagram_sphere(dipha_test_data):
    dg = io.read_diagram(dipha_test_data / "sphere_3.diagram")
    rec = dg.records
    assert len(rec) == 39
    assert tuple(rec[0]) == (-1, 0.0, 0.9998730143722848)
    assert tuple(rec[1]) == (0, 0.0, 0.07552991895252115)
    assert tuple(rec[-1]) == (2, 0.6274564028746598, 0.8540778539424535)
    # essential H0 class reported in dimension 0 with death inf, after the finite pairs
    h0 = dg[0]
    assert h0.shape == (32, 2) and np.isinf(h0[-1, 1]) and np.isfinite(h0[:-1]).all()
    assert dg.max_dim == 2 and dg[5].shape == (0, 2)
    assert sum(len(v) for v in dg.pairs.values()) == 39


@pytest.mark.parametrize("name", ["sphere_3.diagram", "noise_4_8_def.diagram", "explicit.diagram", "ramp_3_16_def.diagram"])
def test_diagram_round_trip_bytes(name, dipha_test_data, tmp_path):
    src = dipha_test_data / name
    dg = io.read_diagram(src)
    io.write_diagram(tmp_path / "a", dg)
    assert (tmp_path / "a").read_bytes() == src.read_bytes()
    io.write_diagram(tmp_path / "b", dg.records[::-1])  # written sorted
    assert (tmp_path / "b").read_bytes() == src.read_bytes()
    mv = float(dg.records["death"][dg.records["dim"] < 0].max()) if (dg.records["dim"] < 0).any() else None
    io.write_diagram(tmp_path / "c", dg.pairs, max_value=mv)  # mapping form, inf -> max_value
    assert (tmp_path / "c").read_bytes() == src.read_bytes()


def test_distance_matrix_round_trip(dipha_test_data, tmp_path):
    src = dipha_test_data / "sphere_3_32.complex"
    D = io.read_distance_matrix(src)
    assert D.shape == (32, 32) and D.dtype == np.float64
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)
    io.write_distance_matrix(tmp_path / "d", D)
    assert (tmp_path / "d").read_bytes() == src.read_bytes()
    assert io.file_type(src) == 7


@pytest.mark.parametrize("name", ["sphere_3_32_0.3.complex", "sphere_3_32_0.8.complex", "sphere_3_32_2.complex"])
def test_sparse_round_trip(name, dipha_test_data, tmp_path):
    src = dipha_test_data / name
    M = io.read_sparse_distance_matrix(src)
    assert sp.issparse(M) and M.shape == (32, 32)
    assert (M != M.T).nnz == 0
    io.write_sparse_distance_matrix(tmp_path / "s", M)
    assert (tmp_path / "s").read_bytes() == src.read_bytes()
    # entries are the full matrix's entries <= 2 U
    D = io.read_distance_matrix(dipha_test_data / "sphere_3_32.complex")
    U = float(name.split("_")[-1].removesuffix(".complex"))
    expect = (D <= 2 * U) & ~np.eye(32, dtype=bool)
    assert np.array_equal(M.toarray() != 0, expect)


def test_sparse_keeps_zero_distances(tmp_path):
    M = sp.csr_matrix((np.array([0.0, 0.0, 2.0, 2.0]), np.array([1, 0, 2, 1]), np.array([0, 1, 3, 4])), shape=(3, 3))
    io.write_sparse_distance_matrix(tmp_path / "z", M)
    back = io.read_sparse_distance_matrix(tmp_path / "z")
    assert back.nnz == 4 and back[0, 1] == 0.0 and back[1, 2] == 2.0


def test_sparse_writer_rejects_asymmetric(tmp_path):
    M = sp.csr_matrix(np.array([[0, 1.0, 0], [1.0, 0, 1.0], [0, 0, 0]]))
    p = tmp_path / "asym"
    with pytest.raises(ValueError, match="not symmetric"):
        io.write_sparse_distance_matrix(p, M)
    assert not p.exists()
    with pytest.raises(ValueError, match="square"):
        io.write_sparse_distance_matrix(p, sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="self entry"):
        io.write_sparse_distance_matrix(p, sp.csr_matrix(np.ones((2, 2))))


def test_explicit_round_trip(dipha_test_data, tmp_path):
    for name, form in (("primal_explicit.complex", 0), ("dual_explicit.complex", 1)):
        src = dipha_test_data / name
        cx = io.read_explicit_complex(src)
        assert cx.form == form and cx.dim == 2 and len(cx.dims) == 696 and len(cx.entries) == 1920
        assert len(cx.offsets) == 697 and cx.offsets[-1] == 1920
        io.write_explicit_complex(tmp_path / name, cx)
        assert (tmp_path / name).read_bytes() == src.read_bytes()
    primal = io.read_explicit_complex(dipha_test_data / "primal_explicit.complex")
    # every edge has 2 boundary vertices, every triangle 3 boundary edges
    sizes = np.diff(primal.offsets)
    assert np.all(sizes == np.array([0, 2, 3])[primal.dims])
    assert set(primal.dims[primal.cell_list(int(np.argmax(primal.dims)))]) == {1}


def test_dualize_binding_matches_file(dipha_test_data, tmp_path):
    from topodnn import _core

    _core.dualize(str(dipha_test_data / "primal_explicit.complex"), str(tmp_path / "d"))
    assert (tmp_path / "d").read_bytes() == (dipha_test_data / "dual_explicit.complex").read_bytes()


def test_image_layout_and_round_trip(dipha_test_data, tmp_path):
    src = dipha_test_data / "noise_4_8.complex"
    im = io.read_image(src)
    assert im.shape == (8, 8, 8, 8)
    io.write_image(tmp_path / "i", im)
    assert (tmp_path / "i").read_bytes() == src.read_bytes()
    a = np.arange(6.0).reshape(2, 3)  # numpy shape (2, 3) -> g = (3, 2), x (last axis) fastest
    io.write_image(tmp_path / "a", a)
    words = np.fromfile(tmp_path / "a", dtype="<i8", count=6)
    assert words.tolist() == [io.MAGIC, 1, 6, 2, 3, 2]
    assert np.fromfile(tmp_path / "a", dtype="<f8", offset=48).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(io.read_image(tmp_path / "a"), a)
    assert (tmp_path / "a").stat().st_size == 32 + 8 * 2 + 8 * 6


def test_readers_raise_same_text_as_engine(bad_files):
    """Each reader raises exactly the engine's message (the CLI prints it after 'dipha: error: ')."""
    by_prefix = {
        "sparse": [io.read_sparse_distance_matrix],
        "explicit": [io.read_explicit_complex],
        "image": [io.read_image],
        "truncated": [io.read_distance_matrix],
        "oversized": [io.read_distance_matrix],
        "negative": [io.read_distance_matrix],
    }
    header_cases = [io.read_distance_matrix, io.read_sparse_distance_matrix, io.read_explicit_complex,
                    io.read_image, io.read_diagram]
    for name, (path, fragment) in bad_files.items():
        with pytest.raises(ValueError) as ref:
            io.validate_file(path)
        assert str(ref.value).startswith(f"{path}: ") and fragment in str(ref.value), name
        readers = by_prefix.get(name.split("_")[0], header_cases)
        for reader in readers:
            with pytest.raises(ValueError) as exc:
                reader(path)
            assert str(exc.value) == str(ref.value), (name, reader.__name__)


def test_reader_type_mismatch(dipha_test_data):
    with pytest.raises(ValueError, match=r"sphere_3_32.complex: is a file of type 7, expected type 1"):
        io.read_image(dipha_test_data / "sphere_3_32.complex")
    with pytest.raises(ValueError, match="not a DIPHA file"):
        io.file_type(dipha_test_data / "README.md")


def test_writer_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="square"):
        io.write_distance_matrix(tmp_path / "x", np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least one"):
        io.write_image(tmp_path / "x", np.ones((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        io.write_distance_matrix(tmp_path / "x", np.array([[0.0, np.nan], [np.nan, 0.0]]))
    assert not (tmp_path / "x").exists()
    bad = io.ExplicitComplex(form=0, dim=1, dims=np.array([0, 0, 1]), values=np.zeros(3),
                             offsets=np.array([0, 0, 0, 2]), entries=np.array([0, 5]))
    with pytest.raises(ValueError, match="cell id 5 out of range"):
        io.write_explicit_complex(tmp_path / "x", bad)


def _random_distances(rng, n, rounded):
    X = rng.normal(size=(n, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    return np.round(D, 1) if rounded else D  # rounding makes ties between edges


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparse", [False, True])
def test_records_from_pairs_equal_the_engines_and_the_executables(seed, sparse, bin_dir, tmp_path):
    """One record builder in Python, one in C++: the same bytes for the same distance matrix.

    ``records_from_pairs(persistence(D / 2))`` (what ``topodnn run`` writes) against
    ``_core._dipha_diagram_from_matrix(D)`` and the ``dipha`` executable's output on ``D``.
    """
    import subprocess

    import mpi4py.MPI  # noqa: F401  (MPI before the compiled module)

    from topodnn import _core
    from topodnn.engine import persistence

    rng = np.random.default_rng(seed)
    n, upper_dim = 24, 3
    D = _random_distances(rng, n, rounded=seed % 2 == 1)
    if sparse:
        cut = np.quantile(D[np.triu_indices(n, 1)], 0.6)
        M = sp.csr_matrix(np.where((D <= cut) & ~np.eye(n, dtype=bool), D, 0.0))
        M.eliminate_zeros()
        io.write_sparse_distance_matrix(tmp_path / "in.bin", M)
        pairs = persistence(M / 2, max_dim=upper_dim - 1)
        top = float(M.data.max()) / 2
        core = _core._dipha_diagram_from_matrix(np.zeros((0, 0)), M.indptr.astype(np.int64),
                                                M.indices.astype(np.int64), M.data, n, upper_dim, None)
    else:
        io.write_distance_matrix(tmp_path / "in.bin", D)
        pairs = persistence(D / 2, max_dim=upper_dim - 1)
        top = float(D.max()) / 2
        core = _core._dipha_diagram_from_matrix(D, None, None, None, n, upper_dim, None)
    io.write_diagram(tmp_path / "ours.bin", io.records_from_pairs(pairs, top))
    rec = np.zeros(len(core[0]), dtype=io.RECORD_DTYPE)
    rec["dim"], rec["birth"], rec["death"] = core
    io.write_diagram(tmp_path / "core.bin", rec)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([str(bin_dir / "dipha"), "--upper_dim", str(upper_dim), str(tmp_path / "in.bin"),
                           str(tmp_path / "exe.bin")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ours = (tmp_path / "ours.bin").read_bytes()
    assert ours == (tmp_path / "core.bin").read_bytes()
    assert ours == (tmp_path / "exe.bin").read_bytes()
    assert io.read_diagram(tmp_path / "ours.bin").max_dim >= 1  # not only components


def test_records_from_pairs_layout():
    rec = io.records_from_pairs({1: [[0.15, 0.25], [0.12, np.inf]], 0: [[0.0, 0.2], [0.0, np.inf], [0.0, 0.1]]}, 0.29)
    assert rec.dtype == io.RECORD_DTYPE
    assert rec.tolist() == [(-2, 0.12, 0.29), (-1, 0.0, 0.29), (0, 0.0, 0.1), (0, 0.0, 0.2), (1, 0.15, 0.25)]
    as_list = io.records_from_pairs([np.array([[0.0, 0.2], [0.0, np.inf], [0.0, 0.1]]),
                                     np.array([[0.15, 0.25], [0.12, np.inf]])], 0.29)
    assert as_list.tolist() == rec.tolist()
    assert io.records_from_pairs([], 1.0).shape == (0,)
    assert io.records_from_pairs([np.zeros((0, 2)), np.zeros((0, 2))], 1.0).shape == (0,)
    with pytest.raises(ValueError, match="dimension must be >= 0"):
        io.records_from_pairs({-1: [[0.0, 1.0]]}, 1.0)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    """Writers are atomic: an interrupted or invalid write leaves the old file and no temporary."""
    path = tmp_path / "d.diagram"
    io.write_diagram(path, {0: [[0.0, 1.0], [0.0, np.inf]]}, max_value=1.0)
    good = path.read_bytes()
    real = np.ascontiguousarray
    calls = []

    def failing_second_chunk(a, *args, **kwargs):  # the header is written, the records fail
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(a, *args, **kwargs)

    monkeypatch.setattr(io.np, "ascontiguousarray", failing_second_chunk)
    with pytest.raises(OSError, match="disk full"):
        io.write_diagram(path, {0: [[0.0, 2.0]]}, max_value=2.0)
    monkeypatch.undo()
    assert len(calls) == 2
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.diagram"]

    # a result that fails validation: the message names the target, the old file stays
    matrix = tmp_path / "m.bin"
    io.write_sparse_distance_matrix(matrix, sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]])))
    before = matrix.read_bytes()
    asym = sp.csr_matrix(np.array([[0, 1.0, 0], [1.0, 0, 1.0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="not symmetric") as info:
        io.write_sparse_distance_matrix(matrix, asym)
    assert str(info.value).startswith(f"{matrix}: ")
    assert matrix.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.diagram", "m.bin"]


def _dipha_pairs(dims: np.ndarray, births: np.ndarray, deaths: np.ndarray, max_dim: int) -> list:
    """DIPHA records as per-dimension (birth, death) arrays in full (not halved) distances:
    DIPHA halves every value and stores an essential class of dimension q as dim -q-1 with death
    the largest value; here its death is inf. Pairs of zero length are dropped."""
    out = []
    for q in range(max_dim + 1):
        fin = dims == q
        ess = dims == -q - 1
        a = np.concatenate([np.c_[births[fin], deaths[fin]], np.c_[births[ess], np.full(ess.sum(), np.inf)]])
        a = 2 * a[a[:, 0] != a[:, 1]]
        out.append(a[np.lexsort((a[:, 1], a[:, 0]))])
    return out


def _assert_dipha_diagram(ours: list, path) -> None:
    """``ours`` (H0..H2 from topodnn.persistence) is the diagram the dipha engine gives on ``path``."""
    from topodnn import _core

    dims, births, deaths = _core.compute_diagram(str(path), upper_dim=3)
    for q, (a, b) in enumerate(zip(ours, _dipha_pairs(dims, births, deaths, 2))):
        a = a[np.lexsort((a[:, 1], a[:, 0]))]
        assert a.shape == b.shape, f"H{q}"
        np.testing.assert_array_equal(a, b, err_msg=f"H{q}")


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_file_whose_rows_disagree_reads_as_dipha_does(tmp_path, seed):
    """DIPHA takes the weight of {i, j} from row max(i, j): the reader returns that value in both
    entries, and persistence of the result is dipha's diagram of the file."""
    import mpi4py.MPI  # noqa: F401
    from topodnn.engine import persistence

    rng = np.random.default_rng(seed)
    n = 18
    X = rng.normal(size=(n, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    keep = (D < np.quantile(D, 0.6)) & ~np.eye(n, dtype=bool)
    stored = np.where(np.tril(np.ones((n, n), dtype=bool)), D, rng.uniform(0.1, 3.0, (n, n)))
    rows, cols = np.nonzero(keep)
    M = sp.csr_matrix((stored[rows, cols], (rows, cols)), shape=(n, n))  # rows disagree
    path = tmp_path / "rows_disagree.complex"
    io.write_sparse_distance_matrix(path, M)  # a valid file: the pattern is symmetric
    raw = io.read_sparse_distance_matrix(path, raw=True)
    assert (raw != raw.T).nnz > 0 and np.array_equal(raw.toarray(), M.toarray())
    got = io.read_sparse_distance_matrix(path)
    assert (got != got.T).nnz == 0 and got.nnz == M.nnz
    lower = sp.tril(M, -1).toarray()
    np.testing.assert_array_equal(got.toarray(), lower + lower.T)
    _assert_dipha_diagram(persistence(got, max_dim=2), path)


def test_full_file_whose_triangles_disagree_reads_as_dipha_does(tmp_path):
    """DIPHA reads the strict lower triangle of a type-7 file: the reader returns it mirrored
    (diagonal 0), persistence of it is dipha's diagram; raw=True gives the stored values."""
    import mpi4py.MPI  # noqa: F401
    from topodnn.engine import persistence

    rng = np.random.default_rng(5)
    n = 16
    X = rng.normal(size=(n, 2))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    stored = np.where(np.tril(np.ones((n, n), dtype=bool), -1), D, rng.uniform(0.1, 3.0, (n, n)))
    path = tmp_path / "triangles_disagree.complex"
    io.write_distance_matrix(path, stored)
    np.testing.assert_array_equal(io.read_distance_matrix(path, raw=True), stored)
    got = io.read_distance_matrix(path)
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_array_equal(got, D - np.diag(np.diag(D)))
    _assert_dipha_diagram(persistence(got, max_dim=2), path)
