// Edge collapse of a flag filtration: a smaller filtered graph whose flag (clique) filtration has
// the same persistent homology in every dimension.
//
// Definitions (Boissonnat & Pritam, "Edge collapse and persistence of flag complexes", SoCG 2020).
// In a graph G, an edge e = {a, b} is dominated by a vertex v not in e if the closed neighbourhood
// of e, N[a] ∩ N[b], lies in the closed neighbourhood N[v]; equivalently v is a common neighbour
// of a and b and adjacent to every other common neighbour. Then the flag complex of G - e is a
// deformation retract of that of G (the link of e is a cone with apex v), so the inclusion
// Flag(G - e) -> Flag(G) is a homotopy equivalence.
//
// Filtrations (Glisse & Pritam, "Swap, Shift and Trim to Edge Collapse a Filtration", SoCG 2022).
// A filtered graph assigns each edge a value; G(s) is the graph of the edges of value <= s and
// Flag(G(s)), s real, the flag filtration (vertices at value 0, or at any common value). If an
// edge e of value t is dominated in G(s) for every s in [t, t'), raising its value to t' gives a
// filtration F' with F'(s) ⊆ F(s) a homotopy equivalence for every s: the inclusions form an
// isomorphism of persistence modules, so every barcode is unchanged ("shift"). If e stays
// dominated for every s >= t it is removed ("trim"). Each such move is valid on whatever the
// current filtration is, so they may be applied one edge at a time, in any order.
//
// Algorithm (one round). Edges are visited in decreasing order of (value, colex rank) as they
// stand at the start of the round, so that an edge is moved through a tail that has already been
// simplified. For e = {a, b} of current value t:
//  1. its common neighbours w with arrival time tau(w) = max(value(a w), value(b w)) (the AND
//     of the two adjacency bit rows with the dense look-up, or a galloping merge of the two
//     sorted neighbour lists); those arriving after t are sorted by tau;
//  2. the common neighbourhood C(s) = {w : tau(w) <= s} only changes at those arrival times, and
//     the neighbourhood of any vertex only grows with s, so domination only has to be checked at
//     s = t and at each later arrival time: at t, a dominator v is searched in C(t); at each later
//     arrival time s, the current dominator is tested against the arriving vertices only, and only
//     when it fails is a new one searched in C(s);
//  3. the first arrival time s at which C(s) has no dominator is e's new value (s = t: e stays);
//     if a dominator survives the last arrival, e is removed.
// Whichever dominator is followed, the result is the same (the first arrival time with no
// dominator at all); the order of the tests only changes their number. A search takes the
// candidates v in C(s) front to back (C(t) in vertex order, then the later arrivals in arrival
// order) and tests each against the members of C(s) back to front: the last arrivals first, and
// within C(t) its newest member first (members that arrived last are the likely non-neighbours),
// stopping at the first non-neighbour u; the value of the edge {v, u} is remembered as the
// earliest time v can dominate, so v is skipped until then. On the LeNet functional graphs a
// failing candidate fails at about its first test, so a search costs about |C(s)| look-ups.
// (Measured on workloads A / B: sorting C(t) by arrival saves 23% / 28% of the look-ups, but
// the sort costs more than that: a round on A took 199 M instructions with it, 185 M without;
// with C(t) sorted, testing its oldest members first needs 2x / 6x more look-ups.)
//
// Values are handled as their ranks among the input's distinct values (every value assigned is
// another edge's value), so comparisons are exact and integer.
//
// Cost of one round, with c_e the number of common neighbours of e: listing them, Σ_e (n/64 +
// c_e) with the dense look-up, Σ_e min(deg a, deg b) log(ratio) (at most deg a + deg b) with
// neighbour lists; c_e log c_e to sort the later arrivals; the dominator tests: O(c_e^2) look-ups for one
// search, at most c_e searches, so O(c_e^3) in the worst case, typically about one look-up per
// candidate (a look-up is O(1) dense, O(log deg) by binary search in a neighbour list); plus a
// counting sort of the edges by value. Once: a sort of the edges by value (and by vertices, when
// not given in that order). Stats counts the look-ups and listing steps. Memory: the edge list
// (16 bytes per edge), neighbour lists (8 bytes per edge and direction) and, when
// 4.125 n^2 bytes fit in dense_lookup_bytes, a dense n x n matrix of current value ranks and
// the n x n adjacency bits.
//
// Several rounds: edges visited early in a round (the shortest) were tested against edges that
// were moved afterwards, so a further round may collapse more; rounds < 0 repeats until a round
// removes no edge. (Until a round changes nothing at all would also terminate, each change
// raising a value to another edge's value or removing an edge, but on workload B it takes 28
// rounds, the last 17 of which remove 2 edges in all while moving thousands; the number of
// simplices depends on the edge set only.)
//
// What is preserved: the persistence module of the flag filtration in every homology dimension,
// up to isomorphism, hence every persistence diagram with positive-length pairs (births and
// deaths exactly, as the values are copied, never recomputed) and every essential class with its
// birth. Zero-length pairs are not: they come from simplices that are removed or moved. Vertices
// are untouched (a dominated edge has a common neighbour, so no component is split). The result
// is deterministic: the same input gives the same output on every process.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dipha/common.hpp"

namespace dipha {
namespace collapse {

/// An undirected edge {u, v} (u != v, 0 <= u, v < n) with its filtration value.
struct Edge {
  int32_t u;
  int32_t v;
  double value;
};

/// What a collapse did, for logs and tests. Counts, not timings.
struct Stats {
  std::vector<int64_t> edges_after_round;  // edges left after each round run
  int64_t moved = 0;                       // edge moves to a larger value, all rounds
  int64_t removed = 0;                     // edges removed, all rounds
  int64_t lookups = 0;                     // adjacency look-ups of the dominator tests
  int64_t neighbour_steps = 0;             // list entries (or bit-row words) walked for common neighbours
};

/// Collapses the flag filtration of the filtered graph (n vertices, `edges`) by `rounds` rounds
/// (rounds > 0; fewer when a round changes nothing), or until a round removes no edge
/// (rounds < 0); rounds == 0 returns the input.
/// Returns the remaining edges with their (possibly larger) values, u < v, sorted by (value, v, u).
/// Values must be finite (an absent edge is left out); a repeated edge, a self-loop or a vertex
/// out of range is an Error. A dense look-up (matrix and adjacency bits) is used when its
/// 4.125 n^2 bytes fit in dense_lookup_bytes (negative: 512 MiB), sorted neighbour lists
/// otherwise; the result is the same either way. `after_round`, when given, is called with the
/// counts so far after each round (progress of a long collapse).
std::vector<Edge> collapse_edges(int64_t n, std::vector<Edge> edges, int rounds, Stats* stats = nullptr,
                                 int64_t dense_lookup_bytes = -1,
                                 const std::function<void(const Stats&)>& after_round = nullptr);

}  // namespace collapse
}  // namespace dipha
