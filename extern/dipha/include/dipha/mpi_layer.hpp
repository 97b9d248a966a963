// The engine's MPI layer: every collective phase of the Vietoris-Rips engine (rips.cpp), the
// general engine (engine.cpp) and the command lines (cli.cpp) goes through it.
//
// A phase is local work that may throw, then an agreement, then the collective:
//  * the agreement (agree) is itself collective: if any rank failed, every rank throws
//    dipha::Error with the message of the lowest failing rank, followed by
//    " (reported by rank r of P)" unless every rank failed with the same message; std::bad_alloc
//    becomes a named out-of-memory message (Comm's OomMessage);
//  * the sizes of every exchange are exchanged and agreed on before any receive buffer is
//    allocated: a rank that cannot allocate its buffer reports it and nobody is left waiting;
//  * the point-to-point pipeline (Chain) never leaves a neighbour waiting: a rank that failed
//    keeps draining what its predecessor sends and sends empty messages flagged as failed to
//    its successor until the agreement point (Chain::finish), where every rank throws;
//  * inputs are fingerprinted (agree_inputs): n, dimensions, thresholds, layout and a 64-bit
//    hash of the buffers are compared across ranks before any work; a mismatch is an Error on
//    every rank naming what differs and on which ranks.
// Waiting is polite: a rank that waits (agreement, neighbour message) sleeps between tests, so
// ranks sharing cores leave them to the ranks still working.
//
// What this layer cannot detect (MPI has no time-outs and no way to see what another rank
// calls):
//  * a rank that never calls the engine (it crashed, returned early in the caller's code, or is
//    stuck elsewhere): the others wait in the first collective for ever;
//  * ranks calling with different communicators (e.g. one with COMM_WORLD, one with a split
//    communicator) or different entry points of the engine: their collectives do not match;
//    the behaviour is undefined (usually a hang);
//  * a rank killed by a signal (out-of-memory killer, SIGSEGV) in the middle of a phase: the MPI
//    launcher usually takes the others down, otherwise they wait;
//  * inputs that differ only in what the fingerprint does not cover (a 64-bit hash collision,
//    or memory changed by another thread during the call).
//
// Test hook: the environment variable DIPHA_FAULT_INJECT=<phase>:<rank>[,<phase>:<rank>...]
// (read once per process) makes the phase of that name throw std::bad_alloc on that rank (rank
// in the communicator of the call), at the start of its local work; "<phase>.recv" where a
// collective of that phase allocates its receive buffer, and "<round>" where a pipeline round
// allocates the buffer of its neighbour's message. Each entry fires once, so that one process
// can fail in several phases, one call after the other: the entries of a rank fire in the order
// listed, and at most one between two agreement points (another thread of a rank that has just
// failed cannot use up the entry meant for the next call). Phase
// names are listed where the phases are defined (rips.cpp, engine.cpp, cli.cpp), e.g.
// "rips.columns.2", "rips.reduce.1.0", "dipha.write".
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "dipha/common.hpp"

namespace dipha {
namespace mpi {

/// A phase of a collective computation. `name` is its fault-injection name ("rips.split.2");
/// `what` completes "out of memory while ..." ("splitting the columns of dimension 2").
struct Phase {
  std::string name;
  std::string what;
};

/// Turns a failed allocation in a phase into the message every rank will throw.
using OomMessage = std::function<std::string(const Phase&)>;

/// "out of memory while <what> (peak <N> MiB on this rank)".
std::string default_oom_message(const Phase& ph);

/// Peak resident set size of this process in MiB.
double peak_rss_mib();

/// Test hook (see the header comment): throws std::bad_alloc when an entry of
/// DIPHA_FAULT_INJECT that has not fired yet names `name` and `rank`.
void inject_fault(const std::string& name, int rank);

/// The agreement. Collective: if any rank failed, every rank throws dipha::Error with the
/// message of the lowest failing rank (plus " (reported by rank r of P)" unless every rank failed
/// with the same message).
void agree(MPI_Comm comm, bool failed, const std::string& message);

/// Runs `work` and returns "" or the failure it threw (Error, std::exception; std::bad_alloc
/// through `oom`). Local: no communication.
template <class F>
std::string capture(const Phase& ph, int rank, const OomMessage& oom, F&& work) {
  try {
    inject_fault(ph.name, rank);
    work();
  } catch (const std::bad_alloc&) {
    return oom(ph);
  } catch (const std::exception& e) {
    std::string m = e.what();
    return m.empty() ? "unknown error in " + ph.name : m;
  }
  return std::string();
}

/// Barrier that sleeps while waiting.
void polite_barrier(MPI_Comm comm);

// ---------------------------------------------------------------------------------------------
// Input fingerprints.

/// 64-bit hash of a byte stream, word-wise (8 bytes at a time in four independent
/// multiply-rotate lanes, a final avalanche); several GB/s. Not cryptographic.
class Hasher {
 public:
  void update(const void* data, size_t bytes);
  uint64_t digest() const;

 private:
  uint64_t lane_[4] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL, 0x85EBCA77C2B2AE63ULL};
  unsigned char tail_[32] = {};
  size_t tail_len_ = 0;
  uint64_t total_ = 0;
};

uint64_t hash_bytes(const void* data, size_t bytes);

/// One value compared across ranks: 64 bits and how to show them. A `secondary` field (a content
/// hash) is reported only when no primary field differs.
struct Field {
  std::string name;
  uint64_t bits = 0;
  std::function<std::string(uint64_t)> show;
  bool secondary = false;
};
Field int_field(const std::string& name, int64_t v);
Field real_field(const std::string& name, double v);  // compared bit for bit
Field bool_field(const std::string& name, bool v);
Field hash_field(const std::string& name, uint64_t h);
/// `v` indexes `labels` (shown by name).
Field choice_field(const std::string& name, int64_t v, std::vector<std::string> labels);

/// Collective: compares `fields` (at most 16, the same names in the same order on every rank)
/// across ranks. On a mismatch every rank throws
/// "<who>: ranks were given different inputs: <name> <a> on ranks 0, 2 but <b> on rank 1; <advice>"
/// (no "<who>: " when `who` is empty).
void agree_inputs(MPI_Comm comm, const std::string& who, const std::vector<Field>& fields, const std::string& advice);

// ---------------------------------------------------------------------------------------------
// Collectives with agreed sizes.

/// Values that may travel as bytes (std::pair<double, double> qualifies; it is not trivially
/// copyable only because of its assignment operator).
template <class T>
struct is_plain
    : std::integral_constant<bool, std::is_trivially_copy_constructible<T>::value && std::is_trivially_destructible<T>::value> {};

class Comm {
 public:
  explicit Comm(MPI_Comm comm, OomMessage oom = default_oom_message);
  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  const OomMessage& oom() const { return oom_; }

  /// A phase without communication of its own: local work, then the agreement.
  template <class F>
  void run(const Phase& ph, F&& work) {
    std::string err = capture(ph, rank_, oom_, std::forward<F>(work));
    mpi::agree(comm_, !err.empty(), err);
  }
  void agree(bool failed, const std::string& message) const { mpi::agree(comm_, failed, message); }

  /// Every rank's `value` (trivially copyable), in rank order.
  template <class T>
  std::vector<T> allgather(const Phase& ph, const T& value) {
    static_assert(is_plain<T>::value, "plain values only (copied byte for byte)");
    std::vector<T> out;
    run(receiving(ph), [&] { out.resize(static_cast<size_t>(size_)); });
    check(MPI_Allgather(&value, sizeof(T), MPI_BYTE, out.data(), sizeof(T), MPI_BYTE, comm_), "MPI_Allgather");
    return out;
  }

  /// Concatenation of every rank's `mine` in rank order; `counts` (optional) gets each rank's
  /// element count.
  template <class T>
  std::vector<T> allgatherv(const Phase& ph, const std::vector<T>& mine, std::vector<int64_t>* counts = nullptr) {
    static_assert(is_plain<T>::value, "plain values only (copied byte for byte)");
    std::vector<int64_t> cnt = exchange_counts(static_cast<int64_t>(mine.size()));
    std::vector<T> out;
    std::vector<int> rc, rd;
    run(receiving(ph), [&] {
      int64_t total = layout(cnt, rc, rd, ph);
      out.resize(static_cast<size_t>(total));
    });
    Type t(sizeof(T));
    check(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), t.get(), out.data(), rc.data(), rd.data(), t.get(),
                         comm_), "MPI_Allgatherv");
    if (counts) counts->swap(cnt);
    return out;
  }

  /// All-to-all: send[p] goes to rank p; returns what every rank sent here, in rank order.
  template <class T>
  std::vector<T> alltoallv(const Phase& ph, const std::vector<std::vector<T>>& send) {
    static_assert(is_plain<T>::value, "plain values only (copied byte for byte)");
    std::vector<int64_t> sc(static_cast<size_t>(size_)), rcnt(static_cast<size_t>(size_));
    for (int p = 0; p < size_; ++p) sc[p] = static_cast<int64_t>(send[p].size());
    check(MPI_Alltoall(sc.data(), 1, MPI_INT64_T, rcnt.data(), 1, MPI_INT64_T, comm_), "MPI_Alltoall");
    std::vector<T> sbuf, rbuf;
    std::vector<int> s, sd, r, rd;
    run(receiving(ph), [&] {
      int64_t stot = layout(sc, s, sd, ph);
      int64_t rtot = layout(rcnt, r, rd, ph);
      sbuf.reserve(static_cast<size_t>(stot));
      for (const auto& v : send) sbuf.insert(sbuf.end(), v.begin(), v.end());
      rbuf.resize(static_cast<size_t>(rtot));
    });
    Type t(sizeof(T));
    check(MPI_Alltoallv(sbuf.data(), s.data(), sd.data(), t.get(), rbuf.data(), r.data(), rd.data(), t.get(), comm_),
          "MPI_Alltoallv");
    return rbuf;
  }

  /// Concatenation of every rank's `mine` on `root` (empty elsewhere).
  template <class T>
  std::vector<T> gatherv(const Phase& ph, const std::vector<T>& mine, int root) {
    static_assert(is_plain<T>::value, "plain values only (copied byte for byte)");
    std::vector<int64_t> cnt = exchange_counts(static_cast<int64_t>(mine.size()));
    std::vector<T> out;
    std::vector<int> rc, rd;
    run(receiving(ph), [&] {
      int64_t total = layout(cnt, rc, rd, ph);
      if (rank_ == root) out.resize(static_cast<size_t>(total));
    });
    Type t(sizeof(T));
    check(MPI_Gatherv(mine.data(), static_cast<int>(mine.size()), t.get(), out.data(), rc.data(), rd.data(), t.get(),
                      root, comm_), "MPI_Gatherv");
    return out;
  }

  /// `v` of `root` on every rank.
  template <class T>
  void bcast(const Phase& ph, std::vector<T>& v, int root) {
    static_assert(is_plain<T>::value, "plain values only (copied byte for byte)");
    int64_t n = static_cast<int64_t>(v.size());
    check(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_), "MPI_Bcast");
    run(receiving(ph), [&] {
      if (rank_ != root) v.resize(static_cast<size_t>(n));
    });
    const int64_t per = std::max<int64_t>(1, kChunkBytes / static_cast<int64_t>(sizeof(T)));
    Type t(sizeof(T));
    for (int64_t off = 0; off < n; off += per) {
      int cnt = static_cast<int>(std::min(per, n - off));
      check(MPI_Bcast(v.data() + off, cnt, t.get(), root, comm_), "MPI_Bcast");
    }
  }

  static constexpr int64_t kChunkBytes = int64_t{8} << 20;  // largest single message

  /// The allocation of a collective's buffers, a phase of its own ("<name>.recv").
  static Phase receiving(const Phase& ph) {
    return Phase{ph.name + ".recv", "allocating the receive buffer for " + ph.what};
  }

 private:
  // RAII contiguous datatype of `bytes` bytes.
  class Type {
   public:
    explicit Type(size_t bytes);
    ~Type();
    Type(const Type&) = delete;
    Type& operator=(const Type&) = delete;
    MPI_Datatype get() const { return t_; }

   private:
    MPI_Datatype t_;
  };
  std::vector<int64_t> exchange_counts(int64_t mine);
  // int counts and displacements for MPI; throws (inside a phase) when they do not fit.
  int64_t layout(const std::vector<int64_t>& cnt, std::vector<int>& c, std::vector<int>& d, const Phase& ph) const;
  static void check(int rc, const char* what);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  OomMessage oom_;
};

// ---------------------------------------------------------------------------------------------
// Point-to-point pipeline.
//
// A Chain is driven by one thread of each rank (the one that calls the engine): threads of a
// rank that take part in its work report their failures through capture() and fail(), and never
// call MPI themselves.

/// The nearest-neighbour pipeline of one phase: in each round a rank processes what it has,
/// sends the rest to its neighbour and receives from the other one. A failure in a round (work
/// or receive buffer) is recorded, not thrown: the rank then drains its predecessor's messages
/// and sends empty messages flagged as failed, so that no neighbour waits; finish() is the
/// agreement point where every rank throws. A rank whose predecessor failed skips its further
/// work (its result would be discarded) and passes the flag on.
class Chain {
 public:
  Chain(const Comm& comm, Phase phase, int tag);
  /// Runs one round's local work `work` (fault-injection name `name`) unless this rank failed or
  /// its input is void; a failure is recorded.
  template <class F>
  void step(const std::string& name, F&& work) {
    if (!fail_.empty() || upstream_failed_) return;
    fail_ = capture(Phase{name, phase_.what}, comm_.rank(), comm_.oom(), std::forward<F>(work));
  }
  /// Records a failure of this rank's work done outside step() (by another thread of the rank,
  /// through capture()); the first one recorded is kept.
  void fail(const std::string& message) {
    if (fail_.empty()) fail_ = message.empty() ? "unknown error in " + phase_.name : message;
  }
  bool failed() const { return !fail_.empty(); }
  /// True when this rank failed or a predecessor did: its results are void.
  bool is_void() const { return failed() || upstream_failed_; }
  /// Sends `v` to `dest`, or an empty message flagged as void when is_void().
  void send(int dest, const std::vector<int64_t>& v);
  /// Receives the next message from `src` into `v` (receive buffer sized from the message's
  /// header, fault-injection name `name`). False when there is nothing to process: this rank or
  /// the sender is void, or the buffer could not be allocated (the failure is recorded); the
  /// message is drained either way. `received` (optional) counts the bytes.
  bool recv(int src, std::vector<int64_t>& v, const std::string& name, int64_t* received = nullptr);
  /// True when a message from `src` has arrived (recv would not wait for it). Never waits.
  bool poll(int src) const;
  /// The agreement point (collective).
  void finish();

 private:
  void drain(int src, int64_t n);
  const Comm& comm_;
  Phase phase_;
  int tag_;
  std::string fail_;
  bool upstream_failed_ = false;
};

}  // namespace mpi
}  // namespace dipha
