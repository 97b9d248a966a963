// Fast Vietoris-Rips persistent cohomology, in memory, serial or across the ranks of a communicator.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "dipha/common.hpp"

namespace dipha {
namespace rips {

/// A view of a symmetric distance matrix; no data is copied or owned.
/// Exactly one of the three layouts is set.
///  * dense64 / dense32: row-major n x n, entry (i, j) at [i * n + j]. Only the strict lower
///    triangle (i > j) is read.
///  * sparse (CSR): row i's neighbours are indices[indptr[i] .. indptr[i+1]), strictly ascending,
///    no self entry, symmetric pattern; the weight of {i, j} is read from row max(i, j).
struct DistanceView {
  int64_t n = 0;
  const double* dense64 = nullptr;
  const float* dense32 = nullptr;
  const int64_t* indptr = nullptr;
  const int64_t* indices = nullptr;
  const double* values = nullptr;
};

struct Options {
  int max_dim = 1;  // homology H0 .. H_max_dim (simplices up to dimension max_dim + 1)
  double threshold = std::numeric_limits<double>::infinity();  // edges with d > threshold absent
  bool verbose = false;  // progress on rank 0's stderr
  // Largest n*n*8 bytes for which a dense look-up matrix of the thresholded graph is built;
  // larger graphs use their sorted neighbour lists only. Negative: the default (512 MiB).
  int64_t dense_lookup_bytes = -1;
  // Largest working coboundary (bytes) held at once while reducing one column; a column whose
  // coboundary grows beyond it (a large cocycle, typically an essential class) is reduced window
  // by window of filtration values, regenerating its coboundary for each window. Negative: the
  // default (1 GiB).
  int64_t working_bytes = -1;
  // Threads of each rank (>= 1; -1: one per hardware thread of the machine). The column listing
  // is shared out over the threads edge by edge, the reduction over P x T workers (key ranges);
  // results are identical for any number of ranks and threads. Ranks may use different counts.
  int n_threads = 1;
};

/// Persistence pairs per homology dimension, in the units of the input (filtration value of a
/// simplex = its longest edge). Essential classes have death = +inf. Zero-length pairs are
/// dropped. Each dimension's pairs are sorted by (birth, death). Every rank of `comm` returns the
/// same result, identical for any number of ranks and threads.
using Pairs = std::vector<std::vector<std::pair<double, double>>>;

Pairs persistence(const DistanceView& d, const Options& opt, MPI_Comm comm);

/// DIPHA semantics on top of persistence(): values are max(0, d) / 2, homology H0..H_{upper_dim-1},
/// essential class of dimension q -> record (-q-1, birth, max_value) where max_value is the
/// largest value of any simplex of dimension <= upper_dim present; records sorted as in a DIPHA
/// diagram file. Every rank returns the same diagram.
/// `n_threads` as in Options.
Diagram dipha_diagram(const DistanceView& d, int64_t upper_dim, MPI_Comm comm, bool verbose = false, int n_threads = 1);

namespace testing {

/// A simplex (filtration value, colex rank) and its apparent-pair verdict bits: 1 = lower half
/// (paired with its smallest equal coface), 2 = upper half (paired with its largest facet).
struct Verdict {
  double value;
  int64_t rank;
  int flags;
};

/// Test hook: every simplex of dimension `dim` (1 or 2) of the complex of the dense float64
/// matrix `d` cut at `threshold`, with its verdict bits, sorted by (value, rank): as the engine's
/// per-edge listing finds them (triangles listed from their max-key edge), or, with `reference`,
/// as the simplex-by-simplex tests find them (triangles listed from their two smallest vertices).
/// The upper-half bit of an edge is not computed (0). dense_lookup_bytes as in Options.
std::vector<Verdict> apparent_verdicts(const DistanceView& d, double threshold, int dim, int64_t dense_lookup_bytes,
                                       bool reference);

}  // namespace testing

}  // namespace rips
}  // namespace dipha
