// Command lines of dipha, dualize and full_to_sparse_distance_matrix.
#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "dipha/engine.hpp"
#include "dipha/io.hpp"
#include "dipha/mpi_layer.hpp"

namespace dipha {
namespace {

const char* kDiphaUsage =
    "Usage: dipha [options] input_filename output_filename\n"
    "\n"
    "Computes the persistence diagram (DIPHA file type 2) of a DIPHA input file: explicit complex\n"
    "(type 0), image (type 1, cubical lower-star), full distance matrix (type 7) or sparse distance\n"
    "matrix (type 8, Vietoris-Rips / clique complex). Run under mpirun -n P for P ranks.\n"
    "\n"
    "Options:\n"
    "  --upper_dim N   compute homology up to dimension N-1 (cells up to dimension N); required\n"
    "                  for distance matrices (types 7 and 8)\n"
    "  --dual          compute via persistent cohomology (coboundary matrix); required for\n"
    "                  explicit complexes in coboundary form, not allowed for boundary form\n"
    "  --benchmark     print time, peak memory and received MB per phase on rank 0's stdout\n"
    "  --general       types 7/8: use the general engine (explicit enumeration of all simplices\n"
    "                  up to --upper_dim, distributed column reduction) instead of the fast\n"
    "                  Vietoris-Rips path; same output, more memory (extension, not in DIPHA)\n"
    "  --max_work W    types 7/8, fast path: refuse a computation whose work estimate exceeds W\n"
    "                  coface visits (default 5e11, roughly 40 min of one rank; inf: no limit);\n"
    "                  above 1e11 a warning gives the estimate and a rough time (extension)\n"
    "  --threads N     types 7/8, fast path: N threads in each rank (default 1; same output for\n"
    "                  any number of ranks and threads; extension, not in DIPHA)\n"
    "  --help          print this text and exit\n"
    "\n"
    "Work split: every rank reads the whole input and builds the filtration; the columns of the\n"
    "boundary (or, with --dual, coboundary) matrix are generated and reduced distributed over the\n"
    "ranks, each rank keeping the reduced columns whose pivots lie in its block of filtration\n"
    "positions. The diagram does not depend on the number of ranks or on --dual.\n";

const char* kDualizeUsage =
    "Usage: dualize [--benchmark] input_filename output_filename\n"
    "\n"
    "Transposes an explicit complex (DIPHA type 0): boundary form <-> coboundary form.\n";

const char* kF2SUsage =
    "Usage: full_to_sparse_distance_matrix upper_value input_filename output_filename\n"
    "\n"
    "Reads a full distance matrix (DIPHA type 7) and writes a sparse distance matrix (type 8)\n"
    "keeping the entries d(i,j) <= 2 * upper_value (upper_value in filtration units, i.e. half\n"
    "distances).\n";

struct Ctx {
  int rank = 0;
  const char* prog;
  const char* usage;
  int usage_error(const std::string& problem) const {
    if (rank == 0) {
      std::fputs(usage, stderr);
      std::fprintf(stderr, "%s: error: %s\n", prog, problem.c_str());
      std::fflush(stderr);
    }
    return 1;
  }
  int error(const std::string& message) const {
    if (rank == 0) {
      std::fprintf(stderr, "%s: error: %s\n", prog, message.c_str());
      std::fflush(stderr);
    }
    return 1;
  }
};

bool parse_int64(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || std::isnan(v)) return false;
  out = v;
  return true;
}

bool is_option_name(const std::string& s) {
  return s == "--upper_dim" || s == "--dual" || s == "--benchmark" || s == "--general" || s == "--max_work" ||
         s == "--threads";
}

void print_benchmark(const std::string& input, const Options& opt, int P, const RunStats& st, double total) {
  std::printf("\nInput filename: %s\n", input.c_str());
  if (opt.upper_dim_given) {
    std::printf("upper_dim: %lld\n", static_cast<long long>(opt.upper_dim));
  } else {
    std::printf("upper_dim: none\n");
  }
  std::printf("Number of processes used: %d\n", P);
  if (st.cells >= 0) std::printf("Number of cells (dimension <= upper_dim): %lld\n", static_cast<long long>(st.cells));
  std::printf("Path: %s\n\n", st.cells >= 0 ? "general" : "fast Vietoris-Rips");
  std::printf("%10s %14s %14s   %s\n", "time (s)", "peak RSS (MB)", "received (MB)", "phase");
  double mb = 0, peak = 0;
  for (const auto& p : st.phases) {
    std::printf("%10.3f %14.1f %14.3f   %s\n", p.seconds, p.peak_rss_mb, p.received_mb, p.name.c_str());
    mb += p.received_mb;
    peak = std::max(peak, p.peak_rss_mb);
  }
  std::printf("\nOverall running time (s): %.3f\n", total);
  std::printf("Peak RSS, max over ranks (MB): %.1f\n", peak);
  std::printf("Total received (MB): %.3f\n", mb);
  std::fflush(stdout);
}

// Every rank parses its own command line (`parse` returns the usage problem or ""); the verdict
// is agreed: -1 after --help (printed), 1 after a usage error (printed), 0 to go on. Ranks
// given different command lines (MPMD launches) get an error instead of a hang.
template <class Parse>
int agree_on_command_line(const Ctx& ctx, MPI_Comm comm, const std::vector<std::string>& args, Parse&& parse) {
  bool help = false;
  for (const auto& a : args) help = help || a == "--help" || a == "-h";
  std::string problem = help ? "" : parse();
  try {
    std::string line;
    for (const auto& a : args) line += a + '\n';
    mpi::agree_inputs(comm, "", {mpi::hash_field("command line", mpi::hash_bytes(line.data(), line.size()))},
                      "every rank must be given the same command line");
    mpi::agree(comm, !problem.empty(), problem);
  } catch (const Error& e) {
    return ctx.usage_error(e.what());
  }
  if (help) {
    if (ctx.rank == 0) std::fputs(ctx.usage, stdout);
    return -1;
  }
  return 0;
}

}  // namespace

int run_dipha_cli(int argc, char** argv, MPI_Comm comm) {
  Ctx ctx;
  MPI_Comm_rank(comm, &ctx.rank);
  int P = 1;
  MPI_Comm_size(comm, &P);
  ctx.prog = "dipha";
  ctx.usage = kDiphaUsage;
  std::vector<std::string> args(argv + 1, argv + argc);
  Options opt;
  std::string input, output;
  // Each rank parses its own command line; the verdict is agreed before anything else.
  auto parse = [&]() -> std::string {
    if (args.size() < 2) return "expected an input and an output file name";
    const size_t nopt = args.size() - 2;
    for (size_t i = 0; i < nopt; ++i) {
      const std::string& a = args[i];
      if (a == "--upper_dim") {
        if (i + 1 >= nopt) return "--upper_dim needs an integer value before the file names";
        if (!parse_int64(args[i + 1], opt.upper_dim)) return "--upper_dim value '" + args[i + 1] + "' is not an integer";
        if (opt.upper_dim < 0) return "--upper_dim must be >= 0, got " + args[i + 1];
        opt.upper_dim_given = true;
        ++i;
      } else if (a == "--max_work") {
        if (i + 1 >= nopt) return "--max_work needs a number before the file names";
        if (!parse_double(args[i + 1], opt.max_work) || opt.max_work < 0) {
          return "--max_work value '" + args[i + 1] + "' is not a number >= 0 (or inf)";
        }
        ++i;
      } else if (a == "--dual") {
        opt.dual = true;
      } else if (a == "--benchmark") {
        opt.benchmark = true;
      } else if (a == "--general") {
        opt.general = true;
      } else if (a == "--threads") {
        int64_t t = 0;
        if (i + 1 >= nopt) return "--threads needs an integer value before the file names";
        if (!parse_int64(args[i + 1], t)) return "--threads value '" + args[i + 1] + "' is not an integer";
        if (t < 1 || t > 4096) return "--threads must be between 1 and 4096, got " + args[i + 1];
        opt.threads = static_cast<int>(t);
        ++i;
      } else {
        return "unknown option '" + a + "'";
      }
    }
    input = args[nopt];
    output = args[nopt + 1];
    if (is_option_name(input) || is_option_name(output)) return "expected an input and an output file name after the options";
    return "";
  };
  if (int rc = agree_on_command_line(ctx, comm, args, parse)) return rc < 0 ? 0 : rc;
  double t0 = MPI_Wtime();
  mpi::Comm mc(comm);
  try {
    // Phase "dipha.check": the file names, before anything is read or computed.
    mc.run({"dipha.check", "checking the file names"}, [&] {
      check_not_same_file(input, output);  // every rank, before anything is read
      read_file_type(input);
      if (ctx.rank == 0) check_output_writable(output);
    });
    RunStats stats;
    Diagram d = compute(input, opt, comm, opt.benchmark ? &stats : nullptr);
    double tw = MPI_Wtime();
    write_diagram(output, d, comm);
    if (opt.benchmark) {
      MPI_Barrier(comm);
      double t = MPI_Wtime() - tw;
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      double rss = static_cast<double>(ru.ru_maxrss) / 1024.0, mx = 0;
      MPI_Reduce(&rss, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
      stats.phases.push_back({"write diagram", t, mx, 0.0});
      if (ctx.rank == 0) print_benchmark(input, opt, P, stats, MPI_Wtime() - t0);
    }
  } catch (const Error& e) {
    return ctx.error(e.what());
  } catch (const std::bad_alloc&) {
    // Every phase agrees on its failures, out of memory included; memory running out outside
    // of one would leave the other ranks in a collective: stop them all rather than hang.
    std::fprintf(stderr, "dipha: error: out of memory on rank %d outside of the engine's phases (peak %ld MiB)\n",
                 ctx.rank, static_cast<long>(mpi::peak_rss_mib()));
    std::fflush(stderr);
    MPI_Abort(comm, 1);
  }
  return 0;
}

int run_dualize_cli(int argc, char** argv, MPI_Comm comm) {
  Ctx ctx;
  MPI_Comm_rank(comm, &ctx.rank);
  ctx.prog = "dualize";
  ctx.usage = kDualizeUsage;
  std::vector<std::string> args(argv + 1, argv + argc);
  bool bench = false;
  std::string input, output;
  auto parse = [&]() -> std::string {
    if (args.size() < 2) return "expected an input and an output file name";
    for (size_t i = 0; i + 2 < args.size(); ++i) {
      if (args[i] == "--benchmark") {
        bench = true;
      } else {
        return "unknown option '" + args[i] + "'";
      }
    }
    input = args[args.size() - 2];
    output = args.back();
    return "";
  };
  if (int rc = agree_on_command_line(ctx, comm, args, parse)) return rc < 0 ? 0 : rc;
  double t0 = MPI_Wtime();
  try {
    // The transpose is computed by rank 0 (the input of dualize is a single explicit complex).
    mpi::Comm(comm).run({"dualize", "transposing " + input}, [&] {
      check_not_same_file(input, output);
      if (ctx.rank == 0) {
        read_file_type(input);
        check_output_writable(output);
        dualize_file(input, output);
      }
    });
  } catch (const Error& e) {
    return ctx.error(e.what());
  }
  if (bench && ctx.rank == 0) {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("dualize %s: %.3f s, peak RSS %.1f MB\n", input.c_str(), MPI_Wtime() - t0,
                static_cast<double>(ru.ru_maxrss) / 1024.0);
  }
  return 0;
}

int run_full_to_sparse_cli(int argc, char** argv, MPI_Comm comm) {
  Ctx ctx;
  MPI_Comm_rank(comm, &ctx.rank);
  ctx.prog = "full_to_sparse_distance_matrix";
  ctx.usage = kF2SUsage;
  std::vector<std::string> args(argv + 1, argv + argc);
  double u = 0;
  auto parse = [&]() -> std::string {
    if (args.size() != 3) return "expected exactly 3 arguments, got " + std::to_string(args.size());
    if (!parse_double(args[0], u)) return "upper_value '" + args[0] + "' is not a number";
    return "";
  };
  if (int rc = agree_on_command_line(ctx, comm, args, parse)) return rc < 0 ? 0 : rc;
  try {
    mpi::Comm(comm).run({"full_to_sparse", "converting " + args[1]}, [&] {
      check_not_same_file(args[1], args[2]);
      if (ctx.rank == 0) {
        read_file_type(args[1]);
        check_output_writable(args[2]);
        full_to_sparse_file(u, args[1], args[2]);
      }
    });
  } catch (const Error& e) {
    return ctx.error(e.what());
  }
  return 0;
}

}  // namespace dipha
