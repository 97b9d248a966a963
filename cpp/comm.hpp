// The communicator a Python caller hands to the engine: an mpi4py Comm (through its Fortran
// handle, Comm.py2f(), so no mpi4py headers are needed at build time), that integer handle, or
// None for a default. The engine always runs on a private duplicate, freed when the call returns.
#pragma once

#include <mpi.h>
#include <pybind11/pybind11.h>

#include <string>

namespace topodnn {

class CommDup {
 public:
  CommDup(pybind11::object handle, MPI_Comm fallback) {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
      throw pybind11::value_error("MPI is not initialized: import mpi4py.MPI before calling the engine");
    }
    MPI_Comm base = fallback;
    if (!handle.is_none()) {
      if (pybind11::hasattr(handle, "py2f")) handle = handle.attr("py2f")();
      if (!pybind11::isinstance<pybind11::int_>(handle)) {
        throw pybind11::value_error("comm: expected an mpi4py communicator (or None), got " +
                                    std::string(pybind11::str(pybind11::type::handle_of(handle).attr("__name__"))));
      }
      base = MPI_Comm_f2c(static_cast<MPI_Fint>(handle.cast<long long>()));
      if (base == MPI_COMM_NULL) throw pybind11::value_error("comm: the communicator is MPI.COMM_NULL");
    }
    if (MPI_Comm_dup(base, &comm_) != MPI_SUCCESS) throw pybind11::value_error("comm: MPI_Comm_dup failed");
  }
  ~CommDup() { MPI_Comm_free(&comm_); }
  CommDup(const CommDup&) = delete;
  CommDup& operator=(const CommDup&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace topodnn
