// Simplex arithmetic of the Vietoris-Rips engine: filtration keys, binomial coefficients, and a
// simplex's colexicographic rank and vertices in the combinatorial number system
// (rank of v_0 < ... < v_k = sum_i C(v_i, i + 1)).
//
// Filtration order: key(simplex) = (value, dimension, rank), value = longest edge. Within one
// dimension a key is (value, rank): an Entry.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace dipha {
namespace rips {
namespace detail {

using idx_t = int64_t;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxVerts = 64;  // vertices of the largest simplex a pass may touch

/// A simplex of known dimension: its filtration value and colex rank.
struct Entry {
  double v;
  idx_t i;
};
inline bool operator==(const Entry& a, const Entry& b) { return a.v == b.v && a.i == b.i; }
inline bool key_less(const Entry& a, const Entry& b) { return a.v < b.v || (a.v == b.v && a.i < b.i); }
struct KeyLess {  // for sorting (a function object: inlined, unlike a function pointer)
  bool operator()(const Entry& a, const Entry& b) const { return key_less(a, b); }
};
struct KeyGreater {  // for a min-heap with std::push_heap
  bool operator()(const Entry& a, const Entry& b) const { return key_less(b, a); }
};

/// Binomial coefficients C(v, k), 0 <= v <= n, 0 <= k <= kmax, with an overflow check.
class Binomial {
 public:
  Binomial(int64_t n, int kmax) : n_(n), t_(static_cast<size_t>(kmax + 1) * (n + 1), 0) {
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
  int64_t n() const { return n_; }
  idx_t operator()(int64_t v, int k) const { return t_[static_cast<size_t>(k) * (n_ + 1) + v]; }

 private:
  idx_t& at(int64_t v, int k) { return t_[static_cast<size_t>(k) * (n_ + 1) + v]; }
  int64_t n_;
  std::vector<idx_t> t_;
};

/// Colex rank of the edge {a, b}, a > b.
inline idx_t edge_rank(int64_t a, int64_t b) { return a * (a - 1) / 2 + b; }
/// Its inverse: the ends a > b of the edge of rank r, a the largest with a (a - 1) / 2 <= r, in
/// closed form (then corrected for the rounding of the square root): no search, no table.
inline void edge_ends(idx_t r, int32_t& a, int32_t& b) {
  int64_t x = static_cast<int64_t>((1.0 + std::sqrt(1.0 + 8.0 * static_cast<double>(r))) / 2.0);
  while (x > 1 && edge_rank(x, 0) > r) --x;
  while (edge_rank(x + 1, 0) <= r) ++x;
  a = static_cast<int32_t>(x);
  b = static_cast<int32_t>(r - edge_rank(x, 0));
}

/// Vertices (ascending) of the dim-k simplex of colex rank idx on C.n() vertices.
inline void vertices_of(const Binomial& C, idx_t idx, int k, int32_t* out) {
  if (k < 0) __builtin_unreachable();  // (lets the compiler see that out[0..k] is written)
  int64_t hi = C.n();  // exclusive upper bound for the next vertex
  for (int i = k; i >= 2; --i) {
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
  if (k >= 1) {
    edge_ends(idx, out[1], out[0]);  // the edge left
    return;
  }
  out[0] = static_cast<int32_t>(idx);
}

/// Colex rank of the dim-k simplex with vertices v[0] < ... < v[k].
inline idx_t rank_of(const Binomial& C, const int32_t* v, int k) {
  idx_t r = 0;
  for (int i = 0; i <= k; ++i) r += C(v[i], i + 1);
  return r;
}


}  // namespace detail
}  // namespace rips
}  // namespace dipha
