// Binding of the Vietoris-Rips engine (extern/dipha/src/rips.cpp): numpy buffers in without
// copies, an mpi4py communicator (cpp/comm.hpp), the GIL released around the
// computation, engine errors raised as ValueError.
#include <mpi.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>


#include <cstring>

#include "comm.hpp"
#include "dipha/collapse.hpp"
#include "dipha/mpi_layer.hpp"
#include "dipha/rips.hpp"

namespace py = pybind11;

namespace {

dipha::rips::DistanceView view_of(const py::array& a, py::object indptr, py::object indices, py::object values,
                                  int64_t n, std::vector<py::array>& keep) {
  dipha::rips::DistanceView v;
  if (!indptr.is_none()) {
    auto ip = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(indptr);
    auto ix = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(indices);
    auto vv = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(values);
    if (!ip || !ix || !vv) throw py::value_error("CSR arrays could not be converted");
    if (ip.ndim() != 1 || ip.shape(0) != n + 1) throw py::value_error("indptr must have length n + 1");
    if (ix.ndim() != 1 || vv.ndim() != 1 || ix.shape(0) != vv.shape(0)) throw py::value_error("indices and values must be 1-D of equal length");
    if (ip.at(n) != ix.shape(0)) throw py::value_error("indptr[n] must equal the number of stored entries");
    keep.push_back(ip); keep.push_back(ix); keep.push_back(vv);
    v.n = n;
    v.indptr = ip.data();
    v.indices = ix.data();
    v.values = vv.data();
    return v;
  }
  if (a.ndim() != 2 || a.shape(0) != a.shape(1)) throw py::value_error("distance matrix must be square and 2-D");
  v.n = a.shape(0);
  if (py::isinstance<py::array_t<float>>(a)) {
    auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
    keep.push_back(f);
    v.dense32 = f.data();
  } else {
    auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!d) throw py::value_error("distance matrix must be numeric");
    keep.push_back(d);
    v.dense64 = d.data();
  }
  return v;
}

// The view, or why the buffers cannot be viewed: under MPI the verdict of one rank is agreed with
// the others (dipha::mpi::agree) before the engine runs, so that no rank is left waiting.
std::string view_or_error(const py::array& a, py::object indptr, py::object indices, py::object values, int64_t n,
                          std::vector<py::array>& keep, dipha::rips::DistanceView& v) {
  try {
    v = view_of(a, indptr, indices, values, n, keep);
  } catch (const std::exception& e) {
    v = dipha::rips::DistanceView();
    return e.what();
  }
  return std::string();
}

// Out of memory during the computation -> MemoryError; anything else the engine reports is bad input.
[[noreturn]] void raise_engine_error(const std::string& err) {
  if (err.rfind("rips: out of memory", 0) == 0) {
    PyErr_SetString(PyExc_MemoryError, err.c_str());
    throw py::error_already_set();
  }
  throw py::value_error(err);
}

py::list rips_persistence(py::array dense, py::object indptr, py::object indices, py::object values, int64_t n,
                          int max_dim, double threshold, py::object comm, bool verbose,
                          int64_t dense_lookup_bytes, int64_t working_bytes, double max_work, int collapse,
                          int n_threads, int64_t long_column_bytes, int window_method) {
  topodnn::CommDup guard(comm, MPI_COMM_SELF);  // collective: before anything can fail on one rank only
  std::vector<py::array> keep;
  dipha::rips::DistanceView v;
  const std::string bad = view_or_error(dense, indptr, indices, values, n, keep, v);
  dipha::rips::Options opt;
  opt.max_dim = max_dim;
  opt.threshold = threshold;
  opt.verbose = verbose;
  opt.dense_lookup_bytes = dense_lookup_bytes;
  opt.working_bytes = working_bytes;
  opt.long_column_bytes = long_column_bytes;
  opt.window_method = window_method;
  opt.max_work = max_work;
  opt.collapse = collapse;
  opt.n_threads = n_threads;
  dipha::rips::Pairs pairs;
  std::string err;
  {
    py::gil_scoped_release release;
    try {
      dipha::mpi::agree(guard.get(), !bad.empty(), bad);
      pairs = dipha::rips::persistence(v, opt, guard.get());
    } catch (const dipha::Error& e) {
      err = e.what();
    }
  }
  if (!err.empty()) raise_engine_error(err);
  py::list out;
  for (auto& dim : pairs) {
    py::array_t<double> a({static_cast<py::ssize_t>(dim.size()), static_cast<py::ssize_t>(2)});
    auto m = a.mutable_unchecked<2>();
    for (size_t i = 0; i < dim.size(); ++i) { m(i, 0) = dim[i].first; m(i, 1) = dim[i].second; }
    out.append(a);
  }
  return out;
}

py::tuple dipha_diagram_from_matrix(py::array dense, py::object indptr, py::object indices, py::object values,
                                    int64_t n, int64_t upper_dim, py::object comm) {
  topodnn::CommDup guard(comm, MPI_COMM_SELF);
  std::vector<py::array> keep;
  dipha::rips::DistanceView v;
  const std::string bad = view_or_error(dense, indptr, indices, values, n, keep, v);
  dipha::Diagram d;
  std::string err;
  {
    py::gil_scoped_release release;
    try {
      dipha::mpi::agree(guard.get(), !bad.empty(), bad);
      d = dipha::rips::dipha_diagram(v, upper_dim, guard.get());
    } catch (const dipha::Error& e) {
      err = e.what();
    }
  }
  if (!err.empty()) raise_engine_error(err);
  py::array_t<int64_t> dims(static_cast<py::ssize_t>(d.size()));
  py::array_t<double> births(static_cast<py::ssize_t>(d.size())), deaths(static_cast<py::ssize_t>(d.size()));
  for (size_t i = 0; i < d.size(); ++i) {
    dims.mutable_at(i) = d[i].dim;
    births.mutable_at(i) = d[i].birth;
    deaths.mutable_at(i) = d[i].death;
  }
  return py::make_tuple(dims, births, deaths);
}

// The edge collapse alone (dipha/collapse.hpp), for tests and measurements: the remaining edges
// (u < v, sorted by (value, v, u)) and the edge count after each round run.
py::tuple collapse_edges(int64_t n, py::array_t<int64_t, py::array::c_style | py::array::forcecast> u,
                         py::array_t<int64_t, py::array::c_style | py::array::forcecast> v,
                         py::array_t<double, py::array::c_style | py::array::forcecast> values, int rounds,
                         int64_t dense_lookup_bytes) {
  if (u.ndim() != 1 || v.ndim() != 1 || values.ndim() != 1 || u.shape(0) != v.shape(0) || u.shape(0) != values.shape(0))
    throw py::value_error("u, v and values must be 1-D arrays of equal length");
  std::vector<dipha::collapse::Edge> edges(static_cast<size_t>(u.shape(0)));
  for (size_t e = 0; e < edges.size(); ++e) {
    const int64_t a = u.at(e), b = v.at(e);
    if (a < 0 || b < 0 || a > INT32_MAX || b > INT32_MAX || a >= n || b >= n)
      throw py::value_error("edge " + std::to_string(e) + " has a vertex out of range [0, " + std::to_string(n) + ")");
    edges[e] = {static_cast<int32_t>(a), static_cast<int32_t>(b), values.at(e)};
  }
  dipha::collapse::Stats stats;
  std::string err;
  {
    py::gil_scoped_release release;
    try {
      edges = dipha::collapse::collapse_edges(n, std::move(edges), rounds, &stats, dense_lookup_bytes);
    } catch (const dipha::Error& e) {
      err = e.what();
    }
  }
  if (!err.empty()) throw py::value_error(err);
  py::array_t<int64_t> ou(static_cast<py::ssize_t>(edges.size())), ov(static_cast<py::ssize_t>(edges.size()));
  py::array_t<double> ow(static_cast<py::ssize_t>(edges.size()));
  for (size_t e = 0; e < edges.size(); ++e) {
    ou.mutable_at(e) = edges[e].u;
    ov.mutable_at(e) = edges[e].v;
    ow.mutable_at(e) = edges[e].value;
  }
  py::dict counts;
  counts["edges_after_round"] = stats.edges_after_round;
  counts["moved"] = stats.moved;
  counts["removed"] = stats.removed;
  counts["lookups"] = stats.lookups;
  counts["neighbour_steps"] = stats.neighbour_steps;
  return py::make_tuple(ou, ov, ow, counts);
}

// Test hook of the reduction's sort of entries (dipha::rips::testing::sort_entries): the
// entries sorted by (value, rank) and whether the radix sort took them.
py::tuple rips_sort_entries(py::array_t<double, py::array::c_style | py::array::forcecast> values,
                            py::array_t<int64_t, py::array::c_style | py::array::forcecast> ranks, size_t min_radix) {
  if (values.ndim() != 1 || ranks.ndim() != 1 || values.shape(0) != ranks.shape(0))
    throw py::value_error("values and ranks must be 1-D of equal length");
  std::vector<double> v(values.data(), values.data() + values.shape(0));
  std::vector<int64_t> r(ranks.data(), ranks.data() + ranks.shape(0));
  bool radix = false;
  try {
    radix = dipha::rips::testing::sort_entries(v, r, min_radix);
  } catch (const dipha::Error& e) {
    throw py::value_error(e.what());
  }
  py::array_t<double> ov(static_cast<py::ssize_t>(v.size()));
  py::array_t<int64_t> orr(static_cast<py::ssize_t>(r.size()));
  std::copy(v.begin(), v.end(), ov.mutable_data());
  std::copy(r.begin(), r.end(), orr.mutable_data());
  return py::make_tuple(ov, orr, radix);
}

// Test hook of the column listing (dipha::rips::testing::apparent_verdicts): (values, ranks,
// flags) of every simplex of dimension `dim`.
py::tuple rips_apparent_verdicts(py::array_t<double, py::array::c_style | py::array::forcecast> dense, int dim,
                                 double threshold, int64_t dense_lookup_bytes, bool reference) {
  if (dense.ndim() != 2 || dense.shape(0) != dense.shape(1)) throw py::value_error("distance matrix must be square and 2-D");
  dipha::rips::DistanceView v;
  v.n = dense.shape(0);
  v.dense64 = dense.data();
  std::vector<dipha::rips::testing::Verdict> out;
  std::string err;
  {
    py::gil_scoped_release release;
    try {
      out = dipha::rips::testing::apparent_verdicts(v, threshold, dim, dense_lookup_bytes, reference);
    } catch (const dipha::Error& e) {
      err = e.what();
    }
  }
  if (!err.empty()) throw py::value_error(err);
  const auto m = static_cast<py::ssize_t>(out.size());
  py::array_t<double> values(m);
  py::array_t<int64_t> ranks(m), flags(m);
  for (py::ssize_t i = 0; i < m; ++i) {
    values.mutable_at(i) = out[i].value;
    ranks.mutable_at(i) = out[i].rank;
    flags.mutable_at(i) = out[i].flags;
  }
  return py::make_tuple(values, ranks, flags);
}

}  // namespace

void register_persistence(py::module_& m) {
  m.def("_rips_persistence", &rips_persistence, py::arg("dense"), py::arg("indptr"), py::arg("indices"),
        py::arg("values"), py::arg("n"), py::arg("max_dim"), py::arg("threshold"), py::arg("comm"),
        py::arg("verbose"), py::arg("dense_lookup_bytes") = -1, py::arg("working_bytes") = -1,
        py::arg("max_work") = -1.0, py::arg("collapse") = 0, py::arg("n_threads") = 1,
        py::arg("long_column_bytes") = -1, py::arg("window_method") = 0,
        "Vietoris-Rips persistence pairs per dimension (see topodnn.engine.persistence). Either `dense` "
        "(square float32/float64) or the CSR triple (indptr, indices, values) with n vertices. "
        "dense_lookup_bytes: largest dense look-up matrix the engine may build (-1: its default, "
        "0: neighbour lists only). working_bytes: largest working coboundary of one column before it "
        "is reduced window by window (-1: its default, 256 MiB). long_column_bytes: live working coboundary at "
        "which a column leaves its heap for buckets of filtration values (-1: its default, 32 MiB). window_method: how a "
        "window of a windowed column regenerates its coboundary (0: the cheaper by an estimate, 1: by V edge, 2: by "
        "window edge; same results). max_work: refusal limit of the engine's work "
        "estimate, in coface visits (candidate vertices examined while enumerating cofaces; 1e8 to 1e9 per "
        "second of one rank): a computation estimated above it raises ValueError naming the estimate "
        "and the limit before any work; -1: the default limit (5e11), inf: no limit. Above 1e11 one line on rank "
        "0's stderr gives the estimate and a rough time. Under MPI every rank must pass the same distance matrix, "
        "max_dim and threshold (a fingerprint is compared; a mismatch raises ValueError on every rank). "
        "collapse: edge collapse of the thresholded graph first (0: off, k > 0: k rounds, -1: rounds until "
        "one removes no edge); same diagrams. n_threads: threads of each rank (>= 1, or -1 for one per hardware "
        "thread); results are identical for any number of ranks and threads.");
  m.def("_collapse_edges", &collapse_edges, py::arg("n"), py::arg("u"), py::arg("v"), py::arg("values"),
        py::arg("rounds") = 1, py::arg("dense_lookup_bytes") = -1,
        "Edge collapse of the flag filtration of a filtered graph (n vertices, edges (u[i], v[i], values[i])): "
        "(u, v, values, counts) of the remaining edges, u < v, sorted by (value, v, u); counts holds "
        "edges_after_round, moved, removed, lookups, neighbour_steps.");
  m.def("_rips_sort_entries", &rips_sort_entries, py::arg("values"), py::arg("ranks"), py::arg("min_radix"),
        "Test hook: the reduction's sort of entries by (value, rank); (values, ranks, radix used).");
  m.def("_rips_apparent_verdicts", &rips_apparent_verdicts, py::arg("dense"), py::arg("dim"), py::arg("threshold"),
        py::arg("dense_lookup_bytes") = -1, py::arg("reference") = false,
        "Test hook: (values, ranks, flags) of every simplex of dimension dim (1 or 2) of a dense float64 "
        "matrix cut at threshold, sorted by (value, rank); flags 1 = lower half of an apparent pair, 2 = "
        "upper half. reference=False: the engine's per-edge listing; True: the simplex-by-simplex tests.");
  m.def("_dipha_diagram_from_matrix", &dipha_diagram_from_matrix, py::arg("dense"), py::arg("indptr"),
        py::arg("indices"), py::arg("values"), py::arg("n"), py::arg("upper_dim"), py::arg("comm"),
        "DIPHA diagram records (dims, births, deaths) of a full (type 7) or sparse (type 8) distance matrix.");
}
