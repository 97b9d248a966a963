// The general distributed engine: filtration, pipelined Z/2 reduction, diagram assembly.
#include "dipha/engine.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "dipha/complex.hpp"
#include "dipha/io.hpp"
#include "dipha/mpi_layer.hpp"
#include "dipha/rips.hpp"

namespace dipha {

namespace {

constexpr int kTagColumns = 7311;

// Out of memory in a phase of the general path.
mpi::OomMessage dipha_oom(const std::string& input_path) {
  return [input_path](const mpi::Phase& ph) {
    return input_path + ": out of memory while " + ph.what + " (peak " +
           std::to_string(static_cast<long>(mpi::peak_rss_mib())) +
           " MiB on this rank); lower --upper_dim, use a sparse input with a smaller upper value, or more ranks";
  };
}

// Size and 64-bit hash of a file's bytes (read in chunks of 8 MiB).
uint64_t file_hash(const std::string& path, int64_t* bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open for reading: " + std::strerror(errno));
  mpi::Hasher h;
  std::vector<unsigned char> buf(size_t{8} << 20);
  int64_t total = 0;
  for (;;) {
    size_t got = std::fread(buf.data(), 1, buf.size(), f);
    h.update(buf.data(), got);
    total += static_cast<int64_t>(got);
    if (got < buf.size()) break;
  }
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw Error(path + ": read error");
  *bytes = total;
  return h.digest();
}

// Collects per-phase statistics (only when requested).
class PhaseTimer {
 public:
  PhaseTimer(MPI_Comm comm, RunStats* stats) : comm_(comm), stats_(stats) {
    if (stats_) {
      MPI_Barrier(comm_);
      t0_ = MPI_Wtime();
    }
  }
  int64_t* received() { return &received_; }
  void end(const std::string& name) {
    if (!stats_) return;
    MPI_Barrier(comm_);
    double t = MPI_Wtime() - t0_;
    double loc[2] = {t, mpi::peak_rss_mib()}, mx[2];
    MPI_Allreduce(loc, mx, 2, MPI_DOUBLE, MPI_MAX, comm_);
    int64_t rec = 0;
    MPI_Allreduce(&received_, &rec, 1, MPI_INT64_T, MPI_SUM, comm_);
    stats_->phases.push_back({name, mx[0], mx[1], static_cast<double>(rec) / 1e6});
    received_ = 0;
    t0_ = MPI_Wtime();
  }

 private:
  MPI_Comm comm_;
  RunStats* stats_;
  double t0_ = 0;
  int64_t received_ = 0;
};

// Contiguous blocks of filtration positions, one per rank. The boundaries split the *columns*
// (cells that are reduced in some pass) evenly rather than all positions: e.g. in dual Rips runs
// the top-dimensional cells, which are never columns, crowd the low positions, and an even split
// of positions would leave nearly all reduction work to one rank. Any contiguous split gives the
// same result; trailing ranks may be empty.
struct Block {
  int64_t begin, end;
};
Block block_of(const std::vector<char>& is_column, int P, int r) {
  const int64_t L = static_cast<int64_t>(is_column.size());
  int64_t total = 0;
  for (char c : is_column) total += c;
  if (total == 0) {  // nothing to reduce: plain even split of positions
    int64_t w = std::max<int64_t>(1, (L + P - 1) / P);
    return {std::min(w * r, L), std::min(w * (r + 1), L)};
  }
  // rank r owns the positions whose column rank (count of columns before them) is in
  // [ceil(total*r/P), ceil(total*(r+1)/P)); non-column positions go with the next column.
  auto boundary = [&](int rr) -> int64_t {
    if (rr <= 0) return 0;
    if (rr >= P) return L;
    int64_t target = (total * rr + P - 1) / P;  // first column index of rank rr
    int64_t seen = 0;
    for (int64_t i = 0; i < L; ++i) {
      if (is_column[i]) {
        if (seen == target) return i;
        ++seen;
      }
    }
    return L;
  };
  return {boundary(r), boundary(r + 1)};
}

// Reduced columns stored by the rank owning their pivot (append-only).
class ColumnStore {
 public:
  explicit ColumnStore(Block blk) : blk_(blk), slot_(static_cast<size_t>(blk.end - blk.begin), -1) {}
  bool owns_pivot(int64_t p) const { return p >= blk_.begin; }
  int64_t slot(int64_t p) const { return slot_[p - blk_.begin]; }
  void store(int64_t column_pos, const std::vector<int64_t>& col) {
    int64_t p = col.back();
    slot_[p - blk_.begin] = static_cast<int64_t>(start_.size());
    start_.push_back(static_cast<int64_t>(pool_.size()));
    len_.push_back(static_cast<int64_t>(col.size()));
    column_.push_back(column_pos);
    pool_.insert(pool_.end(), col.begin(), col.end());
  }
  // col <- col xor stored column s (both ascending).
  void add_to(int64_t s, std::vector<int64_t>& col, std::vector<int64_t>& tmp) const {
    const int64_t* a = pool_.data() + start_[s];
    const int64_t* ae = a + len_[s];
    const int64_t* b = col.data();
    const int64_t* be = b + col.size();
    tmp.resize(col.size() + static_cast<size_t>(len_[s]));
    int64_t* o = tmp.data();
    while (a != ae && b != be) {
      int64_t x = *a, y = *b;
      if (x < y) {
        *o++ = x;
        ++a;
      } else if (y < x) {
        *o++ = y;
        ++b;
      } else {
        ++a;
        ++b;
      }
    }
    o = std::copy(a, ae, o);
    o = std::copy(b, be, o);
    tmp.resize(static_cast<size_t>(o - tmp.data()));
    col.swap(tmp);
  }
  // (pivot position, column position) of every stored column.
  std::vector<int64_t> pairs() const {
    std::vector<int64_t> out;
    out.reserve(2 * start_.size());
    for (size_t s = 0; s < start_.size(); ++s) {
      out.push_back(pool_[start_[s] + len_[s] - 1]);
      out.push_back(column_[s]);
    }
    return out;
  }

 private:
  Block blk_;
  std::vector<int64_t> slot_;
  std::vector<int64_t> start_, len_, column_;
  std::vector<int64_t> pool_;
};

// Reduces a batch of columns (format: j, len, entries ascending ...; ascending j) against the
// store; columns whose pivot belongs to a lower rank are appended to `out` in order.
void reduce_batch(const std::vector<int64_t>& in, ColumnStore& store, std::vector<int64_t>& out) {
  std::vector<int64_t> col, tmp;
  size_t k = 0;
  while (k < in.size()) {
    int64_t j = in[k];
    int64_t len = in[k + 1];
    col.assign(in.begin() + static_cast<int64_t>(k) + 2, in.begin() + static_cast<int64_t>(k) + 2 + len);
    k += 2 + static_cast<size_t>(len);
    while (!col.empty()) {
      int64_t p = col.back();
      if (!store.owns_pivot(p)) break;
      int64_t s = store.slot(p);
      if (s < 0) break;
      store.add_to(s, col, tmp);
    }
    if (col.empty()) continue;
    if (store.owns_pivot(col.back())) {
      store.store(j, col);
    } else {
      out.push_back(j);
      out.push_back(static_cast<int64_t>(col.size()));
      out.insert(out.end(), col.begin(), col.end());
    }
  }
}

bool record_less(const Record& a, const Record& b) {
  if (a.dim != b.dim) return a.dim < b.dim;
  if (a.birth != b.birth) return a.birth < b.birth;
  return a.death < b.death;
}

// Phases (fault-injection names, see dipha/mpi_layer.hpp): dipha.read (file header and
// fingerprint), dipha.complex (loading the input, building the complex), dipha.filtration,
// dipha.reduce.<q>.<t> (round t of the pipelined reduction of dimension q), dipha.gather (the
// pairs on rank 0 and the diagram back to every rank), dipha.write (the output file).
Diagram general_diagram(const Complex& cx, const Options& opt, mpi::Comm& mc, PhaseTimer& timer) {
  const int rank = mc.rank(), P = mc.size();
  const int64_t Dstar = std::min(opt.upper_dim, cx.complex_dim());
  const int64_t top = std::min(Dstar, cx.top_dim());

  // Filtration (replicated): cells of dimension <= D*, ordered by (value, dim, id); reversed for dual.
  struct Key {
    double v;
    int64_t dim;
    int64_t id;
  };
  const int64_t N = cx.num_cells();
  std::vector<Key> keys;
  std::vector<int64_t> pos_of;
  int64_t L = 0;
  Block blk{0, 0};
  std::unique_ptr<ColumnStore> store_ptr;
  mc.run({"dipha.filtration", "sorting the filtration"}, [&] {
    for (int64_t id = 0; id < N; ++id) {
      int d = cx.dim(id);
      if (d <= Dstar) keys.push_back({cx.value(id), d, id});
    }
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
      if (a.v != b.v) return a.v < b.v;
      if (a.dim != b.dim) return a.dim < b.dim;
      return a.id < b.id;
    });
    if (opt.dual) std::reverse(keys.begin(), keys.end());
    L = static_cast<int64_t>(keys.size());
    pos_of.assign(static_cast<size_t>(N), -1);
    for (int64_t i = 0; i < L; ++i) pos_of[keys[i].id] = i;
    std::vector<char> is_column(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) {
      const int64_t d = keys[i].dim;
      is_column[i] = opt.dual ? (d < top) : (d >= 1 && d <= top);
    }
    blk = block_of(is_column, P, rank);
    store_ptr.reset(new ColumnStore(blk));
  });
  timer.end("filtration sort");
  ColumnStore& store = *store_ptr;
  std::vector<int64_t> input, output, faces;

  // Passes: primal q = top..1 (boundaries), dual q = 0..top-1 (coboundaries).
  std::vector<int64_t> qs;
  if (!opt.dual) {
    for (int64_t q = top; q >= 1; --q) qs.push_back(q);
  } else {
    for (int64_t q = 0; q < top; ++q) qs.push_back(q);
  }
  for (int64_t q : qs) {
    const std::string qn = "dipha.reduce." + std::to_string(q) + ".";
    mpi::Chain chain(mc, {"dipha.reduce." + std::to_string(q), "reducing dimension " + std::to_string(q)}, kTagColumns);
    chain.step(qn + "0", [&] {
      input.clear();
      for (int64_t j = blk.begin; j < blk.end; ++j) {
        if (keys[j].dim != q) continue;
        if (store.slot(j) >= 0) continue;  // clearing: j is already a pivot, its column reduces to zero
        faces.clear();
        if (opt.dual) {
          cx.coboundary(keys[j].id, faces);
        } else {
          cx.boundary(keys[j].id, faces);
        }
        if (faces.empty()) continue;
        for (auto& f : faces) f = pos_of[f];
        std::sort(faces.begin(), faces.end());
        // Z/2: repeated faces cancel
        std::vector<int64_t> col;
        for (size_t i = 0; i < faces.size(); ++i) {
          if (i + 1 < faces.size() && faces[i] == faces[i + 1]) {
            ++i;
            continue;
          }
          col.push_back(faces[i]);
        }
        if (col.empty()) continue;
        input.push_back(j);
        input.push_back(static_cast<int64_t>(col.size()));
        input.insert(input.end(), col.begin(), col.end());
      }
    });
    // Pipelined reduction along the chain P-1 -> ... -> 0.
    bool have_input = true;
    for (int t = 0; t <= P - 1 - rank; ++t) {
      output.clear();
      if (have_input) chain.step(qn + std::to_string(t), [&] { reduce_batch(input, store, output); });
      if (chain.failed()) {  // free what this rank holds; it only drains from now on
        std::vector<int64_t>().swap(input);
        std::vector<int64_t>().swap(output);
      }
      if (rank > 0) chain.send(rank - 1, output);
      if (t < P - 1 - rank) have_input = chain.recv(rank + 1, input, qn + std::to_string(t + 1), timer.received());
    }
    chain.finish();
    timer.end("pass dim " + std::to_string(q));
  }

  // Pair extraction: gather (pivot, column) pairs on rank 0.
  const mpi::Phase gather{"dipha.gather", "gathering the persistence pairs"};
  std::vector<int64_t> mine;
  mc.run(gather, [&] { mine = store.pairs(); });
  std::vector<int64_t> all = mc.gatherv(gather, mine, 0);
  if (rank == 0) *timer.received() += 8 * static_cast<int64_t>(all.size() - mine.size());

  Diagram diagram;
  mc.run(gather, [&] {
    if (rank != 0) return;
    const double max_value = cx.max_value();
    std::vector<char> paired(static_cast<size_t>(L), 0);
    for (size_t k = 0; k < all.size(); k += 2) {
      int64_t p = all[k], j = all[k + 1];
      int64_t birth = opt.dual ? j : p, death = opt.dual ? p : j;
      paired[birth] = paired[death] = 1;
      double b = keys[birth].v, e = keys[death].v;
      if (b != e && b < max_value) diagram.push_back({keys[birth].dim, b, e});
    }
    for (int64_t i = 0; i < L; ++i) {
      if (!paired[i] && keys[i].dim < Dstar) diagram.push_back({-keys[i].dim - 1, keys[i].v, max_value});
    }
    std::sort(diagram.begin(), diagram.end(), record_less);
  });
  mc.bcast(gather, diagram, 0);
  timer.end("pair extraction");
  return diagram;
}

}  // namespace

Diagram compute(const std::string& input_path, const Options& opt, MPI_Comm comm, RunStats* stats) {
  mpi::Comm mc(comm, dipha_oom(input_path));
  // The input as given, compared across ranks before any work: the file's bytes and the options.
  int64_t type = -1, bytes = 0;
  uint64_t hash = 0;
  mc.run({"dipha.read", "reading " + input_path}, [&] {
    type = read_file_type(input_path);
    hash = file_hash(input_path, &bytes);
  });
  mpi::Field ud{"upper_dim", static_cast<uint64_t>(opt.upper_dim_given ? opt.upper_dim : -1),
                [](uint64_t b) { return static_cast<int64_t>(b) < 0 ? std::string("not given") : std::to_string(b); }};
  mpi::agree_inputs(comm, "", {mpi::int_field("input file size (bytes)", bytes), ud, mpi::bool_field("--dual", opt.dual),
                               mpi::bool_field("--general", opt.general), mpi::bool_field("--benchmark", stats != nullptr),
                               mpi::real_field("--max_work", opt.max_work),
                               mpi::hash_field("input file hash", hash)},
                    "every rank must be given the same input file and options");
  PhaseTimer timer(comm, stats);
  // Verdicts on agreed inputs: the same on every rank.
  if (opt.upper_dim < 0) throw Error(input_path + ": --upper_dim must be >= 0, got " + std::to_string(opt.upper_dim));
  if (type == kPersistenceDiagram) {
    throw Error(input_path + ": is a persistence diagram (type 2), not an input complex");
  }
  const bool rips = type == kDistanceMatrix || type == kSparseDistanceMatrix;
  if (rips && !opt.upper_dim_given) {
    throw Error(input_path + ": no --upper_dim specified for " + file_type_name(type) +
                " data (required for file types 7 and 8)");
  }

  if (rips && !opt.general) {
    // Fast path: dipha::rips on a view of the loaded matrix.
    DistanceMatrix dm;
    SparseDistanceMatrix sm;
    rips::DistanceView view;
    mc.run({"dipha.complex", "loading " + input_path}, [&] {
      if (type == kDistanceMatrix) {
        dm = read_distance_matrix(input_path);
        view.n = dm.n;
        view.dense64 = dm.d.data();
      } else {
        sm = read_sparse_distance_matrix(input_path);
        view.n = sm.n;
        view.indptr = sm.indptr.data();
        view.indices = sm.indices.data();
        view.values = sm.values.data();
      }
    });
    timer.end("load input");
    Diagram d = rips::dipha_diagram(view, opt.upper_dim, comm, false, opt.max_work, opt.threads);  // collective, agrees on its own
    timer.end("rips persistence");
    if (stats) stats->cells = -1;
    return d;
  }

  std::unique_ptr<Complex> cx;
  mc.run({"dipha.complex", "building the complex of " + input_path}, [&] {
    switch (type) {
      case kExplicitComplex: {
        ExplicitComplex c = read_explicit_complex(input_path);
        if (c.form == 0 && opt.dual) {
          throw Error(input_path + ": dual computation (--dual) is not supported for a boundary-form explicit "
                                   "complex (form 0); run without --dual or convert it with dualize");
        }
        if (c.form == 1 && !opt.dual) {
          throw Error(input_path + ": primal computation is not supported for a coboundary-form explicit "
                                   "complex (form 1); run with --dual or convert it with dualize");
        }
        cx = make_explicit_complex(std::move(c));
        break;
      }
      case kImageData: cx = make_cubical_complex(read_image(input_path), input_path); break;
      case kDistanceMatrix: cx = make_rips_complex(read_distance_matrix(input_path), opt.upper_dim, input_path); break;
      case kSparseDistanceMatrix:
        cx = make_rips_complex(read_sparse_distance_matrix(input_path), opt.upper_dim, input_path);
        break;
      default: throw Error(input_path + ": unsupported file type " + std::to_string(type));
    }
  });
  timer.end("load input and build complex");
  if (stats) stats->cells = cx->num_cells();
  return general_diagram(*cx, opt, mc, timer);
}

void write_diagram(const std::string& path, const Diagram& diagram, MPI_Comm comm) {
  mpi::Comm mc(comm, [path](const mpi::Phase& ph) { return path + ": " + mpi::default_oom_message(ph); });
  mc.run({"dipha.write", "writing the diagram"}, [&] {
    if (mc.rank() == 0) write_diagram_file(path, diagram);
  });
}

void dualize_file(const std::string& in, const std::string& out) {
  check_not_same_file(in, out);
  ExplicitComplex c = read_explicit_complex(in);
  const int64_t N = c.size();
  std::vector<int64_t> cnt(static_cast<size_t>(N) + 1, 0);
  for (int64_t e : c.entries) ++cnt[e + 1];
  ExplicitComplex t;
  t.form = 1 - c.form;
  t.dim = c.dim;
  t.dims = c.dims;
  t.values = c.values;
  t.offsets.assign(static_cast<size_t>(N) + 1, 0);
  for (int64_t i = 0; i < N; ++i) t.offsets[i + 1] = t.offsets[i] + cnt[i + 1];
  t.entries.assign(c.entries.size(), 0);
  std::vector<int64_t> fill(t.offsets.begin(), t.offsets.end() - 1);
  for (int64_t i = 0; i < N; ++i) {  // ascending i -> each new list is ascending
    for (int64_t k = c.offsets[i]; k < c.offsets[i + 1]; ++k) t.entries[fill[c.entries[k]]++] = i;
  }
  write_explicit_complex(out, t);
}

void full_to_sparse_file(double upper_value, const std::string& in, const std::string& out) {
  check_not_same_file(in, out);
  DistanceMatrix m = read_distance_matrix(in);
  SparseDistanceMatrix s;
  s.n = m.n;
  s.indptr.assign(static_cast<size_t>(m.n) + 1, 0);
  const double cut = 2 * upper_value;
  for (int64_t i = 0; i < m.n; ++i) {
    for (int64_t j = 0; j < m.n; ++j) {
      if (j == i) continue;
      double d = m.d[std::max(i, j) * m.n + std::min(i, j)];
      if (d <= cut) {
        s.indices.push_back(j);
        s.values.push_back(d);
      }
    }
    s.indptr[i + 1] = static_cast<int64_t>(s.indices.size());
  }
  write_sparse_distance_matrix(out, s);
}

}  // namespace dipha
