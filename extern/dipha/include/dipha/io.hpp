// Readers and writers for every DIPHA file type, with strict validation.
//
// All files are flat little-endian binary: int64 words and IEEE-754 binary64 reals, word 0 is the
// magic number 8067171840, word 1 the type id (see the specification for the byte layouts).
// Every reader checks the header, the exact file size implied by the header, and the structural
// invariants of its type; a violation throws dipha::Error with a one-line message of the form
// "<path>: <problem>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dipha/common.hpp"

namespace dipha {

enum FileType : int64_t {
  kExplicitComplex = 0,       // weighted boundary (form 0) or coboundary (form 1) matrix
  kImageData = 1,             // d-dimensional scalar image, cubical lower-star filtration
  kPersistenceDiagram = 2,    // output records (dim, birth, death)
  kDistanceMatrix = 7,        // full n x n matrix (Vietoris-Rips)
  kSparseDistanceMatrix = 8,  // sparse symmetric distance graph (clique complex)
};

/// Human-readable name of a type id ("distance matrix", ...) or "unknown".
std::string file_type_name(int64_t type);

/// Full dense matrix, row-major: d[i * n + j]. Only the strict lower triangle (i > j) is used.
struct DistanceMatrix {
  int64_t n = 0;
  std::vector<double> d;
};

/// Sparse symmetric distance graph in CSR form: row i holds indices[indptr[i] .. indptr[i+1]),
/// strictly ascending, without i itself; the pattern is symmetric. The weight of {i, j} is the
/// value stored in row max(i, j).
struct SparseDistanceMatrix {
  int64_t n = 0;
  std::vector<int64_t> indptr;  // n + 1 entries
  std::vector<int64_t> indices;
  std::vector<double> values;
};

/// Explicit weighted cell complex. form 0: lists are boundaries, form 1: coboundaries.
/// Cell c's list is entries[offsets[c] .. offsets[c+1]) (offsets has N + 1 entries, last = M).
struct ExplicitComplex {
  int64_t form = 0;
  int64_t dim = 0;  // dimension of the complex (header word 4)
  std::vector<int64_t> dims;
  std::vector<double> values;
  std::vector<int64_t> offsets;
  std::vector<int64_t> entries;
  int64_t size() const { return static_cast<int64_t>(dims.size()); }
};

/// d-dimensional image; shape[0] = g_0 is the fastest axis (x). values.size() = prod(shape).
struct Image {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

/// Checks magic number and type id (and that the file can be opened) and returns the type id.
int64_t read_file_type(const std::string& path);

/// Short description of a validated file (used for dispatch and for the Python layer).
struct FileInfo {
  int64_t type = -1;
  int64_t form = -1;   // explicit complexes only
  int64_t count = 0;   // points (7, 8), cells (0), voxels (1), records (2)
  int64_t dim = 0;     // complex dimension (0), image dimension (1)
  int64_t entries = 0; // stored neighbours (8), (co)boundary entries (0)
};

/// Reads and fully validates any DIPHA file; throws dipha::Error naming the first problem.
FileInfo validate_file(const std::string& path);

DistanceMatrix read_distance_matrix(const std::string& path);
SparseDistanceMatrix read_sparse_distance_matrix(const std::string& path);
ExplicitComplex read_explicit_complex(const std::string& path);
Image read_image(const std::string& path);
Diagram read_diagram(const std::string& path);

/// Writers: each output is written atomically (a temporary file in the same directory, fsync,
/// rename); on failure the temporary file is removed and an existing file is left untouched.
void write_distance_matrix(const std::string& path, const DistanceMatrix& m);
void write_sparse_distance_matrix(const std::string& path, const SparseDistanceMatrix& m);
void write_explicit_complex(const std::string& path, const ExplicitComplex& c);
void write_image(const std::string& path, const Image& im);
void write_diagram_file(const std::string& path, const Diagram& records);

/// Throws unless `path` can be created or overwritten (parent directory exists and is writable,
/// the path is not a directory, an existing file is writable). Creates nothing.
void check_output_writable(const std::string& path);

/// Throws "<out>: the output file is the input file <in> (...)" when `out` names the file `in`:
/// the same path, the same canonical path (symbolic links resolved), or an existing `out` with
/// the device and inode of `in` (a hard link). Reads and creates nothing.
void check_not_same_file(const std::string& in, const std::string& out);

/// Physical memory of this machine in bytes (0 if unknown).
double physical_memory_bytes();

/// Throws "<what_path>: <what> has <count> cells and needs about <bytes> bytes, more than the
/// physical memory (<phys> bytes)" when bytes exceeds the physical memory.
void check_fits_in_memory(const std::string& what_path, const std::string& what, double count,
                          double bytes);

}  // namespace dipha
