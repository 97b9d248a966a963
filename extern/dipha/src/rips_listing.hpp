// Column listing of dimensions 1 and 2, edge by edge, with one candidate set per edge.
//
// Every triangle sigma whose max-key edge is e = {a, b} (a > b, value L) has value L, and so do
// its cofaces of equal value: they all lie among the common neighbours of a and b within L,
//   S_e = { w : d(a, w) <= L and d(b, w) <= L }   (ascending vertex ids).
// One pass over e builds S_e (dense look-up: the AND of a's and b's adjacency bitsets; neighbour
// lists: the intersection of their balls of radius L) and answers every apparent-pair test of e
// and of its triangles (dimension 1 needs min S_e only, found along a walk of a's neighbours by
// distance, edges_at):
//  * e's smallest coface of equal value is {a, b, min S_e} (colex rank grows with the added
//    vertex); e is the lower half of an apparent pair iff e is that triangle's max-key facet;
//  * the triangles listed from e are the w in S_e for which e is the max-key edge: key = (value,
//    rank) and, among edges at a, rank{a, w} < rank{a, b} iff w < b (at b: iff w < a), so a tie
//    d(a, w) = L needs w < b and a tie d(b, w) = L needs w < a; every triangle is listed exactly
//    once, from its max-key edge;
//  * sigma = {a, b, w} is the upper half of an apparent pair (its max-key facet e, whose smallest
//    equal coface it is) iff w = min S_e;
//  * sigma is the lower half of an apparent pair iff its smallest equal coface
//    tau = sigma + {x}, x = min { x in S_e, x != w, d(w, x) <= L }, has sigma as max-key facet.
//    The facets of tau = {u0 < u1 < u2 < u3} ranked: omitting a smaller vertex gives a larger
//    rank. Facet {a, b, x} (value L) ranks below sigma iff x < w, so only x < w can qualify; then
//    facet {b, w, x} (omitting a) must have a value below L or rank below sigma (x < a), and
//    facet {a, w, x} likewise (x < b).
// The reference for all of this is Complex::apparent_cofacet / apparent_facet, tested against
// this listing simplex by simplex (testing::apparent_verdicts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rips_cofaces.hpp"
#include "rips_graph.hpp"
#include "rips_simplex.hpp"

namespace dipha {
namespace rips {
namespace detail {

/// Verdict bits of a simplex in the apparent pairs.
enum : int { kLowerApparent = 1, kUpperApparent = 2 };

/// The per-edge listing; one object per thread (it owns scratch space of O(n)).
template <class Lookup>
class EdgeListing {
 public:
  explicit EdgeListing(const Complex<Lookup>& cx)
      : cx_(cx), g_(cx.g), C_(cx.C), words_(static_cast<size_t>(cx.g.n / 64 + 1)), bits_(words_, 0),
        da_at_(static_cast<size_t>(cx.g.n)), db_at_(Lookup::kDense ? 0 : static_cast<size_t>(cx.g.n)) {}

  /// Dimension 1: walks vertex a's neighbours by distance and calls f(b, L, apparent) for every
  /// edge {a, b} with b < a (value L); apparent() tells whether it is the lower half of an
  /// apparent pair (asked only when needed). The walk grows a's ball of radius L as it goes, so
  /// that min S_e is found without b's ball: a small ball of a is looked up in b's neighbour
  /// list (ascending ids, galloping), a large one is marked and b's neighbour list scanned up to
  /// its first member within L that is marked.
  template <class F> void edges_at(int32_t a, F&& f) {
    const int64_t deg = g_.degree(a);
    const int32_t* nb = g_.bv.data() + g_.ptr[a];
    const double* nd = g_.bd.data() + g_.ptr[a];
    wa_ = a;
    wk_ = 0;
    small_.clear();
    int64_t run = 0;  // end of the run of equal distances holding position k: a's ball of radius nd[k]
    for (int64_t k = 0; k < deg; ++k) {
      if (k >= run) {
        run = k + 1;
        while (run < deg && nd[run] == nd[k]) ++run;
        grow(run);
      }
      const int32_t b = nb[k];
      if (k + kAhead < deg && nb[k + kAhead] < a) {  // the row the walk reads kAhead edges on
        const int64_t q = g_.ptr[nb[k + kAhead]];
        __builtin_prefetch(g_.nb.data() + q);
        __builtin_prefetch(g_.nv.data() + q);
      }
      if (b >= a) continue;
      const double L = nd[k];
      f(b, L, [&] { return walked_edge_is_apparent(b, L, run); });
    }
    for (int64_t t = 0; t < wk_; ++t) bits_[static_cast<size_t>(nb[t]) >> 6] = 0;
  }

  /// Dimension 2: calls f(triangle, verdict bits) for every triangle whose max-key edge is e, in
  /// ascending order of the added vertex. With kAllVerdicts = false the lower-half test is
  /// skipped for upper halves (a simplex is in at most one apparent pair).
  template <bool kAllVerdicts, class F>
  void triangles(const Entry& e, F&& f) {
    int32_t a, b;
    edge_vertices(e.i, a, b);
    const double L = e.v;
    candidates(a, b, L);
    const size_t s = ids_.size();
    const int32_t* S = ids_.data();
    for (size_t j = 0; j < s; ++j) {
      const int32_t w = S[j];
      const double daw = da_[j], dbw = db_[j];
      if (!listed(a, b, L, w, daw, dbw)) continue;
      const Entry tri{L, triangle_rank(a, b, w)};
      int verdict = j == 0 ? kUpperApparent : 0;
      if (kAllVerdicts || verdict == 0) {
        // smallest x < w of S_e adjacent to w within L
        typename Lookup::Row row(cx_.L, w);
        for (size_t t = 0; t < j; ++t) {
          const double dwx = row.next(S[t]);
          if (!(dwx <= L)) continue;
          const int32_t x = S[t];
          const bool fa = std::max(dbw, std::max(db_[t], dwx)) < L || x < a;  // facet {b, w, x}
          const bool fb = std::max(daw, std::max(da_[t], dwx)) < L || x < b;  // facet {a, w, x}
          if (fa && fb) verdict |= kLowerApparent;
          break;
        }
      }
      f(tri, verdict);
    }
  }

 private:
  void edge_vertices(idx_t r, int32_t& a, int32_t& b) const {
    int32_t v[2];
    vertices_of(C_, r, 1, v);
    a = v[1];
    b = v[0];
  }
  // The walk of edges_at: a's first k neighbours by distance into its ball (bits_, da_at_ and,
  // while small, small_ by id).
  void grow(int64_t k) {
    const int32_t* vb = g_.bv.data() + g_.ptr[wa_];
    const double* db = g_.bd.data() + g_.ptr[wa_];
    for (; wk_ < k; ++wk_) {
      const int32_t w = vb[wk_];
      bits_[static_cast<size_t>(w) >> 6] |= uint64_t{1} << (w & 63);
      da_at_[w] = db[wk_];
      if (wk_ < kSmallBall) {
        const Member m{w, db[wk_]};
        small_.insert(std::upper_bound(small_.begin(), small_.end(), m,
                                       [](const Member& x, const Member& y) { return x.v < y.v; }),
                      m);
      }
    }
  }
  // edge_is_apparent of {wa_, b} (b < wa_, value L) when wa_'s ball of radius L is its first pa
  // neighbours, grown.
  bool walked_edge_is_apparent(int32_t b, double L, int64_t pa) const {
    const int64_t p0 = g_.ptr[b], deg = g_.ptr[b + 1] - p0;
    int32_t w = -1;
    double da = 0, db = 0;
    if (pa <= kSmallBall && pa * 8 < deg) {
      typename Lookup::Row row(cx_.L, b);
      for (const Member& m : small_) {
        const double d = row.next(m.v);
        if (d <= L) { w = m.v; da = m.d; db = d; break; }
      }
    } else {
      const int32_t* nb = g_.nb.data() + p0;
      const double* nv = g_.nv.data() + p0;
      for (int64_t p = 0; p < deg; ++p) {
        if (!(nv[p] <= L)) continue;
        const int32_t x = nb[p];
        if (bits_[static_cast<size_t>(x) >> 6] >> (x & 63) & 1) { w = x; da = da_at_[x]; db = nv[p]; break; }
      }
    }
    return w >= 0 && listed(wa_, b, L, w, da, db);
  }
  // Is e = {a, b} (a > b, value L) the max-key edge of the triangle {a, b, w}, w in S_e?
  static bool listed(int32_t a, int32_t b, double L, int32_t w, double daw, double dbw) {
    return (daw < L || (daw == L && w < b)) && (dbw < L || (dbw == L && w < a));
  }
  idx_t triangle_rank(int32_t a, int32_t b, int32_t w) const {
    if (w > a) return b + C_(a, 2) + C_(w, 3);
    if (w > b) return b + C_(w, 2) + C_(a, 3);
    return w + C_(b, 2) + C_(a, 3);
  }
  // Number of neighbours of u within L (a prefix of its ball).
  int64_t ball(int32_t u, double L) const {
    const double* b0 = g_.bd.data() + g_.ptr[u];
    const double* b1 = g_.bd.data() + g_.ptr[u + 1];
    return std::upper_bound(b0, b1, L) - b0;
  }

  // S_e into ids_ (ascending), da_, db_.
  void candidates(int32_t a, int32_t b, double L) {
    ids_.clear();
    da_.clear();
    db_.clear();
    if constexpr (Lookup::kDense) {
      // the AND of a's and b's adjacency bitsets, ascending, kept where both are within L
      const uint64_t* A = g_.adj.data() + static_cast<size_t>(a) * g_.words;
      const uint64_t* B = g_.adj.data() + static_cast<size_t>(b) * g_.words;
      // (x is never a or b: a vertex is not its own neighbour, so the diagonal is not read)
      const double* ra = g_.mat + static_cast<size_t>(a) * static_cast<size_t>(g_.n);
      const double* rb = g_.mat + static_cast<size_t>(b) * static_cast<size_t>(g_.n);
      for (size_t wd = 0; wd < g_.words; ++wd) {
        uint64_t m = A[wd] & B[wd];
        while (m) {
          const int32_t x = static_cast<int32_t>((wd << 6) + static_cast<size_t>(__builtin_ctzll(m)));
          m &= m - 1;
          const double dax = ra[x], dbx = rb[x];
          if (dax <= L && dbx <= L) {
            ids_.push_back(x);
            da_.push_back(dax);
            db_.push_back(dbx);
          }
        }
      }
    } else {
      neighbour_candidates(a, b, L);
    }
  }
  // S_e from the balls of a and b (neighbour lists only).
  void neighbour_candidates(int32_t a, int32_t b, double L) {
    marked_.clear();
    size_t lo = words_, hi = 0;
    auto mark = [&](int32_t x, double dax, double dbx) {
      const size_t wd = static_cast<size_t>(x) >> 6;
      bits_[wd] |= uint64_t{1} << (x & 63);
      da_at_[x] = dax;
      db_at_[x] = dbx;
      marked_.push_back(x);
      lo = std::min(lo, wd);
      hi = std::max(hi, wd);
    };
    balls_(g_, a, ball(a, L), b, ball(b, L), mark);
    const size_t s = marked_.size();
    if (s == 0) return;
    ids_.reserve(s);
    if (s * 4 < hi - lo + 1) {
      // few members spread wide: sort them rather than scan the words between
      std::sort(marked_.begin(), marked_.end());
      ids_.assign(marked_.begin(), marked_.end());
      for (int32_t x : marked_) bits_[static_cast<size_t>(x) >> 6] = 0;
    } else {
      for (size_t wd = lo; wd <= hi; ++wd) {
        uint64_t m = bits_[wd];
        bits_[wd] = 0;
        while (m) {
          ids_.push_back(static_cast<int32_t>((wd << 6) + static_cast<size_t>(__builtin_ctzll(m))));
          m &= m - 1;
        }
      }
    }
    for (size_t j = 0; j < s; ++j) {
      da_.push_back(da_at_[ids_[j]]);
      db_.push_back(db_at_[ids_[j]]);
    }
  }

  const Complex<Lookup>& cx_;
  const Graph& g_;
  const Binomial& C_;
  const size_t words_;
  std::vector<uint64_t> bits_;   // members of S_e being built (neighbour lists), or a's ball (walk)
  // the walk of dimension 1: a's ball (bits_, da_at_) and, while small, by id
  static constexpr int64_t kSmallBall = 64;
  static constexpr int64_t kAhead = 8;  // edges ahead whose neighbour list the walk prefetches
  struct Member {
    int32_t v;
    double d;
  };
  int32_t wa_ = 0;   // the vertex walked
  int64_t wk_ = 0;   // its ball: its first wk_ neighbours by distance
  std::vector<Member> small_;
  // neighbour lists only (the dense look-up has adjacency bitsets):
  BallIntersection balls_;       // a's and b's balls intersected
  std::vector<double> da_at_, db_at_;  // by vertex id: d(a, x), d(b, x) of the marked x (walk: da_at_)
  std::vector<int32_t> marked_;
  std::vector<int32_t> ids_;     // S_e ascending
  std::vector<double> da_, db_;  // d(a, x), d(b, x) for x = ids_[j]
};

}  // namespace detail
}  // namespace rips
}  // namespace dipha
