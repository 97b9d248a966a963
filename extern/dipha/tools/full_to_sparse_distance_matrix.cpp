// The full_to_sparse_distance_matrix executable (DIPHA-compatible command line; see --help).
#include <mpi.h>

#include <cstdio>
#include <exception>

#include "dipha/engine.hpp"
#include "dipha/mpi_defaults.hpp"

int main(int argc, char** argv) {
  dipha::mpi_defaults();  // fast start-up on one node; the user's MCA settings win
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    rc = dipha::run_full_to_sparse_cli(argc, argv, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "full_to_sparse_distance_matrix: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);  // a rank failed outside the collective error protocol
  }
  MPI_Finalize();
  return rc;
}
