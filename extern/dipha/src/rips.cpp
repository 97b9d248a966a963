// Vietoris-Rips persistent cohomology with an implicit coboundary matrix, in memory, serial or
// across the ranks of a communicator: the phases of a run.
//
// The pieces, one concern per file:
//  * rips_simplex.hpp: filtration keys, binomial coefficients, colex ranks and vertices;
//  * rips_graph.hpp/.cpp: the thresholded graph (neighbour lists, balls, dense look-up);
//  * rips_cofaces.hpp: cofaces, facets and apparent pairs, specialised per look-up kind;
//  * rips_listing.hpp: the columns of dimensions 1 and 2, edge by edge;
//  * rips_reduction.hpp: the reduction of one dimension's columns (with its long and windowed
//    paths for large working columns);
//  * rips_threads.hpp: threads inside a rank (fork-join, queues between them);
//  * dipha/mpi_layer.hpp: every collective phase below.
//
// Zero-persistence apparent pairs are recognised locally (never stored), clearing removes the
// columns of simplices that were pivots in the previous dimension, and a column whose smallest
// coface is a free pivot is paired at once.
//
// Distribution over the P ranks of a communicator: the columns of each dimension are split into
// P contiguous key ranges (rank 0 the lowest keys); rank r owns the columns and the pivots whose
// key lies in its range. Pivots only grow during a column's reduction, so a column whose pivot
// leaves rank r's range is handed to rank r + 1 (its V column and, up to 1 Mi entries, its
// working coboundary) and continued there: a pipelined chain of P rounds, the mirror image of
// DIPHA's (§5.4 of the specification). A rank that runs several threads splits its range
// further, among its threads (see Engine below).
#include "dipha/rips.hpp"

#include "dipha/collapse.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "dipha/mpi_layer.hpp"
#include "rips_cofaces.hpp"
#include "rips_graph.hpp"
#include "rips_listing.hpp"
#include "rips_progress.hpp"
#include "rips_reduction.hpp"
#include "rips_simplex.hpp"
#include "rips_threads.hpp"

namespace dipha {
namespace rips {
namespace detail {
namespace {

using mpi::peak_rss_mib;

std::string human_bytes(double b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

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

// The phases of a run stay out of line: each shows as its own function in a profile.
#define RIPS_PHASE __attribute__((noinline))

// Tag of the column messages of the reduction pipeline.
constexpr int kTagColumns = 11;

// Key ranges per thread of a rank that runs several: dealt to the threads cyclically, so that
// the costly stretches of the filtration (the columns of a reduction differ in cost by orders of
// magnitude, unevenly along the key order) are shared out; each thread still owns its ranges'
// pivots, and no lock guards the hot path.
constexpr int kRangesPerThread = 4;

class EngineBase {
 public:
  virtual ~EngineBase() = default;
  virtual Pairs run() = 0;
};

// Phases (fault-injection names, see dipha/mpi_layer.hpp): rips.fingerprint, rips.setup,
// rips.h0, rips.workers (the key ranges of every rank), and per dimension q = 1..max_dim:
// rips.columns.<q> (listing the columns), rips.split.<q> (choosing the key ranges),
// rips.exchange.<q> (routing the columns to their ranks, then to their threads),
// rips.reduce.<q>.<t> (round t of the pipelined reduction: 0 a range's own columns, t >= 1 the
// t-th batch handed on to it), rips.clearing.<q> (gathering the pivots for clearing,
// q < max_dim); rips.gather (the pairs).
//
// Threads: rank r runs T_r threads (Options::n_threads) and owns a block of consecutive key
// ranges (one if T_r = 1, else kRangesPerThread per thread), range j of the block run by thread
// j mod T_r. Each range has its pivots and its columns; the pipeline runs over the ranges of all
// ranks in key order: a column goes on from range j to range j + 1 through an in-memory queue,
// from the last range of rank r to the first of rank r + 1 through the MPI chain, driven by the
// thread that called the engine (the relay, which never computes when P > 1). Results are
// identical for any ranks x threads split.
template <class Lookup>
class Engine : public EngineBase {
 public:
  Engine(const Graph& g, const Binomial& C, const Options& opt, MPI_Comm comm)
      : g(g), cx(g, C), max_dim(opt.max_dim), n_edges(static_cast<int64_t>(g.edges.size())),
        mc(comm, rips_oom(g.n, &n_edges)), rank(mc.rank()), P(mc.size()), T(threads_of(opt.n_threads)),
        ranges(T > 1 ? kRangesPerThread * T : 1), log(opt.verbose && mc.rank() == 0) {
    working_bytes = opt.working_bytes < 0 ? (int64_t{256} << 20) : opt.working_bytes;
    long_bytes = opt.long_column_bytes < 0 ? (int64_t{32} << 20) : opt.long_column_bytes;
    window_method = opt.window_method;
    for (const Entry& e : g.edges) top_value = std::max(top_value, e.v);
  }

  Pairs run() override;

  static int threads_of(int n_threads) {
    if (n_threads > 0) return n_threads;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }

 private:
  const Graph& g;
  const Complex<Lookup> cx;
  const int max_dim;
  const int64_t n_edges;
  mpi::Comm mc;
  const int rank, P;
  const int T;                  // threads of this rank
  const int ranges;             // key ranges of this rank, range j run by thread j mod T
  int first = 0, W = 1;         // global index of this rank's range 0; ranges over all ranks
  std::vector<int> owner_rank;  // range -> rank
  const Logger log;
  int64_t working_bytes = 0;  // largest working coboundary of a rank (shared by its threads)
  int64_t long_bytes = 0;     // live working coboundary at which a column takes the long path
  int window_method = 0;      // Options::window_method
  double top_value = 0;       // the longest edge: no coboundary value exceeds it

  // H0 by union-find over the sorted edges (every rank; cheap). Marks the pivot (death) edges.
  RIPS_PHASE std::vector<char> h0(PairList& out) const {
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

  // The key ranges of the reduction: every rank's count (kRangesPerThread per thread when it runs
  // several, else one), laid out in rank order.
  void agree_on_workers() {
    const mpi::Phase ph{"rips.workers", "sharing out the work over the threads"};
    const std::vector<int> counts = mc.allgather(ph, ranges);
    mc.run(ph, [&] {
      owner_rank.clear();
      for (int p = 0; p < P; ++p) {
        if (p == rank) first = static_cast<int>(owner_rank.size());
        owner_rank.insert(owner_rank.end(), static_cast<size_t>(counts[p]), p);
      }
      W = static_cast<int>(owner_rank.size());
    });
  }

  // Is the dim-q simplex (vertices v, value val, rank idx) a column to reduce?
  bool is_column(const int32_t* v, int q, double val, idx_t idx, const HashMap& cleared) const {
    // A simplex is in at most one pair: most simplices are the lower half of an apparent pair,
    // test that first.
    if (cx.apparent_cofacet(v, q, val, idx) >= 0) return false;
    if (q >= 2) {
      if (cleared.find(idx)) return false;
      if (cx.apparent_facet(v, q, val) >= 0) return false;  // cleared by an apparent pair
    }
    return true;
  }

  // The columns of dimension q held by this rank. Dimension 1: list_edges below. Dimension 2
  // comes from the edges of this rank, edge by edge (rips_listing.hpp): an edge lists the
  // triangles whose max-key edge it is.
  // Edges are dealt to ranks round-robin: the work an edge brings (its cofaces) grows with its
  // length, so contiguous blocks of the sorted edges would leave the last rank the heaviest
  // share; the threads of a rank take its edges in small chunks as they go. Dimension q >= 3
  // comes from the simplices of dimension q - 1 this rank listed (`simplices`, replaced by those
  // of dimension q when q < max_dim), each simplex listed from its q smallest vertices and
  // tested by is_column.
  RIPS_PHASE void list_columns(int q, const std::vector<char>& tree, const HashMap& cleared,
                               std::vector<idx_t>& simplices, std::vector<Entry>& cols) const {
    if (q == 1) return list_edges(tree, cols);
    const size_t E = g.edges.size();
    const size_t R = static_cast<size_t>(rank), Ps = static_cast<size_t>(P);
    const size_t items = q <= 2 ? (E > R ? (E - R + Ps - 1) / Ps : 0) : simplices.size();
    ChunkCounter chunks(items, q <= 2 ? 16 : 256);
    std::vector<std::vector<Entry>> found(static_cast<size_t>(T));
    std::vector<std::vector<idx_t>> next(static_cast<size_t>(T));
    run_threads(T, [&](int t) {
      std::vector<Entry>& out = found[static_cast<size_t>(t)];
      std::vector<idx_t>& nx = next[static_cast<size_t>(t)];
      size_t begin, end;
      if (q <= 2) {
        EdgeListing<Lookup> listing(cx);
        while (chunks.next(begin, end)) {
          for (size_t k = begin; k < end; ++k) {
            const size_t e = R + k * Ps;
            listing.template triangles<false>(g.edges[e], [&](const Entry& tri, int verdict) {
              if (q < max_dim) nx.push_back(tri.i);
              if (verdict == 0 && !cleared.find(tri.i)) out.push_back(tri);
            });
          }
        }
        return;
      }
      int32_t v[kMaxVerts];
      while (chunks.next(begin, end)) {
        for (size_t k = begin; k < end; ++k) {
          cx.vertices(simplices[k], q - 1, v);
          double sv = cx.diameter(v, q - 1);
          cx.cofaces(v, q - 1, sv, [&](double m, idx_t r, int32_t w) {
            if (q < max_dim) nx.push_back(r);
            v[q] = w;  // w > all vertices of s: appended vertex keeps the order
            if (is_column(v, q, m, r, cleared)) out.push_back({m, r});
            return false;
          }, /*above_only=*/true);
        }
      }
    });
    std::vector<idx_t>().swap(simplices);
    cols = concatenate(found);
    simplices = concatenate(next);
  }
  // The columns of dimension 1: every edge that is neither a tree edge (an H0 death) nor the
  // lower half of an apparent pair. Walked vertex by vertex, each vertex's neighbours by distance,
  // so that the larger endpoint's ball of radius d(a, b) is what the walk has passed (grown as it
  // goes, no search); edge {a, b} is listed at its larger endpoint a, by the rank its colex rank mod P
  // names (any fixed split gives the same diagrams; this one is balanced along the filtration).
  RIPS_PHASE void list_edges(const std::vector<char>& tree, std::vector<Entry>& cols) const {
    HashMap tree_edges;
    for (size_t e = 0; e < g.edges.size(); ++e)
      if (tree[e]) tree_edges.insert(g.edges[e].i, 1);
    ChunkCounter chunks(static_cast<size_t>(g.n), 16);
    std::vector<std::vector<Entry>> found(static_cast<size_t>(T));
    run_threads(T, [&](int t) {
      std::vector<Entry>& out = found[static_cast<size_t>(t)];
      EdgeListing<Lookup> listing(cx);
      size_t begin, end;
      while (chunks.next(begin, end)) {
        for (size_t av = begin; av < end; ++av) {
          const int32_t a = static_cast<int32_t>(av);
          listing.edges_at(a, [&](int32_t b, double L, auto&& apparent) {
            const idx_t r = edge_rank(a, b);
            if (P > 1 && r % P != rank) return;
            if (tree_edges.find(r)) return;
            if (!apparent()) out.push_back(Entry{L, r});
          });
        }
      }
    });
    cols = concatenate(found);
  }
  template <class X> static std::vector<X> concatenate(std::vector<std::vector<X>>& parts) {
    if (parts.size() == 1) return std::move(parts[0]);
    size_t total = 0;
    for (auto& p : parts) total += p.size();
    std::vector<X> out;
    out.reserve(total);
    for (auto& p : parts) {
      out.insert(out.end(), p.begin(), p.end());
      std::vector<X>().swap(p);
    }
    return out;
  }

  // The W key ranges for the columns of dimension q, from regular samples of every
  // rank's columns weighted by the rank's column count.
  RIPS_PHASE Split make_split(std::vector<Entry>& cols, int q) {
    Split sp;
    sp.dim = q;
    if (W == 1) return sp;
    const mpi::Phase ph{"rips.split." + std::to_string(q), "splitting the columns of dimension " + std::to_string(q)};
    const int S = 64 * T;  // regular samples of this rank
    std::vector<Entry> samples;
    mc.run(ph, [&] {
      std::sort(cols.begin(), cols.end(), KeyLess());
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
        while (next < W && acc >= total * next / W) { sp.s.push_back(w.first); ++next; }
      }
      while (static_cast<int>(sp.s.size()) < W - 1) sp.s.push_back({kInf, INT64_MAX});
    });
    return sp;
  }

  // The pipelined reduction of dimension q. cols[j]: the columns of this rank's key range j
  // (decreasing keys), run by thread j mod T. Range w (global index) runs round 0 on its own
  // columns, then rounds 1..w on the batches handed on to it, one per range below it, in order
  // (the batch of range w - 1 first): so a column meets the pivots of every column of higher key
  // before its own turn, as in a serial reduction in decreasing key order. A thread runs the
  // rounds of its ranges as their batches arrive.
  RIPS_PHASE void reduce_columns(int q, std::vector<std::vector<Entry>>& cols,
                                 std::vector<std::unique_ptr<Reducer<Lookup>>>& red) {
    const std::string qs = std::to_string(q);
    const mpi::Phase phase{"rips.reduce." + qs, "reducing dimension " + qs};
    auto round = [&](int k) { return mpi::Phase{phase.name + "." + std::to_string(k), phase.what}; };
    mpi::Chain chain(mc, phase, kTagColumns);
    WorkerFailures failures;
    const int R = static_cast<int>(cols.size());  // key ranges of this rank
    // range j >= 1 gets batches from range j - 1 (in the mailbox of thread j mod T, slot
    // j / T); range 0 from the relay (rank - 1), the last range sends to the relay (rank + 1)
    std::vector<std::unique_ptr<Mailbox<Batch>>> mail;
    for (int t = 0; t < T; ++t) mail.emplace_back(new Mailbox<Batch>(static_cast<size_t>((R - t + T - 1) / T)));
    Channel<std::vector<int64_t>> to_relay;
    auto stop_all = [&] {
      failures.stop = true;
      for (auto& m : mail) m->wake();
    };
    // working coboundaries handed on within the rank: at most a quarter of the working memory
    std::atomic<int64_t> heap_credit{working_bytes / 4};
    for (int j = 0; j < R; ++j) red[static_cast<size_t>(j)]->forward_heaps(&heap_credit, j + 1 < R);
    size_t total = 0;
    for (auto& c : cols) total += c.size();
    std::atomic<size_t> done{0};
    std::atomic<int64_t> last_report{0};
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&] {  // every 30 s, by whichever thread of rank 0 comes first
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
      int64_t last = last_report.load();
      if (now - last >= 30 && last_report.compare_exchange_strong(last, now))
        log("dim %d: %zu / %zu columns of rank 0 reduced", q, done.load(), total);
    };
    auto hand_on = [&](int j) {  // the round's forwarded columns of range j to range j + 1
      Reducer<Lookup>& r = *red[static_cast<size_t>(j)];
      if (j + 1 < R) mail[static_cast<size_t>((j + 1) % T)]->push(static_cast<size_t>((j + 1) / T), std::move(r.outgoing()));
      else if (rank + 1 < P) to_relay.push(serialise(r.outgoing()));
      r.outgoing().clear();
    };

    auto worker = [&](int t) {
      auto fail = [&](const std::string& message) {
        failures.record(t, message);
        stop_all();
        for (int j = t; j < R; j += T) {
          red[static_cast<size_t>(j)]->release();
          std::vector<Entry>().swap(cols[static_cast<size_t>(j)]);
        }
      };
      // own columns of every range of this thread
      for (int j = t; j < R; j += T) {
        Reducer<Lookup>& r = *red[static_cast<size_t>(j)];
        std::vector<Entry>& own = cols[static_cast<size_t>(j)];
        std::string err = mpi::capture(round(0), rank, mc.oom(), [&] {
          for (size_t k = 0; k < own.size() && !failures.stop; ++k) {
            r.process_own(own[k]);
            if (log.on() && (k & 63) == 63) {
              done += 64;
              progress();
            }
          }
        });
        std::vector<Entry>().swap(own);
        if (!err.empty()) return fail(err);
        if (failures.stop) return;
        hand_on(j);
        r.trim();
      }
      // the batches handed on, as they come: range j of global index first + j gets that many
      Mailbox<Batch>& box = *mail[static_cast<size_t>(t)];
      std::vector<int> got((R - t + T - 1) / T, 0);
      int left = 0;
      for (int j = t; j < R; j += T) left += first + j;
      while (left > 0) {
        const uint64_t seen = box.pushes();
        bool moved = false;
        for (int j = t; j < R && !failures.stop; j += T) {
          const size_t slot = static_cast<size_t>(j / T);
          Batch in;
          while (got[slot] < first + j && box.try_pop(slot, in)) {
            const int k = ++got[slot];
            --left;
            std::string err = mpi::capture(round(k), rank, mc.oom(),
                                           [&] { red[static_cast<size_t>(j)]->process_batch(in, failures.stop); });
            if (!err.empty()) return fail(err);
            if (failures.stop) return;
            hand_on(j);
            red[static_cast<size_t>(j)]->trim();
            moved = true;
          }
        }
        if (failures.stop) return;
        if (!moved && left > 0) box.wait(seen, failures.stop);
      }
      for (int j = t; j < R; j += T) red[static_cast<size_t>(j)]->release_heap();
    };

    if (P == 1) {
      run_threads(T, worker);
    } else {
      // the relay: MPI to and from the neighbours, workers on threads of their own
      std::vector<std::thread> threads;
      try {
        for (int t = 0; t < T; ++t) threads.emplace_back(worker, t);
      } catch (const std::exception& e) {
        failures.record(-1, std::string("rips: could not start the threads of the reduction: ") + e.what());
        stop_all();
      }
      int in_left = rank > 0 ? first : 0;           // batches from rank - 1
      int out_left = rank + 1 < P ? first + R : 0;  // batches to rank + 1
      int k_in = 0;
      bool have = false;
      std::vector<int64_t> msg;
      while (in_left > 0 || out_left > 0) {
        if (failures.failed()) chain.fail(failures.message());
        bool moved = false;
        if (out_left > 0) {
          if (!have && !chain.is_void()) have = to_relay.pop_for(msg, std::chrono::microseconds(0));
          if (have || chain.is_void()) {
            chain.send(rank + 1, msg);  // an empty message flagged as void once this rank's results are
            msg.clear();
            have = false;
            --out_left;
            moved = true;
          }
        }
        if (in_left > 0 && chain.poll(rank - 1)) {
          std::vector<int64_t> in;
          const bool ok = chain.recv(rank - 1, in, round(++k_in).name);
          --in_left;
          if (ok) {
            Batch b;
            const std::string err = mpi::capture(round(k_in), rank, mc.oom(), [&] { b = deserialise(in); });
            if (err.empty()) mail[0]->push(0, std::move(b));
            else failures.record(-1, err), stop_all();
          } else {
            stop_all();  // this rank or one before it failed: its results are void
          }
          moved = true;
        }
        if (moved) continue;
        if (out_left > 0 && !chain.is_void()) have = to_relay.pop_for(msg, std::chrono::microseconds(200));
        else std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      for (auto& th : threads) th.join();
    }
    if (failures.failed()) chain.fail(failures.message());
    chain.finish();
  }
};

template <class Lookup>
Pairs Engine<Lookup>::run() {
  // H0, identical on every rank.
  PairList h0pairs;
  std::vector<char> tree;
  mc.run({"rips.h0", "computing H0"}, [&] { tree = h0(h0pairs); });
  log("n = %lld vertices, %zu edges (%s); H0 done", static_cast<long long>(g.n), g.edges.size(),
      !g.dense() ? "neighbour lists" : g.mat_copy.empty() ? "dense look-up: the input, in place" : "dense look-up: a copy");
  agree_on_workers();

  Pairs pairs(max_dim + 1);
  // simplices of the current dimension held by this rank (for generating the next dimension)
  std::vector<idx_t> local_simplices;
  std::vector<Entry> cols;
  HashMap cleared;  // pivots of the previous pass (dim q), replicated
  for (int q = 1; q <= max_dim; ++q) {
    auto tq = std::chrono::steady_clock::now();
    const std::string qs = std::to_string(q);
    cols.clear();
    mc.run({"rips.columns." + qs, "listing the columns of dimension " + qs},
           [&] { list_columns(q, tree, cleared, local_simplices, cols); });
    // route the columns to the ranks of the ranges that own their keys
    const Split split = make_split(cols, q);
    if (P > 1) {
      const mpi::Phase ph{"rips.exchange." + qs, "routing the columns of dimension " + qs + " to their ranks"};
      std::vector<std::vector<Entry>> send(P);
      mc.run(ph, [&] {
        for (auto& c : cols) send[owner_rank[split.owner(c, q)]].push_back(c);
        std::vector<Entry>().swap(cols);
      });
      cols = mc.alltoallv(ph, send);
    }
    std::vector<std::vector<Entry>> mine(static_cast<size_t>(ranges));
    std::vector<std::unique_ptr<Reducer<Lookup>>> red(static_cast<size_t>(ranges));
    mc.run({"rips.exchange." + qs, "routing the columns of dimension " + qs + " to their threads"}, [&] {
      for (auto& c : cols) mine[static_cast<size_t>(split.owner(c, q) - first)].push_back(c);
      std::vector<Entry>().swap(cols);
      const size_t budget = static_cast<size_t>(working_bytes / T) / sizeof(Entry);
      const size_t long_from = static_cast<size_t>(long_bytes) / sizeof(Entry);
      for (int j = 0; j < ranges; ++j)
        red[j].reset(new Reducer<Lookup>(cx, q, split, first + j, budget, long_from, top_value, window_method, log));
      run_threads(T, [&](int t) {
        for (int j = t; j < ranges; j += T)
          std::sort(mine[j].begin(), mine[j].end(), [](const Entry& a, const Entry& b) { return key_less(b, a); });
      });
    });
    size_t n_cols = 0;
    for (auto& c : mine) n_cols += c.size();
    log("dim %d: %zu columns on rank 0 after clearing and apparent pairs (%.2fs)", q, n_cols, seconds_since(tq));

    reduce_columns(q, mine, red);
    ReductionStats st;
    for (auto& r : red) st += r->stats();
    log("dim %d: reduced in %.2fs (rank 0: %lld pairs stored, %lld emergent, %lld additions, %lld forwarded; "
        "%.1f M stored coefficients, largest V column %zu, largest working coboundary %zu, live %zu; %lld long columns (%lld buckets reached), largest %zu entries, %lld compactions; %lld columns in %lld windows, %lld of them by window edge)", q,
        seconds_since(tq), static_cast<long long>(st.stored), static_cast<long long>(st.emergent),
        static_cast<long long>(st.additions), static_cast<long long>(st.forwarded), st.stored_coefficients / 1e6, st.max_v,
        st.max_heap, st.max_live, static_cast<long long>(st.long_columns), static_cast<long long>(st.buckets), st.max_long,
        static_cast<long long>(st.compactions), static_cast<long long>(st.windowed), static_cast<long long>(st.windows),
        static_cast<long long>(st.windows_by_edge));
    if (log.on()) {
      std::string per;
      for (int t = 0; t < T; ++t) {
        int64_t n = 0;
        for (int j = t; j < ranges; j += T) n += red[j]->stats().generated;
        per += (t ? ", " : "") + std::to_string(n);
      }
      log("dim %d: coboundary entries generated by the threads of rank 0: %s", q, per.c_str());
    }
    for (auto& r : red) pairs[q].insert(pairs[q].end(), r->pairs().begin(), r->pairs().end());
    if (q < max_dim) {
      const mpi::Phase ph{"rips.clearing." + qs, "gathering the pivots of dimension " + qs + " for clearing"};
      std::vector<idx_t> keys;
      mc.run(ph, [&] {
        size_t n = 0;
        for (auto& r : red) n += r->pivots().size();
        keys.reserve(n);
        for (auto& r : red) r->pivots().for_each([&](idx_t k, int64_t) { keys.push_back(k); });
        red.clear();
      });
      std::vector<idx_t> all = mc.allgatherv(ph, keys);
      mc.run(ph, [&] {
        cleared.clear();
        for (idx_t k : all) cleared.insert(k, 0);
      });
    }
  }
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

// The engine for the graph's look-up kind, chosen once for the whole run.
std::unique_ptr<EngineBase> make_engine(const Graph& g, const Binomial& C, const Options& opt, MPI_Comm comm) {
  if (g.dense()) return std::unique_ptr<EngineBase>(new Engine<DenseLookup>(g, C, opt, comm));
  return std::unique_ptr<EngineBase>(new Engine<NeighbourLookup>(g, C, opt, comm));
}

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
  return build_graph(d, std::numeric_limits<double>::infinity(), /*clamp_negative=*/false, dense_bytes);
}

}  // namespace

Pairs compute(const DistanceView& d, const Options& opt, MPI_Comm comm, bool clamp_negative, double* max_edge) {
  const int64_t no_edges = -1;
  mpi::Comm mc(comm, rips_oom(d.n, &no_edges));
  const int P = mc.size();
  // Validation and set-up; every rank holds the same input and reaches the same verdict, which
  // is still agreed on before any other collective.
  Graph g;
  std::unique_ptr<Binomial> C;
  std::unique_ptr<EngineBase> eng;
  mc.run({"rips.setup", "setting up the complex"}, [&] {
    if (d.n < 0) throw Error("rips: negative number of points");
    int layouts = (d.dense64 != nullptr) + (d.dense32 != nullptr) + (d.indptr != nullptr);
    if (layouts != 1 && d.n > 0) throw Error("rips: exactly one distance layout (dense64, dense32, CSR) must be given");
    if (d.indptr && (!d.indices || !d.values)) throw Error("rips: CSR layout needs indptr, indices and values");
    if (opt.max_dim < 0) throw Error("rips: max_dim must be >= 0, got " + std::to_string(opt.max_dim));
    if (opt.collapse < -1) throw Error("rips: collapse must be -1 (rounds until one removes no edge), 0 (off) or a number of rounds, got " + std::to_string(opt.collapse));
    if (opt.max_dim + 2 >= kMaxVerts) throw Error("rips: max_dim " + std::to_string(opt.max_dim) + " is too large (at most " + std::to_string(kMaxVerts - 3) + ")");
    if (std::isnan(opt.threshold) || opt.threshold < 0) throw Error("rips: threshold must be >= 0 (or +inf)");
    if (opt.n_threads < 1 && opt.n_threads != -1)
      throw Error("rips: n_threads must be >= 1 (or -1 for one per hardware thread), got " + std::to_string(opt.n_threads));
    if (opt.window_method < 0 || opt.window_method > 2)
      throw Error("rips: window_method must be 0 (by estimate), 1 (by V edge) or 2 (by window edge), got " +
                  std::to_string(opt.window_method));
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
    if (d.n > 0) eng = make_engine(g, *C, opt, comm);
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
    const bool alone = mc.size() == 1;  // nothing to compare with: the buffers are not hashed
    if (d.dense64) {
      layout = 1;
      entries = d.n * d.n;
      if (!alone) h.update(d.dense64, 8 * n * n);
    } else if (d.dense32) {
      layout = 2;
      entries = d.n * d.n;
      if (!alone) h.update(d.dense32, 4 * n * n);
    } else if (d.indptr) {
      layout = 3;
      entries = d.indptr[d.n];
      if (d.indptr[0] != 0 || entries < 0) throw Error("rips: CSR indptr must start at 0 and end at the number of entries");
      if (!alone) {
        h.update(d.indptr, 8 * (n + 1));
        h.update(d.indices, 8 * static_cast<size_t>(entries));
        h.update(d.values, 8 * static_cast<size_t>(entries));
      }
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

namespace testing {

namespace {
template <class Lookup>
std::vector<Verdict> verdicts(const detail::Graph& g, const detail::Binomial& C, int dim, bool reference) {
  using namespace detail;
  const Complex<Lookup> cx(g, C);
  std::vector<Verdict> out;
  EdgeListing<Lookup> listing(cx);
  int32_t v[kMaxVerts];
  if (dim == 1 && !reference) {  // as list_edges walks them
    for (int32_t a = 0; a < static_cast<int32_t>(g.n); ++a)
      listing.edges_at(a, [&](int32_t b, double L, auto&& apparent) {
        out.push_back({L, edge_rank(a, b), apparent() ? kLowerApparent : 0});
      });
  } else {
    for (const Entry& e : g.edges) {
      if (dim == 1) {
        cx.vertices(e.i, 1, v);
        out.push_back({e.v, e.i, cx.apparent_cofacet(v, 1, e.v, e.i) >= 0 ? kLowerApparent : 0});
      } else if (reference) {  // every triangle from its two smallest vertices
        cx.vertices(e.i, 1, v);
        cx.cofaces(v, 1, e.v, [&](double m, idx_t r, int32_t w) {
          v[2] = w;
          const int flags = (cx.apparent_cofacet(v, 2, m, r) >= 0 ? kLowerApparent : 0) |
                            (cx.apparent_facet(v, 2, m) >= 0 ? kUpperApparent : 0);
          out.push_back({m, r, flags});
          return false;
        }, /*above_only=*/true);
      } else {
        listing.template triangles<true>(e, [&](const Entry& t, int flags) { out.push_back({t.v, t.i, flags}); });
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Verdict& a, const Verdict& b) {
    return a.value < b.value || (a.value == b.value && a.rank < b.rank);
  });
  return out;
}
}  // namespace

bool sort_entries(std::vector<double>& values, std::vector<int64_t>& ranks, size_t min_radix) {
  if (values.size() != ranks.size()) throw Error("rips: sort_entries takes as many values as ranks");
  std::vector<detail::Entry> v(values.size());
  for (size_t k = 0; k < v.size(); ++k) v[k] = detail::Entry{values[k], ranks[k]};
  const bool radix = detail::sort_keys(v, min_radix);
  for (size_t k = 0; k < v.size(); ++k) {
    values[k] = v[k].v;
    ranks[k] = v[k].i;
  }
  return radix;
}

std::vector<Verdict> apparent_verdicts(const DistanceView& d, double threshold, int dim, int64_t dense_lookup_bytes,
                                       bool reference) {
  if (!d.dense64 || d.n < 0) throw Error("rips: apparent_verdicts takes a dense float64 matrix");
  if (dim != 1 && dim != 2) throw Error("rips: apparent_verdicts lists dimension 1 or 2");
  if (std::isnan(threshold) || threshold < 0) throw Error("rips: threshold must be >= 0 (or +inf)");
  const detail::Binomial C(d.n, dim + 2);
  if (C.overflowed()) throw Error("rips: simplex indices overflow 64 bits");
  const detail::Graph g = detail::build_graph(d, threshold, /*clamp_negative=*/false, dense_lookup_bytes);
  return g.dense() ? verdicts<detail::DenseLookup>(g, C, dim, reference)
                   : verdicts<detail::NeighbourLookup>(g, C, dim, reference);
}

}  // namespace testing

double work_estimate(int64_t n, int64_t edges, int max_dim) {
  if (n < 2 || edges <= 0 || max_dim < 1) return 0;
  const double pairs_total = static_cast<double>(n) * (n - 1) / 2;
  const double rho = std::min(1.0, static_cast<double>(edges) / pairs_total);
  const long double s = rho * (n - 1);
  long double w = 0;
  for (int q = 1; q <= max_dim; ++q) {
    w += (q + 1) * detail::estimate_count(n, q, rho) * s;
    if (q >= 2) w += q * detail::estimate_count(n, q - 1, rho) * s / 2;
  }
  return static_cast<double>(w);
}

Pairs persistence(const DistanceView& d, const Options& opt, MPI_Comm comm) {
  detail::agree_on_input(d, "max_dim", opt.max_dim,
                         {mpi::real_field("threshold", opt.threshold), mpi::int_field("collapse", opt.collapse),
                          mpi::real_field("max_work", opt.max_work)},
                         "every rank must pass the same distance matrix, max_dim, threshold and options", comm);
  return detail::compute(d, opt, comm, /*clamp_negative=*/false, nullptr);
}

Diagram dipha_diagram(const DistanceView& d, int64_t upper_dim, MPI_Comm comm, bool verbose, double max_work,
                      int n_threads) {
  detail::agree_on_input(d, "upper_dim", upper_dim, {}, "every rank must pass the same distance matrix and upper_dim",
                         comm);
  if (upper_dim < 0) throw Error("rips: upper_dim must be >= 0");
  Diagram out;
  if (upper_dim == 0) return out;  // only vertices; top-dimension essentials are not reported
  Options opt;
  opt.max_dim = static_cast<int>(std::min<int64_t>(upper_dim - 1, detail::kMaxVerts - 3));
  opt.verbose = verbose;
  opt.n_threads = n_threads;
  opt.max_work = max_work;
  double max_edge = 0;
  Pairs p = detail::compute(d, opt, comm, /*clamp_negative=*/true, &max_edge);
  const double max_value = max_edge / 2;
  const int64_t no_edges = -1;
  mpi::Comm(comm, detail::rips_oom(d.n, &no_edges)).run({"rips.gather", "assembling the diagram"}, [&] {
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
