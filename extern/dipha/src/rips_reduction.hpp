// Reduction of the coboundary columns of one dimension, over Z/2, with an implicit coboundary
// matrix: nothing is stored but the reduction (V) columns of the pairs that needed work.
//
// Columns of dimension `dim` are processed in decreasing key order; the pivot of a column is its
// smallest-key coface. The keys are split into contiguous ranges (Split); the Reducer of a range
// owns the columns and the pivots of its range (a rank runs one range, or several on its
// threads). Pivots only grow during a column's reduction, so a column whose pivot leaves the
// range is handed on (forward()) to be continued by the next range (rips.cpp runs that pipeline).
//
// A column whose working coboundary grows long (a large cocycle, typically an essential class of
// a dense graph) leaves the heap for an explicit representation in buckets of filtration values
// (the "long" path); one that outgrows the working budget even so is reduced window by window of
// filtration values, regenerating its coboundary from its V column for each window.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dipha/common.hpp"
#include "rips_cofaces.hpp"
#include "rips_progress.hpp"
#include "rips_simplex.hpp"
#include "rips_sort.hpp"

namespace dipha {
namespace rips {
namespace detail {

using PairList = std::vector<std::pair<double, double>>;

/// Open-addressing hash map idx_t -> int64_t (keys >= 0).
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

/// Key-range ownership of one pass: splitters s_1 .. s_{W-1} (keys of dimension `dim`); a key
/// belongs to range w if s_w <= key < s_{w+1} under the order (value, dimension, rank).
struct Split {
  std::vector<Entry> s;  // W-1 splitters, all of dimension `dim`
  int dim = 0;
  /// Owner of the key e of dimension `edim`: the number of splitters <= e.
  int owner(const Entry& e, int edim) const {
    int lo = 0, hi = static_cast<int>(s.size());
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      const Entry& x = s[mid];
      bool le = x.v < e.v || (x.v == e.v && (dim < edim || (dim == edim && x.i <= e.i)));
      if (le) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
};

/// What one reduction did (for verbose logs).
struct ReductionStats {
  int64_t stored = 0, emergent = 0, forwarded = 0, additions = 0;
  size_t max_heap = 0, max_v = 0, max_live = 0;
  int64_t windowed = 0, windows = 0, windows_by_edge = 0;
  int64_t long_columns = 0, buckets = 0, compactions = 0;
  size_t max_long = 0;
  int64_t generated = 0;  // coboundary entries generated (the work of a reduction)
  size_t stored_coefficients = 0;
  /// Sums of the counts, largest of the sizes (the ranges of a rank).
  ReductionStats& operator+=(const ReductionStats& o) {
    stored += o.stored;
    emergent += o.emergent;
    forwarded += o.forwarded;
    additions += o.additions;
    max_heap = std::max(max_heap, o.max_heap);
    max_v = std::max(max_v, o.max_v);
    max_live = std::max(max_live, o.max_live);
    windowed += o.windowed;
    windows += o.windows;
    windows_by_edge += o.windows_by_edge;
    long_columns += o.long_columns;
    buckets += o.buckets;
    compactions += o.compactions;
    max_long = std::max(max_long, o.max_long);
    generated += o.generated;
    stored_coefficients += o.stored_coefficients;
    return *this;
  }
};

/// A column handed on to the next range: its V column and, when it is not too large, its
/// working coboundary (a heap, as it stood), which the next range then need not regenerate.
/// Within a rank the heap is moved (`credited`: it holds part of the rank's credit); to the next
/// rank it travels in its array order, which keeps it a heap (not cancelled: sorting a large heap
/// costs about what regenerating it does).
struct Forwarded {
  Entry sigma{0, 0};
  std::vector<idx_t> v;
  std::vector<Entry> heap;
  bool credited = false;
  // a windowed column handed on within the rank: its current window as it stands
  bool windowed = false;
  std::vector<Entry> win, extra;
  size_t win_pos = 0, bounds_v = 0;
  Entry win_lo{0, 0}, win_hi{0, 0};
  std::vector<double> bounds;
};
using Batch = std::vector<Forwarded>;

/// A batch as one MPI message: (value bits, rank, |V|, V..., |H|, (value bits, rank) per heap
/// entry)*.
inline std::vector<int64_t> serialise(Batch& b) {
  size_t words = 0;
  for (const Forwarded& f : b) words += 4 + f.v.size() + 2 * f.heap.size();
  std::vector<int64_t> out;
  out.reserve(words);
  auto put_value = [&](double x) {
    int64_t bits;
    std::memcpy(&bits, &x, 8);
    out.push_back(bits);
  };
  for (Forwarded& f : b) {
    put_value(f.sigma.v);
    out.push_back(f.sigma.i);
    out.push_back(static_cast<int64_t>(f.v.size()));
    out.insert(out.end(), f.v.begin(), f.v.end());
    out.push_back(static_cast<int64_t>(f.heap.size()));
    for (const Entry& e : f.heap) {
      put_value(e.v);
      out.push_back(e.i);
    }
    std::vector<idx_t>().swap(f.v);
    std::vector<Entry>().swap(f.heap);
  }
  return out;
}
inline Batch deserialise(const std::vector<int64_t>& in) {
  Batch b;
  for (size_t p = 0; p < in.size();) {
    Forwarded f;
    std::memcpy(&f.sigma.v, &in[p], 8);
    f.sigma.i = in[p + 1];
    const size_t len = static_cast<size_t>(in[p + 2]);
    f.v.assign(in.begin() + static_cast<std::ptrdiff_t>(p + 3), in.begin() + static_cast<std::ptrdiff_t>(p + 3 + len));
    p += 3 + len;
    const size_t h = static_cast<size_t>(in[p++]);
    f.heap.resize(h);
    for (size_t k = 0; k < h; ++k, p += 2) {
      std::memcpy(&f.heap[k].v, &in[p], 8);
      f.heap[k].i = in[p + 1];
    }
    b.push_back(std::move(f));
  }
  return b;
}

/// The reduction state of one key range for the columns of dimension `dim`.
template <class Lookup>
class Reducer {
 public:
  /// `self`: the range's index in `split`; `heap_budget`: the largest working coboundary
  /// (entries) before a column goes windowed; `long_from`: the live size (entries) at which a
  /// column leaves the heap for the long path; `top_value`: the longest edge; `window_method`:
  /// Options::window_method.
  Reducer(const Complex<Lookup>& cx, int dim, const Split& split, int self, size_t heap_budget, size_t long_from,
          double top_value, int window_method, const Logger& log)
      : cx_(cx), dim_(dim), split_(split), self_(self), heap_budget_(std::max<size_t>(heap_budget, 16)),
        long_from_(std::max<size_t>(long_from, 1)), top_value_(top_value), window_method_(window_method), log_(log) {}

  int dim() const { return dim_; }
  /// A column of this range (the first round of the pipeline).
  void process_own(const Entry& sigma);
  /// A column handed over by the previous range: its coboundary is taken over, or rebuilt from
  /// its V column.
  void process_forwarded(Forwarded& f);
  /// Every column of a batch, until `stop`.
  void process_batch(Batch& b, const std::atomic<bool>& stop) {
    for (size_t k = 0; k < b.size() && !stop.load(std::memory_order_relaxed); ++k) {
      process_forwarded(b[k]);
      b[k] = Forwarded();
    }
  }
  /// Working coboundaries of at most `*credit` bytes in all (shared by the ranges of a rank,
  /// given back by the range that takes one over) travel with the columns this range hands on
  /// when `carry` (to a range of the same rank).
  void forward_heaps(std::atomic<int64_t>* credit, bool carry) {
    credit_ = credit;
    carry_ = carry;
  }

  /// The columns handed on since the last clear.
  Batch& outgoing() { return outgoing_; }
  /// The persistence pairs (birth, death) of the columns reduced here (zero-length ones dropped).
  PairList& pairs() { return pairs_; }
  /// Pivot (rank of a dim+1 simplex) -> stored slot.
  const HashMap& pivots() const { return pivots_; }
  ReductionStats stats() const {
    ReductionStats s = st_;
    s.stored_coefficients = v_ent_.size();
    return s;
  }
  /// Frees the working memory (after a failure).
  void release() {
    std::vector<Entry>().swap(heap_);
    std::vector<idx_t>().swap(work_v_);
    Batch().swap(outgoing_);
    std::vector<idx_t>().swap(v_ent_);
    std::vector<Entry>().swap(win_);
    std::vector<Entry>().swap(extra_);
    free_long();
  }
  /// Frees the heap between rounds.
  void release_heap() { std::vector<Entry>().swap(heap_); }
  /// Frees the heap if it grew large (a thread runs several ranges: each would keep its largest).
  void trim() {
    if (heap_.capacity() > (size_t{1} << 16)) release_heap();
  }

 private:
  static constexpr size_t kPruneFactor = 4;

  // Calls f(entry) for every coface (within the threshold) of the dim_ simplex s, in any order;
  // for an edge, only those of value below `below` (the others are of no use to the caller).
  template <class F> void cofaces_of(idx_t s, F&& f, double below = kInf) {
    int32_t v[kMaxVerts];
    cx_.vertices(s, dim_, v);
    int64_t n = 0;
    if (dim_ == 1) {
      edge_cofaces_below(v, below, [&](const Entry& e) {
        f(e);
        ++n;
      });
    } else {
      cx_.cofaces(v, dim_, cx_.diameter(v, dim_), [&](double m, idx_t r, int32_t) {
        f(Entry{m, r});
        ++n;
        return false;
      });
    }
    st_.generated += n;
  }
  // The triangles {a, b, w} of the edge v = {b < a} with d(a, w) < hi and d(b, w) < hi: the
  // balls of radius hi around a and b (prefixes of their neighbours by distance) intersected;
  // nothing for an edge of length >= hi.
  template <class F> void edge_cofaces_below(const int32_t* v, double hi, F&& f) {
    const Graph& g = cx_.g;
    const int32_t a = v[1], b = v[0];
    const double* da0 = g.bd.data() + g.ptr[a];
    const double* db0 = g.bd.data() + g.ptr[b];
    const double L = cx_.L.dist(a, b);
    if (!(L < hi)) return;
    const int64_t pa = hi == kInf ? g.degree(a) : std::lower_bound(da0, da0 + g.degree(a), hi) - da0;
    const int64_t pb = hi == kInf ? g.degree(b) : std::lower_bound(db0, db0 + g.degree(b), hi) - db0;
    const Binomial& C = cx_.C;
    const idx_t ca2 = C(a, 2), ca3 = C(a, 3), cb2 = C(b, 2);
    balls_(g, a, pa, b, pb, [&](int32_t w, double daw, double dbw) {
      const double m = std::max(L, std::max(daw, dbw));
      const idx_t r = w > a ? b + ca2 + C(w, 3) : w > b ? b + C(w, 2) + ca3 : w + cb2 + ca3;
      f(Entry{m, r});
    });
  }
  // Calls f(entry) for every coface of value in [lo, hi) of every simplex of vs, in any order,
  // once per simplex of vs it is a coface of, but for pairs that cancel (Z/2); `hi` may be
  // lowered by f meanwhile. For edges, one of two enumerations of the same entries, the cheaper
  // by an estimate (or the one window_method_ asks for):
  //  * by V edge (window_cofaces_by_v_edge): each edge's cofaces below hi, the part below lo
  //    generated and dropped; cheap when the window is wide (its cost does not depend on lo);
  //  * by window edge (window_cofaces_by_window_edge): a coface of value in [lo, hi) has its
  //    longest edge there, so only the graph's edges of those values are visited, each against
  //    the V edges at its two ends; cheap when the window is narrow (a large cocycle whose
  //    coboundary is dense in values: VGG16's windows are 0.0025 wide at 0.25).
  template <class F> void window_cofaces(const std::vector<idx_t>& vs, double lo, const double& hi, F&& f) {
    if (dim_ != 1) {
      for (idx_t s : vs) cofaces_of(s, [&](const Entry& e) { if (!(e.v < lo)) f(e); }, hi);
      return;
    }
    const Graph& g = cx_.g;
    const double top = hi;
    auto ball = [&](int32_t x, double r) -> int64_t {
      const double* d0 = g.bd.data() + g.ptr[x];
      return r == kInf ? g.degree(x) : std::lower_bound(d0, d0 + g.degree(x), r) - d0;
    };
    // the edges below hi, each with its centre: the end whose ball of radius hi is the larger
    if (ball_len_.empty()) ball_len_.assign(static_cast<size_t>(g.n), -1);
    spokes_.clear();
    for (idx_t s : vs) {
      int32_t v[kMaxVerts];
      cx_.vertices(s, 1, v);
      const double L = cx_.L.dist(v[1], v[0]);
      if (!(L < top)) continue;
      for (int t = 0; t < 2; ++t) if (ball_len_[v[t]] < 0) ball_len_[v[t]] = ball(v[t], top);
      const bool at_a = ball_len_[v[1]] >= ball_len_[v[0]];
      spokes_.push_back(Spoke{at_a ? v[1] : v[0], at_a ? v[0] : v[1], L});
    }
    bool by_window_edge = window_method_ == 2;
    if (window_method_ == 0) {
      // work of each: balls scanned (by V edge) against V edges visited per window edge, plus the
      // cofaces of the V edges inside the window and a marking of every vertex's ball below hi
      // (by window edge, an upper bound)
      double by_v = 0, by_w = 0;
      if (v_deg_.size() != static_cast<size_t>(g.n)) v_deg_.assign(static_cast<size_t>(g.n), 0);
      for (const Spoke& sp : spokes_) {
        by_v += static_cast<double>(ball_len_[sp.other]);
        ++v_deg_[sp.centre];
        ++v_deg_[sp.other];
        if (!(sp.L < lo)) by_w += static_cast<double>(std::min(ball_len_[sp.centre], ball_len_[sp.other]));
      }
      for (const Spoke& sp : spokes_)
        for (int32_t x : {sp.centre, sp.other})
          if (v_deg_[x] > 0) {
            by_w += static_cast<double>(v_deg_[x]) * static_cast<double>(ball_len_[x] - ball(x, lo));
            v_deg_[x] = 0;
          }
      const auto below = std::lower_bound(g.edges.begin(), g.edges.end(), Entry{top, INT64_MIN}, KeyLess());
      by_w += 2.0 * static_cast<double>(below - g.edges.begin());
      by_window_edge = by_w < by_v;
    }
    if (by_window_edge) {
      ++st_.windows_by_edge;
      window_cofaces_by_window_edge(lo, hi, f);
    } else {
      window_cofaces_by_v_edge(lo, hi, f);
    }
    // scratch back to its rest state (ball_len_ unknown) for the next window
    for (const Spoke& sp : spokes_) ball_len_[sp.centre] = ball_len_[sp.other] = -1;
  }
  // The cofaces of spokes_ by V edge. The work is a marking per vertex, not per edge: each
  // centre's ball of radius hi (at the start) is marked once and the balls of its edges' other
  // ends are scanned against it. In a window of a large cocycle, whose edges share their
  // vertices, that scans about a third of what intersecting the two balls of each edge does (the
  // smaller marked, the larger scanned).
  template <class F> void window_cofaces_by_v_edge(double lo, const double& hi, F&& f) {
    const Graph& g = cx_.g;
    const Binomial& C = cx_.C;
    // the edges by centre (a counting sort; within a centre in the order of vs)
    if (by_centre_.size() != static_cast<size_t>(g.n) + 1) by_centre_.assign(static_cast<size_t>(g.n) + 1, 0);
    for (const Spoke& sp : spokes_) ++by_centre_[static_cast<size_t>(sp.centre) + 1];
    for (size_t x = 0; x < static_cast<size_t>(g.n); ++x) by_centre_[x + 1] += by_centre_[x];
    sorted_spokes_.resize(spokes_.size());
    for (const Spoke& sp : spokes_) sorted_spokes_[static_cast<size_t>(by_centre_[static_cast<size_t>(sp.centre)]++)] = sp;
    int64_t n = 0;
    for (size_t k = 0; k < sorted_spokes_.size();) {
      const int32_t c = sorted_spokes_[k].centre;
      const int64_t pc = ball_len_[c];
      balls_.mark(g, c, pc);
      for (; k < sorted_spokes_.size() && sorted_spokes_[k].centre == c; ++k) {
        const int32_t o = sorted_spokes_[k].other;
        const double L = sorted_spokes_[k].L, h = hi;
        if (!(L < h)) continue;
        const int32_t a = std::max(c, o), b = std::min(c, o);
        const idx_t ca2 = C(a, 2), ca3 = C(a, 3), cb2 = C(b, 2);
        balls_.scan(g, o, ball_len_[o], [&](int32_t w, double dcw, double dow) {
          const double m = std::max(L, std::max(dcw, dow));
          ++n;
          if (m < lo || !(m < h)) return;
          const idx_t r = w > a ? b + ca2 + C(w, 3) : w > b ? b + C(w, 2) + ca3 : w + cb2 + ca3;
          f(Entry{m, r});
        });
      }
      balls_.unmark(g, c, pc);
    }
    std::fill(by_centre_.begin(), by_centre_.end(), 0);
    st_.generated += n;
  }
  // The cofaces of spokes_ by window edge. A coface {x, y, c} of value in [lo, hi) has a longest
  // edge (largest value, then largest rank) f = {x, y} of value in [lo, hi); the V edges it is a
  // coface of are f itself (found by intersecting f's balls of radius d(f)) and those among
  // {x, c}, {y, c}, found from f's ends: with y's ball of radius hi marked, each neighbour x of y
  // at a distance in [lo, hi) has its V edges {x, c} no longer than f visited, and c marked with
  // d(y, c) no longer than f makes a coface. Every V edge of a coface is thus found once, as with
  // window_cofaces_by_v_edge, except that a coface whose two shorter edges are both in V is not
  // given at all (its two entries would cancel).
  template <class F> void window_cofaces_by_window_edge(double lo, const double& hi, F&& f) {
    const Graph& g = cx_.g;
    const Binomial& C = cx_.C;
    const size_t nv = static_cast<size_t>(g.n);
    auto rank2 = [](int32_t u, int32_t w) { return u > w ? edge_rank(u, w) : edge_rank(w, u); };
    auto rank3 = [&](int32_t u, int32_t w, int32_t z) {  // sorted ascending, then ranked
      if (u > w) std::swap(u, w);
      if (w > z) std::swap(w, z);
      if (u > w) std::swap(u, w);
      const int32_t t[3] = {u, w, z};
      return rank_of(C, t, 2);
    };
    // the V edges at each vertex, by length
    v_off_w_.assign(nv + 1, 0);
    for (const Spoke& sp : spokes_) {
      ++v_off_w_[static_cast<size_t>(sp.centre) + 1];
      ++v_off_w_[static_cast<size_t>(sp.other) + 1];
    }
    for (size_t x = 0; x < nv; ++x) v_off_w_[x + 1] += v_off_w_[x];
    v_nb_.resize(2 * spokes_.size());
    {
      std::vector<int64_t> at(v_off_w_.begin(), v_off_w_.end() - 1);
      for (const Spoke& sp : spokes_) {
        v_nb_[static_cast<size_t>(at[static_cast<size_t>(sp.centre)]++)] = VNeighbour{sp.other, sp.L};
        v_nb_[static_cast<size_t>(at[static_cast<size_t>(sp.other)]++)] = VNeighbour{sp.centre, sp.L};
      }
    }
    for (size_t x = 0; x < nv; ++x)
      std::sort(v_nb_.begin() + v_off_w_[x], v_nb_.begin() + v_off_w_[x + 1],
                [](const VNeighbour& p, const VNeighbour& q) { return p.d < q.d; });
    int64_t n = 0;
    if (v_bits_.size() != nv / 64 + 1) v_bits_.assign(nv / 64 + 1, 0);
    // the V edges {x, c} shorter than a window edge {x, y}
    for (int32_t y = 0; y < static_cast<int32_t>(nv); ++y) {
      const double* dy = g.bd.data() + g.ptr[y];
      const int32_t* vy = g.bv.data() + g.ptr[y];
      const int64_t deg = g.degree(y);
      const int64_t s0 = std::lower_bound(dy, dy + deg, lo) - dy;
      const int64_t s1 = std::lower_bound(dy + s0, dy + deg, hi) - dy;
      bool any = false;
      for (int64_t t = s0; t < s1 && !any; ++t) any = v_off_w_[vy[t]] < v_off_w_[vy[t] + 1];
      if (!any) continue;
      balls_.mark(g, y, s1);
      // y's own V edges: a coface whose two shorter edges are both in V is found from both ends
      // of its longest edge and cancels (Z/2): neither end gives it
      for (const VNeighbour* q = v_nb_.data() + v_off_w_[y]; q != v_nb_.data() + v_off_w_[y + 1]; ++q)
        v_bits_[static_cast<size_t>(q->v) >> 6] |= uint64_t{1} << (q->v & 63);
      for (int64_t t = s0; t < s1; ++t) {
        const double df = dy[t];
        if (!(df < hi)) break;
        const int32_t x = vy[t];
        const VNeighbour* p = v_nb_.data() + v_off_w_[x];
        const VNeighbour* pe = v_nb_.data() + v_off_w_[x + 1];
        idx_t rf = -1;
        for (; p != pe && p->d <= df; ++p) {
          const int32_t c = p->v;
          const double dyc = balls_.marked_dist(c);
          if (!(dyc <= df) || (v_bits_[static_cast<size_t>(c) >> 6] >> (c & 63) & 1)) continue;
          if (p->d == df || dyc == df) {  // a tie in value: the longest edge by rank
            if (rf < 0) rf = rank2(x, y);
            if (p->d == df && rank2(x, c) > rf) continue;
            if (dyc == df && rank2(y, c) > rf) continue;
          }
          ++n;
          f(Entry{df, rank3(x, y, c)});
        }
      }
      balls_.unmark(g, y, s1);
      for (const VNeighbour* q = v_nb_.data() + v_off_w_[y]; q != v_nb_.data() + v_off_w_[y + 1]; ++q)
        v_bits_[static_cast<size_t>(q->v) >> 6] = 0;
    }
    // the V edges of the window: the cofaces of which they are the longest edge
    for (const Spoke& sp : spokes_) {
      const double L = sp.L;
      if (L < lo || !(L < hi)) continue;
      const int32_t x = sp.centre, y = sp.other;
      const double* dx = g.bd.data() + g.ptr[x];
      const double* dy = g.bd.data() + g.ptr[y];
      const int64_t px = std::upper_bound(dx, dx + g.degree(x), L) - dx;
      const int64_t py = std::upper_bound(dy, dy + g.degree(y), L) - dy;
      const idx_t rf = rank2(x, y);
      balls_(g, x, px, y, py, [&](int32_t c, double dxc, double dyc) {
        if (dxc == L && rank2(x, c) > rf) return;
        if (dyc == L && rank2(y, c) > rf) return;
        ++n;
        f(Entry{L, rank3(x, y, c)});
      });
    }
    st_.generated += n;
  }
  void push_coboundary(idx_t s) {
    cofaces_of(s, [&](const Entry& e) {
      heap_.push_back(e);
      std::push_heap(heap_.begin(), heap_.end(), KeyGreater());
    });
  }
  bool pivot_of_heap(Entry& out) {
    while (!heap_.empty()) {
      Entry t = heap_.front();
      std::pop_heap(heap_.begin(), heap_.end(), KeyGreater());
      heap_.pop_back();
      if (!heap_.empty() && heap_.front() == t) {
        std::pop_heap(heap_.begin(), heap_.end(), KeyGreater());
        heap_.pop_back();
        continue;
      }
      heap_.push_back(t);
      std::push_heap(heap_.begin(), heap_.end(), KeyGreater());
      out = t;
      return true;
    }
    return false;
  }
  // Sorts v and keeps one copy of each element that occurs an odd number of times (Z/2 sum).
  template <class T, class Less = std::less<T>> static void cancel_pairs(std::vector<T>& v, Less less = Less()) {
    std::sort(v.begin(), v.end(), less);
    cancel_sorted(v);
  }
  // Coboundary entries by key: a radix sort when their keys pack in 64 bits (rips_sort.hpp).
  static void cancel_pairs(std::vector<Entry>& v, KeyLess) {
    sort_keys(v);
    cancel_sorted(v);
  }
  // Keeps one copy of each element of the sorted v that occurs an odd number of times.
  template <class T> static void cancel_sorted(std::vector<T>& v) {
    size_t w = 0;
    for (size_t i = 0; i < v.size();) {
      if (i + 1 < v.size() && v[i] == v[i + 1]) { i += 2; continue; }
      v[w++] = v[i++];
    }
    v.resize(w);
  }
  void prune_heap() {
    cancel_pairs(heap_, KeyLess());
    std::make_heap(heap_.begin(), heap_.end(), KeyGreater());
  }
  void store(const Entry& sigma, const Entry& tau) {
    int64_t slot = static_cast<int64_t>(v_off_.size()) - 1;
    cancel_pairs(work_v_);
    st_.max_heap = std::max(st_.max_heap, heap_.size());
    st_.max_v = std::max(st_.max_v, work_v_.size());
    v_ent_.insert(v_ent_.end(), work_v_.begin(), work_v_.end());
    v_off_.push_back(static_cast<int64_t>(v_ent_.size()));
    pivots_.insert(tau.i, slot);
    ++st_.stored;
    if (tau.v != sigma.v) pairs_.push_back({sigma.v, tau.v});
  }
  static constexpr size_t kSentHeap = size_t{1} << 20;  // largest heap sent to the next rank (16 MiB)
  void forward(const Entry& sigma) {
    cancel_pairs(work_v_);
    Forwarded f;
    f.sigma = sigma;
    f.v = std::move(work_v_);
    work_v_.clear();
    const int64_t bytes = static_cast<int64_t>(heap_.size() * sizeof(Entry));
    if (long_) {
      // a long column goes on as it stands (sorted): moved within the rank, sent to the next
      // rank up to the working budget (cheaper than regenerating it there)
      std::vector<Entry> all = gather_long();
      if (carry_ || all.size() <= heap_budget_) f.heap = std::move(all);
    } else if (windowed_) {
      if (carry_) {
        // within the rank the window goes on as it stands (moved, not copied); the next rank
        // regenerates it window by window
        f.windowed = true;
        f.win = std::move(win_);
        f.win_pos = win_pos_;
        flatten_subs();
        f.extra = std::move(extra_);
        f.win_lo = win_lo_;
        f.win_hi = win_hi_;
        f.bounds = bounds_;
        f.bounds_v = bounds_v_;
        win_.clear();
        extra_.clear();
      }
    } else if (carry_) {
      if (credit_ && credit_->fetch_sub(bytes) >= bytes) {
        f.heap = std::move(heap_);
        f.credited = true;
        heap_.clear();
      } else if (credit_) {
        credit_->fetch_add(bytes);  // not enough left: the next range regenerates it
      }
    } else if (heap_.size() <= kSentHeap) {
      f.heap = std::move(heap_);  // as it stands: serialised in order, it is still a heap
      heap_.clear();
    }
    outgoing_.push_back(std::move(f));
    ++st_.forwarded;
  }

  // ----- long working column -----
  // A column whose live coboundary exceeds long_from_ entries is held explicitly, in buckets of
  // filtration values: bucket b holds the entries of values in [bucket_lo_[b], bucket_lo_[b+1]),
  // as a sorted run (each entry once) and an unsorted list of the entries additions brought
  // (`add`, any multiplicity). The current bucket is the window of the windowed path (win_,
  // extra_, window_pivot): its run merged with its additions, sorted; later additions that land
  // in it go to the heap extra_, those beyond it are appended to their bucket's list, where
  // they wait, unsorted, until their bucket is reached. Every added entry is thus sorted once,
  // within a small bucket, instead of sifted through a large heap; nothing is regenerated.
  // Memory: the live column plus the waiting additions; when they pass heap_budget_ the lists
  // are merged into their runs (compaction), and a column that stays above three quarters of
  // the budget goes on window by window (windowed path) from its current pivot.
  struct Bucket {
    std::vector<Entry> run, add;
  };
  static constexpr size_t kSlots = size_t{1} << 16;  // value -> bucket table
  size_t bucket_of(double v) const {
    double x = (v - slot_lo_) * slot_scale_;
    size_t s = x <= 0 ? 0 : x >= static_cast<double>(kSlots - 1) ? kSlots - 1 : static_cast<size_t>(x);
    size_t b = slot_bucket_[s];
    while (b + 1 < bucket_lo_.size() && !(v < bucket_lo_[b + 1])) ++b;
    while (b > 0 && v < bucket_lo_[b]) --b;
    return b;
  }
  // run := run + add over Z/2 (add sorted first); add emptied.
  static void merge_into(std::vector<Entry>& run, std::vector<Entry>& add) {
    if (add.empty()) return;
    sort_keys(add);
    std::vector<Entry> out;
    out.reserve(run.size() + add.size());
    size_t i = 0, j = 0;
    while (i < run.size() || j < add.size()) {
      const Entry c = j == add.size() || (i < run.size() && key_less(run[i], add[j])) ? run[i] : add[j];
      int cnt = 0;
      while (i < run.size() && run[i] == c) { ++i; ++cnt; }
      while (j < add.size() && add[j] == c) { ++j; ++cnt; }
      if (cnt & 1) out.push_back(c);
    }
    run.swap(out);
    std::vector<Entry>().swap(add);
  }
  size_t long_size() const { return held_ + (win_.size() - win_pos_) + extra_.size(); }
  // Enters the long path with the entries of heap_ (any order, any multiplicity).
  void enter_long() {
    if (!std::is_sorted(heap_.begin(), heap_.end(), KeyLess())) sort_keys(heap_);
    cancel_sorted(heap_);
    st_.max_heap = std::max(st_.max_heap, heap_.size());
    clear_subs();
    long_ = windowed_ = true;
    ++st_.long_columns;
    // buckets of about a thousandth of the column, at least 4096 entries (fewer for tiny long_from_)
    const size_t n = heap_.size(), per = std::max<size_t>(std::min<size_t>(4096, std::max<size_t>(long_from_ / 8, 4)), n / 1024);
    buckets_.clear();
    bucket_lo_.assign(1, -kInf);
    buckets_.emplace_back();
    size_t start = 0;
    for (size_t k = 1; k <= n; ++k) {
      if (k == n || (k - start >= per && heap_[k].v > heap_[k - 1].v)) {
        buckets_.back().run.assign(heap_.begin() + static_cast<std::ptrdiff_t>(start),
                                   heap_.begin() + static_cast<std::ptrdiff_t>(k));
        if (k == n) break;
        bucket_lo_.push_back(heap_[k].v);
        buckets_.emplace_back();
        start = k;
      }
    }
    std::vector<Entry>().swap(heap_);
    slot_lo_ = bucket_lo_.size() > 1 ? bucket_lo_[1] : top_value_;
    slot_scale_ = top_value_ > slot_lo_ ? static_cast<double>(kSlots) / (top_value_ - slot_lo_) : 0;
    slot_bucket_.resize(kSlots);
    for (size_t s = 0, b = 0; s < kSlots; ++s) {
      const double x = slot_lo_ + static_cast<double>(s) / (slot_scale_ > 0 ? slot_scale_ : 1);
      while (b + 1 < bucket_lo_.size() && bucket_lo_[b + 1] <= x) ++b;
      slot_bucket_[s] = static_cast<uint32_t>(b);
    }
    held_ = 0;
    for (size_t b = 1; b < buckets_.size(); ++b) held_ += buckets_[b].run.size();
    cur_ = 0;
    win_.swap(buckets_[0].run);
    std::vector<Entry>().swap(buckets_[0].run);
    win_pos_ = 0;
    extra_.clear();
    st_.max_long = std::max(st_.max_long, long_size());
  }
  // The next bucket as the current window; false past the last.
  bool next_bucket() {
    if (cur_ + 1 >= buckets_.size()) return false;
    ++cur_;
    Bucket& B = buckets_[cur_];
    held_ -= B.run.size() + B.add.size();
    merge_into(B.run, B.add);
    win_.swap(B.run);
    std::vector<Entry>().swap(B.run);
    win_pos_ = 0;
    ++st_.buckets;
    if (log_.on() && seconds_since(last_progress_) > 30) {
      last_progress_ = std::chrono::steady_clock::now();
      log_("dim %d: a long column: bucket %zu of %zu from value %g, %zu entries held, V column %zu", dim_, cur_,
           buckets_.size(), bucket_lo_[cur_], long_size(), work_v_.size());
    }
    return true;
  }
  // After an addition: merges the waiting additions when they crowd the budget; a column still
  // too large goes on window by window from `piv` (its coboundary is zero up to the pivot just
  // cancelled).
  void check_long(const Entry& piv) {
    if (long_size() <= heap_budget_) return;
    ++st_.compactions;
    held_ = 0;
    for (size_t b = cur_ + 1; b < buckets_.size(); ++b) {
      merge_into(buckets_[b].run, buckets_[b].add);
      held_ += buckets_[b].run.size();
    }
    if (!extra_.empty()) {
      cancel_pairs(extra_, KeyLess());
      std::make_heap(extra_.begin(), extra_.end(), KeyGreater());
    }
    st_.max_long = std::max(st_.max_long, long_size());
    if (long_size() * 4 <= heap_budget_ * 3) return;
    free_long();
    windowed_ = true;
    ++st_.windowed;
    extra_.clear();
    win_lo_ = piv;
    next_window(true);
  }
  // Every live entry of a long column, sorted (each once).
  std::vector<Entry> gather_long() {
    std::vector<Entry> out(win_.begin() + static_cast<std::ptrdiff_t>(win_pos_), win_.end());
    merge_into(out, extra_);
    for (size_t b = cur_ + 1; b < buckets_.size(); ++b) {
      merge_into(buckets_[b].run, buckets_[b].add);
      out.insert(out.end(), buckets_[b].run.begin(), buckets_[b].run.end());
      std::vector<Entry>().swap(buckets_[b].run);
    }
    free_long();
    return out;
  }
  void free_long() {
    if (!long_) return;
    long_ = false;
    std::vector<Bucket>().swap(buckets_);
    std::vector<double>().swap(bucket_lo_);
    held_ = 0;
  }
  // ----- windowed working column -----
  // A column whose coboundary outgrows heap_budget_ entries is reduced window by window: the
  // coboundary entries of work_v_ with keys in [win_lo_, win_hi_) are generated, sorted and
  // cancelled (Z/2) into `win_`; entries that later additions bring into the window go to the
  // small heap `extra_`. Below win_lo_ the coboundary is known to be zero, so additions (whose own
  // coboundary starts at the current pivot, >= win_lo_) need no entries below it; entries at or
  // beyond win_hi_ are regenerated from work_v_ when the window moves on. Memory: about
  // heap_budget_ / 2 entries per window instead of the whole coboundary.
  // Moves the window to start at win_hi_ (or at win_lo_ when entering); false past the last value.
  // One pass over the coboundary of work_v_ fills the window [win_lo_, win_hi_): its upper end is
  // the next planned boundary, lowered during the pass (to the median value held) whenever the
  // window outgrows heap_budget_ / 2 entries. When entering, or when work_v_ has grown more than
  // eightfold since the last plan, the boundaries of the windows beyond are planned again (about
  // heap_budget_ / 2 entries each) from a histogram of the coboundary's values at or above
  // win_lo_: taken by the same pass when work_v_ is small, else from a sample of work_v_ (every
  // k-th simplex, its counts times k). The whole coboundary above win_lo_ is many windows' worth
  // (VGG16's and ResNet18's large cocycles: hundreds of millions of entries); the plan only
  // sizes the windows, which any plan leaves the result of unchanged.
  bool next_window(bool entering) {
    if (long_) return next_bucket();
    if (!entering) {
      if (win_hi_.v == kInf) return false;
      win_lo_ = win_hi_;
    }
    cancel_pairs(work_v_);
    const bool replan = entering || work_v_.size() > 8 * bounds_v_ + 1024;
    while (!bounds_.empty() && bounds_.back() <= win_lo_.v) bounds_.pop_back();
    const double lo = win_lo_.v;
    const double top = std::max(lo, top_value_);
    const int B = 1 << 14;
    const double width = top > lo ? (top - lo) / B : 0;
    // the histogram taken by the fill itself when work_v_ is small, else from a sample first
    const size_t step = work_v_.size() / kPlanSample + 1;
    const bool hist_in_fill = replan && step == 1;
    std::vector<uint64_t> hist(replan ? B : 0, 0);
    auto count = [&](const Entry& e, uint64_t w) {
      const int b = width > 0 ? static_cast<int>((e.v - lo) / width) : 0;
      hist[std::min(std::max(b, 0), B - 1)] += w;
    };
    if (replan && !hist_in_fill) {
      for (size_t k = 0; k < work_v_.size(); k += step)
        cofaces_of(work_v_[k], [&](const Entry& e) { if (!key_less(e, win_lo_)) count(e, step); });
      plan_windows(hist, lo, width);
    }
    double hi = hist_in_fill || bounds_.empty() ? kInf : bounds_.back();
    const size_t cap = std::max<size_t>(heap_budget_ / 2, 2);
    size_t limit = cap;  // above it the window end is lowered (more, when one value fills it)
    win_.clear();
    auto take = [&](const Entry& e) {
      if (key_less(e, win_lo_)) return;
      if (hist_in_fill) count(e, 1);
      if (!(e.v < hi)) return;
      win_.push_back(e);
      if (win_.size() > limit) {
        hi = lower_window_end();
        limit = std::max(cap, 2 * win_.size());
      }
    };
    // only the cofaces below the window's (current) end are generated, but for a histogram
    const double all = kInf;  // taken by the fill: every value above lo
    window_cofaces(work_v_, lo, hist_in_fill ? all : hi, take);
    if (hist_in_fill) plan_windows(hist, lo, width);
    while (!bounds_.empty() && bounds_.back() <= hi) bounds_.pop_back();
    win_hi_ = hi == kInf ? Entry{kInf, INT64_MIN} : Entry{hi, INT64_MIN};
    cancel_pairs(win_, KeyLess());
    win_pos_ = 0;
    setup_subs();
    ++st_.windows;
    if (log_.on() && seconds_since(last_progress_) > 30) {
      last_progress_ = std::chrono::steady_clock::now();
      log_("dim %d: a long column: window %lld from value %g, %zu coboundary entries, V column %zu", dim_,
           static_cast<long long>(st_.windows), win_lo_.v, win_.size(), work_v_.size());
    }
    st_.max_heap = std::max(st_.max_heap, win_.capacity());
    return true;
  }
  // Boundaries of windows of about heap_budget_ / 2 entries each from a histogram of the values
  // (B bins of `width` from lo), the next one at the back of bounds_.
  void plan_windows(const std::vector<uint64_t>& hist, double lo, double width) {
    bounds_v_ = work_v_.size();
    bounds_.clear();
    const uint64_t target = std::max<uint64_t>(heap_budget_ / 2, 1);
    const size_t B = hist.size();
    uint64_t acc = 0;
    for (size_t b = 0; b < B; ++b) {
      acc += hist[b];
      if (acc >= target && b + 1 < B) { bounds_.push_back(lo + width * static_cast<double>(b + 1)); acc = 0; }
    }
    std::reverse(bounds_.begin(), bounds_.end());
  }
  // The window holds too many entries: keeps those of value below the median value held (or, if
  // that is the smallest, those of that value); returns the new upper end.
  double lower_window_end() {
    const size_t mid = win_.size() / 2;
    std::nth_element(win_.begin(), win_.begin() + static_cast<std::ptrdiff_t>(mid), win_.end(), KeyLess());
    double x = win_[mid].v;
    auto below = [&](const Entry& e) { return e.v < x; };
    if (std::none_of(win_.begin(), win_.end(), below)) x = std::nextafter(x, kInf);
    win_.erase(std::partition(win_.begin(), win_.end(), [&](const Entry& e) { return e.v < x; }), win_.end());
    return x;
  }
  // The additions waiting in a window: the entries of its values' sub-buckets up to sub_cur_ in
  // the heap extra_, those beyond in their sub-bucket's list (unsorted), made a heap when the
  // pivot reaches the sub-bucket (as the long path's buckets do for a whole column): the heap
  // stays small instead of holding every entry the additions brought into the window.
  // sub_n_ = 0: no sub-buckets (every waiting entry in extra_).
  size_t sub_of(const Entry& e) const {
    const double x = (e.v - sub_lo_) * sub_scale_;  // monotone in e.v (sub_lo_ and the scale finite)
    return !(x > 0) ? 0 : x >= static_cast<double>(sub_n_ - 1) ? sub_n_ - 1 : static_cast<size_t>(x);
  }
  void setup_subs() {
    clear_subs();
    sub_n_ = std::min<size_t>(kSubBuckets, win_.size() / 16);
    if (sub_n_ < 2) { sub_n_ = 0; return; }
    const double top = win_hi_.v == kInf ? std::max(win_lo_.v, top_value_) : win_hi_.v;
    sub_lo_ = win_lo_.v;
    sub_scale_ = static_cast<double>(sub_n_) / (top - sub_lo_);
    if (!(top > sub_lo_) || !std::isfinite(sub_scale_) || !(sub_scale_ > 0)) {  // one value, or none finite
      sub_n_ = 0;
      return;
    }
    sub_add_.resize(sub_n_);
  }
  void clear_subs() {
    for (auto& a : sub_add_) a.clear();
    sub_n_ = sub_cur_ = sub_held_ = 0;
  }
  // every waiting entry into extra_ (a heap), no sub-buckets
  void flatten_subs() {
    for (auto& a : sub_add_) extra_.insert(extra_.end(), a.begin(), a.end());
    std::make_heap(extra_.begin(), extra_.end(), KeyGreater());
    clear_subs();
  }
  // extra_ (empty) := the next sub-bucket's list as a heap; false when none is left
  bool load_sub() {
    if (sub_cur_ + 1 >= sub_n_) return false;
    std::vector<Entry>& a = sub_add_[++sub_cur_];
    sub_held_ -= a.size();
    extra_.swap(a);
    a.clear();
    std::make_heap(extra_.begin(), extra_.end(), KeyGreater());
    return true;
  }
  size_t waiting() const { return extra_.size() + sub_held_; }
  void enter_windows(const Entry& lo) {
    st_.max_heap = std::max(st_.max_heap, heap_.size());
    std::vector<Entry>().swap(heap_);
    windowed_ = true;
    ++st_.windowed;
    extra_.clear();
    win_lo_ = lo;
    next_window(true);
  }
  void leave_windows() {
    if (!windowed_) return;
    windowed_ = false;
    free_long();
    clear_subs();
    std::vector<std::vector<Entry>>().swap(sub_add_);
    std::vector<Entry>().swap(win_);
    std::vector<Entry>().swap(extra_);
    std::vector<Spoke>().swap(spokes_);
    std::vector<Spoke>().swap(sorted_spokes_);
    std::vector<VNeighbour>().swap(v_nb_);
    std::vector<int64_t>().swap(v_off_w_);
  }
  // Smallest coboundary entry of odd multiplicity, kept in place.
  bool window_pivot(Entry& out) {
    while (true) {
      if (sub_n_ && extra_.empty()) {
        // the sub-buckets up to the run's next entry's (or every one, past the run's end) could
        // hold smaller entries: loaded until one is not empty
        const size_t upto = win_pos_ < win_.size() ? sub_of(win_[win_pos_]) : sub_n_ - 1;
        while (sub_cur_ < upto && extra_.empty() && load_sub()) {}
      }
      const bool hw = win_pos_ < win_.size(), hx = !extra_.empty();
      if (!hw && !hx) {
        if (!next_window(false)) return false;
        continue;
      }
      Entry c = !hw ? extra_.front()
                    : !hx ? win_[win_pos_] : (key_less(extra_.front(), win_[win_pos_]) ? extra_.front() : win_[win_pos_]);
      int cnt = 0;
      if (hw && win_[win_pos_] == c) { ++cnt; ++win_pos_; }
      while (!extra_.empty() && extra_.front() == c) {
        std::pop_heap(extra_.begin(), extra_.end(), KeyGreater());
        extra_.pop_back();
        ++cnt;
      }
      if (cnt & 1) {
        extra_.push_back(c);
        std::push_heap(extra_.begin(), extra_.end(), KeyGreater());
        out = c;
        return true;
      }
    }
  }
  // Adds the coboundary of simplex s to the working column.
  void add_simplex(idx_t s) {
    work_v_.push_back(s);
    if (!windowed_) { push_coboundary(s); return; }
    if (long_) {
      cofaces_of(s, [&](const Entry& e) {
        const size_t b = bucket_of(e.v);
        if (b <= cur_) {
          extra_.push_back(e);
          std::push_heap(extra_.begin(), extra_.end(), KeyGreater());
        } else {
          buckets_[b].add.push_back(e);
          ++held_;
        }
      });
      return;
    }
    cofaces_of(s, [&](const Entry& e) {
      if (!key_less(e, win_lo_) && key_less(e, win_hi_)) {
        size_t b;
        if (sub_n_ && (b = sub_of(e)) > sub_cur_) {
          sub_add_[b].push_back(e);
          ++sub_held_;
          return;
        }
        extra_.push_back(e);
        std::push_heap(extra_.begin(), extra_.end(), KeyGreater());
      }
    }, win_hi_.v);
  }

  // Heap size at which it is next pruned: a multiple of its live size, at most the budget and
  // twice the size at which a column takes the long path.
  size_t prune_limit(size_t live) const {
    const size_t cap = std::min(heap_budget_, std::max<size_t>(2 * long_from_, 16));
    return std::min(std::max(live * kPruneFactor, std::min<size_t>(4096, cap)), cap);
  }

  // Reduces the working column (the coboundary of work_v_) until it is stored, forwarded or zero.
  void reduce(const Entry& sigma);

  const Complex<Lookup>& cx_;
  const int dim_;
  const Split& split_;
  const int self_;
  const size_t heap_budget_;
  const size_t long_from_;
  const double top_value_;
  const int window_method_;
  const Logger& log_;

  BallIntersection balls_;         // scratch of edge_cofaces_below and window_cofaces
  struct Spoke {
    int32_t centre, other;
    double L;
  };
  std::vector<Spoke> spokes_, sorted_spokes_;  // scratch of window_cofaces: edges, by centre
  std::vector<int64_t> ball_len_, by_centre_;  // its ball lengths and counting-sort offsets
  std::vector<int64_t> v_deg_;                 // its cost estimate: V edges per vertex
  struct VNeighbour {
    int32_t v;
    double d;
  };
  std::vector<VNeighbour> v_nb_;  // scratch of window_cofaces_by_window_edge: V edges by vertex
  std::vector<int64_t> v_off_w_;  // and their offsets
  std::vector<uint64_t> v_bits_;  // and the V edges of one vertex, as a bitset
  HashMap pivots_;                 // pivot rank -> slot
  std::vector<int64_t> v_off_{0};  // slot -> V column in v_ent_
  std::vector<idx_t> v_ent_;
  std::vector<Entry> heap_;
  std::vector<idx_t> work_v_;
  Batch outgoing_;
  std::atomic<int64_t>* credit_ = nullptr;
  bool carry_ = false;
  PairList pairs_;
  ReductionStats st_;

  bool windowed_ = false;
  std::vector<Entry> win_, extra_;
  static constexpr size_t kSubBuckets = 4096;
  static constexpr size_t kPlanSample = 4096;  // simplices of work_v_ that a plan samples (at least)
  std::vector<std::vector<Entry>> sub_add_;  // the window's sub-buckets' waiting entries
  size_t sub_n_ = 0, sub_cur_ = 0, sub_held_ = 0;
  double sub_lo_ = 0, sub_scale_ = 0;
  size_t win_pos_ = 0;
  Entry win_lo_{-kInf, INT64_MIN}, win_hi_{-kInf, INT64_MIN};
  std::vector<double> bounds_;  // window boundaries (values) still ahead
  size_t bounds_v_ = 0;         // size of work_v_ when the boundaries were computed

  bool long_ = false;
  std::vector<Bucket> buckets_;
  std::vector<double> bucket_lo_;      // lowest value of each bucket
  std::vector<uint32_t> slot_bucket_;  // value slot -> bucket at the slot's lower end
  double slot_lo_ = 0, slot_scale_ = 0;
  size_t cur_ = 0;   // the current bucket (the window)
  size_t held_ = 0;  // entries in the runs and lists of the buckets beyond cur_
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
};

template <class Lookup>
void Reducer<Lookup>::reduce(const Entry& sigma) {
  Entry piv, last{-kInf, INT64_MIN};
  size_t prune_at = prune_limit(heap_.size());
  int32_t tv[kMaxVerts];
  while (windowed_ ? window_pivot(piv) : pivot_of_heap(piv)) {
    // each addition cancels the pivot and brings entries above it only: a pivot that does not
    // rise means a wrong coboundary, which would otherwise be reduced for ever
    if (!key_less(last, piv))
      throw Error("rips: internal error: the reduction of a column of dimension " + std::to_string(dim_) +
                  " did not advance (pivot value " + std::to_string(piv.v) + "); please report it");
    last = piv;
    if (split_.owner(piv, dim_ + 1) != self_) { forward(sigma); leave_windows(); return; }
    if (const int64_t* slot = pivots_.find(piv.i)) {
      for (int64_t p = v_off_[*slot]; p < v_off_[*slot + 1]; ++p) add_simplex(v_ent_[p]);
      ++st_.additions;
    } else {
      cx_.vertices(piv.i, dim_ + 1, tv);
      idx_t f = cx_.apparent_facet(tv, dim_ + 1, piv.v);
      if (f < 0) { store(sigma, piv); leave_windows(); return; }
      add_simplex(f);
      ++st_.additions;
    }
    if (long_) {
      check_long(piv);
    } else if (windowed_) {
      if (waiting() > heap_budget_ / 2) {  // additions crowd the window: regenerate it from piv
        extra_.clear();
        clear_subs();
        win_lo_ = piv;  // the working coboundary is zero below the pivot just cancelled
        next_window(true);
      }
    } else if (heap_.size() > prune_at) {
      st_.max_heap = std::max(st_.max_heap, heap_.size());
      prune_heap();
      st_.max_live = std::max(st_.max_live, heap_.size());
      Entry lo;
      if (heap_.size() > long_from_ && heap_.size() * 4 <= heap_budget_ * 3) enter_long();
      else if (heap_.size() > heap_budget_ / 2 && pivot_of_heap(lo)) enter_windows(lo);
      prune_at = prune_limit(heap_.size());
    }
  }
  leave_windows();
  pairs_.push_back({sigma.v, kInf});  // essential
}

template <class Lookup>
void Reducer<Lookup>::process_own(const Entry& sigma) {
  int32_t v[kMaxVerts];
  cx_.vertices(sigma.i, dim_, v);
  heap_.clear();
  work_v_.clear();
  work_v_.push_back(sigma.i);
  // Emergent pair: the smallest coface tau is a pivot of nobody (no column of higher key has
  // it, it is no upper half of an apparent pair): (sigma, tau) is a pair without any addition.
  auto emergent = [&](const Entry& tau) {
    if (split_.owner(tau, dim_ + 1) != self_ || pivots_.find(tau.i)) return false;
    int32_t tv[kMaxVerts];
    cx_.vertices(tau.i, dim_ + 1, tv);
    return cx_.apparent_facet(tv, dim_ + 1, tau.v) < 0;
  };
  // Cofaces come in ascending rank; the first of value val(sigma), if any, is the smallest: the
  // enumeration stops there when it makes an emergent pair.
  Entry best{kInf, INT64_MAX};
  bool equal_seen = false, paired = false;
  cx_.cofaces(v, dim_, sigma.v, [&](double m, idx_t r, int32_t) {
    const Entry e{m, r};
    ++st_.generated;
    heap_.push_back(e);
    if (key_less(e, best)) best = e;
    if (m == sigma.v && !equal_seen) {
      equal_seen = true;
      paired = emergent(e);
    }
    return paired;
  });
  if (heap_.empty()) { pairs_.push_back({sigma.v, kInf}); return; }
  if (paired || (!equal_seen && emergent(best))) {
    ++st_.emergent;
    store(sigma, best);
    return;
  }
  std::make_heap(heap_.begin(), heap_.end(), KeyGreater());
  reduce(sigma);
}

template <class Lookup>
void Reducer<Lookup>::process_forwarded(Forwarded& f) {
  if (f.windowed) {
    heap_.clear();
    work_v_ = std::move(f.v);
    windowed_ = true;
    ++st_.windowed;
    win_ = std::move(f.win);
    win_pos_ = f.win_pos;
    clear_subs();
    extra_ = std::move(f.extra);
    win_lo_ = f.win_lo;
    win_hi_ = f.win_hi;
    bounds_ = std::move(f.bounds);
    bounds_v_ = f.bounds_v;
    reduce(f.sigma);
    return;
  }
  if (!f.heap.empty()) {
    if (f.credited && credit_) credit_->fetch_add(static_cast<int64_t>(f.heap.size() * sizeof(Entry)));
    heap_ = std::move(f.heap);
    work_v_ = std::move(f.v);
    if (heap_.size() > long_from_) enter_long();  // a long column handed on (sorted)
    reduce(f.sigma);
    return;
  }
  heap_.clear();
  work_v_ = std::move(f.v);
  bool big = false;
  for (size_t i = 0; i < work_v_.size() && !big; ++i) {
    cofaces_of(work_v_[i], [&](const Entry& e) { heap_.push_back(e); });
    if (heap_.size() > heap_budget_) {
      cancel_pairs(heap_, KeyLess());
      big = heap_.size() * 4 > heap_budget_ * 3;
    }
  }
  if (big) {
    // The working coboundary is zero below its pivot, which lies in this range or beyond: every
    // entry is at least sigma's value and at least this range's lower splitter (same value, higher
    // dimension: a larger key), so the windows start there, not at sigma's value.
    double lo = f.sigma.v;
    if (self_ > 0 && static_cast<size_t>(self_ - 1) < split_.s.size()) lo = std::max(lo, split_.s[self_ - 1].v);
    std::vector<Entry>().swap(heap_);
    enter_windows(Entry{lo, INT64_MIN});
  } else if (heap_.size() > long_from_) {
    enter_long();
  } else {
    std::make_heap(heap_.begin(), heap_.end(), KeyGreater());
  }
  reduce(f.sigma);
}

}  // namespace detail
}  // namespace rips
}  // namespace dipha
