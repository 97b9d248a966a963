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
  // Largest n*n*8 bytes for which a dense look-up matrix of the thresholded graph is used (the
  // input's own float64 matrix, read in place, when it is exactly symmetric; a copy otherwise);
  // larger graphs use their sorted neighbour lists only. Negative: the default (512 MiB).
  int64_t dense_lookup_bytes = -1;
  // Largest working coboundary (bytes) held at once while reducing one column (shared by the
  // threads of a rank); a column whose coboundary grows beyond it (a large cocycle, typically an
  // essential class) is reduced window by window of filtration values, regenerating its
  // coboundary for each window (the sort of a window's entries takes as much again while it
  // runs). Negative: the default (256 MiB).
  int64_t working_bytes = -1;
  // Live working coboundary (bytes) at which a column leaves its heap for the explicit
  // representation in buckets of filtration values (rips_reduction.hpp, "long working column"),
  // within working_bytes. Negative: the default (32 MiB).
  int64_t long_column_bytes = -1;
  // How a window of a windowed column of edges regenerates its coboundary (rips_reduction.hpp,
  // window_cofaces): 0 the cheaper by an estimate of the work, 1 from each V edge's balls, 2 from
  // the edges of the window's values. The results are the same; 1 and 2 are for tests and
  // measurements.
  int window_method = 0;
  // Refusal limit of the work estimate, in coface visits (see work_estimate): a computation
  // estimated above it is refused with an Error before any work. Negative: the default
  // (kDefaultMaxWork); +inf: no limit. Above kWarnWork one line on rank 0's stderr gives the
  // estimate and a rough time.
  double max_work = -1;
  // Edge collapse of the thresholded graph before the reduction (dipha/collapse.hpp): 0 off,
  // k > 0 rounds, -1 rounds until one removes no edge. The diagrams are the same (positive-length
  // pairs and essential classes, exactly); only persistence() reads it.
  int collapse = 0;
  // Threads of each rank (>= 1; -1: one per hardware thread of the machine). The column listing
  // is shared out over the threads edge by edge, the reduction over P x T workers (key ranges);
  // results are identical for any number of ranks and threads. Ranks may use different counts.
  int n_threads = 1;
};

/// Default refusal limit and warning level of the work estimate (coface visits), and the rate
/// used for its rough time. Calibration (one rank): the LeNet functional graph (1,820 nodes, 63 k
/// edges, H0..H2) is estimated at 2.4e7, its heavy variant (408 k edges, 20 s) at 2.1e10, ResNet18
/// (25 k nodes, 13.5 M edges, H0..H1, 290 s) at 2.9e10: no warning; VGG16 (37 k nodes, 37.7 M
/// edges, H0..H1, 410 s) at 1.5e11: a warning; 32 points with max_dim 11 (dipha --upper_dim 12)
/// at 2.0e11: a warning; the full complex of 30 points with max_dim 29 at 7.0e11: refused.
/// Measured rates range from about 1e8 visits per second (dense complexes of high dimension) to
/// 1e9 (sparse graphs); 2e8 is used for the rough time.
inline constexpr double kDefaultMaxWork = 5e11;
inline constexpr double kWarnWork = 1e11;
inline constexpr double kVisitsPerSecond = 2e8;

/// Expected work of persistence() up to H_max_dim on a graph of n vertices and `edges` edges
/// (edge density rho = edges / C(n, 2)), in coface visits: candidate vertices examined while
/// enumerating the cofaces of a simplex. With N_k = C(n, k+1) rho^C(k+1,2) the expected number
/// of k-simplices and s = rho (n-1) the expected length of a neighbour list, listing the columns
/// of dimension q >= 2 visits about N_{q-1} s / 2 candidates with q look-ups each, and reducing
/// dimension q about N_q s candidates with q + 1 look-ups each:
///   W = sum_{q=1}^{max_dim} (q + 1) N_q s + sum_{q=2}^{max_dim} q N_{q-1} s / 2.
/// A random-graph estimate: clustered graphs have more simplices, apparent pairs make fewer
/// columns; it is meant for its order of magnitude.
double work_estimate(int64_t n, int64_t edges, int max_dim);

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
/// `max_work` and `n_threads` as in Options.
Diagram dipha_diagram(const DistanceView& d, int64_t upper_dim, MPI_Comm comm, bool verbose = false,
                      double max_work = -1, int n_threads = 1);

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

/// The sort of coboundary entries by key (value, then rank) that the reduction uses, on the
/// entries (values[k], ranks[k]), in place; true when it took the radix sort (vectors of at
/// least `min_radix` entries whose keys pack in 64 bits), false for std::sort.
bool sort_entries(std::vector<double>& values, std::vector<int64_t>& ranks, size_t min_radix);

}  // namespace testing

}  // namespace rips
}  // namespace dipha
