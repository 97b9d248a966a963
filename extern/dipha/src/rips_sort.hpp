// Sorting coboundary entries by key (value, rank): a radix sort of 64-bit packed keys when the
// entries' values and ranks fit in 64 bits, std::sort otherwise.
//
// A window of a large cocycle holds millions of entries of values within a narrow range, and
// the comparison sort of each window's fill took a sixth of such a reduction. Values are doubles
// >= 0, whose bit patterns are ordered as the values; within the entries' range a value is its
// bit pattern minus the smallest one's, shifted right past the trailing zero bits that every
// pattern has (a float64 distance computed from float32 data keeps about 24 significant bits:
// a window 0.003 wide at 0.25 then needs about 20 bits, a triangle rank of 25,000 vertices 42).
// key = (that offset << rank bits) | rank orders as (value, rank) does; the key decodes to the
// same value and rank, bit for bit. Entries with a sign bit (-0.0), NaN, or keys wider than 64
// bits take std::sort, as do short vectors. Memory: 16 bytes per entry more while sorting (the
// keys and their copy). Measured on ResNet18's graph (ad hoc, one rank, idle machine): the
// reduction's sorts 12.2 s with std::sort; the engine 58.4 s -> 54.5 s.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "rips_simplex.hpp"

namespace dipha {
namespace rips {
namespace detail {

inline int bit_width(uint64_t x) { return x == 0 ? 0 : 64 - __builtin_clzll(x); }

/// LSD radix sort of a[0..n) by bits [from, to) in 11-bit digits (tmp: n more); returns the
/// array holding the result (a or tmp). All digit histograms come from one pass; a digit that
/// every key shares costs no pass. Keys equal in those bits keep their order.
inline uint64_t* radix_sort(uint64_t* a, uint64_t* tmp, size_t n, int from, int to) {
  constexpr int kDigit = 11;
  constexpr size_t kRadix = size_t{1} << kDigit;
  const int passes = to > from ? (to - from + kDigit - 1) / kDigit : 0;
  std::vector<size_t> count(static_cast<size_t>(passes) * kRadix, 0);
  for (size_t k = 0; k < n; ++k)
    for (int p = 0; p < passes; ++p)
      ++count[static_cast<size_t>(p) * kRadix + ((a[k] >> (from + p * kDigit)) & (kRadix - 1))];
  for (int p = 0; p < passes; ++p) {
    size_t* c = count.data() + static_cast<size_t>(p) * kRadix;
    const int shift = from + p * kDigit;
    if (c[(a[0] >> shift) & (kRadix - 1)] == n) continue;
    size_t s = 0;
    for (size_t d = 0; d < kRadix; ++d) {
      const size_t t = c[d];
      c[d] = s;
      s += t;
    }
    for (size_t k = 0; k < n; ++k) tmp[c[(a[k] >> shift) & (kRadix - 1)]++] = a[k];
    std::swap(a, tmp);
  }
  return a;
}

/// Sorts the packed keys a[0..n) (rank in the low `rbits` bits, the value's offset above it;
/// tmp: n more); returns the array holding the result (a or tmp). By the value bits first (a
/// few radix passes: a window's values span about 20 bits), then each run of one value by rank
/// (short runs by comparison, long ones by radix), instead of radix passes over the rank's
/// 40-odd bits for every key (8 M entries of a narrow window: 0.6 s against 0.8 s).
inline uint64_t* sort_packed(uint64_t* a, uint64_t* tmp, size_t n, int rbits, int vbits) {
  uint64_t* s = radix_sort(a, tmp, n, rbits, rbits + vbits);
  uint64_t* other = s == a ? tmp : a;
  for (size_t k = 0; k < n;) {
    size_t e = k + 1;
    const uint64_t value = rbits == 64 ? 0 : s[k] >> rbits;
    while (e < n && (rbits == 64 ? 0 : s[e] >> rbits) == value) ++e;
    if (e - k > 4096) {
      const uint64_t* r = radix_sort(s + k, other + k, e - k, 0, rbits);
      if (r != s + k) std::copy(r, r + (e - k), s + k);
    } else if (e - k > 1) {
      std::sort(s + k, s + e);
    }
    k = e;
  }
  return s;
}

/// Sorts v by key (value, rank); true when by radix. `min_radix`: the shortest v sorted by radix.
inline bool sort_keys(std::vector<Entry>& v, size_t min_radix = 4096) {
  const size_t n = v.size();
  if (n < std::max<size_t>(min_radix, 1)) {
    std::sort(v.begin(), v.end(), KeyLess());
    return false;
  }
  uint64_t lo = ~uint64_t{0}, hi = 0, any = 0, top_rank = 0;
  bool packable = true;
  for (const Entry& e : v) {
    uint64_t b;
    std::memcpy(&b, &e.v, 8);
    packable &= (b >> 63) == 0 && !(e.v != e.v) && e.i >= 0;
    lo = std::min(lo, b);
    hi = std::max(hi, b);
    any |= b;
    top_rank = std::max(top_rank, static_cast<uint64_t>(e.i));
  }
  const int tz = any == 0 ? 0 : __builtin_ctzll(any);
  const int vbits = bit_width((hi - lo) >> tz), rbits = bit_width(top_rank);
  if (!packable || vbits + rbits > 64) {
    std::sort(v.begin(), v.end(), KeyLess());
    return false;
  }
  std::vector<uint64_t> keys(2 * n);
  for (size_t k = 0; k < n; ++k) {
    uint64_t b;
    std::memcpy(&b, &v[k].v, 8);
    const uint64_t off = (b - lo) >> tz;
    keys[k] = (rbits == 64 ? 0 : off << rbits) | static_cast<uint64_t>(v[k].i);
  }
  const uint64_t* s = sort_packed(keys.data(), keys.data() + n, n, rbits, vbits);
  const uint64_t rmask = rbits == 64 ? ~uint64_t{0} : (uint64_t{1} << rbits) - 1;
  for (size_t k = 0; k < n; ++k) {
    const uint64_t b = (rbits == 64 ? 0 : (s[k] >> rbits) << tz) + lo;
    std::memcpy(&v[k].v, &b, 8);
    v[k].i = static_cast<idx_t>(s[k] & rmask);
  }
  return true;
}

}  // namespace detail
}  // namespace rips
}  // namespace dipha
