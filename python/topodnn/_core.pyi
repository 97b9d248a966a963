"""Type stub of the compiled extension ``topodnn._core`` (bindings in ``cpp/*_binding.cpp``).

Engine errors are raised as ``ValueError`` (``MemoryError`` when the Rips engine runs out of
memory). ``comm`` is an mpi4py communicator, its Fortran handle (``Comm.py2f()``) or ``None``.
MPI must be initialised (:func:`topodnn.init_mpi`) before any function here but
:func:`mpi_defaults` and :func:`mca_parameter` is called.
"""

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

_Records = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]

# io_binding.cpp: DIPHA files and command lines
def read_file_type(path: str) -> int:
    """Type id of a DIPHA file (magic number and id checked)."""

def validate_file(path: str) -> dict[str, int]:
    """Full validation: ``{type, form, count, dim, entries}``."""

def dualize(input: str, output: str) -> None:
    """Transpose an explicit complex file (boundary <-> coboundary form)."""

def full_to_sparse(upper_value: float, input: str, output: str) -> None:
    """Keep the entries d <= 2 * upper_value of a full distance matrix file, written sparse."""

def compute_diagram(
    path: str,
    upper_dim: Optional[int] = None,
    dual: bool = False,
    general: bool = False,
    comm: Any = None,
    max_work: float = -1.0,
) -> _Records:
    """DIPHA diagram records (dims, births, deaths) of an input file, collective over comm."""

def run_dipha(argv: Sequence[str], comm: Any = None) -> int:
    """The dipha command line (argv[0] is the program name); returns the exit status."""

# persistence_binding.cpp: the in-memory Vietoris-Rips engine (see topodnn.engine.persistence)
def _rips_persistence(
    dense: npt.NDArray[Any],
    indptr: Optional[npt.NDArray[np.int64]],
    indices: Optional[npt.NDArray[np.int64]],
    values: Optional[npt.NDArray[np.float64]],
    n: int,
    max_dim: int,
    threshold: float,
    comm: Any,
    verbose: bool,
    dense_lookup_bytes: int = -1,
    working_bytes: int = -1,
    max_work: float = -1.0,
    collapse: int = 0,
    n_threads: int = 1,
    long_column_bytes: int = -1,
    window_method: int = 0,
) -> list[npt.NDArray[np.float64]]:
    """(birth, death) pairs per dimension 0..max_dim, each a (k, 2) float64 array."""

def _rips_apparent_verdicts(
    dense: npt.NDArray[np.float64],
    dim: int,
    threshold: float,
    dense_lookup_bytes: int = -1,
    reference: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Test hook: (values, ranks, flags) of every simplex of dimension dim, as the listing finds them."""

def _collapse_edges(
    n: int,
    u: npt.NDArray[Any],
    v: npt.NDArray[Any],
    values: npt.NDArray[Any],
    rounds: int = 1,
    dense_lookup_bytes: int = -1,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float64], dict[str, Any]]:
    """Edge collapse of a filtered graph: (u, v, values, counts) of the remaining edges."""

def _dipha_diagram_from_matrix(
    dense: npt.NDArray[Any],
    indptr: Optional[npt.NDArray[np.int64]],
    indices: Optional[npt.NDArray[np.int64]],
    values: Optional[npt.NDArray[np.float64]],
    n: int,
    upper_dim: int,
    comm: Any,
) -> _Records:
    """DIPHA diagram records (dims, births, deaths) of a full or sparse distance matrix."""

# mpi_binding.cpp: MPI start-up (see topodnn._mpi)
def mpi_defaults() -> tuple[bool, str]:
    """Apply the start-up defaults before MPI_Init; ``(applied, reason)``."""

def mca_parameter(name: str) -> Optional[str]:
    """Current value of an Open MPI MCA parameter (through MPI_T), or None if there is none."""

# validation_binding.cpp: one pass over a canonical CSR distance matrix (topodnn.engine)
def _csr_summary(
    indptr: npt.NDArray[Any], indices: npt.NDArray[Any], data: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """nan, negative (off the diagonal), diagonal (stored), symmetric_pattern, max_asymmetry
    (equal infinities: 0) and scale (largest finite |entry|)."""

# persistence_binding.cpp: test hook of the reduction's sort of entries
def _rips_sort_entries(
    values: npt.NDArray[np.float64], ranks: npt.NDArray[np.int64], min_radix: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], bool]:
    """The entries sorted by (value, rank); whether the radix sort took them."""
