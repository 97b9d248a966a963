// Cell complexes of the general engine: explicit, cubical (lower-star of an image), and
// Vietoris-Rips / clique complexes enumerated explicitly up to a dimension.
//
// Cell ids follow the DIPHA conventions: explicit ids verbatim; cubical cell (t_0, ..., t_{d-1})
// on the (2g_i - 1)-grid has id t_0 + R_0 (t_1 + R_1 (...)); Rips simplices are numbered
// dimension-major, colexicographically within a dimension (for the full complex this is the
// combinatorial number system; for a clique complex the rank among present simplices).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dipha/io.hpp"

namespace dipha {

class Complex {
 public:
  virtual ~Complex() = default;
  virtual int64_t num_cells() const = 0;     // ids 0 .. num_cells() - 1, all dimensions
  virtual int64_t complex_dim() const = 0;   // D_c
  virtual int64_t top_dim() const = 0;       // largest dimension of a cell present
  virtual int dim(int64_t id) const = 0;
  virtual double value(int64_t id) const = 0;
  virtual double max_value() const = 0;      // over all cells of the complex
  virtual bool has_boundary() const { return true; }
  virtual bool has_coboundary() const { return true; }
  /// Appends the ids of the codimension-1 faces (cofaces) of `id` to `out` (not cleared).
  virtual void boundary(int64_t id, std::vector<int64_t>& out) const = 0;
  virtual void coboundary(int64_t id, std::vector<int64_t>& out) const = 0;
};

/// `path` is used in error messages only.
std::unique_ptr<Complex> make_explicit_complex(ExplicitComplex c);
std::unique_ptr<Complex> make_cubical_complex(Image im, const std::string& path);
std::unique_ptr<Complex> make_rips_complex(DistanceMatrix m, int64_t upper_dim, const std::string& path);
std::unique_ptr<Complex> make_rips_complex(SparseDistanceMatrix m, int64_t upper_dim, const std::string& path);

}  // namespace dipha
