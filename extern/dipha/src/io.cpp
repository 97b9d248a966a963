// DIPHA file formats: validating readers and writers.
#include "dipha/io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace dipha {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

std::string fmt_bytes(double b) {
  std::ostringstream s;
  s.precision(3);
  if (b >= 1e9) {
    s << b / 1e9 << " GB";
  } else if (b >= 1e6) {
    s << b / 1e6 << " MB";
  } else {
    s << static_cast<long long>(b) << " bytes";
  }
  return s.str();
}

// Exact size arithmetic: header counts are untrusted, so compute in 128 bits.
using i128 = __int128;

class InFile {
 public:
  explicit InFile(const std::string& path) : path_(path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail(path, "is a directory, not a DIPHA file");
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    size_ = static_cast<int64_t>(st.st_size);
  }
  ~InFile() {
    if (f_) std::fclose(f_);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  void read(int64_t word, void* buf, int64_t nwords) {
    if (nwords <= 0) return;
    if (fseeko(f_, static_cast<off_t>(word) * 8, SEEK_SET) != 0 ||
        std::fread(buf, 8, static_cast<size_t>(nwords), f_) != static_cast<size_t>(nwords)) {
      fail(path_, "read error (file changed or truncated while reading)");
    }
  }
  int64_t word(int64_t w) {
    int64_t v = 0;
    read(w, &v, 1);
    return v;
  }
  template <class T>
  std::vector<T> words(int64_t w, int64_t n) {
    std::vector<T> v(static_cast<size_t>(n));
    read(w, v.data(), n);
    return v;
  }

  // Requires that the file holds at least `bytes` bytes (a prefix whose size is already known).
  void require_at_least(i128 bytes, const std::string& what) {
    if (static_cast<i128>(size_) < bytes) {
      fail(path_, "truncated file: " + what + " needs at least " + to_s(bytes) +
                      " bytes but the file has " + std::to_string(size_) + " bytes");
    }
  }
  // Requires the exact size implied by the header.
  void require_exact(i128 bytes) {
    if (static_cast<i128>(size_) < bytes) {
      fail(path_, "truncated file: the header implies " + to_s(bytes) + " bytes but the file has " +
                      std::to_string(size_) + " bytes");
    }
    if (static_cast<i128>(size_) > bytes) {
      fail(path_, "oversized file: the header implies " + to_s(bytes) + " bytes but the file has " +
                      std::to_string(size_) + " bytes");
    }
  }
  static std::string to_s(i128 v) {
    if (v < 0) return "-" + to_s(-v);
    std::string s;
    do {
      s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
      v /= 10;
    } while (v > 0);
    std::reverse(s.begin(), s.end());
    return s;
  }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  int64_t size_ = 0;
};

// Opens a file and checks magic and type id; returns the type.
int64_t check_header(InFile& f) {
  if (f.size() < 16) {
    fail(f.path(), "too short to be a DIPHA file (" + std::to_string(f.size()) +
                       " bytes; magic number and type id need 16)");
  }
  int64_t magic = f.word(0);
  if (magic != kMagic) {
    fail(f.path(), "not a DIPHA file (first int64 is " + std::to_string(magic) +
                       ", expected the magic number " + std::to_string(kMagic) + ")");
  }
  int64_t type = f.word(1);
  if (type >= 3 && type <= 6) {
    fail(f.path(), "file type " + std::to_string(type) +
                       " is a reserved (removed) DIPHA type and is not supported");
  }
  if (type != kExplicitComplex && type != kImageData && type != kPersistenceDiagram &&
      type != kDistanceMatrix && type != kSparseDistanceMatrix) {
    fail(f.path(), "unknown file type " + std::to_string(type) +
                       " (known: 0 explicit complex, 1 image, 2 diagram, 7 distance matrix, 8 "
                       "sparse distance matrix)");
  }
  return type;
}

void expect_type(InFile& f, int64_t want) {
  int64_t t = check_header(f);
  if (t != want) {
    fail(f.path(), "is a " + file_type_name(t) + " file (type " + std::to_string(t) + "), expected type " +
                       std::to_string(want) + " (" + file_type_name(want) + ")");
  }
}

void check_count(InFile& f, int64_t v, const std::string& what) {
  if (v < 0) fail(f.path(), "negative " + what + " (" + std::to_string(v) + ") in the header");
}

void check_finite_or_inf(const std::string& path, const std::vector<double>& v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) fail(path, what + " " + std::to_string(i) + " is NaN");
  }
}

// Directory part of a path ("." when there is none).
std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// An output file written atomically: the data go to a temporary file in the same directory,
// which close() flushes, fsyncs and renames over the target. Until then an existing file of
// that name is untouched; on any failure (or without close()) the temporary file is removed.
// A symbolic link as output is followed: its target is replaced, the link is kept.
class OutFile {
 public:
  explicit OutFile(const std::string& path) : path_(path), target_(path) {
    struct stat ls {};
    if (::lstat(path.c_str(), &ls) == 0 && S_ISLNK(ls.st_mode)) {
      if (char* real = ::realpath(path.c_str(), nullptr)) {
        target_ = real;
        std::free(real);
      }
    }
    struct stat st {};
    const bool exists = ::stat(target_.c_str(), &st) == 0;
    const std::string dir = dir_of(target_);
    const std::string base = target_.substr(target_.find_last_of('/') == std::string::npos ? 0 : target_.find_last_of('/') + 1);
    static std::atomic<unsigned> counter{0};
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
      tmp_ = dir + "/." + base + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 && errno != EEXIST) {
        fail(path, "cannot create a temporary file in " + dir + ": " + std::strerror(errno));
      }
    }
    if (fd < 0) fail(path, "cannot create a temporary file in " + dir + ": too many stale temporary files");
    if (exists) (void)::fchmod(fd, st.st_mode & 07777);  // keep the permissions of the file replaced
    f_ = ::fdopen(fd, "wb");
    if (!f_) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp_.c_str());
      fail(path, std::string("cannot open for writing: ") + std::strerror(e));
    }
  }
  ~OutFile() {
    if (f_) {
      std::fclose(f_);
      ::unlink(tmp_.c_str());
    }
  }
  OutFile(const OutFile&) = delete;
  OutFile& operator=(const OutFile&) = delete;
  void put(const void* data, size_t nwords) {
    if (nwords && std::fwrite(data, 8, nwords, f_) != nwords) {
      fail(path_, std::string("write error: ") + std::strerror(errno));
    }
  }
  void word(int64_t v) { put(&v, 1); }
  template <class T>
  void words(const std::vector<T>& v) {
    static_assert(sizeof(T) == 8, "8-byte words only");
    put(v.data(), v.size());
  }
  // Commits the file: flush, fsync, rename over the target, fsync of the directory.
  void close() {
    FILE* f = f_;
    f_ = nullptr;
    std::string problem;
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) problem = std::string("write error: ") + std::strerror(errno);
    if (std::fclose(f) != 0 && problem.empty()) problem = std::string("write error on close: ") + std::strerror(errno);
    if (problem.empty() && ::rename(tmp_.c_str(), target_.c_str()) != 0) {
      problem = std::string("cannot replace the file: ") + std::strerror(errno);
    }
    if (!problem.empty()) {
      ::unlink(tmp_.c_str());
      fail(path_, problem);
    }
    int dfd = ::open(dir_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);  // best effort: the rename itself is durable on most file systems
      ::close(dfd);
    }
  }

 private:
  std::string path_, target_, tmp_;
  FILE* f_ = nullptr;
};

}  // namespace

std::string file_type_name(int64_t type) {
  switch (type) {
    case kExplicitComplex: return "explicit complex";
    case kImageData: return "image";
    case kPersistenceDiagram: return "persistence diagram";
    case kDistanceMatrix: return "distance matrix";
    case kSparseDistanceMatrix: return "sparse distance matrix";
    default: return "unknown";
  }
}

int64_t read_file_type(const std::string& path) {
  InFile f(path);
  return check_header(f);
}

double physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0.0;
  return static_cast<double>(pages) * static_cast<double>(page);
}

void check_fits_in_memory(const std::string& what_path, const std::string& what, double count,
                          double bytes) {
  double phys = physical_memory_bytes();
  if (count > 9.2e18) {
    std::ostringstream s;
    s << what << " has about " << count << " cells, which overflows a 64-bit cell count";
    fail(what_path, s.str());
  }
  if (phys > 0 && bytes > phys) {
    std::ostringstream s;
    s.precision(4);
    s << what << " has " << count << " cells and needs about " << fmt_bytes(bytes)
      << ", more than the physical memory (" << fmt_bytes(phys) << ")";
    fail(what_path, s.str());
  }
}

DistanceMatrix read_distance_matrix(const std::string& path) {
  InFile f(path);
  expect_type(f, kDistanceMatrix);
  f.require_at_least(24, "the header");
  DistanceMatrix m;
  m.n = f.word(2);
  check_count(f, m.n, "number of points");
  f.require_exact(24 + static_cast<i128>(8) * m.n * m.n);
  m.d = f.words<double>(3, m.n * m.n);
  for (int64_t i = 0; i < m.n; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      if (std::isnan(m.d[i * m.n + j])) {
        fail(path, "distance (" + std::to_string(i) + ", " + std::to_string(j) + ") is NaN");
      }
    }
  }
  return m;
}

SparseDistanceMatrix read_sparse_distance_matrix(const std::string& path) {
  InFile f(path);
  expect_type(f, kSparseDistanceMatrix);
  f.require_at_least(24, "the header");
  SparseDistanceMatrix m;
  m.n = f.word(2);
  check_count(f, m.n, "number of points");
  f.require_at_least(24 + static_cast<i128>(8) * m.n, "the neighbour counts of " + std::to_string(m.n) + " points");
  std::vector<int64_t> counts = f.words<int64_t>(3, m.n);
  m.indptr.assign(static_cast<size_t>(m.n) + 1, 0);
  i128 total = 0;
  for (int64_t i = 0; i < m.n; ++i) {
    if (counts[i] < 0) {
      fail(path, "negative neighbour count " + std::to_string(counts[i]) + " for point " + std::to_string(i));
    }
    total += counts[i];
    if (total > static_cast<i128>(f.size())) {  // cannot be stored; caught by the size check
      f.require_exact(24 + static_cast<i128>(8) * m.n + 16 * total);
    }
    m.indptr[i + 1] = static_cast<int64_t>(total);
  }
  int64_t E = static_cast<int64_t>(total);
  f.require_exact(24 + static_cast<i128>(8) * m.n + static_cast<i128>(16) * E);
  m.indices = f.words<int64_t>(3 + m.n, E);
  m.values = f.words<double>(3 + m.n + E, E);
  for (int64_t i = 0; i < m.n; ++i) {
    for (int64_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k) {
      int64_t j = m.indices[k];
      std::string where = "row " + std::to_string(i) + ": ";
      if (j < 0 || j >= m.n) {
        fail(path, where + "neighbour index " + std::to_string(j) + " out of range [0, " + std::to_string(m.n) + ")");
      }
      if (j == i) fail(path, where + "self entry (a point may not be its own neighbour)");
      if (k > m.indptr[i] && m.indices[k - 1] >= j) {
        fail(path, where + "neighbour indices not strictly ascending (" + std::to_string(m.indices[k - 1]) +
                       " then " + std::to_string(j) + ")");
      }
      if (std::isnan(m.values[k])) fail(path, where + "distance to " + std::to_string(j) + " is NaN");
    }
  }
  for (int64_t i = 0; i < m.n; ++i) {
    for (int64_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k) {
      int64_t j = m.indices[k];
      auto b = m.indices.begin() + m.indptr[j], e = m.indices.begin() + m.indptr[j + 1];
      if (!std::binary_search(b, e, i)) {
        fail(path, "not symmetric: " + std::to_string(j) + " is a neighbour of " + std::to_string(i) + " but " +
                       std::to_string(i) + " is not a neighbour of " + std::to_string(j));
      }
    }
  }
  return m;
}

ExplicitComplex read_explicit_complex(const std::string& path) {
  InFile f(path);
  expect_type(f, kExplicitComplex);
  f.require_at_least(48, "the header");
  ExplicitComplex c;
  c.form = f.word(2);
  if (c.form != 0 && c.form != 1) {
    fail(path, "unknown form " + std::to_string(c.form) + " (0 = boundary, 1 = coboundary)");
  }
  int64_t N = f.word(3);
  check_count(f, N, "number of cells");
  c.dim = f.word(4);
  if (c.dim < 0) fail(path, "negative complex dimension (" + std::to_string(c.dim) + ") in the header");
  f.require_at_least(48 + static_cast<i128>(24) * N, "the header's " + std::to_string(N) + " cells");
  int64_t M = f.word(5 + 3 * N);
  if (M < 0) fail(path, "negative number of (co)boundary entries (" + std::to_string(M) + ")");
  f.require_exact(48 + static_cast<i128>(24) * N + static_cast<i128>(8) * M);
  c.dims = f.words<int64_t>(5, N);
  c.values = f.words<double>(5 + N, N);
  c.offsets = f.words<int64_t>(5 + 2 * N, N + 1);  // the M word doubles as offset(N)
  c.entries = f.words<int64_t>(6 + 3 * N, M);
  for (int64_t i = 0; i < N; ++i) {
    if (c.dims[i] < 0 || c.dims[i] > c.dim) {
      fail(path, "cell " + std::to_string(i) + " has dimension " + std::to_string(c.dims[i]) +
                     " outside [0, " + std::to_string(c.dim) + "]");
    }
    if (std::isnan(c.values[i])) fail(path, "value of cell " + std::to_string(i) + " is NaN");
  }
  for (int64_t i = 0; i <= N; ++i) {
    if (c.offsets[i] < 0 || c.offsets[i] > M) {
      fail(path, "offset of cell " + std::to_string(i) + " (" + std::to_string(c.offsets[i]) +
                     ") out of range [0, " + std::to_string(M) + "]");
    }
    if (i > 0 && c.offsets[i] < c.offsets[i - 1]) {
      fail(path, "offsets decreasing at cell " + std::to_string(i) + " (" + std::to_string(c.offsets[i - 1]) +
                     " then " + std::to_string(c.offsets[i]) + ")");
    }
  }
  const int64_t step = c.form == 0 ? -1 : 1;
  const char* kind = c.form == 0 ? "boundary" : "coboundary";
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t k = c.offsets[i]; k < c.offsets[i + 1]; ++k) {
      int64_t id = c.entries[k];
      if (id < 0 || id >= N) {
        fail(path, std::string(kind) + " of cell " + std::to_string(i) + " lists cell id " + std::to_string(id) +
                       " out of range [0, " + std::to_string(N) + ")");
      }
      if (c.dims[id] != c.dims[i] + step) {
        fail(path, std::string(kind) + " of cell " + std::to_string(i) + " (dimension " + std::to_string(c.dims[i]) +
                       ") lists cell " + std::to_string(id) + " of dimension " + std::to_string(c.dims[id]));
      }
    }
  }
  return c;
}

Image read_image(const std::string& path) {
  InFile f(path);
  expect_type(f, kImageData);
  f.require_at_least(32, "the header");
  int64_t n = f.word(2);
  int64_t d = f.word(3);
  if (d <= 0) fail(path, "image dimension must be positive, got " + std::to_string(d));
  f.require_at_least(32 + static_cast<i128>(8) * d, "the resolutions of a " + std::to_string(d) + "-dimensional image");
  Image im;
  im.shape = f.words<int64_t>(4, d);
  i128 prod = 1;
  for (int64_t i = 0; i < d; ++i) {
    if (im.shape[i] <= 0) {
      fail(path, "image resolution along axis " + std::to_string(i) + " must be positive, got " +
                     std::to_string(im.shape[i]));
    }
    prod *= im.shape[i];
    if (prod > static_cast<i128>(f.size())) {
      f.require_exact(32 + static_cast<i128>(8) * d + 8 * prod);
    }
  }
  if (static_cast<i128>(n) != prod) {
    fail(path, "voxel count in the header (" + std::to_string(n) + ") differs from the product of the resolutions (" +
                   InFile::to_s(prod) + ")");
  }
  f.require_exact(32 + static_cast<i128>(8) * d + 8 * prod);
  im.values = f.words<double>(4 + d, n);
  check_finite_or_inf(path, im.values, "voxel");
  return im;
}

Diagram read_diagram(const std::string& path) {
  InFile f(path);
  expect_type(f, kPersistenceDiagram);
  f.require_at_least(24, "the header");
  int64_t p = f.word(2);
  check_count(f, p, "number of records");
  f.require_exact(24 + static_cast<i128>(24) * p);
  Diagram d(static_cast<size_t>(p));
  static_assert(sizeof(Record) == 24, "Record must be 24 bytes");
  f.read(3, d.data(), 3 * p);
  return d;
}

FileInfo validate_file(const std::string& path) {
  FileInfo info;
  info.type = read_file_type(path);
  switch (info.type) {
    case kDistanceMatrix: {
      auto m = read_distance_matrix(path);
      info.count = m.n;
      break;
    }
    case kSparseDistanceMatrix: {
      auto m = read_sparse_distance_matrix(path);
      info.count = m.n;
      info.entries = static_cast<int64_t>(m.indices.size());
      break;
    }
    case kExplicitComplex: {
      auto c = read_explicit_complex(path);
      info.form = c.form;
      info.count = c.size();
      info.dim = c.dim;
      info.entries = static_cast<int64_t>(c.entries.size());
      break;
    }
    case kImageData: {
      auto im = read_image(path);
      info.count = static_cast<int64_t>(im.values.size());
      info.dim = static_cast<int64_t>(im.shape.size());
      break;
    }
    case kPersistenceDiagram: {
      info.count = static_cast<int64_t>(read_diagram(path).size());
      break;
    }
    default: break;
  }
  return info;
}

void write_distance_matrix(const std::string& path, const DistanceMatrix& m) {
  if (m.n < 0 || static_cast<int64_t>(m.d.size()) != m.n * m.n) {
    fail(path, "distance matrix data has " + std::to_string(m.d.size()) + " entries, expected n*n for n = " +
                   std::to_string(m.n));
  }
  OutFile o(path);
  o.word(kMagic);
  o.word(kDistanceMatrix);
  o.word(m.n);
  o.words(m.d);
  o.close();
}

void write_sparse_distance_matrix(const std::string& path, const SparseDistanceMatrix& m) {
  if (static_cast<int64_t>(m.indptr.size()) != m.n + 1 || m.indices.size() != m.values.size() ||
      m.indptr.back() != static_cast<int64_t>(m.indices.size())) {
    fail(path, "inconsistent sparse distance matrix (indptr / indices / values sizes)");
  }
  OutFile o(path);
  o.word(kMagic);
  o.word(kSparseDistanceMatrix);
  o.word(m.n);
  std::vector<int64_t> counts(static_cast<size_t>(m.n));
  for (int64_t i = 0; i < m.n; ++i) counts[i] = m.indptr[i + 1] - m.indptr[i];
  o.words(counts);
  o.words(m.indices);
  o.words(m.values);
  o.close();
}

void write_explicit_complex(const std::string& path, const ExplicitComplex& c) {
  int64_t N = c.size();
  if (c.values.size() != c.dims.size() || static_cast<int64_t>(c.offsets.size()) != N + 1 ||
      c.offsets.back() != static_cast<int64_t>(c.entries.size())) {
    fail(path, "inconsistent explicit complex (dims / values / offsets / entries sizes)");
  }
  OutFile o(path);
  o.word(kMagic);
  o.word(kExplicitComplex);
  o.word(c.form);
  o.word(N);
  o.word(c.dim);
  o.words(c.dims);
  o.words(c.values);
  o.words(c.offsets);  // N offsets followed by M
  o.words(c.entries);
  o.close();
}

void write_image(const std::string& path, const Image& im) {
  i128 prod = 1;
  for (auto g : im.shape) prod *= g;
  if (im.shape.empty() || prod != static_cast<i128>(im.values.size())) {
    fail(path, "image values do not match the resolutions");
  }
  OutFile o(path);
  o.word(kMagic);
  o.word(kImageData);
  o.word(static_cast<int64_t>(im.values.size()));
  o.word(static_cast<int64_t>(im.shape.size()));
  o.words(im.shape);
  o.words(im.values);
  o.close();
}

void write_diagram_file(const std::string& path, const Diagram& records) {
  OutFile o(path);
  o.word(kMagic);
  o.word(kPersistenceDiagram);
  o.word(static_cast<int64_t>(records.size()));
  o.put(records.data(), 3 * records.size());
  o.close();
}

void check_output_writable(const std::string& path) {
  if (path.empty()) fail("''", "empty output file name");
  struct stat st {};
  std::string target = path;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) fail(path, "output path is a directory");
    if (::access(path.c_str(), W_OK) != 0) fail(path, std::string("output file is not writable: ") + std::strerror(errno));
    if (char* real = ::realpath(path.c_str(), nullptr)) {  // the file replaced (a link is followed)
      target = real;
      std::free(real);
    }
  }
  // the output is written to a temporary file beside it, then renamed: its directory must be writable
  const std::string dir = dir_of(target);
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) != 0) {
    fail(path, "cannot create output file: directory " + dir + " does not exist");
  }
  if (!S_ISDIR(ds.st_mode)) fail(path, "cannot create output file: " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    fail(path, "cannot create output file: directory " + dir + " is not writable");
  }
}

namespace {
// Canonical form of a path that may not exist yet: realpath of its directory + its last part.
std::string canonical_path(const std::string& path) {
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    std::string r(real);
    std::free(real);
    return r;
  }
  const std::string dir = dir_of(path);
  const auto slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (char* real = ::realpath(dir.c_str(), nullptr)) {
    std::string r(real);
    std::free(real);
    return (r == "/" ? r : r + "/") + base;
  }
  return path;
}
}  // namespace

void check_not_same_file(const std::string& in, const std::string& out) {
  bool same = in == out || canonical_path(in) == canonical_path(out);
  struct stat si {}, so {};
  if (!same && ::stat(in.c_str(), &si) == 0 && ::stat(out.c_str(), &so) == 0) {
    same = si.st_dev == so.st_dev && si.st_ino == so.st_ino;  // a hard link
  }
  if (same) {
    fail(out, "the output file is the input file " + in +
                  " (the same path, or the same file through a link); choose another output file name");
  }
}

}  // namespace dipha
