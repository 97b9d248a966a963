// Python glue for MPI's start-up defaults (extern/dipha/src/mpi_defaults.cpp), used by
// topodnn._mpi before mpi4py initialises MPI.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dipha/mpi_defaults.hpp"

namespace py = pybind11;

void register_mpi(py::module_& m) {
  m.def(
      "mpi_defaults",
      [] {
        dipha::MpiDefaults d = dipha::mpi_defaults();
        return py::make_tuple(d.applied, d.reason);
      },
      "Apply the start-up defaults (btl = ^ofi on one node, unless set by the user) before MPI_Init; "
      "return (applied, reason).");
  m.def("mca_parameter", &dipha::mca_parameter, py::arg("name"),
        "Current value of an Open MPI MCA parameter (through MPI_T) as text, or None if there is none.");
}
