// Start-up defaults for MPI (see dipha/mpi_defaults.hpp for the rules and why).
#include "dipha/mpi_defaults.hpp"

#include <mpi.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <vector>

extern char** environ;

namespace dipha {
namespace {

constexpr const char* kParameter = "btl";
constexpr const char* kValue = "^ofi";

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

// MPI_T is initialised once and never finalised (see the header).
bool mpit_ready() {
  static const bool ready = [] {
    int provided = 0;
    return MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) == MPI_SUCCESS;
  }();
  return ready;
}

// Whether the launcher's environment says that every rank of this job runs on this node; empty
// `why` when it does, else the phrase reported by mpi_defaults().
bool on_one_node(std::string& why) {
  if (const char* size = env("OMPI_COMM_WORLD_SIZE")) {  // Open MPI's mpirun / mpiexec (PRRTE)
    const char* local = env("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (local != nullptr && std::strcmp(local, size) == 0) {
      why = std::string("all ") + size + " ranks on this node";
      return true;
    }
    why = std::string("the job spans several nodes (OMPI_COMM_WORLD_LOCAL_SIZE=") +
          (local ? local : "unset") + ", OMPI_COMM_WORLD_SIZE=" + size + ")";
    return false;
  }
  if (env("PMIX_RANK") != nullptr || env("PMI_RANK") != nullptr || env("PMI_SIZE") != nullptr) {
    if (const char* nodes = env("SLURM_STEP_NUM_NODES")) {  // srun
      if (std::strcmp(nodes, "1") == 0) {
        why = "srun step on one node";
        return true;
      }
      why = std::string("the srun step spans ") + nodes + " nodes";
      return false;
    }
    why = "started by a launcher that does not tell whether the job is on one node";
    return false;
  }
  why = "singleton";
  return true;
}

// An OMPI_MCA_* variable that tunes OFI, or nullptr.
const char* ofi_variable() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (std::strncmp(*e, "OMPI_MCA_", 9) != 0 || eq == nullptr) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.find("ofi") != std::string::npos) return *e;
  }
  return nullptr;
}

}  // namespace

std::optional<std::string> mca_parameter(const std::string& name) {
  if (!mpit_ready()) return std::nullopt;
  int index = 0;
  if (MPI_T_cvar_get_index(name.c_str(), &index) != MPI_SUCCESS) return std::nullopt;
  MPI_Datatype type;
  int verbosity = 0, bind = 0, scope = 0;
  int name_len = 0, desc_len = 0;
  if (MPI_T_cvar_get_info(index, nullptr, &name_len, &verbosity, &type, nullptr, nullptr, &desc_len, &bind,
                          &scope) != MPI_SUCCESS) {
    return std::nullopt;
  }
  MPI_T_cvar_handle handle;
  int count = 0;
  if (MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) != MPI_SUCCESS) return std::nullopt;
  std::optional<std::string> out;
  if (type == MPI_CHAR) {
    std::vector<char> buf(static_cast<size_t>(count) + 1, '\0');
    if (MPI_T_cvar_read(handle, buf.data()) == MPI_SUCCESS) out = std::string(buf.data());
  } else if (type == MPI_INT) {
    int v = 0;
    if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out = std::to_string(v);
  } else if (type == MPI_UNSIGNED) {
    unsigned v = 0;
    if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out = std::to_string(v);
  } else if (type == MPI_LONG || type == MPI_LONG_LONG) {
    long long v = 0;
    if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out = std::to_string(v);
  } else if (type == MPI_UNSIGNED_LONG || type == MPI_UNSIGNED_LONG_LONG) {
    unsigned long long v = 0;
    if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out = std::to_string(v);
  } else if (type == MPI_DOUBLE) {
    double v = 0;
    if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out = std::to_string(v);
  }
  MPI_T_cvar_handle_free(&handle);
  return out;
}

MpiDefaults mpi_defaults() {
  MpiDefaults d;
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised || finalised) {
    d.reason = "MPI is already initialised";
    return d;
  }
  std::string where;
  if (!on_one_node(where)) {
    d.reason = where;
    return d;
  }
  if (const char* var = ofi_variable()) {
    d.reason = std::string("OFI is tuned by the user (") + var + ")";
    return d;
  }
  if (!mpit_ready()) {
    d.reason = "MPI_T could not be initialised";
    return d;
  }
  int index = 0;
  if (MPI_T_cvar_get_index(kParameter, &index) != MPI_SUCCESS) {
    d.reason = "the MPI library has no btl parameter (not Open MPI)";
    return d;
  }
  MPI_T_cvar_handle handle;
  int count = 0;
  if (MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) != MPI_SUCCESS) {
    d.reason = "MPI_T could not open the btl parameter";
    return d;
  }
  std::vector<char> current(static_cast<size_t>(count) + 1, '\0');
  if (MPI_T_cvar_read(handle, current.data()) != MPI_SUCCESS) {
    d.reason = "MPI_T could not read the btl parameter";
  } else if (current[0] != '\0') {
    d.reason = std::string("btl is set by the user (\"") + current.data() + "\")";
  } else if (static_cast<int>(std::strlen(kValue)) >= count ||
             MPI_T_cvar_write(handle, kValue) != MPI_SUCCESS) {
    d.reason = "MPI_T could not write the btl parameter";
  } else {
    d.applied = true;
    d.reason = where;
  }
  MPI_T_cvar_handle_free(&handle);
  return d;
}

}  // namespace dipha
