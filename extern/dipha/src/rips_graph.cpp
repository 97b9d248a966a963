// The thresholded graph of the Vietoris-Rips engine (see rips_graph.hpp).
#include "rips_graph.hpp"

#include "rips_sort.hpp"

#include <utility>

namespace dipha {
namespace rips {
namespace detail {

namespace {

// Can the dense look-up read `d`'s float64 matrix in place? Yes when it is exactly symmetric
// (each edge reads the same value from either triangle, the lower one's, DIPHA's convention)
// and no off-diagonal value needs clamping. Absent edges then read +inf, NaN or a value above
// the threshold, and no reader of the look-up asks for more than "d <= x" with x <= threshold.
bool in_place(const DistanceView& d, bool clamp_negative) {
  const int64_t n = d.n;
  const double* a = d.dense64;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) {
      const double x = a[i * n + j], y = a[j * n + i];
      if (!(x == y || (x != x && y != y))) return false;
      if (clamp_negative && x < 0) return false;
    }
  return true;
}

// Rows written by one pass over the edges when the balls are filled (ResNet18's graph, the
// graph's build: 3.6 s at 4096, 3.7 s at 8192, 4.0 s at 2048, 5.2 s in one pass).
constexpr int64_t kRowsPerPass = 4096;

}  // namespace

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
    g.edges.push_back({x, edge_rank(i, j)});
  });
  if (dense_bytes < 0) dense_bytes = kDefaultDenseLookupBytes;
  if (static_cast<double>(n) * n * 8.0 <= static_cast<double>(dense_bytes)) {
    const bool copy = !(d.dense64 && in_place(d, clamp_negative));
    if (copy) g.mat_copy.assign(static_cast<size_t>(n) * n, kInf);
    g.mat = copy ? g.mat_copy.data() : d.dense64;
    g.words = static_cast<size_t>(n + 63) / 64;
    g.adj.assign(static_cast<size_t>(n) * g.words, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = g.ptr[i]; p < g.ptr[i + 1]; ++p) {
        const int32_t j = g.nb[p];
        if (copy) g.mat_copy[static_cast<size_t>(i) * n + j] = g.nv[p];
        g.adj[static_cast<size_t>(i) * g.words + (static_cast<size_t>(j) >> 6)] |= uint64_t{1} << (j & 63);
      }
  }
  sort_keys(g.edges);  // a radix sort when (value, rank) packs in 64 bits (rips_sort.hpp)
  // Each row's neighbours by (distance, id): the edges in key order, each appended to the rows
  // of its two ends. Among equal values the key orders by edge rank, and the rank of {x, w}
  // grows with w for a fixed x (C(x, 2) + w below x, C(w, 2) + x above it, the latter larger),
  // so ties come out by id as well. The rows are filled a range of vertices at a time (a pass
  // over the edges each), so that the rows being written stay in cache: 26.8 M appends to
  // 25,000 rows at once missed it on almost each.
  g.bd.resize(E2);
  g.bv.resize(E2);
  {
    std::vector<int64_t> at(g.ptr.begin(), g.ptr.end() - 1);
    std::vector<std::pair<int32_t, int32_t>> ends(g.edges.size());
    for (size_t k = 0; k < g.edges.size(); ++k) edge_ends(g.edges[k].i, ends[k].first, ends[k].second);
    for (int64_t r0 = 0; r0 < n; r0 += kRowsPerPass) {
      const int64_t r1 = std::min(n, r0 + kRowsPerPass);
      for (size_t k = 0; k < g.edges.size(); ++k) {
        const int32_t a = ends[k].first, b = ends[k].second;
        if (a >= r0 && a < r1) {
          g.bd[at[a]] = g.edges[k].v;
          g.bv[at[a]++] = b;
        }
        if (b >= r0 && b < r1) {
          g.bd[at[b]] = g.edges[k].v;
          g.bv[at[b]++] = a;
        }
      }
    }
  }
  return g;
}

}  // namespace detail
}  // namespace rips
}  // namespace dipha
