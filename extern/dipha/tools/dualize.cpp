// The dualize executable (DIPHA-compatible command line; see --help).
#include <mpi.h>

#include <cstdio>
#include <exception>

#include "dipha/engine.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    rc = dipha::run_dualize_cli(argc, argv, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dualize: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);  // a rank failed outside the collective error protocol
  }
  MPI_Finalize();
  return rc;
}
