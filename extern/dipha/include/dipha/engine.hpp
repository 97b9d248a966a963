// The DIPHA-compatible distributed persistence engine (general path) and its command lines.
//
// Work split: every rank reads the whole input file, builds the cell complex and sorts the
// filtration (input and filtration are replicated, memory O(N) per rank); the boundary-matrix
// columns are generated and reduced distributed: rank r owns the filtration positions of its
// block and keeps the reduced columns whose pivot lies there; columns travel along the chain
// r -> r-1 until they are stored at the owner of their pivot (nearest-neighbour pipeline).
// Results are independent of the number of ranks and identical for primal and dual runs.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dipha/common.hpp"

namespace dipha {

struct Options {
  int64_t upper_dim = kUnlimitedDim;  // caps the computed dimensions; mandatory for types 7 and 8
  bool upper_dim_given = false;
  bool dual = false;       // persistent cohomology (coboundary matrix, reversed order)
  bool general = false;    // types 7/8: explicit enumeration instead of dipha::rips
  bool benchmark = false;  // per-phase table on rank 0's stdout
  double max_work = -1;    // types 7/8 (fast path): refusal limit of the work estimate, as in rips::Options
  int threads = 1;         // types 7/8, fast path: threads of each rank (extension, not in DIPHA)
};

/// One line of the --benchmark table.
struct PhaseStats {
  std::string name;
  double seconds = 0;       // wall time of the phase (max over ranks)
  double peak_rss_mb = 0;   // peak resident set size at the end of the phase (max over ranks)
  double received_mb = 0;   // bytes received by all ranks during the phase, in MB (1e6 bytes)
};

struct RunStats {
  std::vector<PhaseStats> phases;
  int64_t cells = 0;  // cells taking part (dimension <= D*)
};

/// Computes the DIPHA diagram of an input file (types 0, 1, 7, 8). Collective over `comm`;
/// every rank returns the same diagram (sorted records). Throws dipha::Error on every rank with
/// the same message when the input is invalid.
Diagram compute(const std::string& input_path, const Options& opt, MPI_Comm comm, RunStats* stats = nullptr);

/// Writes a diagram file (type 2) from rank 0; collective (all ranks learn about failures).
void write_diagram(const std::string& path, const Diagram& diagram, MPI_Comm comm);

/// Transposes an explicit complex: boundary form <-> coboundary form. Lists are ascending.
/// An output that is the input file (check_not_same_file) is refused before anything is read.
void dualize_file(const std::string& in, const std::string& out);

/// Keeps the entries d(i, j) <= 2 * upper_value (i != j) of a full distance matrix file, writing
/// a sparse distance matrix file. The weight of {i, j} is taken from the lower triangle
/// d(max(i,j), min(i,j)) for both rows, so the output is always symmetric. An output that is the
/// input file is refused before anything is read.
void full_to_sparse_file(double upper_value, const std::string& in, const std::string& out);

/// The command lines; return the process exit status (0 or 1). Must be called by all ranks of
/// `comm` after MPI_Init. Messages go to rank 0's stdout/stderr only.
int run_dipha_cli(int argc, char** argv, MPI_Comm comm);
int run_dualize_cli(int argc, char** argv, MPI_Comm comm);
int run_full_to_sparse_cli(int argc, char** argv, MPI_Comm comm);

}  // namespace dipha
