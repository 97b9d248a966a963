// Validation of a CSR distance matrix in one pass (topodnn.engine._sparse_input): what numpy
// finds with several full-size temporaries (a transposed copy for the symmetry check), in time
// linear in the stored entries and O(n) memory. Python words the errors: it runs its own checks
// only when this summary finds something to report or to remove.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace py = pybind11;

namespace {

struct Summary {
  bool nan = false, negative = false, diagonal = false, symmetric_pattern = true;
  double max_asymmetry = 0, scale = 0;
};

// Rows sorted, no duplicates (canonical CSR). Row j's entries below the diagonal are met, in
// ascending column order, exactly as rows i < j are walked in order and reach column j: one
// cursor per row pairs every stored (i, j), i < j, with its (j, i).
template <class P, class I>
Summary summarise(int64_t n, const P* indptr, const I* indices, const double* data) {
  Summary s;
  std::vector<int64_t> cursor(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cursor[i] = static_cast<int64_t>(indptr[i]);
  for (int64_t i = 0; i < n && s.symmetric_pattern; ++i) {
    for (int64_t p = static_cast<int64_t>(indptr[i]); p < static_cast<int64_t>(indptr[i + 1]); ++p) {
      const int64_t j = static_cast<int64_t>(indices[p]);
      if (j < 0 || j >= n) {  // not a distance matrix's: left to the full checks
        s.symmetric_pattern = false;
        break;
      }
      const double x = data[p];
      if (std::isnan(x)) s.nan = true;
      else if (std::isfinite(x)) s.scale = std::max(s.scale, std::fabs(x));
      if (j == i) { s.diagonal = true; continue; }
      if (x < 0) s.negative = true;
      if (j < i) continue;  // paired from row j's side
      int64_t& q = cursor[j];
      if (q >= static_cast<int64_t>(indptr[j + 1]) || static_cast<int64_t>(indices[q]) != i) {
        s.symmetric_pattern = false;
        break;
      }
      const double y = data[q++];
      if (!(x == y)) s.max_asymmetry = std::max(s.max_asymmetry, std::fabs(x - y));  // NaN: flagged above
    }
  }
  // every entry below the diagonal paired
  for (int64_t j = 0; j < n && s.symmetric_pattern; ++j) {
    const int64_t q = cursor[j];
    if (q < static_cast<int64_t>(indptr[j + 1]) && static_cast<int64_t>(indices[q]) < j) s.symmetric_pattern = false;
  }
  return s;
}

template <class P>
Summary with_indices(int64_t n, const P* ip, const void* ix, bool ix32, const double* data) {
  return ix32 ? summarise(n, ip, static_cast<const int32_t*>(ix), data)
              : summarise(n, ip, static_cast<const int64_t*>(ix), data);
}

py::dict csr_summary(py::array indptr, py::array indices, py::array_t<double, py::array::c_style> data) {
  for (const py::array* a : {&indptr, &indices})
    if (a->ndim() != 1 || !(a->flags() & py::array::c_style) ||
        !(py::isinstance<py::array_t<int32_t>>(*a) || py::isinstance<py::array_t<int64_t>>(*a)))
      throw py::value_error("indptr and indices must be contiguous 1-D int32 or int64 arrays");
  const int64_t n = static_cast<int64_t>(indptr.shape(0)) - 1;
  if (n < 0 || data.ndim() != 1 || indices.shape(0) != data.shape(0))
    throw py::value_error("a CSR triple: indptr of length n + 1, indices and data of equal length");
  const bool ip32 = py::isinstance<py::array_t<int32_t>>(indptr), ix32 = py::isinstance<py::array_t<int32_t>>(indices);
  const int64_t last = ip32 ? static_cast<const int32_t*>(indptr.data())[n] : static_cast<const int64_t*>(indptr.data())[n];
  if (last != static_cast<int64_t>(data.shape(0))) throw py::value_error("indptr[n] must equal the number of stored entries");
  const void* ip = indptr.data();
  const void* ix = indices.data();
  const double* dv = data.data();
  Summary s;
  {
    py::gil_scoped_release free;  // the caller holds the arrays
    s = ip32 ? with_indices(n, static_cast<const int32_t*>(ip), ix, ix32, dv)
             : with_indices(n, static_cast<const int64_t*>(ip), ix, ix32, dv);
  }
  py::dict d;
  d["nan"] = s.nan;
  d["negative"] = s.negative;
  d["diagonal"] = s.diagonal;
  d["symmetric_pattern"] = s.symmetric_pattern;
  d["max_asymmetry"] = s.max_asymmetry;
  d["scale"] = s.scale;
  return d;
}

}  // namespace

void register_validation(py::module_& m) {
  m.def("_csr_summary", &csr_summary, py::arg("indptr"), py::arg("indices"), py::arg("data"),
        "One pass over a canonical CSR matrix (sorted rows, no duplicates): NaN, negative "
        "off-diagonal values, stored diagonal entries, a symmetric pattern, the largest "
        "|D[i, j] - D[j, i]| (equal infinities: 0) and the largest finite |entry|.");
}
