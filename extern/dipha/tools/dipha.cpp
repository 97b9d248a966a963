// The dipha executable (DIPHA-compatible command line; see --help).
#include <mpi.h>

#include <cstdio>
#include <exception>

#include "dipha/engine.hpp"
#include "dipha/mpi_defaults.hpp"

int main(int argc, char** argv) {
  dipha::mpi_defaults();  // fast start-up on one node; the user's MCA settings win
  // --threads: worker threads never call MPI, the main thread does
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rc = 1;
  try {
    rc = dipha::run_dipha_cli(argc, argv, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dipha: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);  // a rank failed outside the collective error protocol
  }
  MPI_Finalize();
  return rc;
}
