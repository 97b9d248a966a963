"""Readers and writers for DIPHA binary files.

All DIPHA files are flat little-endian binary made of 64-bit words: ``int64`` ('<i8') and
IEEE-754 ``float64`` ('<f8'). Word 0 is the magic number 8067171840, word 1 the type id:

=====  ==========================================================================
 id    content
=====  ==========================================================================
 0     explicit weighted cell complex (form 0 boundary / form 1 coboundary lists)
 1     image (cubical lower-star filtration); axis 0 of the file is the fastest
 2     persistence diagram: records ``(dim: int64, birth: f64, death: f64)``
 7     full distance matrix (Vietoris-Rips); only the strict lower triangle is used
 8     sparse symmetric distance matrix (clique complex)
=====  ==========================================================================

Every reader first validates the file with the compiled engine, so a bad file raises
:class:`ValueError` with exactly the one-line text ``"<path>: <problem>"`` that the ``dipha``
executable prints after ``"dipha: error: "``. Writers check their arguments, write the file and
validate the result the same way before it takes its name: files are written atomically
(:func:`topodnn.results.atomic_write`), so an invalid or interrupted write leaves what was there.

Conventions of diagrams: filtration values are in the units of the input (for distance matrices
DIPHA uses *half* distances). A finite pair has ``dim >= 0``; an essential class of homological
dimension ``q`` is stored with ``dim = -q-1`` and death equal to the largest filtration value of
the complex. :func:`read_diagram` reports essential classes in their dimension with death
``inf``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np

MAGIC = 8067171840
EXPLICIT_COMPLEX = 0
IMAGE_DATA = 1
PERSISTENCE_DIAGRAM = 2
DISTANCE_MATRIX = 7
SPARSE_DISTANCE_MATRIX = 8

RECORD_DTYPE = np.dtype([("dim", "<i8"), ("birth", "<f8"), ("death", "<f8")])

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "MAGIC",
    "RECORD_DTYPE",
    "Diagram",
    "ExplicitComplex",
    "file_type",
    "validate_file",
    "read_diagram",
    "records_from_pairs",
    "write_diagram",
    "read_distance_matrix",
    "write_distance_matrix",
    "read_sparse_distance_matrix",
    "write_sparse_distance_matrix",
    "read_explicit_complex",
    "write_explicit_complex",
    "read_image",
    "write_image",
]


def _core():
    # MPI must be initialised before the extension (which links libmpi) is used.
    from ._mpi import MPI  # noqa: F401  (start-up defaults: see _mpi)

    from topodnn import _core as core

    return core


def validate_file(path: PathLike) -> dict:
    """Fully validate a DIPHA file.

    Parameters
    ----------
    path : str or os.PathLike
        File to check.

    Returns
    -------
    dict
        ``{"type", "form", "count", "dim", "entries"}``: type id, explicit-complex form (-1
        otherwise), number of points / cells / voxels / records, complex or image dimension,
        number of stored neighbours or (co)boundary entries.

    Raises
    ------
    ValueError
        ``"<path>: <problem>"`` for the first violation found (same text as the executables).
    """
    return dict(_core().validate_file(os.fspath(path)))


def file_type(path: PathLike) -> int:
    """Type id of a DIPHA file (0, 1, 2, 7 or 8) after checking its magic number and id.

    Raises
    ------
    ValueError
        If the file is missing, too short, not a DIPHA file or of an unknown/reserved type.
    """
    return int(_core().read_file_type(os.fspath(path)))


def _expect(path: PathLike, want: int) -> dict:
    info = validate_file(path)
    if info["type"] != want:
        raise ValueError(
            f"{os.fspath(path)}: is a file of type {info['type']}, expected type {want}"
        )
    return info


def _words(path: PathLike, dtype: str, offset_words: int, count: int) -> np.ndarray:
    return np.fromfile(os.fspath(path), dtype=dtype, count=count, offset=8 * offset_words)


def _write_validated(path: PathLike, chunks: list) -> None:
    """Write ``chunks`` to ``path`` atomically, validating the file before it takes the name.

    An invalid result raises the validator's ``"<path>: <problem>"`` and leaves whatever was at
    ``path`` before untouched (see :func:`topodnn.results.atomic_write`).
    """
    from .results import atomic_write

    p = os.fspath(path)

    def write(handle) -> None:
        for c in chunks:
            handle.write(np.ascontiguousarray(c).tobytes())

    def verify(tmp) -> None:
        try:
            validate_file(tmp)
        except ValueError as exc:
            raise ValueError(str(exc).replace(os.fspath(tmp), p)) from None

    atomic_write(p, write, verify=verify)


def _header(type_id: int, *words: int) -> np.ndarray:
    return np.array([MAGIC, type_id, *words], dtype="<i8")


# ------------------------------------------------------------------------------------------
# Diagrams


@dataclass
class Diagram:
    """A DIPHA persistence diagram.

    Attributes
    ----------
    records : numpy.ndarray
        Raw records, structured dtype ``[('dim', '<i8'), ('birth', '<f8'), ('death', '<f8')]``,
        in file order (sorted by ``(dim, birth, death)``); essential classes have ``dim = -q-1``
        and death = the largest filtration value of the complex.
    pairs : dict of int to numpy.ndarray
        Homological dimension ``q`` -> ``(k, 2)`` float64 array of ``(birth, death)``, finite
        pairs first, then essential classes with death ``inf``.
    """

    records: np.ndarray
    pairs: dict = field(default_factory=dict)

    def __getitem__(self, q: int) -> np.ndarray:
        """Pairs of homological dimension ``q`` (empty ``(0, 2)`` array if none)."""
        return self.pairs.get(q, np.empty((0, 2), dtype=np.float64))

    @property
    def max_dim(self) -> int:
        """Largest homological dimension with at least one pair (-1 if empty)."""
        return max(self.pairs, default=-1)


def _pairs_from_records(rec: np.ndarray) -> dict:
    dims = rec["dim"]
    q_all = np.where(dims >= 0, dims, -dims - 1)
    out = {}
    for q in np.unique(q_all):
        fin = rec[dims == q]
        ess = rec[dims == -q - 1]
        arr = np.empty((len(fin) + len(ess), 2), dtype=np.float64)
        arr[: len(fin), 0] = fin["birth"]
        arr[: len(fin), 1] = fin["death"]
        arr[len(fin) :, 0] = ess["birth"]
        arr[len(fin) :, 1] = np.inf
        out[int(q)] = arr
    return out


def records_from_pairs(
    diagrams: Union[Sequence[np.ndarray], Mapping[int, np.ndarray]], essential_death: float
) -> np.ndarray:
    """DIPHA type-2 records of per-dimension persistence pairs: the one builder in Python.

    Parameters
    ----------
    diagrams : sequence or mapping of (k, 2) arrays
        ``diagrams[q]`` = the ``(birth, death)`` pairs of H_q (a list indexed by dimension, or a
        mapping ``q -> pairs``); ``death = inf`` marks an essential class.
    essential_death : float
        Death stored for essential classes. DIPHA stores the largest filtration value of the
        complex (for a distance matrix: half its largest distance within the threshold).

    Returns
    -------
    numpy.ndarray
        Structured array of :data:`RECORD_DTYPE`, sorted by ``(dim, birth, death)``: a finite
        pair of H_q as ``(q, birth, death)``, an essential class of H_q as
        ``(-q-1, birth, essential_death)``. Every pair given is kept (DIPHA itself writes no pair
        of zero persistence; the engine returns none either).

    Notes
    -----
    The C++ engine builds the same records for the ``dipha`` executable: for a distance matrix
    ``D``, ``records_from_pairs(persistence(D / 2, max_dim=u - 1), D.max() / 2)`` written with
    :func:`write_diagram` equals byte for byte ``dipha --upper_dim u`` on ``D``
    (``tests/test_io.py`` checks it).
    """
    items = sorted(diagrams.items()) if isinstance(diagrams, Mapping) else list(enumerate(diagrams))
    parts = []
    for q, pairs in items:
        q = int(q)
        if q < 0:
            raise ValueError(f"homological dimension must be >= 0, got {q}")
        a = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        part = np.empty(len(a), dtype=RECORD_DTYPE)
        essential = np.isinf(a[:, 1])
        part["dim"] = np.where(essential, -q - 1, q)
        part["birth"] = a[:, 0]
        part["death"] = np.where(essential, float(essential_death), a[:, 1])
        parts.append(part)
    rec = np.concatenate(parts) if parts else np.empty(0, dtype=RECORD_DTYPE)
    return np.sort(rec, order=["dim", "birth", "death"])


def read_diagram(path: PathLike) -> Diagram:
    """Read a persistence diagram file (type 2).

    Returns
    -------
    Diagram
        Raw records and per-dimension ``(k, 2)`` arrays (essential deaths as ``inf``).
    """
    info = _expect(path, PERSISTENCE_DIAGRAM)
    rec = np.fromfile(os.fspath(path), dtype=RECORD_DTYPE, count=info["count"], offset=24)
    return Diagram(records=rec, pairs=_pairs_from_records(rec))


def write_diagram(
    path: PathLike,
    diagram: Union[Diagram, np.ndarray, Mapping[int, np.ndarray]],
    max_value: Optional[float] = None,
) -> None:
    """Write a persistence diagram file (type 2), records sorted by ``(dim, birth, death)``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (created or overwritten).
    diagram : Diagram, structured array, (p, 3) array or mapping
        Raw records (``dim, birth, death``), or a mapping ``q -> (k, 2)`` array of
        ``(birth, death)`` where ``death = inf`` marks an essential class.
    max_value : float, optional
        Death value stored for essential classes given as a mapping (DIPHA stores the largest
        filtration value of the complex). Default: the largest finite birth/death given.
    """
    if isinstance(diagram, Diagram):
        rec = diagram.records
    elif isinstance(diagram, Mapping):
        if max_value is None:
            finite = [np.asarray(a, dtype=np.float64).ravel() for a in diagram.values()]
            finite = np.concatenate(finite) if finite else np.zeros(0)
            finite = finite[np.isfinite(finite)]
            max_value = float(finite.max()) if finite.size else 0.0
        rec = records_from_pairs(diagram, max_value)
    else:
        arr = np.asarray(diagram)
        if arr.dtype.names is not None:
            rec = arr.astype(RECORD_DTYPE)
        else:
            a = np.asarray(arr, dtype=np.float64).reshape(-1, 3)
            rec = np.empty(len(a), dtype=RECORD_DTYPE)
            rec["dim"] = a[:, 0].astype(np.int64)
            rec["birth"] = a[:, 1]
            rec["death"] = a[:, 2]
    rec = np.sort(np.asarray(rec, dtype=RECORD_DTYPE), order=["dim", "birth", "death"])
    _write_validated(path, [_header(PERSISTENCE_DIAGRAM, len(rec)), rec])


# ------------------------------------------------------------------------------------------
# Distance matrices


def read_distance_matrix(path: PathLike, *, raw: bool = False) -> np.ndarray:
    """Read a full distance matrix file (type 7) as DIPHA interprets it.

    DIPHA reads only the strict lower triangle ``D[i, j], i > j`` of the stored row-major matrix
    (the diagonal and the upper triangle are ignored). The array returned is that triangle
    mirrored, with a zero diagonal: symmetric, and it gives the same diagrams as ``dipha`` on the
    file (as :func:`read_sparse_distance_matrix` does for type 8).

    Parameters
    ----------
    path : str or os.PathLike
        File to read (validated first).
    raw : bool, default False
        True returns the ``(n, n)`` values exactly as stored instead.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64 array.
    """
    info = _expect(path, DISTANCE_MATRIX)
    n = info["count"]
    stored = _words(path, "<f8", 3, n * n).reshape(n, n)
    if raw:
        return stored
    lower = np.tril(stored, -1)
    return lower + lower.T


def write_distance_matrix(path: PathLike, D: np.ndarray) -> None:
    """Write a square matrix as a full distance matrix file (type 7), row-major.

    DIPHA reads only the strict lower triangle ``D[i, j], i > j``; pass a symmetric matrix.
    """
    A = np.asarray(D, dtype="<f8")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{os.fspath(path)}: distance matrix must be square, got shape {A.shape}")
    _write_validated(path, [_header(DISTANCE_MATRIX, A.shape[0]), A])


def read_sparse_distance_matrix(path: PathLike, *, raw: bool = False):
    """Read a sparse distance matrix file (type 8) as DIPHA interprets it.

    A type-8 file stores each edge {i, j} twice, in row i and in row j, and the two stored
    values may differ; DIPHA takes the weight of {i, j} from row ``max(i, j)`` (the strict lower
    triangle, as for a full matrix). The matrix returned holds that value in both entries, so
    it is symmetric and gives the same diagrams as ``dipha`` on the file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read (validated first: the pattern of a valid file is symmetric).
    raw : bool, default False
        True returns the values exactly as stored in each row instead (then ``M[i, j]`` with
        ``i < j`` is what row ``i`` stores, which DIPHA ignores).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, n)`` float64 matrix whose stored entries are the edges (explicit zeros are kept: a
        stored zero is an edge of length 0). Rows are sorted; the pattern is symmetric, and so
        are the values unless ``raw``.
    """
    import scipy.sparse as sp

    info = _expect(path, SPARSE_DISTANCE_MATRIX)
    n, E = info["count"], info["entries"]
    counts = _words(path, "<i8", 3, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = _words(path, "<i8", 3 + n, E)
    values = _words(path, "<f8", 3 + n + E, E)
    M = sp.csr_matrix((values, indices, indptr), shape=(n, n))
    if raw:
        return M
    # rows strictly ascending and the pattern symmetric (validated): the transpose has the same
    # layout, and its value at the position of (i, j) is the one stored in row j
    T = M.transpose().tocsr()
    T.sort_indices()
    row_of = np.repeat(np.arange(n, dtype=np.int64), counts)
    M.data = np.where(indices < row_of, values, T.data)  # the value of row max(i, j)
    return M


def write_sparse_distance_matrix(path: PathLike, csr) -> None:
    """Write a sparse symmetric distance matrix (type 8).

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    csr : scipy.sparse matrix
        Square matrix; every stored off-diagonal entry is an edge (stored zeros included).
        The pattern must be symmetric; diagonal entries are not allowed. Rows are written with
        ascending column indices; DIPHA takes the weight of ``{i, j}`` from row ``max(i, j)``.
    """
    import scipy.sparse as sp

    if not sp.issparse(csr):
        raise ValueError(f"{os.fspath(path)}: expected a scipy.sparse matrix, got {type(csr).__name__}")
    M = sp.csr_matrix(csr, dtype=np.float64, copy=True)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"{os.fspath(path)}: distance matrix must be square, got shape {M.shape}")
    M.sum_duplicates()
    M.sort_indices()
    n = M.shape[0]
    counts = np.diff(M.indptr).astype("<i8")
    _write_validated(
        path,
        [
            _header(SPARSE_DISTANCE_MATRIX, n),
            counts,
            M.indices.astype("<i8"),
            M.data.astype("<f8"),
        ],
    )


# ------------------------------------------------------------------------------------------
# Explicit complexes


@dataclass
class ExplicitComplex:
    """An explicit weighted cell complex (DIPHA type 0).

    Attributes
    ----------
    form : int
        0: ``entries`` lists boundaries; 1: coboundaries.
    dim : int
        Dimension of the complex (largest cell dimension).
    dims : numpy.ndarray
        ``(N,)`` int64 cell dimensions.
    values : numpy.ndarray
        ``(N,)`` float64 filtration values (faces must not exceed their cofaces).
    offsets : numpy.ndarray
        ``(N + 1,)`` int64; cell ``c``'s list is ``entries[offsets[c]:offsets[c + 1]]``.
    entries : numpy.ndarray
        ``(M,)`` int64 cell ids.
    """

    form: int
    dim: int
    dims: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    entries: np.ndarray

    def cell_list(self, c: int) -> np.ndarray:
        """(Co)boundary of cell ``c``."""
        return self.entries[self.offsets[c] : self.offsets[c + 1]]


def read_explicit_complex(path: PathLike) -> ExplicitComplex:
    """Read an explicit complex file (type 0)."""
    info = _expect(path, EXPLICIT_COMPLEX)
    N, M = info["count"], info["entries"]
    return ExplicitComplex(
        form=int(info["form"]),
        dim=int(info["dim"]),
        dims=_words(path, "<i8", 5, N),
        values=_words(path, "<f8", 5 + N, N),
        offsets=_words(path, "<i8", 5 + 2 * N, N + 1),
        entries=_words(path, "<i8", 6 + 3 * N, M),
    )


def write_explicit_complex(path: PathLike, cx: ExplicitComplex) -> None:
    """Write an explicit complex file (type 0); validated after writing."""
    dims = np.asarray(cx.dims, dtype="<i8")
    values = np.asarray(cx.values, dtype="<f8")
    offsets = np.asarray(cx.offsets, dtype="<i8")
    entries = np.asarray(cx.entries, dtype="<i8")
    N = len(dims)
    if values.shape != (N,) or offsets.shape != (N + 1,) or offsets[-1] != len(entries):
        raise ValueError(
            f"{os.fspath(path)}: inconsistent explicit complex: {N} dims, {values.size} values, "
            f"{offsets.size} offsets (need N + 1 ending at {len(entries)} entries)"
        )
    head = _header(EXPLICIT_COMPLEX, int(cx.form), N, int(cx.dim))
    _write_validated(path, [head, dims, values, offsets, entries])


# ------------------------------------------------------------------------------------------
# Images


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file (type 1) as a C-ordered array of shape ``reversed(g)``.

    The file's axis 0 (resolution ``g_0``) is the fastest, so it becomes the *last* numpy axis.
    """
    info = _expect(path, IMAGE_DATA)
    d = info["dim"]
    g = _words(path, "<i8", 4, d)
    data = _words(path, "<f8", 4 + d, info["count"])
    return data.reshape(tuple(int(x) for x in g[::-1]))


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write an array as an image file (type 1): ``g = reversed(shape)``, data in C order."""
    a = np.asarray(image, dtype="<f8")
    if a.ndim == 0 or a.size == 0:
        raise ValueError(f"{os.fspath(path)}: image must have at least one axis and one voxel, got shape {a.shape}")
    g = np.array(a.shape[::-1], dtype="<i8")
    _write_validated(path, [_header(IMAGE_DATA, a.size, a.ndim), g, a.ravel(order="C")])
