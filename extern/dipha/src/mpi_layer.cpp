// The engine's MPI layer (see dipha/mpi_layer.hpp).
#include "dipha/mpi_layer.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

namespace dipha {
namespace mpi {
namespace {

constexpr int64_t kChunkWords = Comm::kChunkBytes / 8;

// Waits for `req`, sleeping between tests once the first few have failed.
void wait_politely(MPI_Request& req) {
  for (int tries = 0;; ++tries) {
    int flag = 0;
    MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (flag) return;
    if (tries >= 16) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
inline uint64_t mix_word(uint64_t lane, uint64_t w) { return rotl(lane + w * kP2, 31) * kP1; }
inline uint64_t avalanche(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

// DIPHA_FAULT_INJECT: a comma-separated list of <phase>:<rank>; each entry fires once.
struct FaultEntry {
  std::string name;
  int rank;
  std::atomic<bool> fired{false};
  FaultEntry(std::string n, int r) : name(std::move(n)), rank(r) {}
};

std::vector<std::unique_ptr<FaultEntry>> read_fault_spec() {
  std::vector<std::unique_ptr<FaultEntry>> out;
  const char* env = std::getenv("DIPHA_FAULT_INJECT");
  if (!env) return out;
  std::string all(env);
  for (size_t start = 0; start <= all.size();) {
    size_t comma = all.find(',', start);
    if (comma == std::string::npos) comma = all.size();
    std::string s = all.substr(start, comma - start);
    start = comma + 1;
    size_t colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) continue;
    char* end = nullptr;
    long r = std::strtol(s.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || r < 0) continue;
    out.emplace_back(new FaultEntry(s.substr(0, colon), static_cast<int>(r)));
  }
  return out;
}

// "rank 3", "ranks 0, 2", "ranks 0-5, 7".
std::string rank_list(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) out += ", ";
    if (j >= i + 2) {
      out += std::to_string(ranks[i]) + "-" + std::to_string(ranks[j]);
    } else {
      out += std::to_string(ranks[i]);
      if (j == i + 1) out += ", " + std::to_string(ranks[j]);
    }
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string default_oom_message(const Phase& ph) {
  return "out of memory while " + ph.what + " (peak " + std::to_string(static_cast<long>(peak_rss_mib())) +
         " MiB on this rank)";
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

namespace {
// The entries of one rank fire in the order listed, at most one between two agreement points:
// the threads of a rank that has just failed (a relay receiving the next batch) cannot use up
// the entry meant for the next call.
std::mutex fault_mutex;
bool fault_gate_open = true;

const std::vector<std::unique_ptr<FaultEntry>>& fault_spec() {
  static const std::vector<std::unique_ptr<FaultEntry>> spec = read_fault_spec();
  return spec;
}

void open_fault_gate() {
  if (fault_spec().empty()) return;
  std::lock_guard<std::mutex> lock(fault_mutex);
  fault_gate_open = true;
}
}  // namespace

void inject_fault(const std::string& name, int rank) {
  const auto& spec = fault_spec();
  if (spec.empty()) return;
  std::lock_guard<std::mutex> lock(fault_mutex);
  if (!fault_gate_open) return;
  for (const auto& f : spec) {
    if (f->rank != rank || f->fired) continue;
    if (f->name != name) return;  // the next entry of this rank is another phase
    f->fired = true;
    fault_gate_open = false;
    throw std::bad_alloc();
  }
}

void agree(MPI_Comm comm, bool failed, const std::string& message) {
  open_fault_gate();
  int rank = 0, P = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  if (P == 1) {
    if (failed) throw Error(message);
    return;
  }
  const uint64_t h = failed ? hash_bytes(message.data(), message.size()) : 0;
  // min over ranks of: failing rank (P if none), failed (1 only if all failed), hash, ~hash
  uint64_t in[4] = {failed ? static_cast<uint64_t>(rank) : static_cast<uint64_t>(P), failed ? 1u : 0u, h, ~h};
  uint64_t out[4];
  MPI_Request req;
  MPI_Iallreduce(in, out, 4, MPI_UINT64_T, MPI_MIN, comm, &req);
  wait_politely(req);
  const int first = static_cast<int>(out[0]);
  if (first == P) return;
  const bool unanimous = out[1] == 1 && out[2] == ~out[3];
  int64_t len = rank == first ? static_cast<int64_t>(message.size()) : 0;
  MPI_Bcast(&len, 1, MPI_INT64_T, first, comm);
  std::string text = rank == first ? message : std::string(static_cast<size_t>(len), ' ');
  if (len > 0) MPI_Bcast(&text[0], static_cast<int>(len), MPI_CHAR, first, comm);
  if (!unanimous) text += " (reported by rank " + std::to_string(first) + " of " + std::to_string(P) + ")";
  throw Error(text);
}

void polite_barrier(MPI_Comm comm) {
  MPI_Request req;
  MPI_Ibarrier(comm, &req);
  wait_politely(req);
}

// ---------------------------------------------------------------------------------------------
// Hashing.

void Hasher::update(const void* data, size_t bytes) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  total_ += bytes;
  if (tail_len_ > 0) {
    size_t take = std::min(bytes, sizeof tail_ - tail_len_);
    std::memcpy(tail_ + tail_len_, p, take);
    tail_len_ += take;
    p += take;
    bytes -= take;
    if (tail_len_ < sizeof tail_) return;
    uint64_t w[4];
    std::memcpy(w, tail_, 32);
    for (int i = 0; i < 4; ++i) lane_[i] = mix_word(lane_[i], w[i]);
    tail_len_ = 0;
  }
  uint64_t a = lane_[0], b = lane_[1], c = lane_[2], d = lane_[3];
  for (; bytes >= 32; p += 32, bytes -= 32) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    a = mix_word(a, w[0]);
    b = mix_word(b, w[1]);
    c = mix_word(c, w[2]);
    d = mix_word(d, w[3]);
  }
  lane_[0] = a;
  lane_[1] = b;
  lane_[2] = c;
  lane_[3] = d;
  std::memcpy(tail_, p, bytes);
  tail_len_ = bytes;
}

uint64_t Hasher::digest() const {
  uint64_t h = rotl(lane_[0], 1) + rotl(lane_[1], 7) + rotl(lane_[2], 12) + rotl(lane_[3], 18);
  for (int i = 0; i < 4; ++i) h = (h ^ mix_word(0, lane_[i])) * kP1 + kP2;
  size_t k = 0;
  for (; k + 8 <= tail_len_; k += 8) {
    uint64_t w;
    std::memcpy(&w, tail_ + k, 8);
    h = rotl(h ^ mix_word(0, w), 27) * kP1 + kP2;
  }
  for (; k < tail_len_; ++k) h = rotl(h ^ (tail_[k] * kP1), 11) * kP2;
  return avalanche(h ^ total_);
}

uint64_t hash_bytes(const void* data, size_t bytes) {
  Hasher h;
  h.update(data, bytes);
  return h.digest();
}

// ---------------------------------------------------------------------------------------------
// Input fingerprints.

Field int_field(const std::string& name, int64_t v) {
  return {name, static_cast<uint64_t>(v), [](uint64_t b) { return std::to_string(static_cast<int64_t>(b)); }, false};
}

Field real_field(const std::string& name, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  return {name, bits,
          [](uint64_t b) {
            double x;
            std::memcpy(&x, &b, 8);
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.17g", x);
            // values that print alike (0 and -0, NaNs) are told apart by their bits
            char bits_buf[32];
            std::snprintf(bits_buf, sizeof bits_buf, " (bits 0x%016" PRIx64 ")", b);
            std::string s(buf);
            if (x == 0 || x != x) s += bits_buf;
            return s;
          },
          false};
}

Field bool_field(const std::string& name, bool v) {
  return {name, v ? 1u : 0u, [](uint64_t b) { return std::string(b ? "on" : "off"); }, false};
}

Field hash_field(const std::string& name, uint64_t h) {
  return {name, h,
          [](uint64_t b) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%016" PRIx64, b);
            return std::string(buf);
          },
          true};
}

Field choice_field(const std::string& name, int64_t v, std::vector<std::string> labels) {
  return {name, static_cast<uint64_t>(v),
          [labels](uint64_t b) {
            return b < labels.size() ? labels[b] : "#" + std::to_string(static_cast<int64_t>(b));
          },
          false};
}

void agree_inputs(MPI_Comm comm, const std::string& who, const std::vector<Field>& fields, const std::string& advice) {
  constexpr size_t kMax = 16;
  const std::string prefix = who.empty() ? "" : who + ": ";
  if (fields.size() > kMax) throw Error(prefix + "too many input fields to compare across ranks");
  int P = 1;
  MPI_Comm_size(comm, &P);
  if (P == 1) return;
  // word 0: the names of the fields (ranks in different calls compare different things)
  std::vector<uint64_t> mine(kMax + 1, 0);
  std::string names;
  for (const Field& f : fields) names += f.name + '\n';
  mine[0] = hash_bytes(names.data(), names.size());
  for (size_t i = 0; i < fields.size(); ++i) mine[i + 1] = fields[i].bits;
  std::vector<uint64_t> all(static_cast<size_t>(P) * (kMax + 1));
  MPI_Request req;
  MPI_Iallgather(mine.data(), kMax + 1, MPI_UINT64_T, all.data(), kMax + 1, MPI_UINT64_T, comm, &req);
  wait_politely(req);
  auto at = [&](int r, size_t i) { return all[static_cast<size_t>(r) * (kMax + 1) + i]; };
  for (int r = 1; r < P; ++r) {
    if (at(r, 0) != at(0, 0)) {
      throw Error(prefix + "ranks called the engine differently (different entry points or kinds of input); " + advice);
    }
  }
  std::vector<std::string> primary, secondary;
  for (size_t i = 0; i < fields.size(); ++i) {
    std::vector<uint64_t> values;
    std::vector<std::vector<int>> ranks;
    for (int r = 0; r < P; ++r) {
      uint64_t v = at(r, i + 1);
      size_t k = 0;
      while (k < values.size() && values[k] != v) ++k;
      if (k == values.size()) {
        values.push_back(v);
        ranks.emplace_back();
      }
      ranks[k].push_back(r);
    }
    if (values.size() == 1) continue;
    std::string s = fields[i].name + " " + fields[i].show(values[0]) + " on " + rank_list(ranks[0]) + " but ";
    for (size_t k = 1; k < values.size(); ++k) {
      if (k > 1) s += ", ";
      s += fields[i].show(values[k]) + " on " + rank_list(ranks[k]);
    }
    (fields[i].secondary ? secondary : primary).push_back(s);
  }
  const std::vector<std::string>& diff = primary.empty() ? secondary : primary;
  if (diff.empty()) return;
  std::string msg = prefix + "ranks were given different inputs: ";
  for (size_t k = 0; k < diff.size(); ++k) msg += (k ? "; " : "") + diff[k];
  throw Error(msg + "; " + advice);
}

// ---------------------------------------------------------------------------------------------
// Collectives.

Comm::Comm(MPI_Comm comm, OomMessage oom) : comm_(comm), oom_(std::move(oom)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Comm::Type::Type(size_t bytes) {
  MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &t_);
  MPI_Type_commit(&t_);
}

Comm::Type::~Type() { MPI_Type_free(&t_); }

std::vector<int64_t> Comm::exchange_counts(int64_t mine) {
  std::vector<int64_t> cnt(static_cast<size_t>(size_));
  check(MPI_Allgather(&mine, 1, MPI_INT64_T, cnt.data(), 1, MPI_INT64_T, comm_), "MPI_Allgather");
  return cnt;
}

int64_t Comm::layout(const std::vector<int64_t>& cnt, std::vector<int>& c, std::vector<int>& d, const Phase& ph) const {
  c.resize(cnt.size());
  d.resize(cnt.size());
  int64_t total = 0;
  for (size_t p = 0; p < cnt.size(); ++p) {
    if (cnt[p] > INT32_MAX || total > INT32_MAX) {
      throw Error("an exchange of more than 2^31 elements per call while " + ph.what + " is not supported; " +
                  "use more ranks");
    }
    c[p] = static_cast<int>(cnt[p]);
    d[p] = static_cast<int>(total);
    total += cnt[p];
  }
  return total;
}

void Comm::check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error(std::string("MPI call failed: ") + what);
}

// ---------------------------------------------------------------------------------------------
// Chain.

Chain::Chain(const Comm& comm, Phase phase, int tag) : comm_(comm), phase_(std::move(phase)), tag_(tag) {}

void Chain::send(int dest, const std::vector<int64_t>& v) {
  const bool vo = is_void();
  int64_t head[2] = {vo ? 0 : static_cast<int64_t>(v.size()), vo ? 1 : 0};
  MPI_Send(head, 2, MPI_INT64_T, dest, tag_, comm_.get());
  for (int64_t off = 0; off < head[0]; off += kChunkWords) {
    int cnt = static_cast<int>(std::min(kChunkWords, head[0] - off));
    MPI_Send(v.data() + off, cnt, MPI_INT64_T, dest, tag_, comm_.get());
  }
}

bool Chain::recv(int src, std::vector<int64_t>& v, const std::string& name, int64_t* received) {
  // Wait politely: the sender is usually still working.
  for (int tries = 0;; ++tries) {
    int flag = 0;
    MPI_Iprobe(src, tag_, comm_.get(), &flag, MPI_STATUS_IGNORE);
    if (flag) break;
    if (tries >= 16) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  int64_t head[2];
  MPI_Recv(head, 2, MPI_INT64_T, src, tag_, comm_.get(), MPI_STATUS_IGNORE);
  const int64_t n = head[0];
  if (received) *received += 8 * (n + 2);
  if (head[1]) upstream_failed_ = true;
  if (is_void()) {
    drain(src, n);
    return false;
  }
  try {
    inject_fault(name, comm_.rank());
    v.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    std::vector<int64_t>().swap(v);
    fail_ = comm_.oom()(Phase{name, phase_.what});
    drain(src, n);
    return false;
  }
  for (int64_t off = 0; off < n; off += kChunkWords) {
    int cnt = static_cast<int>(std::min(kChunkWords, n - off));
    MPI_Recv(v.data() + off, cnt, MPI_INT64_T, src, tag_, comm_.get(), MPI_STATUS_IGNORE);
  }
  return true;
}

bool Chain::poll(int src) const {
  int flag = 0;
  MPI_Iprobe(src, tag_, comm_.get(), &flag, MPI_STATUS_IGNORE);
  return flag != 0;
}

void Chain::drain(int src, int64_t n) {
  // A static sink: draining must not allocate (it is what a rank does after running out).
  static int64_t sink[kChunkWords];
  static std::mutex lock;
  std::lock_guard<std::mutex> guard(lock);
  for (int64_t off = 0; off < n; off += kChunkWords) {
    int cnt = static_cast<int>(std::min(kChunkWords, n - off));
    MPI_Recv(sink, cnt, MPI_INT64_T, src, tag_, comm_.get(), MPI_STATUS_IGNORE);
  }
}

void Chain::finish() { agree(comm_.get(), failed(), fail_); }

}  // namespace mpi
}  // namespace dipha
