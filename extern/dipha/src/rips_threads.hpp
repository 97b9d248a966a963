// Threads inside a rank of the Vietoris-Rips engine: a fork-join helper, the in-memory queues
// between the workers of the reduction pipeline, and a rank's record of its workers' failures.
// Worker threads never call MPI: the thread that called the engine does (dipha/mpi_layer.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dipha {
namespace rips {
namespace detail {

/// Runs f(t) for t = 0 .. T-1, f(0) on the calling thread, the others on threads of their own;
/// returns when all are done and rethrows the exception of the lowest failing t.
template <class F>
void run_threads(int T, F&& f) {
  std::vector<std::exception_ptr> err(static_cast<size_t>(T));
  auto body = [&](int t) {
    try {
      f(t);
    } catch (...) {
      err[static_cast<size_t>(t)] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  std::exception_ptr start_failure;
  try {
    threads.reserve(static_cast<size_t>(T));
    for (int t = 1; t < T; ++t) threads.emplace_back(body, t);
  } catch (...) {
    start_failure = std::current_exception();  // (a thread could not be started)
  }
  if (!start_failure) body(0);
  for (auto& th : threads) th.join();
  if (start_failure) std::rethrow_exception(start_failure);
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
}

/// Hands out the indices 0 .. n-1 in chunks to the threads that ask: dynamic balance of work
/// whose cost per index varies (edges of different lengths).
class ChunkCounter {
 public:
  ChunkCounter(size_t n, size_t chunk) : n_(n), chunk_(chunk) {}
  /// The next chunk [begin, end); false when none is left.
  bool next(size_t& begin, size_t& end) {
    begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= n_) return false;
    end = std::min(n_, begin + chunk_);
    return true;
  }

 private:
  const size_t n_, chunk_;
  std::atomic<size_t> next_{0};
};

/// What a rank's workers share: a stop flag and the first failure (by thread index).
class WorkerFailures {
 public:
  std::atomic<bool> stop{false};
  void record(int thread, const std::string& message) {
    std::lock_guard<std::mutex> l(m_);
    if (thread < thread_) {
      thread_ = thread;
      message_ = message;
    }
    failed_ = true;
    stop = true;
  }
  bool failed() const { return failed_.load(); }
  std::string message() const {
    std::lock_guard<std::mutex> l(m_);
    return message_;
  }

 private:
  mutable std::mutex m_;
  std::atomic<bool> failed_{false};
  int thread_ = INT32_MAX;
  std::string message_;
};

/// Messages for the key ranges that one thread runs (one slot each), with one wake-up for the
/// thread.
template <class Message>
class Mailbox {
 public:
  explicit Mailbox(size_t slots) : q_(slots) {}
  void push(size_t slot, Message&& m) {
    {
      std::lock_guard<std::mutex> l(m_);
      q_[slot].push_back(std::move(m));
      ++pushes_;
    }
    cv_.notify_one();
  }
  bool try_pop(size_t slot, Message& m) {
    std::lock_guard<std::mutex> l(m_);
    if (q_[slot].empty()) return false;
    m = std::move(q_[slot].front());
    q_[slot].pop_front();
    return true;
  }
  /// Pushes so far (read before looking at the slots, then passed to wait()).
  uint64_t pushes() {
    std::lock_guard<std::mutex> l(m_);
    return pushes_;
  }
  /// Waits until there were more than `seen` pushes, or `stop` is set (and wake() called).
  void wait(uint64_t seen, const std::atomic<bool>& stop) {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return pushes_ != seen || stop.load(); });
  }
  /// Waits at most `wait` for more than `seen` pushes; false if none came.
  bool wait_for(uint64_t seen, std::chrono::microseconds wait) {
    std::unique_lock<std::mutex> l(m_);
    return cv_.wait_for(l, wait, [&] { return pushes_ != seen; });
  }
  void wake() {
    { std::lock_guard<std::mutex> l(m_); }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::deque<Message>> q_;
  uint64_t pushes_ = 0;
};

/// A FIFO of messages between threads (worker threads and the relay, its one reader): a mailbox
/// of one slot.
template <class Message>
class Channel {
 public:
  void push(Message&& v) { box_.push(0, std::move(v)); }
  /// Waits for the next message; false once `stop` is set (and wake() called).
  bool pop(Message& v, const std::atomic<bool>& stop) {
    while (true) {
      const uint64_t seen = box_.pushes();
      if (stop.load()) return false;
      if (box_.try_pop(0, v)) return true;
      box_.wait(seen, stop);
    }
  }
  /// The next message if one arrives within `wait`.
  bool pop_for(Message& v, std::chrono::microseconds wait) {
    if (box_.try_pop(0, v)) return true;
    if (wait.count() <= 0) return false;  // a poll: one look
    const uint64_t seen = box_.pushes();
    if (box_.try_pop(0, v)) return true;  // pushed since the first look
    return box_.wait_for(seen, wait) && box_.try_pop(0, v);
  }
  /// Wakes the waiting reader (after `stop` was set).
  void wake() { box_.wake(); }

 private:
  Mailbox<Message> box_{1};
};

}  // namespace detail
}  // namespace rips
}  // namespace dipha
