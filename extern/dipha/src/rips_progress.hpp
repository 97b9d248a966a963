// Progress lines of the Vietoris-Rips engine (verbose runs): "[rips <elapsed>s <peak> MiB peak]
// <message>" on stderr, written by one worker of one rank only.
#pragma once

#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "dipha/mpi_layer.hpp"

namespace dipha {
namespace rips {
namespace detail {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class Logger {
 public:
  explicit Logger(bool on) : on_(on) {}
  bool on() const { return on_; }
  /// One line, written at once (workers of a rank may report concurrently).
  void operator()(const char* fmt, ...) const __attribute__((format(printf, 2, 3))) {
    if (!on_) return;
    char line[1024];
    int n = std::snprintf(line, sizeof line, "[rips %7.2fs %7.0f MiB peak] ", seconds_since(t0_), mpi::peak_rss_mib());
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && n < static_cast<int>(sizeof line)) std::vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "%s\n", line);
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace detail
}  // namespace rips
}  // namespace dipha
