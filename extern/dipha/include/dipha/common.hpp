// Shared types of the DIPHA-compatible engine.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dipha {

/// Every problem the engine detects (bad input, impossible sizes, I/O failures) is thrown as this
/// type with a one-line message naming the file (where there is one) and the problem. The engine
/// never aborts the process; executables print the message and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One record of a DIPHA persistence diagram (file type 2): dim >= 0 for a finite pair of that
/// homological dimension, dim = -q-1 for an essential class of dimension q (death = max value).
struct Record {
  int64_t dim;
  double birth;
  double death;
};

using Diagram = std::vector<Record>;

inline constexpr int64_t kMagic = 8067171840LL;
inline constexpr int64_t kUnlimitedDim = INT64_MAX;

}  // namespace dipha
