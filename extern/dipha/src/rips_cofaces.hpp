// Cofaces and facets of the simplices of the clique complex of the thresholded graph, and the
// zero-persistence apparent pairs they form, specialised at compile time per look-up kind:
//  * DenseLookup: the dense matrix of the graph (O(1) distance, rows read at ascending w);
//  * NeighbourLookup: the sorted neighbour lists only (distance by binary search, common
//    neighbours by a galloping merge).
// The engine picks one kind per run (rips.cpp) and instantiates everything above this file for
// it, so no hot loop asks which kind it has.
#pragma once

#include <algorithm>
#include <cstdint>

#include "rips_graph.hpp"
#include "rips_simplex.hpp"

namespace dipha {
namespace rips {
namespace detail {

/// Look-ups in the dense matrix (Graph::mat must be set).
class DenseLookup {
 public:
  static constexpr bool kDense = true;
  explicit DenseLookup(const Graph& g) : g_(g), mat_(g.mat), n_(static_cast<size_t>(g.n)) {}
  const Graph& graph() const { return g_; }
  /// d(a, b) for an edge; for no edge +inf, NaN or a value above the threshold (see Graph::mat);
  /// +inf when a == b.
  double dist(int32_t a, int32_t b) const { return a == b ? kInf : mat_[static_cast<size_t>(a) * n_ + b]; }

  /// Distances from one vertex w to vertices x read in ascending order (as dist).
  class Row {
   public:
    Row(const DenseLookup& L, int32_t w) : row_(L.mat_ + static_cast<size_t>(w) * L.n_), w_(w) {}
    double next(int32_t x) { return x == w_ ? kInf : row_[x]; }

   private:
    const double* row_;
    int32_t w_;
  };

  /// Calls f(w, m) for every common neighbour w of v[0..k] in ascending order (w > v[k] only
  /// when above_only), m = the largest of val and the distances d(w, v[a]); stops when f
  /// returns true. The AND of the vertices' adjacency bitsets: a word of 64 candidates at a time.
  template <class F>
  void common_neighbours(const int32_t* v, int k, double val, bool above_only, F&& f) const {
    const uint64_t* bits[kMaxVerts];
    const double* rows[kMaxVerts];
    for (int a = 0; a <= k; ++a) {
      bits[a] = g_.adj.data() + static_cast<size_t>(v[a]) * g_.words;
      rows[a] = mat_ + static_cast<size_t>(v[a]) * n_;
    }
    size_t wd = 0;
    uint64_t first_mask = ~uint64_t{0};
    if (above_only) {
      const size_t from = static_cast<size_t>(v[k]) + 1;
      wd = from >> 6;
      first_mask = (from & 63) ? ~uint64_t{0} << (from & 63) : ~uint64_t{0};
    }
    for (; wd < g_.words; ++wd) {
      uint64_t m = bits[0][wd] & first_mask;
      first_mask = ~uint64_t{0};
      for (int a = 1; a <= k && m; ++a) m &= bits[a][wd];
      while (m) {
        const int32_t w = static_cast<int32_t>((wd << 6) + static_cast<size_t>(__builtin_ctzll(m)));
        m &= m - 1;
        double x = val;
        for (int a = 0; a <= k; ++a) x = std::max(x, rows[a][w]);
        if (f(w, x)) return;
      }
    }
  }

  /// Distances from the vertices v[a], a != skip, of a simplex to candidate vertices w.
  class Probe {
   public:
    Probe(const DenseLookup& L, const int32_t* v, int k, int skip) {
      for (int a = 0; a <= k; ++a)
        if (a != skip) {
          vert_[nr_] = v[a];
          rows_[nr_++] = L.mat_ + static_cast<size_t>(v[a]) * L.n_;
        }
    }
    /// For candidates in any order: is d(w, v[a]) <= val for every probed vertex (w not one of
    /// them)? val is at most the threshold.
    bool within(int32_t w, double val) const {
      for (int a = 0; a < nr_; ++a)
        if (w == vert_[a] || !(rows_[a][w] <= val)) return false;
      return true;
    }

   private:
    const double* rows_[kMaxVerts];
    int32_t vert_[kMaxVerts];
    int nr_ = 0;
  };

 private:
  const Graph& g_;
  const double* mat_;
  size_t n_;
};

/// Look-ups in the sorted neighbour lists.
class NeighbourLookup {
 public:
  static constexpr bool kDense = false;
  explicit NeighbourLookup(const Graph& g) : g_(g) {}
  const Graph& graph() const { return g_; }
  double dist(int32_t a, int32_t b) const {
    const int32_t* lo = g_.nb.data() + g_.ptr[a];
    const int32_t* hi = g_.nb.data() + g_.ptr[a + 1];
    const int32_t* it = std::lower_bound(lo, hi, b);
    return (it != hi && *it == b) ? g_.nv[it - g_.nb.data()] : kInf;
  }

  /// As DenseLookup::Row: a galloping cursor in w's neighbour list.
  class Row {
   public:
    Row(const NeighbourLookup& L, int32_t w)
        : it_(L.g_.nb.data() + L.g_.ptr[w]), end_(L.g_.nb.data() + L.g_.ptr[w + 1]),
          base_(it_), val_(L.g_.nv.data() + L.g_.ptr[w]) {}
    double next(int32_t x) {
      it_ = gallop(it_, end_, x);
      return (it_ != end_ && *it_ == x) ? val_[it_ - base_] : kInf;
    }

   private:
    const int32_t* it_;
    const int32_t* end_;
    const int32_t* base_;
    const double* val_;
  };

  /// As DenseLookup::common_neighbours: the shortest neighbour list of v's vertices merged
  /// with the others (Probe::next).
  template <class F>
  void common_neighbours(const int32_t* v, int k, double val, bool above_only, F&& f) const;

  /// Distances from the vertices v[a], a != skip, of a simplex to candidate vertices w. next()
  /// merges the sorted neighbour lists: w must be in every probed vertex's list (a vertex is
  /// never its own neighbour, so w in sigma drops out); galloping keeps a short candidate list
  /// against long ones at O(len log(ratio)).
  class Probe {
   public:
    Probe(const NeighbourLookup& L, const int32_t* v, int k, int skip) : L_(L) {
      const Graph& g = L.g_;
      for (int a = 0; a <= k; ++a) {
        if (a == skip) continue;
        vert_[nr_] = v[a];
        it_[nr_] = base_[nr_] = g.nb.data() + g.ptr[v[a]];
        end_[nr_] = g.nb.data() + g.ptr[v[a] + 1];
        val_[nr_] = g.nv.data() + g.ptr[v[a]];
        ++nr_;
      }
    }
    /// For candidates w in ascending order: 1 if w is adjacent to every probed vertex (m raised
    /// to the largest of those distances), 0 if not, -1 if no candidate >= w can be.
    int next(int32_t w, double& m) {
      for (int a = 0; a < nr_; ++a) {
        it_[a] = gallop(it_[a], end_[a], w);
        if (it_[a] == end_[a]) return -1;  // no larger common neighbour is possible
        if (*it_[a] != w) return 0;
        m = std::max(m, val_[a][it_[a] - base_[a]]);
      }
      return 1;
    }
    /// For candidates in any order: is d(w, v[a]) <= val for every probed vertex?
    bool within(int32_t w, double val) const {
      for (int a = 0; a < nr_; ++a)
        if (!(L_.dist(w, vert_[a]) <= val)) return false;
      return true;
    }

   private:
    const NeighbourLookup& L_;
    int32_t vert_[kMaxVerts];
    const int32_t* it_[kMaxVerts];
    const int32_t* end_[kMaxVerts];
    const int32_t* base_[kMaxVerts];
    const double* val_[kMaxVerts];
    int nr_ = 0;
  };

 private:
  const Graph& g_;
};

template <class F>
void NeighbourLookup::common_neighbours(const int32_t* v, int k, double val, bool above_only, F&& f) const {
  // candidates: the shortest neighbour list of sigma's vertices
  int u = 0;
  for (int a = 1; a <= k; ++a) if (g_.degree(v[a]) < g_.degree(v[u])) u = a;
  const int32_t* nb = g_.nb.data() + g_.ptr[v[u]];
  const int32_t* ne = g_.nb.data() + g_.ptr[v[u] + 1];
  const double* nv = g_.nv.data() + g_.ptr[v[u]];
  if (above_only) {
    const int32_t* s = std::upper_bound(nb, ne, v[k]);
    nv += s - nb;
    nb = s;
  }
  Probe probe(*this, v, k, u);
  for (; nb != ne; ++nb, ++nv) {
    const int32_t w = *nb;
    double m = std::max(val, *nv);
    const int adj = probe.next(w, m);
    if (adj < 0) return;
    if (adj == 0) continue;
    if (f(w, m)) return;
  }
}

/// The clique complex of the graph seen through one look-up kind.
template <class Lookup>
class Complex {
 public:
  Complex(const Graph& g, const Binomial& C) : g(g), C(C), L(g) {}
  const Graph& g;
  const Binomial& C;
  const Lookup L;

  void vertices(idx_t idx, int k, int32_t* out) const { vertices_of(C, idx, k, out); }
  idx_t rank(const int32_t* v, int k) const { return rank_of(C, v, k); }
  double diameter(const int32_t* v, int k) const {
    double m = k >= 1 ? -kInf : 0.0;
    for (int a = 1; a <= k; ++a)
      for (int b = 0; b < a; ++b) m = std::max(m, L.dist(v[a], v[b]));
    return k >= 1 ? m : 0.0;
  }

  // Calls f(value, rank, w) for every coface sigma + {w} present in the complex, w ascending (so
  // ranks ascending), w > v[k] only when above_only. Stops when f returns true.
  template <class F>
  void cofaces(const int32_t* v, int k, double val, F&& f, bool above_only = false) const {
    idx_t lo[kMaxVerts + 1], hi[kMaxVerts + 1];
    lo[0] = 0;
    for (int p = 0; p <= k; ++p) lo[p + 1] = lo[p] + C(v[p], p + 1);
    hi[k + 1] = 0;
    for (int p = k; p >= 0; --p) hi[p] = hi[p + 1] + C(v[p], p + 2);
    int p = 0;  // number of vertices of sigma below w
    L.common_neighbours(v, k, val, above_only, [&](int32_t w, double m) {
      while (p <= k && v[p] < w) ++p;
      return f(m, lo[p] + C(w, p + 1) + hi[p], w);
    });
  }

  // Facets of the dim-(k+1) simplex u (k+2 vertices), removing u[0] first (largest rank first).
  // Calls f(value, rank, j) with j the removed position; stops when f returns true.
  template <class F>
  void facets(const int32_t* u, int kp1, F&& f) const {
    const int m = kp1 + 1;  // number of vertices
    double pd[kMaxVerts][kMaxVerts];
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < a; ++b) pd[a][b] = pd[b][a] = L.dist(u[a], u[b]);
    for (int j = 0; j < m; ++j) {
      double val = kp1 >= 2 ? -kInf : 0.0;
      idx_t r = 0;
      for (int a = 0, pa = 0; a < m; ++a) {
        if (a == j) continue;
        r += C(u[a], pa + 1);
        ++pa;
        if (kp1 >= 2)
          for (int b = 0; b < a; ++b) if (b != j) val = std::max(val, pd[a][b]);
      }
      if (f(val, r, j)) return;
    }
  }

  // Smallest vertex w such that sigma + {w} has value val (= val(sigma)), or -1: the
  // intersection of the balls of radius val around sigma's vertices, scanned from the smallest.
  int32_t min_equal_coface_vertex(const int32_t* v, int k, double val) const {
    int best_a = 0;
    int64_t best_c = INT64_MAX;
    for (int a = 0; a <= k; ++a) {
      const double* b0 = g.bd.data() + g.ptr[v[a]];
      const double* b1 = g.bd.data() + g.ptr[v[a] + 1];
      int64_t c = std::upper_bound(b0, b1, val) - b0;
      if (c < best_c) { best_c = c; best_a = a; }
    }
    if (best_c == 0) return -1;
    int u = 0;
    for (int a = 1; a <= k; ++a) if (g.degree(v[a]) < g.degree(v[u])) u = a;
    if (best_c * 8 > g.degree(v[u])) {
      // large balls: ascending scan of the smallest neighbour list, the first hit is the answer
      int32_t found = -1;
      cofaces(v, k, val, [&](double m, idx_t, int32_t w) {
        if (m == val) { found = w; return true; }
        return false;
      });
      return found;
    }
    const int32_t* w0 = g.bv.data() + g.ptr[v[best_a]];
    int32_t best = INT32_MAX;
    const typename Lookup::Probe probe(L, v, k, best_a);
    for (int64_t t = 0; t < best_c; ++t) {
      const int32_t w = w0[t];
      if (w < best && probe.within(w, val)) best = w;
    }
    return best == INT32_MAX ? -1 : best;
  }

  // Zero-persistence apparent pair (sigma, tau): val(tau) = val(sigma), tau the smallest-key
  // coface of sigma and sigma the largest-key facet of tau.
  // For a column sigma (dim k): the partner tau, or rank -1.
  idx_t apparent_cofacet(const int32_t* v, int k, double val, idx_t idx) const {
    const int32_t w = min_equal_coface_vertex(v, k, val);
    if (w < 0) return -1;
    int32_t tv[kMaxVerts];
    for (int a = 0, b = 0, placed = 0; a <= k + 1; ++a) {
      if (!placed && (b > k || w < v[b])) { tv[a] = w; placed = 1; }
      else tv[a] = v[b++];
    }
    idx_t first = -1;
    facets(tv, k + 1, [&](double fv, idx_t fr, int) {
      if (fv == val) { first = fr; return true; }
      return false;
    });
    return first == idx ? rank(tv, k + 1) : -1;
  }
  // For a simplex tau (dim k+1, vertices u): its zero-apparent facet, or rank -1.
  idx_t apparent_facet(const int32_t* u, int kp1, double val) const {
    idx_t sigma = -1;
    int jsel = -1;
    facets(u, kp1, [&](double fv, idx_t fr, int j) {
      if (fv == val) { sigma = fr; jsel = j; return true; }
      return false;
    });
    if (sigma < 0) return -1;
    if (kp1 < 1) __builtin_unreachable();  // tau has an edge (lets the compiler see sv written)
    int32_t sv[kMaxVerts];
    for (int a = 0, b = 0; a <= kp1; ++a) if (a != jsel) sv[b++] = u[a];
    // tau must be the smallest-key coface of sigma of value val
    return min_equal_coface_vertex(sv, kp1 - 1, val) == u[jsel] ? sigma : -1;
  }
};

}  // namespace detail
}  // namespace rips
}  // namespace dipha
