#include "dipha/rips.hpp"
namespace dipha { namespace rips {
Pairs persistence(const DistanceView&, const Options&, MPI_Comm) { throw Error("rips::persistence: not implemented yet"); }
Diagram dipha_diagram(const DistanceView&, int64_t, MPI_Comm, bool) { throw Error("rips::dipha_diagram: not implemented yet"); }
}}
