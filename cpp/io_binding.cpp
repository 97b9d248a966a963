// Python glue for the DIPHA file formats and the engine's command lines.
// dipha::Error becomes ValueError carrying the same one-line text the executables print.
#include <mpi.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "comm.hpp"
#include "dipha/engine.hpp"
#include "dipha/io.hpp"

namespace py = pybind11;

namespace {

int run_cli(int (*fn)(int, char**, MPI_Comm), const std::vector<std::string>& argv, py::object comm) {
  topodnn::CommDup dup(comm, MPI_COMM_WORLD);
  MPI_Comm c = dup.get();
  std::vector<std::string> copy = argv;
  std::vector<char*> ptrs;
  for (auto& s : copy) ptrs.push_back(&s[0]);
  ptrs.push_back(nullptr);
  py::gil_scoped_release release;
  return fn(static_cast<int>(copy.size()), ptrs.data(), c);
}

}  // namespace

void register_io(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dipha::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("read_file_type", &dipha::read_file_type, py::arg("path"),
        "Type id of a DIPHA file (checks magic number and id); ValueError on a bad header.");

  m.def(
      "validate_file",
      [](const std::string& path) {
        dipha::FileInfo info;
        {
          py::gil_scoped_release release;
          info = dipha::validate_file(path);
        }
        py::dict d;
        d["type"] = info.type;
        d["form"] = info.form;
        d["count"] = info.count;
        d["dim"] = info.dim;
        d["entries"] = info.entries;
        return d;
      },
      py::arg("path"),
      "Fully validates a DIPHA file; returns {type, form, count, dim, entries}; ValueError "
      "'<path>: <problem>' on the first violation.");

  m.def(
      "dualize",
      [](const std::string& in, const std::string& out) {
        py::gil_scoped_release release;
        dipha::check_not_same_file(in, out);
        dipha::check_output_writable(out);
        dipha::dualize_file(in, out);
      },
      py::arg("input"), py::arg("output"), "Transpose an explicit complex file (boundary <-> coboundary form).");

  m.def(
      "full_to_sparse",
      [](double upper_value, const std::string& in, const std::string& out) {
        py::gil_scoped_release release;
        dipha::check_not_same_file(in, out);
        dipha::check_output_writable(out);
        dipha::full_to_sparse_file(upper_value, in, out);
      },
      py::arg("upper_value"), py::arg("input"), py::arg("output"),
      "Keep entries d <= 2 * upper_value of a full distance matrix file; write a sparse one.");

  m.def(
      "compute_diagram",
      [](const std::string& path, py::object upper_dim, bool dual, bool general, py::object comm, double max_work) {
        topodnn::CommDup dup(comm, MPI_COMM_WORLD);
        MPI_Comm c = dup.get();
        dipha::Options opt;
        if (!upper_dim.is_none()) {
          opt.upper_dim = upper_dim.cast<int64_t>();
          opt.upper_dim_given = true;
        }
        opt.dual = dual;
        opt.general = general;
        opt.max_work = max_work;
        dipha::Diagram d;
        {
          py::gil_scoped_release release;
          d = dipha::compute(path, opt, c);
        }
        py::array_t<int64_t> dims(static_cast<py::ssize_t>(d.size()));
        py::array_t<double> births(static_cast<py::ssize_t>(d.size()));
        py::array_t<double> deaths(static_cast<py::ssize_t>(d.size()));
        auto a = dims.mutable_unchecked<1>();
        auto b = births.mutable_unchecked<1>();
        auto e = deaths.mutable_unchecked<1>();
        for (size_t i = 0; i < d.size(); ++i) {
          a(i) = d[i].dim;
          b(i) = d[i].birth;
          e(i) = d[i].death;
        }
        return py::make_tuple(dims, births, deaths);
      },
      py::arg("path"), py::arg("upper_dim") = py::none(), py::arg("dual") = false, py::arg("general") = false,
      py::arg("comm") = py::none(), py::arg("max_work") = -1.0,
      "DIPHA diagram of an input file, collective over the communicator (an mpi4py Comm or its "
      "Fortran handle Comm.py2f(); default MPI_COMM_WORLD). Returns (dims, births, deaths) sorted as "
      "in a diagram file. max_work: as dipha's --max_work (types 7/8 without general; -1: the default "
      "limit, inf: none).");

  m.def(
      "run_dipha", [](const std::vector<std::string>& argv, py::object comm) { return run_cli(dipha::run_dipha_cli, argv, comm); },
      py::arg("argv"), py::arg("comm") = py::none(),
      "Runs the dipha command line (argv[0] is the program name) on all ranks of the "
      "communicator; returns the exit status.");
}
