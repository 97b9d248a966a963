// Edge collapse of a flag filtration (algorithm, cost and guarantees in dipha/collapse.hpp).
#include "dipha/collapse.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace dipha {
namespace collapse {
namespace {

// Filtration values are handled as their ranks among the input's distinct values: every value
// the algorithm assigns is the value of some other edge, so the ranks never leave that table;
// comparisons are exact and a dense look-up takes 4 bytes per entry.
using rank_t = int32_t;
constexpr rank_t kAbsent = INT32_MAX;  // absent or removed edge
constexpr int64_t kDefaultDenseLookupBytes = 512LL * 1024 * 1024;

// The current filtration: edge ends (ids in colex order: by (v, u)), current value ranks and the
// neighbour lists (ascending neighbour id, with the id of the edge) of the edges present when
// they were built.
struct State {
  int64_t n = 0;
  std::vector<int32_t> eu, ev;  // ends of edge id, eu < ev
  std::vector<rank_t> val;      // current value rank of edge id; kAbsent: removed
  std::vector<int64_t> ptr;     // n + 1
  std::vector<int32_t> nb;      // neighbour ids, ascending per row
  std::vector<int32_t> eid;     // edge id of each entry
  int64_t table_size = 0;       // number of distinct values
  Stats st;

  void build_lists() {
    ptr.assign(n + 1, 0);
    for (size_t e = 0; e < val.size(); ++e)
      if (val[e] != kAbsent) { ++ptr[eu[e] + 1]; ++ptr[ev[e] + 1]; }
    for (int64_t i = 0; i < n; ++i) ptr[i + 1] += ptr[i];
    nb.resize(ptr[n]);
    eid.resize(ptr[n]);
    std::vector<int64_t> fill(ptr.begin(), ptr.end() - 1);
    // edges in colex order fill every row in ascending order: row x gets its u < x at edge
    // (u, x), in order of u, then its v > x at the later edges (x, v), in order of v
    for (size_t e = 0; e < val.size(); ++e) {
      if (val[e] == kAbsent) continue;
      nb[fill[ev[e]]] = eu[e]; eid[fill[ev[e]]++] = static_cast<int32_t>(e);
      nb[fill[eu[e]]] = ev[e]; eid[fill[eu[e]]++] = static_cast<int32_t>(e);
    }
  }
  int64_t degree(int32_t a) const { return ptr[a + 1] - ptr[a]; }
};

// Look-up of the current value of {a, b} (kAbsent when absent), and the listing of the common
// neighbours of an edge, specialised per kind: a dense matrix of current values, or the sorted
// neighbour lists. Both list the common neighbours in ascending id, so they give the same result.
struct DenseLookup {
  State& s;
  std::vector<rank_t> m;       // n x n, kAbsent where absent and on the diagonal
  size_t words;                // 64-bit words per row of `bits`
  std::vector<uint64_t> bits;  // n x words: adjacency of the edges present
  explicit DenseLookup(State& s_)
      : s(s_), m(static_cast<size_t>(s_.n) * s_.n, kAbsent), words((s_.n + 63) / 64), bits(s_.n * words, 0) {
    for (size_t e = 0; e < s.val.size(); ++e) set(s.eu[e], s.ev[e], s.val[e]);
  }
  static double bytes(int64_t n) { return static_cast<double>(n) * n * sizeof(rank_t) + n * ((n + 63) / 64) * 8.0; }
  rank_t operator()(int32_t a, int32_t b) const { return m[static_cast<size_t>(a) * s.n + b]; }
  void set(int32_t a, int32_t b, rank_t x) {
    m[static_cast<size_t>(a) * s.n + b] = x;
    m[static_cast<size_t>(b) * s.n + a] = x;
    const uint64_t ba = uint64_t{1} << (a & 63), bb = uint64_t{1} << (b & 63);
    uint64_t& wa = bits[b * words + (a >> 6)];
    uint64_t& wb = bits[a * words + (b >> 6)];
    if (x == kAbsent) { wa &= ~ba; wb &= ~bb; } else { wa |= ba; wb |= bb; }
  }
  // out(arrival time, w) for every common neighbour w of a and b, ascending: the intersection
  // of the two adjacency bit rows, both values read from the dense rows.
  template <class Out>
  void common(int32_t a, int32_t b, Out&& out) {
    const rank_t* ra = m.data() + static_cast<size_t>(a) * s.n;
    const rank_t* rb = m.data() + static_cast<size_t>(b) * s.n;
    const uint64_t* xa = bits.data() + a * words;
    const uint64_t* xb = bits.data() + b * words;
    s.st.neighbour_steps += static_cast<int64_t>(words);
    for (size_t k = 0; k < words; ++k) {
      for (uint64_t x = xa[k] & xb[k]; x != 0; x &= x - 1) {
        const int32_t w = static_cast<int32_t>(k * 64 + __builtin_ctzll(x));
        out(std::max(ra[w], rb[w]), w);
      }
    }
  }
};

struct ListLookup {
  State& s;
  explicit ListLookup(State& s_) : s(s_) {}
  rank_t operator()(int32_t a, int32_t b) const {
    if (s.degree(a) > s.degree(b)) std::swap(a, b);
    const int32_t* lo = s.nb.data() + s.ptr[a];
    const int32_t* hi = s.nb.data() + s.ptr[a + 1];
    const int32_t* it = std::lower_bound(lo, hi, b);
    return (it != hi && *it == b) ? s.val[s.eid[it - s.nb.data()]] : kAbsent;
  }
  void set(int32_t, int32_t, rank_t) {}  // the values live in s.val
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
      const rank_t x = std::max(s.val[s.eid[p]], s.val[s.eid[q]]);
      if (x != kAbsent) out(x, w);
    }
  }
};

// A common neighbour w arriving at time tau, as one key: sorting the keys sorts by (tau, w).
inline uint64_t candidate(rank_t tau, int32_t w) {
  return (static_cast<uint64_t>(tau) << 32) | static_cast<uint32_t>(w);
}
inline rank_t tau_of(uint64_t c) { return static_cast<rank_t>(c >> 32); }
inline int32_t vertex_of(uint64_t c) { return static_cast<int32_t>(c & 0xffffffffu); }

// One round over the edges present, in decreasing (value, colex rank) order. Returns the number
// of edges moved or removed.
template <class Look>
int64_t run_round(State& s, Look& look) {
  // the edges present by decreasing (value, id), ids being in colex order: a counting sort
  std::vector<int64_t> start(s.table_size + 1, 0);
  for (rank_t x : s.val)
    if (x != kAbsent) ++start[x + 1];
  for (int64_t r = 0; r < s.table_size; ++r) start[r + 1] += start[r];
  std::vector<int32_t> order(start[s.table_size]);
  for (size_t e = 0; e < s.val.size(); ++e)
    if (s.val[e] != kAbsent) order[start[s.val[e]]++] = static_cast<int32_t>(e);
  std::vector<int64_t>().swap(start);
  std::reverse(order.begin(), order.end());
  std::vector<uint64_t> cand, later;
  std::vector<rank_t> blocked;  // per candidate: no domination before this time
  int64_t changes = 0;

  // A dominator of the edge among the first m candidates (the common neighbourhood at time t):
  // its index, or -1.
  auto find_dominator = [&](size_t m, rank_t t) -> int64_t {
    for (size_t i = 0; i < m; ++i) {
      if (blocked[i] > t) continue;
      const int32_t v = vertex_of(cand[i]);
      bool ok = true;
      for (size_t j = m; j-- > 0;) {
        if (j == i) continue;
        const rank_t x = look(v, vertex_of(cand[j]));
        ++s.st.lookups;
        if (x > t) { blocked[i] = x; ok = false; break; }
      }
      if (ok) return static_cast<int64_t>(i);
    }
    return -1;
  };

  for (int32_t e : order) {
    const int32_t a = s.eu[e], b = s.ev[e];
    const rank_t t = s.val[e];
    cand.clear();
    later.clear();
    look.common(a, b, [&](rank_t tau, int32_t w) { (tau <= t ? cand : later).push_back(candidate(tau, w)); });
    if (cand.empty()) continue;  // no common neighbour at t: not dominated
    // the newest member last, where the tests start (the order does not change the result)
    std::iter_swap(std::max_element(cand.begin(), cand.end()), cand.end() - 1);
    const size_t m0 = cand.size();
    blocked.assign(m0 + later.size(), -1);
    int64_t dom = find_dominator(m0, t);
    if (dom < 0) continue;
    // dominated at t: follow the common neighbourhood through its later arrivals
    std::sort(later.begin(), later.end());
    cand.insert(cand.end(), later.begin(), later.end());
    rank_t moved_to = kAbsent;  // dominated to the end: removed
    for (size_t pos = m0; pos < cand.size();) {
      const rank_t tau = tau_of(cand[pos]);
      size_t end = pos;
      while (end < cand.size() && tau_of(cand[end]) == tau) ++end;
      bool ok = true;
      for (size_t j = pos; j < end && ok; ++j) {
        ++s.st.lookups;
        ok = look(vertex_of(cand[dom]), vertex_of(cand[j])) <= tau;
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
    if (moved_to != kAbsent) ++s.st.moved; else ++s.st.removed;
  }
  return changes;
}

}  // namespace

std::vector<Edge> collapse_edges(int64_t n, std::vector<Edge> edges, int rounds, Stats* stats,
                                 int64_t dense_lookup_bytes, const std::function<void(const Stats&)>& after_round) {
  if (n < 0) throw Error("collapse: negative number of vertices");
  if (n > INT32_MAX) throw Error("collapse: at most 2^31-1 vertices are supported");
  if (edges.size() >= static_cast<size_t>(INT32_MAX)) throw Error("collapse: at most 2^31-2 edges are supported");
  for (Edge& x : edges) {
    if (x.u < 0 || x.u >= n || x.v < 0 || x.v >= n)
      throw Error("collapse: edge {" + std::to_string(x.u) + ", " + std::to_string(x.v) + "} has a vertex out of range [0, " +
                  std::to_string(n) + ")");
    if (x.u == x.v) throw Error("collapse: self-loop at vertex " + std::to_string(x.u));
    if (!std::isfinite(x.value))
      throw Error("collapse: edge {" + std::to_string(x.u) + ", " + std::to_string(x.v) +
                  "} has a value that is not finite (leave an absent edge out)");
    if (x.u > x.v) std::swap(x.u, x.v);
  }
  const auto colex = [](const Edge& x, const Edge& y) { return x.v < y.v || (x.v == y.v && x.u < y.u); };
  if (!std::is_sorted(edges.begin(), edges.end(), colex)) std::sort(edges.begin(), edges.end(), colex);
  for (size_t e = 1; e < edges.size(); ++e)
    if (edges[e].u == edges[e - 1].u && edges[e].v == edges[e - 1].v)
      throw Error("collapse: edge {" + std::to_string(edges[e].u) + ", " + std::to_string(edges[e].v) + "} is listed twice");
  State s;
  s.n = n;
  s.eu.resize(edges.size());
  s.ev.resize(edges.size());
  s.val.resize(edges.size());
  std::vector<double> table;  // the distinct values, ascending
  {
    std::vector<std::pair<double, int32_t>> by_value(edges.size());
    for (size_t e = 0; e < edges.size(); ++e) {
      s.eu[e] = edges[e].u;
      s.ev[e] = edges[e].v;
      by_value[e] = {edges[e].value, static_cast<int32_t>(e)};
    }
    std::vector<Edge>().swap(edges);
    std::sort(by_value.begin(), by_value.end());
    for (size_t k = 0; k < by_value.size(); ++k) {
      if (k == 0 || by_value[k].first != by_value[k - 1].first) table.push_back(by_value[k].first);
      s.val[by_value[k].second] = static_cast<rank_t>(table.size() - 1);
    }
  }
  s.table_size = static_cast<int64_t>(table.size());
  s.build_lists();

  if (dense_lookup_bytes < 0) dense_lookup_bytes = kDefaultDenseLookupBytes;
  const bool dense = DenseLookup::bytes(n) <= static_cast<double>(dense_lookup_bytes);
  std::unique_ptr<DenseLookup> dl;
  if (dense) dl.reset(new DenseLookup(s));
  ListLookup ll(s);
  for (int r = 0; rounds < 0 || r < rounds; ++r) {
    const int64_t removed_before = s.st.removed;
    const int64_t changes = dense ? run_round(s, *dl) : run_round(s, ll);
    int64_t left = 0;
    for (rank_t x : s.val) left += x != kAbsent;
    s.st.edges_after_round.push_back(left);
    if (after_round) after_round(s.st);
    if (changes == 0 || (rounds < 0 && s.st.removed == removed_before) || r + 1 == rounds) break;
    s.build_lists();  // drop the removed edges from the lists
  }

  std::vector<Edge> out;
  for (size_t e = 0; e < s.val.size(); ++e)
    if (s.val[e] != kAbsent) out.push_back({s.eu[e], s.ev[e], table[s.val[e]]});
  // (value, v, u): colex order within a value, and the ids are already colex
  std::stable_sort(out.begin(), out.end(), [](const Edge& x, const Edge& y) { return x.value < y.value; });
  if (stats) *stats = std::move(s.st);
  return out;
}

}  // namespace collapse
}  // namespace dipha
