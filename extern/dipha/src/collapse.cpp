// Edge collapse of a flag filtration (algorithm, cost and guarantees in dipha/collapse.hpp).
#include "dipha/collapse.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>

namespace dipha {
namespace collapse {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kDefaultDenseLookupBytes = 512LL * 1024 * 1024;

// The current filtration: edge ends, current values (+inf once removed) and the neighbour lists
// (ascending neighbour id, with the id of the edge) of the edges present when they were built.
struct State {
  int64_t n = 0;
  std::vector<int32_t> eu, ev;  // ends of edge id, eu < ev
  std::vector<double> val;      // current value of edge id; +inf: removed
  std::vector<int64_t> ptr;     // n + 1
  std::vector<int32_t> nb;      // neighbour ids, ascending per row
  std::vector<int32_t> eid;     // edge id of each entry
  Stats st;

  void build_lists() {
    ptr.assign(n + 1, 0);
    for (size_t e = 0; e < val.size(); ++e)
      if (val[e] < kInf) { ++ptr[eu[e] + 1]; ++ptr[ev[e] + 1]; }
    for (int64_t i = 0; i < n; ++i) ptr[i + 1] += ptr[i];
    nb.resize(ptr[n]);
    eid.resize(ptr[n]);
    std::vector<int64_t> fill(ptr.begin(), ptr.end() - 1);
    // edges sorted by (eu, ev) would fill every row in order; sort each row instead, which does
    // not depend on the input's order
    for (size_t e = 0; e < val.size(); ++e) {
      if (!(val[e] < kInf)) continue;
      nb[fill[eu[e]]] = ev[e]; eid[fill[eu[e]]++] = static_cast<int32_t>(e);
      nb[fill[ev[e]]] = eu[e]; eid[fill[ev[e]]++] = static_cast<int32_t>(e);
    }
    std::vector<std::pair<int32_t, int32_t>> row;
    for (int64_t i = 0; i < n; ++i) {
      row.clear();
      for (int64_t p = ptr[i]; p < ptr[i + 1]; ++p) row.push_back({nb[p], eid[p]});
      std::sort(row.begin(), row.end());
      for (size_t k = 0; k < row.size(); ++k) {
        if (k > 0 && row[k].first == row[k - 1].first)
          throw Error("collapse: edge {" + std::to_string(std::min<int64_t>(i, row[k].first)) + ", " +
                      std::to_string(std::max<int64_t>(i, row[k].first)) + "} is listed twice");
        nb[ptr[i] + k] = row[k].first;
        eid[ptr[i] + k] = row[k].second;
      }
    }
  }
  int64_t degree(int32_t a) const { return ptr[a + 1] - ptr[a]; }
};

// Look-up of the current value of {a, b} (+inf when absent), and the listing of the common
// neighbours of an edge, specialised per kind: a dense matrix of current values, or the sorted
// neighbour lists. Both list the common neighbours in ascending id, so they give the same result.
struct DenseLookup {
  State& s;
  std::vector<double> m;  // n x n, +inf where absent and on the diagonal
  explicit DenseLookup(State& s_) : s(s_), m(static_cast<size_t>(s_.n) * s_.n, kInf) {
    for (size_t e = 0; e < s.val.size(); ++e) set(s.eu[e], s.ev[e], s.val[e]);
  }
  double operator()(int32_t a, int32_t b) const { return m[static_cast<size_t>(a) * s.n + b]; }
  void set(int32_t a, int32_t b, double x) {
    m[static_cast<size_t>(a) * s.n + b] = x;
    m[static_cast<size_t>(b) * s.n + a] = x;
  }
  // (arrival time, w) of every common neighbour w of a and b: the shorter list against the
  // other's dense row.
  template <class Out>
  void common(int32_t a, int32_t b, Out&& out) {
    if (s.degree(a) > s.degree(b)) std::swap(a, b);
    const double* row = m.data() + static_cast<size_t>(b) * s.n;
    s.st.neighbour_steps += s.degree(a);
    for (int64_t p = s.ptr[a]; p < s.ptr[a + 1]; ++p) {
      const int32_t w = s.nb[p];
      const double x = s.val[s.eid[p]], y = row[w];
      if (x < kInf && y < kInf) out(std::max(x, y), w);  // w == b: the diagonal is +inf
    }
  }
};

struct ListLookup {
  State& s;
  explicit ListLookup(State& s_) : s(s_) {}
  double operator()(int32_t a, int32_t b) const {
    if (s.degree(a) > s.degree(b)) std::swap(a, b);
    const int32_t* lo = s.nb.data() + s.ptr[a];
    const int32_t* hi = s.nb.data() + s.ptr[a + 1];
    const int32_t* it = std::lower_bound(lo, hi, b);
    return (it != hi && *it == b) ? s.val[s.eid[it - s.nb.data()]] : kInf;
  }
  void set(int32_t, int32_t, double) {}  // the values live in s.val
  // Merge of the two sorted lists, galloping through the longer one.
  template <class Out>
  void common(int32_t a, int32_t b, Out&& out) {
    if (s.degree(a) > s.degree(b)) std::swap(a, b);
    const int32_t* base = s.nb.data();
    int64_t q = s.ptr[b];
    const int64_t qe = s.ptr[b + 1];
    for (int64_t p = s.ptr[a]; p < s.ptr[a + 1] && q < qe; ++p) {
      const int32_t w = base[p];
      int64_t step = 1;
      while (q + step < qe && base[q + step] < w) step *= 2;
      q = std::lower_bound(base + q, base + std::min(q + step + 1, qe), w) - base;
      s.st.neighbour_steps += 1;
      if (q == qe) break;
      if (base[q] != w) continue;
      const double x = s.val[s.eid[p]], y = s.val[s.eid[q]];
      if (x < kInf && y < kInf) out(std::max(x, y), w);
    }
  }
};

struct Candidate {
  double tau;  // time at which w becomes a common neighbour
  int32_t w;
};

// One round over the edges present, in decreasing (value, colex rank) order. Returns the number
// of edges moved or removed.
template <class Look>
int64_t run_round(State& s, Look& look) {
  std::vector<int32_t> order;
  order.reserve(s.val.size());
  for (size_t e = 0; e < s.val.size(); ++e)
    if (s.val[e] < kInf) order.push_back(static_cast<int32_t>(e));
  std::sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {
    if (s.val[x] != s.val[y]) return s.val[x] > s.val[y];
    if (s.ev[x] != s.ev[y]) return s.ev[x] > s.ev[y];
    return s.eu[x] > s.eu[y];
  });
  std::vector<Candidate> cand, later;
  std::vector<double> blocked;  // per candidate: no domination before this time
  int64_t changes = 0;
  const auto by_time = [](const Candidate& x, const Candidate& y) {
    return x.tau < y.tau || (x.tau == y.tau && x.w < y.w);
  };

  // A dominator of the edge among the first m candidates (the common neighbourhood at time t):
  // its index, or -1.
  auto find_dominator = [&](size_t m, double t) -> int64_t {
    for (size_t i = 0; i < m; ++i) {
      if (blocked[i] > t) continue;
      const int32_t v = cand[i].w;
      bool ok = true;
      for (size_t j = m; j-- > 0;) {
        if (j == i) continue;
        const double x = look(v, cand[j].w);
        ++s.st.lookups;
        if (x > t) { blocked[i] = x; ok = false; break; }
      }
      if (ok) return static_cast<int64_t>(i);
    }
    return -1;
  };

  for (int32_t e : order) {
    const int32_t a = s.eu[e], b = s.ev[e];
    const double t = s.val[e];
    cand.clear();
    later.clear();
    look.common(a, b, [&](double tau, int32_t w) { (tau <= t ? cand : later).push_back({tau, w}); });
    if (cand.empty()) continue;  // no common neighbour at t: not dominated
    std::sort(cand.begin(), cand.end(), by_time);
    const size_t m0 = cand.size();
    blocked.assign(m0 + later.size(), -kInf);
    int64_t dom = find_dominator(m0, t);
    if (dom < 0) continue;
    // dominated at t: follow the common neighbourhood through its later arrivals
    std::sort(later.begin(), later.end(), by_time);
    cand.insert(cand.end(), later.begin(), later.end());
    double moved_to = kInf;  // +inf: dominated to the end, removed
    for (size_t pos = m0; pos < cand.size();) {
      const double tau = cand[pos].tau;
      size_t end = pos;
      while (end < cand.size() && cand[end].tau == tau) ++end;
      bool ok = true;
      for (size_t j = pos; j < end && ok; ++j) {
        ++s.st.lookups;
        ok = look(cand[dom].w, cand[j].w) <= tau;
      }
      pos = end;
      if (!ok) {
        dom = find_dominator(end, tau);
        if (dom < 0) { moved_to = tau; break; }
      }
    }
    s.val[e] = moved_to;
    look.set(a, b, moved_to);
    ++changes;
    if (moved_to < kInf) ++s.st.moved; else ++s.st.removed;
  }
  return changes;
}

}  // namespace

std::vector<Edge> collapse_edges(int64_t n, std::vector<Edge> edges, int rounds, Stats* stats,
                                 int64_t dense_lookup_bytes) {
  if (n < 0) throw Error("collapse: negative number of vertices");
  if (n > INT32_MAX) throw Error("collapse: at most 2^31-1 vertices are supported");
  if (edges.size() > static_cast<size_t>(INT32_MAX)) throw Error("collapse: at most 2^31-1 edges are supported");
  State s;
  s.n = n;
  s.eu.resize(edges.size());
  s.ev.resize(edges.size());
  s.val.resize(edges.size());
  for (size_t e = 0; e < edges.size(); ++e) {
    const Edge& x = edges[e];
    if (x.u < 0 || x.u >= n || x.v < 0 || x.v >= n)
      throw Error("collapse: edge {" + std::to_string(x.u) + ", " + std::to_string(x.v) + "} has a vertex out of range [0, " +
                  std::to_string(n) + ")");
    if (x.u == x.v) throw Error("collapse: self-loop at vertex " + std::to_string(x.u));
    if (!std::isfinite(x.value))
      throw Error("collapse: edge {" + std::to_string(x.u) + ", " + std::to_string(x.v) +
                  "} has a value that is not finite (leave an absent edge out)");
    s.eu[e] = std::min(x.u, x.v);
    s.ev[e] = std::max(x.u, x.v);
    s.val[e] = x.value;
  }
  std::vector<Edge>().swap(edges);
  s.build_lists();

  if (dense_lookup_bytes < 0) dense_lookup_bytes = kDefaultDenseLookupBytes;
  const bool dense = static_cast<double>(n) * n * 8.0 <= static_cast<double>(dense_lookup_bytes);
  std::unique_ptr<DenseLookup> dl;
  if (dense) dl.reset(new DenseLookup(s));
  ListLookup ll(s);
  for (int r = 0; rounds < 0 || r < rounds; ++r) {
    const int64_t removed_before = s.st.removed;
    const int64_t changes = dense ? run_round(s, *dl) : run_round(s, ll);
    int64_t left = 0;
    for (double x : s.val) left += x < kInf;
    s.st.edges_after_round.push_back(left);
    if (changes == 0 || (rounds < 0 && s.st.removed == removed_before)) break;
    s.build_lists();  // drop the removed edges from the lists
  }

  std::vector<Edge> out;
  for (size_t e = 0; e < s.val.size(); ++e)
    if (s.val[e] < kInf) out.push_back({s.eu[e], s.ev[e], s.val[e]});
  std::sort(out.begin(), out.end(), [](const Edge& x, const Edge& y) {
    if (x.value != y.value) return x.value < y.value;
    if (x.v != y.v) return x.v < y.v;
    return x.u < y.u;
  });
  if (stats) *stats = std::move(s.st);
  return out;
}

}  // namespace collapse
}  // namespace dipha
