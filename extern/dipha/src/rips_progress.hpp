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
  /// The same clock, silent: for the workers that do not report.
  Logger silent() const {
    Logger l(false);
    l.t0_ = t0_;
    return l;
  }
  void operator()(const char* fmt, ...) const __attribute__((format(printf, 2, 3))) {
    if (!on_) return;
    std::fprintf(stderr, "[rips %7.2fs %7.0f MiB peak] ", seconds_since(t0_), mpi::peak_rss_mib());
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace detail
}  // namespace rips
}  // namespace dipha
