// The topodnn._core extension: thin glue between Python and the engine in extern/dipha.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_io(py::module_& m);           // io_binding.cpp
void register_persistence(py::module_& m);  // persistence_binding.cpp
void register_mpi(py::module_& m);          // mpi_binding.cpp
void register_validation(py::module_& m);   // validation_binding.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "Compiled core of topodnn (DIPHA-compatible distributed persistence engine).";
  register_io(m);
  register_persistence(m);
  register_mpi(m);
  register_validation(m);
}
