// Cell complexes of the general engine (see dipha/complex.hpp).
#include "dipha/complex.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dipha {
namespace {

// ---------------------------------------------------------------------------------------------
// Explicit complex: everything verbatim from the file.
class ExplicitCells final : public Complex {
 public:
  explicit ExplicitCells(ExplicitComplex c) : c_(std::move(c)) {
    max_value_ = -std::numeric_limits<double>::infinity();
    for (double v : c_.values) max_value_ = std::max(max_value_, v);
    for (int64_t d : c_.dims) top_ = std::max(top_, d);
  }
  int64_t num_cells() const override { return c_.size(); }
  int64_t complex_dim() const override { return c_.dim; }
  int64_t top_dim() const override { return top_; }
  int dim(int64_t id) const override { return static_cast<int>(c_.dims[id]); }
  double value(int64_t id) const override { return c_.values[id]; }
  double max_value() const override { return max_value_; }
  bool has_boundary() const override { return c_.form == 0; }
  bool has_coboundary() const override { return c_.form == 1; }
  void boundary(int64_t id, std::vector<int64_t>& out) const override { list(id, out); }
  void coboundary(int64_t id, std::vector<int64_t>& out) const override { list(id, out); }

 private:
  void list(int64_t id, std::vector<int64_t>& out) const {
    out.insert(out.end(), c_.entries.begin() + c_.offsets[id], c_.entries.begin() + c_.offsets[id + 1]);
  }
  ExplicitComplex c_;
  double max_value_;
  int64_t top_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Cubical complex of an image, lower-star values.
class CubicalCells final : public Complex {
 public:
  CubicalCells(Image im, const std::string& path) : im_(std::move(im)) {
    d_ = static_cast<int>(im_.shape.size());
    R_.resize(d_);
    stride_.resize(d_);
    vstride_.resize(d_);
    long double count = 1;
    int64_t s = 1, vs = 1;
    for (int i = 0; i < d_; ++i) {
      R_[i] = 2 * im_.shape[i] - 1;
      stride_[i] = s;
      vstride_[i] = vs;
      count *= static_cast<long double>(R_[i]);
      if (count < 9.2e18L) s *= R_[i];
      vs *= im_.shape[i];
    }
    // cell ids, filtration keys (24 bytes), inverse and forward maps, reduction bookkeeping
    check_fits_in_memory(path, "the cubical complex", static_cast<double>(count), static_cast<double>(count) * 64.0);
    n_ = s;
    max_value_ = -std::numeric_limits<double>::infinity();
    for (double v : im_.values) max_value_ = std::max(max_value_, v);
  }
  int64_t num_cells() const override { return n_; }
  int64_t complex_dim() const override { return d_; }
  int64_t top_dim() const override {
    int t = 0;
    for (int i = 0; i < d_; ++i) t += R_[i] > 1 ? 1 : 0;
    return t;
  }
  int dim(int64_t id) const override {
    int k = 0;
    for (int i = 0; i < d_; ++i) {
      k += static_cast<int>((id % R_[i]) & 1);
      id /= R_[i];
    }
    return k;
  }
  double value(int64_t id) const override {
    int64_t base = 0;
    int64_t odd[64];
    int k = 0;
    for (int i = 0; i < d_; ++i) {
      int64_t t = id % R_[i];
      id /= R_[i];
      base += (t >> 1) * vstride_[i];
      if (t & 1) odd[k++] = vstride_[i];
    }
    double v = -std::numeric_limits<double>::infinity();
    for (int64_t mask = 0; mask < (int64_t{1} << k); ++mask) {
      int64_t x = base;
      for (int b = 0; b < k; ++b) {
        if (mask >> b & 1) x += odd[b];
      }
      v = std::max(v, im_.values[x]);
    }
    return v;
  }
  double max_value() const override { return max_value_; }
  void boundary(int64_t id, std::vector<int64_t>& out) const override {
    int64_t rest = id;
    for (int i = 0; i < d_; ++i) {
      int64_t t = rest % R_[i];
      rest /= R_[i];
      if (t & 1) {
        out.push_back(id - stride_[i]);
        out.push_back(id + stride_[i]);
      }
    }
  }
  void coboundary(int64_t id, std::vector<int64_t>& out) const override {
    int64_t rest = id;
    for (int i = 0; i < d_; ++i) {
      int64_t t = rest % R_[i];
      rest /= R_[i];
      if (!(t & 1)) {
        if (t - 1 >= 0) out.push_back(id - stride_[i]);
        if (t + 1 < R_[i]) out.push_back(id + stride_[i]);
      }
    }
  }

 private:
  Image im_;
  int d_ = 0;
  std::vector<int64_t> R_, stride_, vstride_;
  int64_t n_ = 0;
  double max_value_;
};

// ---------------------------------------------------------------------------------------------
// Vietoris-Rips / clique complex, enumerated explicitly.
class RipsCells final : public Complex {
 public:
  // Dense input: complete graph, weight of {a, b} = d[max * n + min].
  RipsCells(DistanceMatrix m, int64_t upper_dim, const std::string& path)
      : n_(m.n), D_(upper_dim), dense_(std::move(m.d)) {
    is_dense_ = true;
    check_vertex_count(path);
    // exact size of the full complex: sum_{j=1}^{min(D+1,n)} C(n, j)
    long double total = 0, c = 1;
    for (int64_t j = 1; j <= n_ && j - 1 <= D_; ++j) {
      c = c * static_cast<long double>(n_ - j + 1) / static_cast<long double>(j);
      total += c;
      if (total > 1e30L) break;
    }
    check_fits_in_memory(path, "the Rips complex up to dimension " + std::to_string(D_),
                         static_cast<double>(total), static_cast<double>(total) * bytes_per_cell());
    enumerate(path);
  }
  RipsCells(SparseDistanceMatrix m, int64_t upper_dim, const std::string& path) : n_(m.n), D_(upper_dim) {
    check_vertex_count(path);
    indptr_ = std::move(m.indptr);
    nbr_.assign(m.indices.begin(), m.indices.end());
    w_ = std::move(m.values);
    enumerate(path);
  }

  int64_t num_cells() const override { return base_.back(); }
  int64_t complex_dim() const override { return D_; }
  int64_t top_dim() const override { return static_cast<int64_t>(verts_.size()) - 1; }
  int dim(int64_t id) const override {
    int k = 0;
    while (base_[k + 1] <= id) ++k;
    return k;
  }
  double value(int64_t id) const override {
    int k = dim(id);
    return vals_[k][id - base_[k]];
  }
  double max_value() const override { return max_value_; }
  void boundary(int64_t id, std::vector<int64_t>& out) const override {
    int k = dim(id);
    if (k == 0) return;
    const int32_t* s = &verts_[k][(id - base_[k]) * (k + 1)];
    int32_t facet[64];
    for (int drop = 0; drop <= k; ++drop) {
      int m = 0;
      for (int i = 0; i <= k; ++i) {
        if (i != drop) facet[m++] = s[i];
      }
      out.push_back(base_[k - 1] + find(k - 1, facet));
    }
  }
  void coboundary(int64_t id, std::vector<int64_t>& out) const override {
    int k = dim(id);
    if (k >= top_dim()) return;
    const int32_t* s = &verts_[k][(id - base_[k]) * (k + 1)];
    int32_t co[65];
    auto emit = [&](int32_t w) {
      int m = 0, i = 0;
      while (i <= k && s[i] < w) co[m++] = s[i++];
      co[m++] = w;
      while (i <= k) co[m++] = s[i++];
      int64_t idx = find(k + 1, co);
      if (idx >= 0) out.push_back(base_[k + 1] + idx);
    };
    if (is_dense_) {
      int i = 0;
      for (int32_t w = 0; w < n_; ++w) {
        if (i <= k && s[i] == w) {
          ++i;
          continue;
        }
        emit(w);
      }
      return;
    }
    for (int64_t e = indptr_[s[0]]; e < indptr_[s[0] + 1]; ++e) {
      int32_t w = nbr_[e];
      bool all = true;
      double dummy;
      for (int i = 1; i <= k && all; ++i) {
        if (s[i] == w || !weight(s[i], w, dummy)) all = false;
      }
      if (all) emit(w);
    }
  }

 private:
  static double bytes_per_cell() { return 64.0; }
  void check_vertex_count(const std::string& path) {
    if (n_ > std::numeric_limits<int32_t>::max()) {
      throw Error(path + ": " + std::to_string(n_) + " points are more than the general engine supports (2^31 - 1)");
    }
    if (D_ > 63) D_cap_ = 63; else D_cap_ = D_;
  }
  bool weight(int32_t a, int32_t b, double& w) const {
    int32_t hi = std::max(a, b), lo = std::min(a, b);
    if (is_dense_) {
      w = dense_[static_cast<int64_t>(hi) * n_ + lo];
      return true;
    }
    auto first = nbr_.begin() + indptr_[hi], last = nbr_.begin() + indptr_[hi + 1];
    auto it = std::lower_bound(first, last, lo);
    if (it == last || *it != lo) return false;
    w = w_[it - nbr_.begin()];
    return true;
  }
  // colex comparison of two (k+1)-tuples: largest vertex first.
  static bool colex_less(const int32_t* a, const int32_t* b, int k) {
    for (int i = k; i >= 0; --i) {
      if (a[i] != b[i]) return a[i] < b[i];
    }
    return false;
  }
  int64_t find(int k, const int32_t* t) const {
    const auto& v = verts_[k];
    int64_t lo = 0, hi = static_cast<int64_t>(vals_[k].size());
    while (lo < hi) {
      int64_t mid = (lo + hi) / 2;
      if (colex_less(&v[mid * (k + 1)], t, k)) lo = mid + 1; else hi = mid;
    }
    if (lo < static_cast<int64_t>(vals_[k].size()) && !colex_less(t, &v[lo * (k + 1)], k)) return lo;
    return -1;
  }

  void enumerate(const std::string& path) {
    const double phys = physical_memory_bytes();
    verts_.emplace_back(n_);
    std::iota(verts_[0].begin(), verts_[0].end(), 0);
    vals_.emplace_back(n_, 0.0);
    double total = static_cast<double>(n_);
    std::vector<int32_t> nv;
    std::vector<double> nval;
    for (int k = 0; k < D_cap_; ++k) {
      const auto& sv = verts_[k];
      const auto& sval = vals_[k];
      int64_t count = static_cast<int64_t>(sval.size());
      nv.clear();
      nval.clear();
      for (int64_t s = 0; s < count; ++s) {
        const int32_t* sig = &sv[s * (k + 1)];
        int32_t top = sig[k];
        auto visit = [&](int32_t w, double wtop) {
          double v = std::max(sval[s], std::max(0.0, wtop) / 2);
          for (int i = 0; i < k; ++i) {
            double ww;
            if (!weight(sig[i], w, ww)) return;
            v = std::max(v, std::max(0.0, ww) / 2);
          }
          nv.insert(nv.end(), sig, sig + k + 1);
          nv.push_back(w);
          nval.push_back(v);
          if ((nval.size() & 0xFFFFF) == 0) {
            double t = total + static_cast<double>(nval.size());
            if (phys > 0 && t * bytes_per_cell() > phys) {
              check_fits_in_memory(path, "the Rips complex up to dimension " + std::to_string(D_) + " (at least)", t,
                                   t * bytes_per_cell());
            }
          }
        };
        if (is_dense_) {
          for (int32_t w = top + 1; w < n_; ++w) visit(w, dense_[static_cast<int64_t>(w) * n_ + top]);
        } else {
          auto first = nbr_.begin() + indptr_[top], last = nbr_.begin() + indptr_[top + 1];
          for (auto it = std::upper_bound(first, last, top); it != last; ++it) {
            double wt = 0;
            weight(top, *it, wt);
            visit(*it, wt);
          }
        }
      }
      int64_t m = static_cast<int64_t>(nval.size());
      if (m == 0) break;
      total += static_cast<double>(m);
      // sort the new simplices colexicographically
      std::vector<int64_t> perm(m);
      std::iota(perm.begin(), perm.end(), 0);
      const int kk = k + 1;
      std::sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
        return colex_less(&nv[a * (kk + 1)], &nv[b * (kk + 1)], kk);
      });
      std::vector<int32_t> sorted_v(nv.size());
      std::vector<double> sorted_val(m);
      for (int64_t i = 0; i < m; ++i) {
        std::copy(&nv[perm[i] * (kk + 1)], &nv[perm[i] * (kk + 1)] + kk + 1, &sorted_v[i * (kk + 1)]);
        sorted_val[i] = nval[perm[i]];
      }
      verts_.push_back(std::move(sorted_v));
      vals_.push_back(std::move(sorted_val));
    }
    base_.assign(verts_.size() + 1, 0);
    for (size_t k = 0; k < verts_.size(); ++k) base_[k + 1] = base_[k] + static_cast<int64_t>(vals_[k].size());
    max_value_ = 0.0;  // the running maximum of DIPHA starts at 0
    for (const auto& v : vals_) {
      for (double x : v) max_value_ = std::max(max_value_, x);
    }
  }

  int64_t n_;
  int64_t D_;
  int64_t D_cap_ = 0;
  bool is_dense_ = false;
  std::vector<double> dense_;
  std::vector<int64_t> indptr_;
  std::vector<int32_t> nbr_;
  std::vector<double> w_;
  std::vector<std::vector<int32_t>> verts_;
  std::vector<std::vector<double>> vals_;
  std::vector<int64_t> base_;
  double max_value_ = 0.0;
};

}  // namespace

std::unique_ptr<Complex> make_explicit_complex(ExplicitComplex c) {
  return std::make_unique<ExplicitCells>(std::move(c));
}
std::unique_ptr<Complex> make_cubical_complex(Image im, const std::string& path) {
  return std::make_unique<CubicalCells>(std::move(im), path);
}
std::unique_ptr<Complex> make_rips_complex(DistanceMatrix m, int64_t upper_dim, const std::string& path) {
  return std::make_unique<RipsCells>(std::move(m), upper_dim, path);
}
std::unique_ptr<Complex> make_rips_complex(SparseDistanceMatrix m, int64_t upper_dim, const std::string& path) {
  return std::make_unique<RipsCells>(std::move(m), upper_dim, path);
}

}  // namespace dipha
