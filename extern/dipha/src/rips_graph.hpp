// The thresholded graph of the Vietoris-Rips engine: sorted neighbour lists, the edges in
// filtration order, each vertex's neighbours by distance ("balls") and, when it fits, a dense
// symmetric look-up matrix (the caller's own float64 matrix when it can be read in place).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dipha/rips.hpp"
#include "rips_simplex.hpp"

namespace dipha {
namespace rips {
namespace detail {

/// The graph of the edges d(i, j) <= threshold.
struct Graph {
  int64_t n = 0;
  // Dense look-up, row-major n*n, or null: d(i, j) for every edge; an absent edge reads +inf,
  // NaN or a value above the threshold (so that "d <= x" fails for any x <= threshold); the
  // diagonal is never read (DenseLookup answers +inf there). It points into mat_copy or, when
  // the caller's float64 matrix is exactly symmetric and needs no clamping, into that matrix.
  const double* mat = nullptr;
  std::vector<double> mat_copy;  // the look-up when the input cannot be read in place
  std::vector<uint64_t> adj;    // with mat: row i's neighbours as a bitset of `words` words
  size_t words = 0;
  std::vector<int64_t> ptr;     // n+1
  std::vector<int32_t> nb;      // neighbour ids, ascending per row
  std::vector<double> nv;       // edge values, same order
  std::vector<Entry> edges;     // (value, rank) of every edge, sorted by key
  std::vector<double> bd;       // per row, neighbour distances ascending ("balls"), same offsets
  std::vector<int32_t> bv;      // the matching neighbour ids

  int64_t degree(int32_t a) const { return ptr[a + 1] - ptr[a]; }
  bool dense() const { return mat != nullptr; }
};

constexpr int64_t kDefaultDenseLookupBytes = 512LL * 1024 * 1024;

/// The graph of `d` cut at `threshold` (d > threshold, +inf and NaN are absent edges), values
/// clamped to >= 0 when `clamp_negative`; a dense look-up matrix and adjacency bitsets
/// (n*n/8 bytes more) when n*n*8 <= dense_bytes (negative: kDefaultDenseLookupBytes). The graph
/// may point into `d`'s float64 matrix: `d` must outlive it.
Graph build_graph(const DistanceView& d, double threshold, bool clamp_negative, int64_t dense_bytes);

/// Intersection of two balls (prefixes of two vertices' neighbours by distance), with scratch of
/// one bit and one distance per vertex: the shorter prefix is marked, the other scanned; or one
/// ball marked once and the balls of several other vertices scanned against it.
class BallIntersection {
 public:
  /// Calls f(w, d(a, w), d(b, w)) for every w among both a's first pa and b's first pb
  /// neighbours by distance, in the order of the prefix scanned.
  template <class F> void operator()(const Graph& g, int32_t a, int64_t pa, int32_t b, int64_t pb, F&& f) {
    if (pa <= pb) {
      mark(g, a, pa);
      scan(g, b, pb, f);
      unmark(g, a, pa);
    } else {
      mark(g, b, pb);
      scan(g, a, pa, [&](int32_t w, double dbw, double daw) { f(w, daw, dbw); });
      unmark(g, b, pb);
    }
  }
  /// Marks the first px neighbours of x by distance (one marked ball at a time).
  void mark(const Graph& g, int32_t x, int64_t px) {
    if (bits_.empty()) {
      bits_.assign(static_cast<size_t>(g.n / 64 + 1), 0);
      dist_.assign(static_cast<size_t>(g.n), 0.0);
    }
    const int32_t* vx = g.bv.data() + g.ptr[x];
    const double* dx = g.bd.data() + g.ptr[x];
    for (int64_t t = 0; t < px; ++t) {
      bits_[static_cast<size_t>(vx[t]) >> 6] |= uint64_t{1} << (vx[t] & 63);
      dist_[vx[t]] = dx[t];
    }
  }
  /// Calls f(w, d(x, w), d(y, w)) for every w among y's first py neighbours that is marked
  /// (x being the marked vertex), in the order of y's prefix.
  template <class F> void scan(const Graph& g, int32_t y, int64_t py, F&& f) const {
    const int32_t* vy = g.bv.data() + g.ptr[y];
    const double* dy = g.bd.data() + g.ptr[y];
    for (int64_t t = 0; t < py; ++t) {
      const int32_t w = vy[t];
      if (!(bits_[static_cast<size_t>(w) >> 6] >> (w & 63) & 1)) continue;
      f(w, dist_[w], dy[t]);
    }
  }
  /// d(x, w) when w is marked (x the marked vertex), else +inf.
  double marked_dist(int32_t w) const {
    return bits_[static_cast<size_t>(w) >> 6] >> (w & 63) & 1 ? dist_[w] : kInf;
  }
  /// Clears the marks of mark(g, x, px).
  void unmark(const Graph& g, int32_t x, int64_t px) {
    const int32_t* vx = g.bv.data() + g.ptr[x];
    for (int64_t t = 0; t < px; ++t) bits_[static_cast<size_t>(vx[t]) >> 6] = 0;
  }

 private:
  std::vector<uint64_t> bits_;
  std::vector<double> dist_;
};

/// Advances `it` (within [it, end)) to the first entry >= w, galloping: O(log distance).
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

}  // namespace detail
}  // namespace rips
}  // namespace dipha
