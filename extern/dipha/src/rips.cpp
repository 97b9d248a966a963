// Vietoris-Rips persistent cohomology with an implicit coboundary matrix.
//
// Simplices are named by their colexicographic rank in the combinatorial number system
// (rank of v_0 < ... < v_k = sum_i C(v_i, i + 1)); the coboundary of a simplex is generated on
// demand from the neighbour lists of its vertices, nothing is stored but the reduction
// (V) columns of the pairs that needed work. Zero-persistence apparent pairs are recognised
// locally (never stored), clearing removes the columns of simplices that were pivots in the
// previous dimension, and a column whose smallest coface is a free pivot is paired at once.
//
// Filtration order: key(simplex) = (value, dimension, rank), value = longest edge. Cohomology
// columns of dimension q are processed in decreasing key order; the pivot of a column is its
// smallest-key coface.
//
// Distribution over the P ranks of a communicator: the columns of each dimension are split into
// P contiguous key ranges (rank 0 the lowest keys); rank r owns the columns and the pivots whose
// key lies in its range. Pivots only grow during a column's reduction, so a column whose pivot
// leaves rank r's range is handed to rank r + 1 (as its V column) and continued there: a
// pipelined chain of P rounds, the mirror image of DIPHA's (§5.4 of the specification).
#include "dipha/rips.hpp"

#include "dipha/collapse.hpp"
#include "dipha/mpi_layer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <memory>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>

namespace dipha {
namespace rips {
namespace {

using idx_t = int64_t;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Entry {
  double v;
  idx_t i;
};
inline bool operator==(const Entry& a, const Entry& b) { return a.v == b.v && a.i == b.i; }
inline bool key_less(const Entry& a, const Entry& b) { return a.v < b.v || (a.v == b.v && a.i < b.i); }
struct KeyGreater {  // for a min-heap with std::push_heap
  bool operator()(const Entry& a, const Entry& b) const { return key_less(b, a); }
};

// ---------------------------------------------------------------------------------------------
// Binomial coefficients C(v, k), 0 <= v <= n, 0 <= k <= kmax, with an overflow check.
class Binomial {
 public:
  Binomial(int64_t n, int kmax) : n_(n), kmax_(kmax), t_(static_cast<size_t>(kmax + 1) * (n + 1), 0) {
    for (int64_t v = 0; v <= n; ++v) {
      at(v, 0) = 1;
      for (int k = 1; k <= kmax; ++k) {
        if (v == 0) { at(v, k) = 0; continue; }
        idx_t a = at(v - 1, k - 1), b = at(v - 1, k);
        if (a < 0 || b < 0 || a > INT64_MAX - b) at(v, k) = -1;  // overflow marker
        else at(v, k) = a + b;
      }
    }
  }
  bool overflowed() const {
    for (idx_t x : t_) if (x < 0) return true;
    return false;
  }
  idx_t operator()(int64_t v, int k) const { return t_[static_cast<size_t>(k) * (n_ + 1) + v]; }

 private:
  idx_t& at(int64_t v, int k) { return t_[static_cast<size_t>(k) * (n_ + 1) + v]; }
  int64_t n_;
  int kmax_;
  std::vector<idx_t> t_;
};

// ---------------------------------------------------------------------------------------------
// The thresholded graph: sorted neighbour lists and, when it fits, a dense symmetric matrix with
// +inf for absent edges (and on the diagonal) for O(1) look-ups.
struct Graph {
  int64_t n = 0;
  std::vector<double> mat;      // n*n or empty
  std::vector<int64_t> ptr;     // n+1
  std::vector<int32_t> nb;      // neighbour ids, ascending per row
  std::vector<double> nv;       // edge values, same order
  std::vector<Entry> edges;     // (value, rank) of every edge, sorted by key
  std::vector<double> bd;       // per row, neighbour distances ascending ("balls"), same offsets
  std::vector<int32_t> bv;      // the matching neighbour ids

  double dist(int32_t a, int32_t b) const {
    if (!mat.empty()) return mat[static_cast<size_t>(a) * n + b];
    const int32_t* lo = nb.data() + ptr[a];
    const int32_t* hi = nb.data() + ptr[a + 1];
    const int32_t* it = std::lower_bound(lo, hi, b);
    return (it != hi && *it == b) ? nv[it - nb.data()] : kInf;
  }
  int64_t degree(int32_t a) const { return ptr[a + 1] - ptr[a]; }
};

// Advances `it` (within [it, end)) to the first entry >= w, galloping: O(log distance).
inline const int32_t* gallop(const int32_t* it, const int32_t* end, int32_t w) {
  if (it == end || *it >= w) return it;
  size_t step = 1;
  const int32_t* lo = it;
  while (lo + step < end && lo[step] < w) {
    lo += step;
    step *= 2;
  }
  const int32_t* hi = lo + step < end ? lo + step + 1 : end;
  return std::lower_bound(lo + 1, hi, w);
}

constexpr int64_t kDefaultDenseLookupBytes = 512LL * 1024 * 1024;

Graph build_graph(const DistanceView& d, double threshold, bool clamp_negative, int64_t dense_bytes) {
  Graph g;
  const int64_t n = d.n;
  g.n = n;
  auto keep = [&](double x) { return x <= threshold && x < kInf; };  // NaN fails both
  auto value = [&](double x) { return clamp_negative ? std::max(0.0, x) : x; };
  std::vector<int64_t> deg(n, 0);
  auto lower = [&](auto&& visit) {  // visits (i, j, d) for every kept edge, i > j, rows ascending
    if (d.dense64 || d.dense32) {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) {
          double x = d.dense64 ? d.dense64[i * n + j] : static_cast<double>(d.dense32[i * n + j]);
          x = value(x);
          if (keep(x)) visit(i, j, x);
        }
    } else {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) {
          int64_t j = d.indices[p];
          if (j >= i) continue;
          double x = value(d.values[p]);
          if (keep(x)) visit(i, j, x);
        }
    }
  };
  lower([&](int64_t i, int64_t j, double) { ++deg[i]; ++deg[j]; });
  g.ptr.assign(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) g.ptr[i + 1] = g.ptr[i] + deg[i];
  const int64_t E2 = g.ptr[n];
  g.nb.resize(E2);
  g.nv.resize(E2);
  g.edges.reserve(E2 / 2);
  std::vector<int64_t> fill(g.ptr.begin(), g.ptr.end() - 1);
  // Row i receives its j < i entries at step i (ascending j) and its i' > i entries at later
  // steps (ascending i'), so every row ends up sorted.
  lower([&](int64_t i, int64_t j, double x) {
    g.nb[fill[i]] = static_cast<int32_t>(j); g.nv[fill[i]++] = x;
    g.nb[fill[j]] = static_cast<int32_t>(i); g.nv[fill[j]++] = x;
    g.edges.push_back({x, i * (i - 1) / 2 + j});
  });
  if (dense_bytes < 0) dense_bytes = kDefaultDenseLookupBytes;
  if (static_cast<double>(n) * n * 8.0 <= static_cast<double>(dense_bytes)) {
    g.mat.assign(static_cast<size_t>(n) * n, kInf);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = g.ptr[i]; p < g.ptr[i + 1]; ++p) g.mat[static_cast<size_t>(i) * n + g.nb[p]] = g.nv[p];
  }
  std::sort(g.edges.begin(), g.edges.end(), key_less);
  g.bd.resize(E2);
  g.bv.resize(E2);
  {
    std::vector<std::pair<double, int32_t>> row;
    for (int64_t i = 0; i < n; ++i) {
      row.clear();
      for (int64_t p = g.ptr[i]; p < g.ptr[i + 1]; ++p) row.push_back({g.nv[p], g.nb[p]});
      std::sort(row.begin(), row.end());
      for (size_t t = 0; t < row.size(); ++t) { g.bd[g.ptr[i] + t] = row[t].first; g.bv[g.ptr[i] + t] = row[t].second; }
    }
  }
  return g;
}

// The graph of the edge-collapsed filtration of g (same diagrams, fewer edges), built as the
// thresholded graph of its edge list. Deterministic: under MPI every rank, holding the same input,
// computes the same collapse on its own, with no communication.
Graph collapsed_graph(Graph g, int rounds, int64_t dense_bytes, collapse::Stats* stats, bool verbose) {
  std::vector<collapse::Edge> edges;
  edges.reserve(g.edges.size());
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t p = g.ptr[i]; p < g.ptr[i + 1] && g.nb[p] < i; ++p)
      edges.push_back({g.nb[p], static_cast<int32_t>(i), g.nv[p]});
  const int64_t n = g.n;
  g = Graph();  // free the uncollapsed graph before the collapse's own structures
  const size_t before = edges.size();
  edges = collapse::collapse_edges(n, std::move(edges), rounds, stats, dense_bytes, [&](const collapse::Stats& s) {
    if (verbose)
      std::fprintf(stderr, "[rips] edge collapse round %zu: %zu -> %lld edges\n", s.edges_after_round.size(), before,
                   static_cast<long long>(s.edges_after_round.back()));
  });
  std::vector<int64_t> indptr(n + 1, 0), indices(2 * edges.size()), fill;
  std::vector<double> values(2 * edges.size());
  for (const collapse::Edge& e : edges) { ++indptr[e.u + 1]; ++indptr[e.v + 1]; }
  for (int64_t i = 0; i < n; ++i) indptr[i + 1] += indptr[i];
  fill.assign(indptr.begin(), indptr.end() - 1);
  // edges sorted by (v, u) fill every row in ascending order: row v gets its u < v in order of
  // u, row u its v > u in order of v
  std::sort(edges.begin(), edges.end(), [](const collapse::Edge& x, const collapse::Edge& y) {
    return x.v < y.v || (x.v == y.v && x.u < y.u);
  });
  for (const collapse::Edge& e : edges) {
    indices[fill[e.v]] = e.u; values[fill[e.v]++] = e.value;
    indices[fill[e.u]] = e.v; values[fill[e.u]++] = e.value;
  }
  DistanceView d;
  d.n = n;
  d.indptr = indptr.data();
  d.indices = indices.data();
  d.values = values.data();
  return build_graph(d, kInf, /*clamp_negative=*/false, dense_bytes);
}

// ---------------------------------------------------------------------------------------------
// Simplex arithmetic on the graph.
constexpr int kMaxVerts = 64;

struct Complex {
  const Graph& g;
  const Binomial& C;

  // Vertices (ascending) of the dim-k simplex with colex rank idx.
  void vertices(idx_t idx, int k, int32_t* out) const {
    int64_t hi = g.n;  // exclusive upper bound for the next vertex
    for (int i = k; i >= 0; --i) {
      // largest v < hi with C(v, i+1) <= idx
      int64_t lo = i, h = hi - 1;
      while (lo < h) {
        int64_t mid = (lo + h + 1) / 2;
        if (C(mid, i + 1) <= idx) lo = mid; else h = mid - 1;
      }
      out[i] = static_cast<int32_t>(lo);
      idx -= C(lo, i + 1);
      hi = lo;
    }
  }
  double diameter(const int32_t* v, int k) const {
    double m = k >= 1 ? -kInf : 0.0;
    for (int a = 1; a <= k; ++a)
      for (int b = 0; b < a; ++b) m = std::max(m, g.dist(v[a], v[b]));
    return k >= 1 ? m : 0.0;
  }
  idx_t rank(const int32_t* v, int k) const {
    idx_t r = 0;
    for (int i = 0; i <= k; ++i) r += C(v[i], i + 1);
    return r;
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
    int u = 0;
    for (int a = 1; a <= k; ++a) if (g.degree(v[a]) < g.degree(v[u])) u = a;
    const int32_t* nb = g.nb.data() + g.ptr[v[u]];
    const int32_t* ne = g.nb.data() + g.ptr[v[u] + 1];
    const double* nv = g.nv.data() + g.ptr[v[u]];
    if (above_only) {
      const int32_t* s = std::upper_bound(nb, ne, v[k]);
      nv += s - nb;
      nb = s;
    }
    int p = 0;  // number of vertices of sigma below w
    if (!g.mat.empty()) {
      // rows of sigma's vertices, read at ascending w: sequential memory traffic
      const double* rows[kMaxVerts];
      int nr = 0;
      for (int a = 0; a <= k; ++a)
        if (a != u) rows[nr++] = g.mat.data() + static_cast<size_t>(v[a]) * g.n;
      for (; nb != ne; ++nb, ++nv) {
        const int32_t w = *nb;
        double m = std::max(val, *nv);
        for (int a = 0; a < nr; ++a) m = std::max(m, rows[a][w]);
        if (m == kInf) continue;  // not adjacent to all, or w in sigma (diagonal is +inf)
        while (p <= k && v[p] < w) ++p;
        if (f(m, lo[p] + C(w, p + 1) + hi[p], w)) return;
      }
    } else {
      // Merge of the sorted neighbour lists: w must be in every other vertex's list (a vertex
      // is never its own neighbour, so w in sigma drops out). Galloping keeps a short list u
      // against long ones at O(deg(u) log(ratio)).
      const int32_t* it[kMaxVerts];
      const int32_t* end[kMaxVerts];
      const double* val0[kMaxVerts];
      int nr = 0;
      for (int a = 0; a <= k; ++a) {
        if (a == u) continue;
        it[nr] = g.nb.data() + g.ptr[v[a]];
        end[nr] = g.nb.data() + g.ptr[v[a] + 1];
        val0[nr] = g.nv.data() + g.ptr[v[a]];
        ++nr;
      }
      const int32_t* base[kMaxVerts];
      for (int a = 0; a < nr; ++a) base[a] = it[a];
      for (; nb != ne; ++nb, ++nv) {
        const int32_t w = *nb;
        double m = std::max(val, *nv);
        bool all = true;
        for (int a = 0; a < nr; ++a) {
          it[a] = gallop(it[a], end[a], w);
          if (it[a] == end[a]) return;  // no larger common neighbour is possible
          if (*it[a] != w) { all = false; break; }
          m = std::max(m, val0[a][it[a] - base[a]]);
        }
        if (!all) continue;
        while (p <= k && v[p] < w) ++p;
        if (f(m, lo[p] + C(w, p + 1) + hi[p], w)) return;
      }
    }
  }

  // Facets of the dim-(k+1) simplex u (k+2 vertices), removing u[0] first (largest rank first).
  // Calls f(value, rank, j) with j the removed position; stops when f returns true.
  template <class F>
  void facets(const int32_t* u, int kp1, F&& f) const {
    const int m = kp1 + 1;  // number of vertices
    double pd[kMaxVerts][kMaxVerts];
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < a; ++b) pd[a][b] = pd[b][a] = g.dist(u[a], u[b]);
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
    if (!g.mat.empty()) {
      const double* rows[kMaxVerts];
      int nr = 0;
      for (int a = 0; a <= k; ++a)
        if (a != best_a) rows[nr++] = g.mat.data() + static_cast<size_t>(v[a]) * g.n;
      for (int64_t t = 0; t < best_c; ++t) {
        const int32_t w = w0[t];
        if (w >= best) continue;
        bool ok = true;
        for (int a = 0; a < nr && ok; ++a) ok = rows[a][w] <= val;  // +inf on the diagonal
        if (ok) best = w;
      }
    } else {
      for (int64_t t = 0; t < best_c; ++t) {
        const int32_t w = w0[t];
        if (w >= best) continue;
        bool ok = true;
        for (int a = 0; a <= k && ok; ++a)
          if (a != best_a) ok = v[a] != w && g.dist(w, v[a]) <= val;
        if (ok) best = w;
      }
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
  idx_t apparent_facet(const int32_t* u, int kp1, double val, idx_t idx) const {
    (void)idx;
    idx_t sigma = -1;
    int jsel = -1;
    facets(u, kp1, [&](double fv, idx_t fr, int j) {
      if (fv == val) { sigma = fr; jsel = j; return true; }
      return false;
    });
    if (sigma < 0) return -1;
    int32_t sv[kMaxVerts];
    for (int a = 0, b = 0; a <= kp1; ++a) if (a != jsel) sv[b++] = u[a];
    // tau must be the smallest-key coface of sigma of value val
    return min_equal_coface_vertex(sv, kp1 - 1, val) == u[jsel] ? sigma : -1;
  }
};

// ---------------------------------------------------------------------------------------------
// Open-addressing hash map idx_t -> int64_t (keys >= 0).
class HashMap {
 public:
  HashMap() { rehash(1024); }
  void clear() { keys_.clear(); vals_.clear(); rehash(1024); }
  size_t size() const { return size_; }
  const int64_t* find(idx_t k) const {
    size_t h = hash(k) & mask_;
    while (true) {
      if (keys_[h] == k) return &vals_[h];
      if (keys_[h] < 0) return nullptr;
      h = (h + 1) & mask_;
    }
  }
  void insert(idx_t k, int64_t v) {
    if ((size_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
    size_t h = hash(k) & mask_;
    while (keys_[h] >= 0 && keys_[h] != k) h = (h + 1) & mask_;
    if (keys_[h] < 0) ++size_;
    keys_[h] = k;
    vals_[h] = v;
  }
  template <class F> void for_each(F&& f) const {
    for (size_t h = 0; h < keys_.size(); ++h) if (keys_[h] >= 0) f(keys_[h], vals_[h]);
  }

 private:
  static size_t hash(idx_t k) {
    uint64_t x = static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ULL;
    return static_cast<size_t>(x ^ (x >> 29));
  }
  void rehash(size_t cap) {
    std::vector<idx_t> ok;
    std::vector<int64_t> ov;
    ok.swap(keys_);
    ov.swap(vals_);
    keys_.assign(cap, -1);
    vals_.assign(cap, 0);
    mask_ = cap - 1;
    size_ = 0;
    for (size_t h = 0; h < ok.size(); ++h) if (ok[h] >= 0) insert(ok[h], ov[h]);
  }
  std::vector<idx_t> keys_;
  std::vector<int64_t> vals_;
  size_t mask_ = 0, size_ = 0;
};

using mpi::peak_rss_mib;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string human_bytes(double b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// The engine proper.
// Out of memory in a phase: "rips: out of memory while <what> (n = ... vertices, ... edges; peak
// ... MiB on this rank); <what to do>". `edges` < 0 before the graph is built.
mpi::OomMessage rips_oom(int64_t n, const int64_t* edges) {
  return [n, edges](const mpi::Phase& ph) {
    std::ostringstream os;
    os << "rips: out of memory while " << ph.what << " (n = " << n << " vertices, ";
    if (*edges >= 0) os << *edges << " edges; ";
    os << "peak " << static_cast<long>(peak_rss_mib()) << " MiB on this rank); lower the threshold or "
       << "max_dim, or spread the work over more ranks with more memory";
    return os.str();
  };
}

// Tag of the column messages of the reduction pipeline.
constexpr int kTagColumns = 11;

// Phases (fault-injection names, see dipha/mpi_layer.hpp): rips.fingerprint, rips.setup,
// rips.h0, and per dimension q = 1..max_dim: rips.columns.<q> (listing the columns),
// rips.split.<q> (choosing the key ranges of the ranks), rips.exchange.<q> (routing the columns
// to their owners), rips.reduce.<q>.<t> (round t of the pipelined reduction),
// rips.clearing.<q> (gathering the pivots for clearing, q < max_dim); rips.gather (the pairs).
struct Engine {
  const Graph& g;
  const Binomial& C;
  Complex cx;
  int max_dim;
  int64_t n_edges;
  mpi::Comm mc;
  MPI_Comm comm;
  int rank = 0, P = 1;
  bool verbose;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  Pairs pairs;  // local pairs (birth, death) per dimension

  Engine(const Graph& g_, const Binomial& C_, int max_dim_, MPI_Comm comm_, bool verbose_, int64_t working_bytes)
      : g(g_), C(C_), cx{g_, C_}, max_dim(max_dim_), n_edges(static_cast<int64_t>(g_.edges.size())),
        mc(comm_, rips_oom(g_.n, &n_edges)), comm(comm_), verbose(verbose_) {
    heap_budget = static_cast<size_t>(working_bytes < 0 ? (int64_t{1} << 30) : working_bytes) / sizeof(Entry);
    heap_budget = std::max<size_t>(heap_budget, 16);
    for (const Entry& e : g.edges) top_value = std::max(top_value, e.v);
    rank = mc.rank();
    P = mc.size();
    pairs.assign(max_dim + 1, {});
  }

  void log(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (!verbose || rank != 0) return;
    std::fprintf(stderr, "[rips %7.2fs %7.0f MiB peak] ", seconds_since(t0), peak_rss_mib());
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
  }

  // H0 by union-find over the sorted edges (every rank; cheap). Marks the pivot (death) edges.
  std::vector<char> h0(std::vector<std::pair<double, double>>& out) {
    std::vector<int32_t> parent(g.n);
    for (int64_t i = 0; i < g.n; ++i) parent[i] = static_cast<int32_t>(i);
    auto find = [&](int32_t x) {
      while (parent[x] != x) { parent[x] = parent[parent[x]]; x = parent[x]; }
      return x;
    };
    std::vector<char> death(g.edges.size(), 0);
    int32_t v[2];
    for (size_t e = 0; e < g.edges.size(); ++e) {
      cx.vertices(g.edges[e].i, 1, v);
      int32_t a = find(v[0]), b = find(v[1]);
      if (a == b) continue;
      parent[std::max(a, b)] = std::min(a, b);
      death[e] = 1;
      if (g.edges[e].v > 0.0) out.push_back({0.0, g.edges[e].v});
    }
    for (int64_t i = 0; i < g.n; ++i) if (parent[i] == i) out.push_back({0.0, kInf});
    return death;
  }

  // Key-range ownership of one pass: splitters s_1 .. s_{P-1} (dimension q keys); a key belongs
  // to rank r if s_r <= key < s_{r+1} under the order (value, dim, rank).
  struct Split {
    std::vector<Entry> s;  // P-1 splitters, all of dimension q
    int q = 0;
    int owner(const Entry& e, int dim) const {
      // number of splitters <= e
      int lo = 0, hi = static_cast<int>(s.size());
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        const Entry& x = s[mid];
        bool le = x.v < e.v || (x.v == e.v && (q < dim || (q == dim && x.i <= e.i)));
        if (le) lo = mid + 1; else hi = mid;
      }
      return lo;
    }
  };

  Split make_split(std::vector<Entry>& cols, int q) {
    Split sp;
    sp.q = q;
    if (P == 1) return sp;
    const mpi::Phase ph{"rips.split." + std::to_string(q), "splitting the columns of dimension " + std::to_string(q)};
    const int S = 64;  // regular samples per rank
    std::vector<Entry> samples;
    mc.run(ph, [&] {
      std::sort(cols.begin(), cols.end(), key_less);
      for (int s = 0; s < S && !cols.empty(); ++s) samples.push_back(cols[(cols.size() * (2 * s + 1)) / (2 * S)]);
    });
    // weight: number of columns behind each sample
    std::vector<Entry> all = mc.allgatherv(ph, samples);
    std::vector<long long> counts = mc.allgather(ph, static_cast<long long>(cols.size()));
    std::vector<int> nsamp = mc.allgather(ph, static_cast<int>(samples.size()));
    mc.run(ph, [&] {
      std::vector<std::pair<Entry, double>> weighted;
      for (int p = 0, off = 0; p < P; ++p) {
        for (int s = 0; s < nsamp[p]; ++s) weighted.push_back({all[off + s], static_cast<double>(counts[p]) / nsamp[p]});
        off += nsamp[p];
      }
      std::sort(weighted.begin(), weighted.end(), [](auto& a, auto& b) { return key_less(a.first, b.first); });
      double total = 0;
      for (auto& w : weighted) total += w.second;
      double acc = 0;
      int next = 1;
      for (auto& w : weighted) {
        acc += w.second;
        while (next < P && acc >= total * next / P) { sp.s.push_back(w.first); ++next; }
      }
      while (static_cast<int>(sp.s.size()) < P - 1) sp.s.push_back({kInf, INT64_MAX});
    });
    return sp;
  }

  // ----- reduction of one dimension -----
  int q = 0;
  Split split;
  HashMap pivots;                 // pivot rank -> slot
  std::vector<int64_t> v_off{0};  // slot -> V column in v_ent
  std::vector<idx_t> v_ent;
  std::vector<Entry> heap;
  std::vector<idx_t> work_v;
  std::vector<int64_t> outgoing;  // serialised forwarded columns
  int64_t n_stored = 0, n_emergent = 0, n_forwarded = 0, n_additions = 0;
  size_t max_heap = 0, max_v = 0, max_live = 0;
  static constexpr size_t prune_factor = 4;  // largest working coboundary and V column of this dimension

  // Calls f(entry) for every coface (within the threshold) of the dim-q simplex s.
  template <class F> void cofaces_of(idx_t s, F&& f) const {
    int32_t v[kMaxVerts];
    cx.vertices(s, q, v);
    cx.cofaces(v, q, cx.diameter(v, q), [&](double m, idx_t r, int32_t) {
      f(Entry{m, r});
      return false;
    });
  }
  void push_coboundary(idx_t s) {
    cofaces_of(s, [&](const Entry& e) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), KeyGreater());
    });
  }
  bool pivot_of_heap(Entry& out) {
    while (!heap.empty()) {
      Entry t = heap.front();
      std::pop_heap(heap.begin(), heap.end(), KeyGreater());
      heap.pop_back();
      if (!heap.empty() && heap.front() == t) {
        std::pop_heap(heap.begin(), heap.end(), KeyGreater());
        heap.pop_back();
        continue;
      }
      heap.push_back(t);
      std::push_heap(heap.begin(), heap.end(), KeyGreater());
      out = t;
      return true;
    }
    return false;
  }
  // Sorts v and keeps one copy of each element that occurs an odd number of times (Z/2 sum).
  template <class T, class Less = std::less<T>> static void cancel_pairs(std::vector<T>& v, Less less = Less()) {
    std::sort(v.begin(), v.end(), less);
    size_t w = 0;
    for (size_t i = 0; i < v.size();) {
      if (i + 1 < v.size() && v[i] == v[i + 1]) { i += 2; continue; }
      v[w++] = v[i++];
    }
    v.resize(w);
  }
  void prune_heap() {
    cancel_pairs(heap, key_less);
    std::make_heap(heap.begin(), heap.end(), KeyGreater());
  }
  void store(const Entry& sigma, const Entry& tau) {
    int64_t slot = static_cast<int64_t>(v_off.size()) - 1;
    cancel_pairs(work_v);
    max_heap = std::max(max_heap, heap.size());
    max_v = std::max(max_v, work_v.size());
    v_ent.insert(v_ent.end(), work_v.begin(), work_v.end());
    v_off.push_back(static_cast<int64_t>(v_ent.size()));
    pivots.insert(tau.i, slot);
    ++n_stored;
    if (tau.v != sigma.v) pairs[q].push_back({sigma.v, tau.v});
  }
  void forward(const Entry& sigma) {
    cancel_pairs(work_v);
    int64_t bits;
    std::memcpy(&bits, &sigma.v, 8);
    outgoing.push_back(bits);
    outgoing.push_back(sigma.i);
    outgoing.push_back(static_cast<int64_t>(work_v.size()));
    outgoing.insert(outgoing.end(), work_v.begin(), work_v.end());
    ++n_forwarded;
  }

  // ----- windowed working column -----
  // A column whose coboundary outgrows heap_budget entries is reduced window by window: the
  // coboundary entries of work_v with keys in [win_lo, win_hi) are generated, sorted and cancelled
  // (Z/2) into `win`; entries that later additions bring into the window go to the small heap
  // `extra`. Below win_lo the coboundary is known to be zero, so additions (whose own coboundary
  // starts at the current pivot, >= win_lo) need no entries below it; entries at or beyond win_hi
  // are regenerated from work_v when the window moves on. Memory: about heap_budget / 2 entries
  // per window instead of the whole coboundary.
  size_t heap_budget = size_t{1} << 26;
  double top_value = 0;  // the longest edge: no coboundary value exceeds it
  bool windowed = false;
  std::vector<Entry> win, extra;
  size_t win_pos = 0;
  Entry win_lo{-kInf, INT64_MIN}, win_hi{-kInf, INT64_MIN};
  std::vector<double> bounds;  // window boundaries (values) still ahead
  size_t bounds_v = 0;         // size of work_v when the boundaries were computed
  int64_t n_windowed = 0, n_windows = 0;
  std::chrono::steady_clock::time_point last_progress = std::chrono::steady_clock::now();

  template <class F> void each_coface_of_v(F&& f) {
    for (idx_t s : work_v) cofaces_of(s, f);
  }
  // Window boundaries from a histogram of the coboundary values at or above win_lo.
  void plan_windows() {
    cancel_pairs(work_v);
    bounds_v = work_v.size();
    const double lo = win_lo.v;
    const double top = std::max(lo, top_value);
    const int B = 1 << 14;
    std::vector<uint64_t> hist(B, 0);
    const double width = top > lo ? (top - lo) / B : 0;
    each_coface_of_v([&](const Entry& e) {
      if (key_less(e, win_lo)) return;
      int b = width > 0 ? static_cast<int>((e.v - lo) / width) : 0;
      ++hist[std::min(std::max(b, 0), B - 1)];
    });
    bounds.clear();
    const uint64_t target = std::max<uint64_t>(heap_budget / 2, 1);
    uint64_t acc = 0;
    for (int b = 0; b < B; ++b) {
      acc += hist[b];
      if (acc >= target && b + 1 < B) { bounds.push_back(lo + width * (b + 1)); acc = 0; }
    }
    std::reverse(bounds.begin(), bounds.end());  // the next boundary at the back
  }
  // Moves the window to start at win_hi (or at win_lo when entering); false past the last value.
  bool next_window(bool entering) {
    if (!entering) {
      if (win_hi.v == kInf) return false;
      win_lo = win_hi;
    }
    if (entering || work_v.size() > 2 * bounds_v + 1024) plan_windows();
    else cancel_pairs(work_v);
    while (!bounds.empty() && bounds.back() <= win_lo.v) bounds.pop_back();
    win_hi = bounds.empty() ? Entry{kInf, INT64_MIN} : Entry{bounds.back(), INT64_MIN};
    if (!bounds.empty()) bounds.pop_back();
    win.clear();
    each_coface_of_v([&](const Entry& e) {
      if (!key_less(e, win_lo) && key_less(e, win_hi)) win.push_back(e);
    });
    cancel_pairs(win, key_less);
    win_pos = 0;
    ++n_windows;
    if (verbose && rank == 0 && seconds_since(last_progress) > 30) {
      last_progress = std::chrono::steady_clock::now();
      log("dim %d: a long column: window %lld from value %g, %zu coboundary entries, V column %zu", q,
          static_cast<long long>(n_windows), win_lo.v, win.size(), work_v.size());
    }
    max_heap = std::max(max_heap, win.capacity());
    return true;
  }
  void enter_windows(const Entry& lo) {
    max_heap = std::max(max_heap, heap.size());
    std::vector<Entry>().swap(heap);
    windowed = true;
    ++n_windowed;
    extra.clear();
    win_lo = lo;
    next_window(true);
  }
  void leave_windows() {
    if (!windowed) return;
    windowed = false;
    std::vector<Entry>().swap(win);
    std::vector<Entry>().swap(extra);
  }
  // Smallest coboundary entry of odd multiplicity, kept in place.
  bool window_pivot(Entry& out) {
    while (true) {
      const bool hw = win_pos < win.size(), hx = !extra.empty();
      if (!hw && !hx) {
        if (!next_window(false)) return false;
        continue;
      }
      Entry c = !hw ? extra.front() : !hx ? win[win_pos] : (key_less(extra.front(), win[win_pos]) ? extra.front() : win[win_pos]);
      int cnt = 0;
      if (hw && win[win_pos] == c) { ++cnt; ++win_pos; }
      while (!extra.empty() && extra.front() == c) {
        std::pop_heap(extra.begin(), extra.end(), KeyGreater());
        extra.pop_back();
        ++cnt;
      }
      if (cnt & 1) {
        extra.push_back(c);
        std::push_heap(extra.begin(), extra.end(), KeyGreater());
        out = c;
        return true;
      }
    }
  }
  // Adds the coboundary of simplex s to the working column.
  void add_simplex(idx_t s) {
    work_v.push_back(s);
    if (!windowed) { push_coboundary(s); return; }
    cofaces_of(s, [&](const Entry& e) {
      if (!key_less(e, win_lo) && key_less(e, win_hi)) {
        extra.push_back(e);
        std::push_heap(extra.begin(), extra.end(), KeyGreater());
      }
    });
  }

  // Heap size at which it is next pruned: a multiple of its live size, at most the budget.
  size_t prune_limit(size_t live) const {
    return std::min(std::max(live * prune_factor, std::min<size_t>(4096, heap_budget)), heap_budget);
  }

  // Reduces the working column (the coboundary of work_v) until it is stored, forwarded or zero.
  void reduce(const Entry& sigma) {
    Entry piv;
    size_t prune_at = prune_limit(heap.size());
    int32_t tv[kMaxVerts];
    while (windowed ? window_pivot(piv) : pivot_of_heap(piv)) {
      if (split.owner(piv, q + 1) != rank) { forward(sigma); leave_windows(); return; }
      if (const int64_t* slot = pivots.find(piv.i)) {
        for (int64_t p = v_off[*slot]; p < v_off[*slot + 1]; ++p) add_simplex(v_ent[p]);
        ++n_additions;
      } else {
        cx.vertices(piv.i, q + 1, tv);
        idx_t f = cx.apparent_facet(tv, q + 1, piv.v, piv.i);
        if (f < 0) { store(sigma, piv); leave_windows(); return; }
        add_simplex(f);
        ++n_additions;
      }
      if (windowed) {
        if (extra.size() > heap_budget / 2) {  // additions crowd the window: regenerate it from piv
          extra.clear();
          win_lo = piv;  // the working coboundary is zero below the pivot just cancelled
          next_window(true);
        }
      } else if (heap.size() > prune_at) {
        max_heap = std::max(max_heap, heap.size());
        prune_heap();
        max_live = std::max(max_live, heap.size());
        Entry lo;
        if (heap.size() > heap_budget / 2 && pivot_of_heap(lo)) enter_windows(lo);
        prune_at = prune_limit(heap.size());
      }
    }
    leave_windows();
    pairs[q].push_back({sigma.v, kInf});  // essential
  }

  // A column of this rank (round 0).
  void process_own(const Entry& sigma) {
    int32_t v[kMaxVerts];
    cx.vertices(sigma.i, q, v);
    heap.clear();
    work_v.clear();
    work_v.push_back(sigma.i);
    Entry best{kInf, INT64_MAX};
    cx.cofaces(v, q, sigma.v, [&](double m, idx_t r, int32_t) {
      Entry e{m, r};
      heap.push_back(e);
      if (key_less(e, best)) best = e;
      return false;
    });
    if (heap.empty()) { pairs[q].push_back({sigma.v, kInf}); return; }
    if (split.owner(best, q + 1) == rank && !pivots.find(best.i)) {
      int32_t tv[kMaxVerts];
      cx.vertices(best.i, q + 1, tv);
      if (cx.apparent_facet(tv, q + 1, best.v, best.i) < 0) {  // emergent pair: already reduced
        ++n_emergent;
        store(sigma, best);
        return;
      }
    }
    std::make_heap(heap.begin(), heap.end(), KeyGreater());
    reduce(sigma);
  }

  // A column handed over by rank - 1: rebuild its coboundary from its V column.
  void process_forwarded(const Entry& sigma, const int64_t* V, int64_t len) {
    heap.clear();
    work_v.assign(V, V + len);
    bool big = false;
    for (int64_t i = 0; i < len && !big; ++i) {
      push_coboundary(V[i]);
      big = heap.size() > heap_budget;
    }
    // every entry of the working coboundary is at least sigma's value
    if (big) enter_windows(Entry{sigma.v, INT64_MIN});
    reduce(sigma);
  }

  // Is the dim-q simplex (vertices v, value val, rank idx) a column to reduce?
  bool is_column(const int32_t* v, double val, idx_t idx, const HashMap& cleared_set) const {
    // A simplex is in at most one pair: most simplices are the lower half of an apparent pair,
    // test that first.
    if (cx.apparent_cofacet(v, q, val, idx) >= 0) return false;
    if (q >= 2) {
      if (cleared_set.find(idx)) return false;
      if (cx.apparent_facet(v, q, val, idx) >= 0) return false;  // cleared by an apparent pair
    }
    return true;
  }

  Pairs run() {
    // H0, identical on every rank.
    std::vector<std::pair<double, double>> h0pairs;
    std::vector<char> tree;
    mc.run({"rips.h0", "computing H0"}, [&] { tree = h0(h0pairs); });
    log("n = %lld vertices, %zu edges; H0 done", static_cast<long long>(g.n), g.edges.size());

    // simplices of the current dimension held by this rank (for generating the next dimension)
    std::vector<idx_t> local_simplices;
    std::vector<Entry> cols;
    HashMap cleared;  // pivots of the previous pass (dim q), replicated
    const size_t E = g.edges.size();
    // edges dealt round-robin: the work an edge brings (its cofaces) grows with its length, so
    // contiguous blocks of the sorted edges would leave the last rank the heaviest share
    const size_t P_ = static_cast<size_t>(P);
    for (q = 1; q <= max_dim; ++q) {
      auto tq = std::chrono::steady_clock::now();
      const std::string qs = std::to_string(q);
      cols.clear();
      mc.run({"rips.columns." + qs, "listing the columns of dimension " + qs}, [&] {
        std::vector<idx_t> next;
        int32_t v[kMaxVerts];
        if (q == 1) {
          for (size_t e = static_cast<size_t>(rank); e < E; e += P_) {
            if (max_dim > 1) next.push_back(g.edges[e].i);  // all local edges generate the triangles
            if (tree[e]) continue;
            cx.vertices(g.edges[e].i, 1, v);
            if (cx.apparent_cofacet(v, 1, g.edges[e].v, g.edges[e].i) < 0) cols.push_back(g.edges[e]);
          }
        } else {
          for (idx_t s : local_simplices) {
            cx.vertices(s, q - 1, v);
            double sv = cx.diameter(v, q - 1);
            cx.cofaces(v, q - 1, sv, [&](double m, idx_t r, int32_t w) {
              if (q < max_dim) next.push_back(r);
              v[q] = w;  // w > all vertices of s: appended vertex keeps the order
              if (is_column(v, m, r, cleared)) cols.push_back({m, r});
              return false;
            }, /*above_only=*/true);
          }
        }
        local_simplices.swap(next);
      });
      // route the columns to the owners of their keys
      split = make_split(cols, q);
      if (P > 1) {
        const mpi::Phase ph{"rips.exchange." + qs, "routing the columns of dimension " + qs + " to their ranks"};
        std::vector<std::vector<Entry>> send(P);
        mc.run(ph, [&] {
          for (auto& c : cols) send[split.owner(c, q)].push_back(c);
          std::vector<Entry>().swap(cols);
        });
        cols = mc.alltoallv(ph, send);
      }
      std::sort(cols.begin(), cols.end(), [](const Entry& a, const Entry& b) { return key_less(b, a); });
      log("dim %d: %zu columns on rank 0 after clearing and apparent pairs (%.2fs)", q, cols.size(), seconds_since(tq));

      pivots.clear();
      v_off.assign(1, 0);
      v_ent.clear();
      n_stored = n_emergent = n_forwarded = n_additions = 0;
      max_heap = max_v = max_live = 0;
      n_windowed = n_windows = 0;
      // round 0: own columns; rounds 1..rank: columns from rank - 1
      mpi::Chain chain(mc, {"rips.reduce." + qs, "reducing dimension " + qs}, kTagColumns);
      for (int t = 0; t <= rank; ++t) {
        outgoing.clear();
        const std::string round = "rips.reduce." + qs + "." + std::to_string(t);
        if (t == 0) {
          chain.step(round, [&] {
            last_progress = std::chrono::steady_clock::now();
            for (size_t k = 0; k < cols.size(); ++k) {
              process_own(cols[k]);
              if (verbose && rank == 0 && (k & 63) == 63 && seconds_since(last_progress) > 30) {
                last_progress = std::chrono::steady_clock::now();
                log("dim %d: %zu / %zu columns reduced (%lld additions, %.1f M stored coefficients)", q, k + 1,
                    cols.size(), static_cast<long long>(n_additions), v_ent.size() / 1e6);
              }
            }
            std::vector<Entry>().swap(cols);
          });
        } else {
          std::vector<int64_t> in;
          if (chain.recv(rank - 1, in, round)) {
            chain.step(round, [&] {
              for (size_t p = 0; p < in.size();) {
                Entry s;
                std::memcpy(&s.v, &in[p], 8);
                s.i = in[p + 1];
                int64_t len = in[p + 2];
                process_forwarded(s, in.data() + p + 3, len);
                p += 3 + len;
              }
            });
          }
        }
        if (chain.failed()) {  // free what this rank holds; it only drains from now on
          std::vector<Entry>().swap(heap);
          std::vector<idx_t>().swap(work_v);
          std::vector<int64_t>().swap(outgoing);
          std::vector<idx_t>().swap(v_ent);
          std::vector<Entry>().swap(cols);
        }
        if (rank + 1 < P) chain.send(rank + 1, outgoing);
      }
      chain.finish();
      std::vector<int64_t>().swap(outgoing);
      std::vector<Entry>().swap(heap);
      log("dim %d: reduced in %.2fs (rank 0: %lld pairs stored, %lld emergent, %lld additions, %lld forwarded; "
          "%.1f M stored coefficients, largest V column %zu, largest working coboundary %zu, live %zu; %lld columns in %lld windows)", q,
          seconds_since(tq), static_cast<long long>(n_stored), static_cast<long long>(n_emergent),
          static_cast<long long>(n_additions), static_cast<long long>(n_forwarded), v_ent.size() / 1e6, max_v, max_heap, max_live,
          static_cast<long long>(n_windowed), static_cast<long long>(n_windows));
      if (q < max_dim) {
        const mpi::Phase ph{"rips.clearing." + qs, "gathering the pivots of dimension " + qs + " for clearing"};
        std::vector<idx_t> mine;
        mc.run(ph, [&] {
          mine.reserve(pivots.size());
          pivots.for_each([&](idx_t k, int64_t) { mine.push_back(k); });
        });
        std::vector<idx_t> all = mc.allgatherv(ph, mine);
        mc.run(ph, [&] {
          cleared.clear();
          for (idx_t k : all) cleared.insert(k, 0);
        });
      }
    }
    pivots.clear();
    // gather and sort
    Pairs out(max_dim + 1);
    out[0] = h0pairs;
    const mpi::Phase ph{"rips.gather", "gathering the persistence pairs"};
    for (int d = 1; d <= max_dim; ++d) out[d] = mc.allgatherv(ph, pairs[d]);
    mc.run(ph, [&] {
      for (auto& v : out) std::sort(v.begin(), v.end());
    });
    log("done");
    return out;
  }
};

long double estimate_count(int64_t n, int k, double density) {
  // simplices of dimension k on n vertices with edge density rho: C(n, k+1) rho^C(k+1, 2)
  long double c = 1;
  for (int i = 0; i <= k; ++i) c = c * (n - i) / (i + 1);
  if (c < 0) c = 0;
  return c * std::pow(static_cast<long double>(density), (k + 1) * k / 2.0L);
}

// "under a second", "40 s", "12 min", "3.5 h", "20 days", "4e+03 years".
std::string rough_duration(double seconds) {
  char buf[64];
  if (seconds < 1) std::snprintf(buf, sizeof buf, "under a second");
  else if (seconds < 120) std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  else if (seconds < 7200) std::snprintf(buf, sizeof buf, "%.0f min", seconds / 60);
  else if (seconds < 3 * 86400) std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  else if (seconds < 365 * 86400.0) std::snprintf(buf, sizeof buf, "%.0f days", seconds / 86400);
  else std::snprintf(buf, sizeof buf, "%.2g years", seconds / (365 * 86400.0));
  return buf;
}

}  // namespace

double work_estimate(int64_t n, int64_t edges, int max_dim) {
  if (n < 2 || edges <= 0 || max_dim < 1) return 0;
  const double pairs_total = static_cast<double>(n) * (n - 1) / 2;
  const double rho = std::min(1.0, static_cast<double>(edges) / pairs_total);
  const long double s = rho * (n - 1);
  long double w = 0;
  for (int q = 1; q <= max_dim; ++q) {
    w += (q + 1) * estimate_count(n, q, rho) * s;
    if (q >= 2) w += q * estimate_count(n, q - 1, rho) * s / 2;
  }
  return static_cast<double>(w);
}

namespace detail {
Pairs compute(const DistanceView& d, const Options& opt, MPI_Comm comm, bool clamp_negative, double* max_edge) {
  const int64_t no_edges = -1;
  mpi::Comm mc(comm, rips_oom(d.n, &no_edges));
  const int P = mc.size();
  // Validation and set-up; every rank holds the same input and reaches the same verdict, which
  // is still agreed on before any other collective.
  Graph g;
  std::unique_ptr<Binomial> C;
  std::unique_ptr<Engine> eng;
  mc.run({"rips.setup", "setting up the complex"}, [&] {
    if (d.n < 0) throw Error("rips: negative number of points");
    int layouts = (d.dense64 != nullptr) + (d.dense32 != nullptr) + (d.indptr != nullptr);
    if (layouts != 1 && d.n > 0) throw Error("rips: exactly one distance layout (dense64, dense32, CSR) must be given");
    if (d.indptr && (!d.indices || !d.values)) throw Error("rips: CSR layout needs indptr, indices and values");
    if (opt.max_dim < 0) throw Error("rips: max_dim must be >= 0, got " + std::to_string(opt.max_dim));
    if (opt.collapse < -1) throw Error("rips: collapse must be -1 (rounds until one removes no edge), 0 (off) or a number of rounds, got " + std::to_string(opt.collapse));
    if (opt.max_dim + 2 >= kMaxVerts) throw Error("rips: max_dim " + std::to_string(opt.max_dim) + " is too large (at most " + std::to_string(kMaxVerts - 3) + ")");
    if (std::isnan(opt.threshold) || opt.threshold < 0) throw Error("rips: threshold must be >= 0 (or +inf)");
    if (d.n > INT32_MAX) throw Error("rips: at most 2^31-1 points are supported");
    if (d.indptr) {
      if (d.indptr[0] != 0) throw Error("rips: CSR indptr[0] must be 0");
      for (int64_t i = 0; i < d.n; ++i) {
        if (d.indptr[i + 1] < d.indptr[i]) throw Error("rips: CSR indptr must be non-decreasing");
        for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) {
          int64_t j = d.indices[p];
          if (j < 0 || j >= d.n) throw Error("rips: CSR column index out of range in row " + std::to_string(i));
          if (j == i) throw Error("rips: CSR row " + std::to_string(i) + " has a self entry");
          if (p > d.indptr[i] && d.indices[p - 1] >= j) throw Error("rips: CSR row " + std::to_string(i) + " is not strictly ascending");
        }
      }
    }
    const int kmax = opt.max_dim + 2;
    C.reset(new Binomial(d.n, kmax));
    if (C->overflowed()) {
      std::ostringstream os;
      long double cnt = estimate_count(d.n, kmax - 1, 1.0);
      os << "rips: simplex indices overflow 64 bits: C(" << d.n << ", " << kmax << ") = " << static_cast<double>(cnt)
         << " simplices of dimension " << kmax - 1 << " on n = " << d.n
         << " points (needed for homology up to dimension " << opt.max_dim << ")";
      throw Error(os.str());
    }
    g = build_graph(d, opt.threshold, clamp_negative, opt.dense_lookup_bytes);
    if (opt.collapse != 0) {
      const size_t before = g.edges.size();
      collapse::Stats cs;
      g = collapsed_graph(std::move(g), opt.collapse, opt.dense_lookup_bytes, &cs, opt.verbose && mc.rank() == 0);
      if (opt.verbose && mc.rank() == 0)
        std::fprintf(stderr, "[rips] edge collapse: %zu -> %zu edges in %zu rounds (%lld moved, %lld removed)\n", before,
                     g.edges.size(), cs.edges_after_round.size(), static_cast<long long>(cs.moved),
                     static_cast<long long>(cs.removed));
    }
    // memory estimate: columns of the top dimension (16 B each) and the simplices of the one below
    if (opt.max_dim >= 1 && d.n > 0) {
      double pairs_total = static_cast<double>(d.n) * (d.n - 1) / 2;
      double rho = pairs_total > 0 ? static_cast<double>(g.edges.size()) / pairs_total : 0;
      long double cols = estimate_count(d.n, opt.max_dim, rho);
      long double prev = opt.max_dim >= 2 ? estimate_count(d.n, opt.max_dim - 1, rho) : 0;
      long double bytes = (16 * cols + 8 * prev) / P + 24.0L * g.edges.size();
      long double phys = static_cast<long double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
      if (phys > 0 && bytes > phys) {
        std::ostringstream os;
        os << "rips: the complex is too large for memory: about " << static_cast<double>(cols)
           << " simplices of dimension " << opt.max_dim << " on n = " << d.n << " points with edge density " << rho
           << " need about " << human_bytes(static_cast<double>(bytes)) << " per rank, more than the "
           << human_bytes(static_cast<double>(phys)) << " of memory; lower max_dim or the threshold, or use more ranks";
        throw Error(os.str());
      }
    }
    // work estimate: refused above the limit, one line of warning above kWarnWork
    if (std::isnan(opt.max_work)) throw Error("rips: max_work must be a number (negative: the default limit; inf: none)");
    const double limit = opt.max_work < 0 ? kDefaultMaxWork : opt.max_work;
    const double work = work_estimate(d.n, static_cast<int64_t>(g.edges.size()), opt.max_dim);
    if (work > limit || work > kWarnWork) {
      const double pairs_total = static_cast<double>(d.n) * (d.n - 1) / 2;
      std::ostringstream os;
      os.precision(3);
      os << "the computation is estimated at about " << work << " coface visits (n = " << d.n << " points, "
         << g.edges.size() << " edges, edge density " << (pairs_total > 0 ? g.edges.size() / pairs_total : 0.0)
         << ", max_dim " << opt.max_dim << "; roughly " << rough_duration(work / kVisitsPerSecond / P) << " on " << P
         << (P == 1 ? " rank" : " ranks");
      if (work > limit) {
        os << "), above the limit of " << limit << "; lower max_dim or the threshold, or raise the limit with "
           << "max_work (dipha: --max_work; inf for no limit)";
        throw Error("rips: " + os.str());
      }
      if (mc.rank() == 0) {
        std::fprintf(stderr, "rips: warning: %s)\n", os.str().c_str());
        std::fflush(stderr);
      }
    }
    if (d.n > 0) eng.reset(new Engine(g, *C, opt.max_dim, comm, opt.verbose, opt.working_bytes));
  });
  if (max_edge) {
    *max_edge = 0;
    for (const Entry& e : g.edges) *max_edge = std::max(*max_edge, e.v);
  }
  if (d.n == 0) return Pairs(opt.max_dim + 1);
  return eng->run();
}

// Collective, before any work: the input as given (n, layout, entries, a hash of the buffers)
// and the parameters, compared across ranks; a mismatch is an Error on every rank.
void agree_on_input(const DistanceView& d, const std::string& dim_name, int64_t dim, const std::vector<mpi::Field>& extra,
                    const std::string& advice, MPI_Comm comm) {
  const int64_t no_edges = -1;
  mpi::Comm mc(comm, rips_oom(d.n, &no_edges));
  int64_t layout = 0, entries = 0;
  uint64_t hash = 0;
  mc.run({"rips.fingerprint", "fingerprinting the input"}, [&] {
    if (d.n < 0) throw Error("rips: negative number of points");
    int layouts = (d.dense64 != nullptr) + (d.dense32 != nullptr) + (d.indptr != nullptr);
    if (layouts != 1 && d.n > 0) throw Error("rips: exactly one distance layout (dense64, dense32, CSR) must be given");
    if (d.indptr && (!d.indices || !d.values)) throw Error("rips: CSR layout needs indptr, indices and values");
    if (d.n > INT32_MAX) throw Error("rips: at most 2^31-1 points are supported");
    mpi::Hasher h;
    const size_t n = static_cast<size_t>(d.n);
    if (d.dense64) {
      layout = 1;
      entries = d.n * d.n;
      h.update(d.dense64, 8 * n * n);
    } else if (d.dense32) {
      layout = 2;
      entries = d.n * d.n;
      h.update(d.dense32, 4 * n * n);
    } else if (d.indptr) {
      layout = 3;
      entries = d.indptr[d.n];
      if (d.indptr[0] != 0 || entries < 0) throw Error("rips: CSR indptr must start at 0 and end at the number of entries");
      h.update(d.indptr, 8 * (n + 1));
      h.update(d.indices, 8 * static_cast<size_t>(entries));
      h.update(d.values, 8 * static_cast<size_t>(entries));
    }
    hash = h.digest();
  });
  std::vector<mpi::Field> fields = {
      mpi::int_field("n", d.n),
      mpi::choice_field("layout", layout, {"empty", "dense float64", "dense float32", "CSR"}),
      mpi::int_field("stored entries", entries),
      mpi::int_field(dim_name, dim)};
  fields.insert(fields.end(), extra.begin(), extra.end());
  fields.push_back(mpi::hash_field("distance matrix hash", hash));
  mpi::agree_inputs(comm, "rips", fields, advice);
}

}  // namespace detail

Pairs persistence(const DistanceView& d, const Options& opt, MPI_Comm comm) {
  detail::agree_on_input(d, "max_dim", opt.max_dim,
                         {mpi::real_field("threshold", opt.threshold), mpi::int_field("collapse", opt.collapse),
                          mpi::real_field("max_work", opt.max_work)},
                         "every rank must pass the same distance matrix, max_dim, threshold and options", comm);
  return detail::compute(d, opt, comm, /*clamp_negative=*/false, nullptr);
}

Diagram dipha_diagram(const DistanceView& d, int64_t upper_dim, MPI_Comm comm, bool verbose, double max_work) {
  detail::agree_on_input(d, "upper_dim", upper_dim, {}, "every rank must pass the same distance matrix and upper_dim",
                         comm);
  if (upper_dim < 0) throw Error("rips: upper_dim must be >= 0");
  Diagram out;
  if (upper_dim == 0) return out;  // only vertices; top-dimension essentials are not reported
  Options opt;
  opt.max_dim = static_cast<int>(std::min<int64_t>(upper_dim - 1, kMaxVerts - 3));
  opt.verbose = verbose;
  opt.max_work = max_work;
  double max_edge = 0;
  Pairs p = detail::compute(d, opt, comm, /*clamp_negative=*/true, &max_edge);
  const double max_value = max_edge / 2;
  const int64_t no_edges = -1;
  mpi::Comm(comm, rips_oom(d.n, &no_edges)).run({"rips.gather", "assembling the diagram"}, [&] {
    for (size_t q = 0; q < p.size(); ++q)
      for (auto& bd : p[q]) {
        double b = bd.first / 2, e = bd.second / 2;
        if (std::isinf(bd.second)) out.push_back({-static_cast<int64_t>(q) - 1, b, max_value});
        else if (b != e && b < max_value) out.push_back({static_cast<int64_t>(q), b, e});
      }
    std::sort(out.begin(), out.end(), [](const Record& a, const Record& b) {
      if (a.dim != b.dim) return a.dim < b.dim;
      if (a.birth != b.birth) return a.birth < b.birth;
      return a.death < b.death;
    });
  });
  return out;
}

}  // namespace rips
}  // namespace dipha
