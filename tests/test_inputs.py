"""What the Python entry points accept and refuse: rounding-level asymmetry, sparse duplicates,
value types, torch tensors (half, bfloat16, sparse, meta), array layouts, model input dtypes.

Each test is named after the behaviour it pins; results are compared with ripser and gudhi."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import mpi4py.MPI  # noqa: F401  (MPI before the compiled core)
from topodnn.engine import MAX_DIM, ROUNDING_ULPS, persistence
from topodnn.graph import collect_activations, correlation_distances, functional_graph
from topodnn.pipeline import topology

from oracles import assert_same, gudhi_diagrams, sorted_rows

import gudhi
ripser = pytest.importorskip("ripser")


def rounded_rows(a: np.ndarray) -> np.ndarray:
    """Rows sorted by (birth, death) rounded to 1e-6: the order of float32 results."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    return a[np.lexsort((np.round(a[:, 1], 6), np.round(a[:, 0], 6)))]


def lower_symmetrised(D: np.ndarray) -> np.ndarray:
    L = np.tril(D, -1)
    return L + L.T


def corrcoef_distances(seed: int, n: int = 40, m: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) @ rng.normal(size=(3, m)) + rng.normal(size=(n, m))
    return 1 - np.abs(np.corrcoef(X))


def point_distances(seed: int, n: int = 20) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, 0)
    return D


# ------------------------------------------------------------------ symmetry up to rounding


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corrcoef_distance_matrix_is_accepted(seed):
    D = corrcoef_distances(seed)
    # the case in point: np.corrcoef is not bit-symmetric and its diagonal is not exactly 1
    assert not np.array_equal(D, D.T) and np.abs(np.diag(D)).max() > 0
    ours = persistence(D, max_dim=2, threshold=0.8)
    assert_same(ours, gudhi_diagrams(D, 2, 0.8))  # gudhi also reads the lower triangle
    # ripser computes in float32 and takes the diagonal as vertex births (here 0 or ~1e-16)
    ref = ripser.ripser(D, maxdim=2, thresh=0.8, distance_matrix=True)["dgms"]
    for q in range(3):
        b = ref[q][ref[q][:, 0] != ref[q][:, 1]]
        assert ours[q].shape == b.shape
        np.testing.assert_allclose(rounded_rows(ours[q]), rounded_rows(b), rtol=0, atol=1e-6)
    # the sparse graph of the same matrix: same rule, same diagrams
    keep = (D <= 0.8) & ~np.eye(len(D), dtype=bool)
    S = sp.csr_matrix((D[keep], np.nonzero(keep)), shape=D.shape)
    assert (S != S.T).nnz > 0
    assert_same(persistence(S, max_dim=2), ours)


def test_corrcoef_float32_distance_matrix_is_accepted():
    # float32 rounding: torch.corrcoef in float32, then the same perturbation scheme at float32 ulps
    g = torch.Generator().manual_seed(4)
    X = torch.randn(30, 80, generator=g)
    D = (1 - torch.corrcoef(X).abs()).numpy()
    assert D.dtype == np.float32
    rng = np.random.default_rng(4)
    i, j = np.tril_indices(30, -1)
    pick = rng.random(len(i)) < 0.3
    D[j[pick], i[pick]] = np.nextafter(D[i[pick], j[pick]], np.float32(2))  # one ulp apart
    D[np.diag_indices(30)] = np.float32(np.finfo(np.float32).eps)
    assert not np.array_equal(D, D.T)
    assert_same(persistence(D, max_dim=1), gudhi_diagrams(D.astype(np.float64), 1))
    # the float32 tolerance scales with float32's eps, not float64's
    E = D.copy()
    E[5, 2] = E[2, 5] + np.float32(2 * ROUNDING_ULPS * np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match=r"not symmetric beyond rounding: D\[2, 5\]"):
        persistence(E, max_dim=1)


def test_asymmetry_bound_is_eight_ulps_of_the_largest_entry():
    D = point_distances(3)
    scale = np.abs(D).max()
    tol = ROUNDING_ULPS * np.finfo(np.float64).eps * scale
    ok = D.copy()
    ok[2, 7] += 0.9 * tol
    ok[4, 4] = -0.9 * tol
    persistence(ok, max_dim=1)
    bad = D.copy()
    bad[2, 7] += 1.5 * tol
    with pytest.raises(ValueError, match=r"D\[2, 7\] = .* but D\[7, 2\] = .*tolerance"):
        persistence(bad, max_dim=1)
    bad = D.copy()
    bad[4, 4] = 1.5 * tol
    with pytest.raises(ValueError, match=r"diagonal.*D\[4, 4\]"):
        persistence(bad, max_dim=1)
    # absolute, not elementwise relative: a tiny entry may carry the rounding of the largest one
    tiny = D.copy()
    tiny[1, 0] = tiny[0, 1] = 1e-9
    tiny[0, 1] += 0.9 * tol  # relative difference ~1e-6
    persistence(tiny, max_dim=1)


def test_rounding_asymmetry_uses_the_lower_triangle():
    # {2, 0} is shorter than {2, 1} in the lower triangle but longer in the upper one
    a = 2.0
    ulp = np.spacing(a)
    D = np.array([[0.0, 1.0, a + 2 * ulp], [1.0, 0.0, a + ulp], [a, a + ulp, 0.0]])
    ours = persistence(D, max_dim=0)
    np.testing.assert_array_equal(sorted_rows(ours[0]), [[0, 1], [0, a], [0, np.inf]])
    assert_same(ours, gudhi_diagrams(lower_symmetrised(D), 0))
    upper = np.triu(D, 1) + np.triu(D, 1).T
    assert not np.array_equal(sorted_rows(persistence(upper, max_dim=0)[0]), sorted_rows(ours[0]))
    # a random matrix with rounding-level noise on both triangles: the lower one decides
    rng = np.random.default_rng(9)
    A = rng.integers(1, 6, size=(16, 16)).astype(float)  # many ties, broken by the noise
    A = np.triu(A, 1) + np.triu(A, 1).T
    noisy = A + rng.integers(-3, 4, size=A.shape) * np.spacing(A)
    np.fill_diagonal(noisy, 0)
    assert not np.array_equal(noisy, noisy.T)
    assert_same(persistence(noisy, max_dim=2), gudhi_diagrams(lower_symmetrised(noisy), 2))
    S = sp.csr_matrix(noisy)
    assert_same(persistence(S, max_dim=2), gudhi_diagrams(lower_symmetrised(noisy), 2))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 20), ulps=st.integers(1, 4),
       dtype=st.sampled_from([np.float64, np.float32]), ties=st.booleans())
def test_rounding_noise_on_random_matrices_equals_gudhi_on_the_lower_triangle(seed, n, ulps, dtype,
                                                                               ties):
    rng = np.random.default_rng(seed)
    A = rng.integers(1, 5, size=(n, n)).astype(dtype) if ties else rng.random((n, n)).astype(dtype)
    D = np.triu(A, 1) + np.triu(A, 1).T
    noise = rng.integers(-ulps, ulps + 1, size=D.shape).astype(dtype) * np.spacing(D.max())
    noisy = (D + noise).astype(dtype)  # both triangles and the diagonal, up to 4 ulps of the max
    noisy = np.where(noisy < 0, dtype(0), noisy)
    ref = gudhi_diagrams(lower_symmetrised(noisy).astype(np.float64), 2)
    assert_same(persistence(noisy, max_dim=2), ref)
    off = ~np.eye(n, dtype=bool)
    S = sp.csr_matrix((noisy[off], np.nonzero(off)), shape=(n, n))
    assert_same(persistence(S, max_dim=2), ref)


def test_real_asymmetry_is_refused_naming_the_largest_difference():
    D = corrcoef_distances(5, n=10)
    D[3, 7], D[7, 3] = 0.5, 0.25
    D[1, 2] += 0.01
    with pytest.raises(ValueError, match=r"D\[3, 7\] = 0\.5 but D\[7, 3\] = 0\.25"):
        persistence(D)
    with pytest.raises(ValueError, match=r"D\[3, 7\] = 0\.5 but D\[7, 3\] = 0\.25"):
        persistence(sp.csr_matrix(D))
    with pytest.raises(ValueError, match=r"D\[0, 1\] is stored but D\[1, 0\] is not"):
        persistence(sp.csr_matrix(np.array([[0, 1.0], [0, 0]])))


def test_integer_matrices_must_be_exactly_symmetric():
    A = np.array([[0, 2, 3], [2, 0, 1], [3, 1, 0]])
    assert_same(persistence(A, 1), persistence(A.astype(float), 1))
    B = A.copy()
    B[0, 1] = 3
    with pytest.raises(ValueError, match="integer input must be exact"):
        persistence(B)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        persistence(np.array([[0, 2**60], [2**60, 0]]))


# ------------------------------------------------------------------------------ scipy.sparse


def _coo_with_duplicate():
    rows, cols = [0, 0, 1, 1, 2, 1], [1, 1, 0, 2, 1, 0]
    vals = [0.3, 0.4, 0.3, 1.0, 1.0, 0.4]
    return sp.coo_matrix((vals, (rows, cols)), shape=(3, 3))


def test_sparse_duplicates_are_refused():
    M = _coo_with_duplicate()
    msg = r"stores the entry D\[0, 1\] 2 times \(values 0\.3, 0\.4\).*add them up \(to 0\.7\).*sum_duplicates"
    with pytest.raises(ValueError, match=msg):
        persistence(M)
    # the same entries in an uncanonical CSR (no conversion has summed them yet), its transpose
    # (a CSC matrix on the same arrays) and a sparse array
    order = np.lexsort((M.col, M.row))
    csr = sp.csr_matrix((M.data[order], M.col[order], np.array([0, 2, 5, 6])), shape=(3, 3))
    assert csr.nnz == 6 and not csr.has_canonical_format
    for m in (csr, csr.T, sp.coo_array(M)):
        with pytest.raises(ValueError, match=r"2 times \(values 0\.3, 0\.4\)"):
            persistence(m)
    # ripser on the summed matrix sees 0.7; on one value per entry we agree with it
    once = sp.coo_matrix(([0.3, 0.3, 1.0, 1.0], ([0, 1, 1, 2], [1, 0, 2, 1])), shape=(3, 3))
    ref = ripser.ripser(once, maxdim=0, distance_matrix=True)["dgms"][0]
    np.testing.assert_allclose(sorted_rows(persistence(once, 0)[0]), sorted_rows(ref), atol=1e-7)


def _summary_oracle(csr: sp.csr_matrix) -> dict:
    """What _core._csr_summary reports, from numpy."""
    coo = csr.tocoo()
    r, c, x = coo.row, coo.col, coo.data.astype(np.float64)
    off = r != c
    pairs = dict(zip(zip(r[off].tolist(), c[off].tolist()), x[off].tolist()))
    symmetric = all((j, i) in pairs for (i, j) in pairs)
    asym = 0.0
    if symmetric:
        for (i, j), a in pairs.items():
            b = pairs[(j, i)]
            if a != b and not (np.isnan(a) or np.isnan(b)):
                asym = max(asym, abs(a - b))
    fin = np.isfinite(x)
    return {"nan": bool(np.isnan(x).any()), "negative": bool((x[off] < 0).any()), "diagonal": bool((~off).any()),
            "symmetric_pattern": symmetric, "max_asymmetry": asym,
            "scale": float(np.abs(x[fin]).max()) if fin.any() else 0.0}


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 25),
       defect=st.sampled_from(["none", "nan", "negative", "diagonal", "zero diagonal", "one-sided", "rounding",
                               "asymmetric", "inf against finite", "equal infinities"]),
       index_dtype=st.sampled_from([np.int32, np.int64]))
def test_csr_summary_equals_numpy(seed, n, defect, index_dtype):
    """The one-pass C++ summary that lets a clean sparse matrix skip the numpy checks: every flag
    and the largest asymmetry as numpy finds them, whatever the defect (the numpy checks word the
    error only when it reports one, so a defect it missed would be accepted)."""
    from topodnn import _core

    rng = np.random.default_rng(seed)
    D = np.triu(rng.random((n, n)) < 0.4, 1) * rng.uniform(0.1, 1.0, (n, n))
    D = D + D.T
    i = int(rng.integers(0, n))
    j = (i + 1 + int(rng.integers(0, max(n - 1, 1)))) % n
    if n > 1:
        D[i, j] = D[j, i] = 0.5  # the edge the defect is put on
    r, c = np.nonzero(D)
    x = D[r, c].astype(np.float64)
    at = (r == i) & (c == j)
    back = (r == j) & (c == i)
    if n > 1 and defect != "none":
        if defect == "nan":
            x[at] = np.nan
        elif defect == "negative":
            x[at] = x[back] = -0.5
        elif defect == "rounding":
            x[at] = np.nextafter(0.5, 2.0)
        elif defect == "asymmetric":
            x[at] = 0.75
        elif defect == "inf against finite":
            x[at] = np.inf
        elif defect == "equal infinities":
            x[at] = x[back] = np.inf
        elif defect == "one-sided":
            r, c, x = r[~at], c[~at], x[~at]
    if defect in ("diagonal", "zero diagonal"):
        r, c, x = np.append(r, i), np.append(c, i), np.append(x, 0.0 if defect == "zero diagonal" else 0.3)
    csr = sp.csr_matrix((x, (r, c)), shape=(n, n))  # explicit zeros stay stored
    csr.sort_indices()
    got = _core._csr_summary(csr.indptr.astype(index_dtype), csr.indices.astype(index_dtype),
                             csr.data.astype(np.float64))
    want = _summary_oracle(csr)
    assert got["symmetric_pattern"] == want["symmetric_pattern"]
    if want["symmetric_pattern"]:  # (an asymmetric pattern stops the pass where it is found)
        assert got == want


def test_sparse_unsorted_rows_without_duplicates_are_accepted():
    D = point_distances(6, 12)
    S = sp.csr_matrix(D)
    rng = np.random.default_rng(0)
    indices, data = S.indices.copy(), S.data.copy()
    for i in range(12):  # shuffle every row
        lo, hi = S.indptr[i], S.indptr[i + 1]
        p = rng.permutation(hi - lo) + lo
        indices[lo:hi], data[lo:hi] = indices[p], data[p]
    U = sp.csr_matrix((data, indices, S.indptr), shape=S.shape)
    assert not U.has_sorted_indices
    assert_same(persistence(U, 2), persistence(D, 2))
    assert_same(persistence(S.tocoo(), 2), persistence(D, 2))


def test_sparse_and_dense_agree_on_value_types():
    D = point_distances(7, 8)
    for kind in (np.complex128, np.bool_):
        with pytest.raises(ValueError, match="real"):
            persistence(D.astype(kind))
        with pytest.raises(ValueError, match="real"):
            persistence(sp.csr_matrix(D.astype(kind)))
    I = np.round(D * 10).astype(np.int32)
    ref = persistence(I.astype(np.float64), 2)
    assert_same(persistence(I, 2), ref)
    assert_same(persistence(sp.csr_matrix(I), 2), ref)
    assert_same(persistence(sp.csr_matrix(I.astype(np.int64)), 2), ref)


# --------------------------------------------------------------------------- other arguments


@pytest.mark.parametrize("threshold", ["0.5", b"1", True, 1 + 2j, None, [0.5]])
def test_threshold_that_is_not_a_real_number_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold must be a real number"):
        persistence(point_distances(0, 5), 1, threshold)


def test_threshold_numpy_and_torch_scalars_are_accepted():
    D = point_distances(1, 10)
    ref = persistence(D, 1, 1.25)
    for t in (np.float32(1.25), np.float64(1.25), np.array(1.25), torch.tensor(1.25)):
        assert_same(persistence(D, 1, t), ref)


def test_max_dim_out_of_range_is_one_clear_line():
    D = point_distances(0, 5)
    for bad in (10**20, MAX_DIM + 1, -1):
        with pytest.raises(ValueError, match=r"max_dim must lie in \[0, 61\]") as exc:
            persistence(D, bad)
        assert "\n" not in str(exc.value) and len(str(exc.value)) < 200
    assert len(persistence(D, np.int64(3))) == 4


# ----------------------------------------------------------------------------- torch tensors


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_half_precision_is_widened_exactly(dtype):
    t = torch.from_numpy(point_distances(2, 15)).to(dtype)
    want = persistence(t.float().numpy(), 2)
    assert_same(persistence(t, 2), want)
    assert_same(persistence(t.to_sparse(), 2), want)
    # rounding-level asymmetry at the tensor's own precision is accepted
    u = t.clone()
    u[3, 1] = torch.nextafter(u[1, 3].float(), torch.tensor(9.0)).to(dtype)
    persistence(u, 2)


def test_torch_sparse_tensors_are_read_like_scipy():
    D = point_distances(3, 14)
    keep = (D < 1.4) & ~np.eye(14, dtype=bool)
    S = sp.csr_matrix((D[keep], np.nonzero(keep)), shape=D.shape)
    want = persistence(S, 2)
    coo = torch.sparse_coo_tensor(np.array(np.nonzero(keep)), D[keep], size=(14, 14),
                                  check_invariants=True)
    assert_same(persistence(coo, 2), want)
    assert_same(persistence(coo.coalesce(), 2), want)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
        csr = coo.to_sparse_csr()
    assert_same(persistence(csr, 2), want)
    # an uncoalesced tensor keeps its duplicates: refused like scipy's
    dup = torch.sparse_coo_tensor([[0, 0, 1, 1], [1, 1, 0, 0]], [0.3, 0.4, 0.3, 0.4], (2, 2),
                                  check_invariants=True)
    with pytest.raises(ValueError, match=r"D\[0, 1\] 2 times"):
        persistence(dup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        csc = coo.to_sparse_csc()
    with pytest.raises(ValueError, match="layout"):
        persistence(csc)


def test_meta_tensor_is_refused_as_having_no_data():
    with pytest.raises(ValueError, match="meta device, which holds no data") as exc:
        persistence(torch.empty(4, 4, device="meta"))
    assert ".cpu()" not in str(exc.value)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(ValueError, match="meta device"):
        functional_graph(model, torch.empty(10, 3, device="meta"), layers=["1"], progress=False)
    with pytest.raises(ValueError, match="meta device"):
        functional_graph(model.to("meta"), torch.randn(10, 3), layers=["1"], progress=False)


def test_torch_tensors_with_grad_and_complex_tensors():
    t = torch.from_numpy(point_distances(4, 9)).requires_grad_()
    assert_same(persistence(t, 1), persistence(t.detach().numpy(), 1))
    with pytest.raises(ValueError, match="real"):
        persistence(t.detach().to(torch.complex64))


# ------------------------------------------------------------------------ layouts and forms


def test_array_layouts_and_forms_are_accepted(tmp_path):
    pd = pytest.importorskip("pandas")
    D = point_distances(5, 16)
    want = persistence(D, 2)
    ro = D.copy()
    ro.flags.writeable = False
    mm = np.lib.format.open_memmap(tmp_path / "d.npy", mode="w+", dtype=np.float64, shape=D.shape)
    mm[:] = D
    mm.flush()
    mapped = np.load(tmp_path / "d.npy", mmap_mode="r")
    big = np.zeros((32, 32))
    big[::2, ::2] = D
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # numpy on np.matrix itself
        matrix = np.matrix(D)
    forms = [np.asfortranarray(D), big[::2, ::2], ro, mapped, matrix, D.tolist(),
             pd.DataFrame(D), np.ascontiguousarray(D[::-1, ::-1])[::-1, ::-1]]
    for f in forms:
        assert_same(persistence(f, 2), want)
    with pytest.raises(ValueError, match="could not be read as a numeric array"):
        persistence([[0, 1], [1]])
    with pytest.raises(ValueError, match="real-valued"):
        persistence(np.array([[0, None], [None, 0]]))
    with pytest.raises(ValueError, match="square"):
        persistence(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="wider than float64"):
        persistence(D.astype(np.longdouble))


# ------------------------------------------------------------------------- model inputs


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 12)
        self.act = nn.Tanh()
        self.functional_layers = ["act"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


def test_float64_data_is_cast_to_the_model_dtype(net):
    x64 = np.random.default_rng(0).normal(size=(40, 6))  # numpy's default dtype
    want = functional_graph(net, torch.from_numpy(x64).float(), progress=False)
    np.testing.assert_array_equal(functional_graph(net, x64, progress=False), want)
    np.testing.assert_array_equal(functional_graph(net, torch.from_numpy(x64), progress=False), want)
    # and the other way round: a float64 model gets float32 inputs widened
    net64 = Net().double()
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    x32 = torch.from_numpy(x64).float()
    X, _, _ = collect_activations(net64, x32, dtype=np.float64, progress=False)
    with torch.no_grad():
        np.testing.assert_array_equal(X, net64(x32.double()).numpy())


def test_non_floating_inputs_the_model_cannot_take_are_one_clear_error(net):
    x = torch.randint(0, 255, (20, 6), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"model failed on a batch of 20 inputs of shape \(20, 6\) "
                                         r"and dtype torch.uint8.*convert other inputs explicitly"):
        functional_graph(net, x, progress=False)
    # integer inputs a model can take (an embedding) pass as they are
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Flatten())
    X, _, sizes = collect_activations(emb, torch.randint(0, 10, (15, 3)), layers=["1"], progress=False)
    assert sizes == [12] and X.shape == (15, 12)


def test_wrong_shape_data_is_one_clear_error(net):
    with pytest.raises(ValueError, match=r"model failed on a batch of 30 inputs of shape \(30, 7\)"):
        functional_graph(net, np.zeros((30, 7)), progress=False)
    with pytest.raises(ValueError, match="not a rectangular array"):
        functional_graph(net, [[0.0] * 6, [0.0] * 5], progress=False)
    with pytest.raises(ValueError, match="complex"):
        functional_graph(net, np.zeros((30, 6), dtype=complex), progress=False)
    with pytest.raises(ValueError, match="must be numbers"):
        functional_graph(net, np.array([["a"] * 6] * 4), progress=False)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        functional_graph(lambda x: x, np.zeros((30, 6)), layers=["a"], progress=False)
    with pytest.raises(ValueError, match="sparse"):
        functional_graph(net, torch.zeros(30, 6).to_sparse(), progress=False)


def test_data_layouts_and_forms_give_the_same_graph(net, tmp_path):
    pd = pytest.importorskip("pandas")
    x = np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32)
    want = functional_graph(net, torch.from_numpy(x), progress=False)
    ro = x.copy()
    ro.flags.writeable = False
    np.save(tmp_path / "x.npy", x)
    big = np.zeros((80, 12), dtype=np.float32)
    big[::2, ::2] = x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # numpy on np.matrix itself
        matrix = np.matrix(x)
    forms = [np.asfortranarray(x), big[::2, ::2], ro,
             np.load(tmp_path / "x.npy", mmap_mode="r"), matrix, x.tolist(),
             pd.DataFrame(x), [tuple(r) for r in x.tolist()], x.astype(np.float64),
             [torch.from_numpy(x[:25]), torch.from_numpy(x[25:])],  # a list of batches
             np.ascontiguousarray(x[::-1])[::-1]]  # negative strides
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning on non-writable arrays
        for k, f in enumerate(forms):
            got = functional_graph(net, f, batch_size=7, progress=False)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=str(k))


def test_graph_arguments_are_validated(net):
    x = torch.randn(20, 6)
    with pytest.raises(ValueError, match="threshold must be a number"):
        functional_graph(net, x, threshold="0.5", progress=False)
    with pytest.raises(ValueError, match="block_size"):
        functional_graph(net, x, threshold=0.5, block_size=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        functional_graph(net, x, batch_size=2.0, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        functional_graph(net, x, dtype="no such type", progress=False)
    with pytest.raises(ValueError, match="device"):
        functional_graph(net, x, device="nowhere", progress=False)
    with pytest.raises(ValueError, match="max_epsilon must be a number"):
        topology(net, x, max_epsilon="0.3", progress=False)
    with pytest.raises(ValueError, match=r"max_dim must lie in \[0, 61\]"):
        topology(net, x, max_dim=62, progress=False)
    with pytest.raises(ValueError, match="unexpected keyword"):
        topology(net, x, batchsize=3, progress=False)


def test_correlation_distances_reads_tensors_and_read_only_arrays():
    X = np.random.default_rng(2).normal(size=(30, 9))
    want = correlation_distances(X, progress=False)
    ro = X.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(correlation_distances(ro, copy=False, progress=False), want)
    np.testing.assert_array_equal(correlation_distances(torch.from_numpy(X).requires_grad_(),
                                                        progress=False), want)
    with pytest.raises(ValueError, match="bool"):
        correlation_distances(X > 0, progress=False)
    with pytest.raises(ValueError, match="dense"):
        correlation_distances(sp.csr_matrix(X), progress=False)


def test_max_work_refuses_astronomical_work_and_lifts() -> None:
    """persistence(30 points, max_dim 29) fits in memory but is hours of work: refused up front,
    with the estimate; max_work= moves the limit (a tiny one refuses a small case too)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    with pytest.raises(ValueError, match="work"):
        persistence(D, 29)
    with pytest.raises(ValueError, match="work"):
        persistence(D, 1, max_work=10.0)
    assert len(persistence(D, 1, max_work=np.inf)) == 2
    for bad in (0, -1.0, "1e9", float("nan")):
        with pytest.raises(ValueError, match="max_work"):
            persistence(D, 1, max_work=bad)
