"""Node grouping: several units of a layer as one node of the functional graph, by their mean.

A full-resolution functional graph has one node per unit (VGG16 at 32x32: 36,874 nodes; ResNet18:
25,098), too many for H2. As the original research code did for big networks, the units of each
recorded layer can be partitioned into groups of *consecutive* units, a group's activation on a
sample being the **mean** of its units' activations on that sample. The functional graph is then
built on the groups exactly as on units (:mod:`topodnn.graph`).

The grouping spec (``groups=`` of :func:`topodnn.functional_graph`)
-------------------------------------------------------------------
=========================================  ===================================================
``None`` or ``"units"``                    every unit its own node (no grouping; the default)
``"channel"``                              a layer whose per-sample output has a channel
                                           dimension and spatial ones, ``(C, *spatial)`` (a
                                           conv layer), gives one node per channel, the mean
                                           over its spatial positions; a layer with a 1-D
                                           output ``(F,)`` (a linear layer) keeps its units
``{"chunk": k}`` or ``"chunk:k"``          every layer in chunks of ``k`` consecutive units in
                                           C order (channel-major); a layer's last chunk is
                                           shorter when ``k`` does not divide its size, a layer
                                           of at most ``k`` units is one node
``{"nodes": n}`` or ``"nodes:n"``          ``n`` nodes in total: each layer gets a share of
                                           ``n`` proportional to its number of units (at least
                                           1, at most its units; largest remainders, ties to
                                           the earlier layer) and is split into that many runs
                                           of consecutive units whose sizes differ by at most 1
                                           (the longer ones first); needs ``number of layers
                                           <= n <= number of units``
``{layer: spec, ...}``                     per layer, ``spec`` one of ``None`` / ``"units"``,
                                           ``"channel"``, ``{"chunk": k}`` / ``"chunk:k"``,
                                           ``{"nodes": n}`` / ``"nodes:n"`` (``n`` nodes for
                                           that layer, ``n <= its units``); layers not named
                                           keep their units
=========================================  ===================================================

``k`` and ``n`` are integers >= 1. Refused with a one-line ValueError: unknown words, a mapping
with both ``"chunk"`` and ``"nodes"``, or mixing those keywords with layer names (the keys
``"chunk"`` and ``"nodes"`` of a top-level mapping are always the keywords, so a module named
``chunk`` or ``nodes`` cannot be named in the per-layer form), an empty mapping, nested
per-layer mappings, a layer name that is not recorded, ``"channel"`` named explicitly for a
layer without channels, a layer asked for more nodes than it has units, and a total ``n`` below
the number of layers or above the number of units.

Node order and what a node is
-----------------------------
Nodes are ordered layer by layer, and within a layer by their first unit (units numbered in the
layer's C-order flattening, as the ungrouped nodes are). A channel of a ``(C, H, W)`` output is
the run of units ``[c H W, (c + 1) H W)``, so ``"channel"`` is a special case of runs of
consecutive units. :class:`LayerGroups` states which units each node averages, compactly, as
*runs* ``(start, stop, step)``: consecutive nodes, each averaging ``step`` consecutive units, the
first starting at unit ``start``, until unit ``stop`` (the last node of a run may be shorter);
:func:`unit_ranges` expands them to one ``[first, stop)`` pair per node.

Means are computed per batch in float64 from the layer's output (``numpy.add.reduceat`` over the
runs, divided by the group sizes) and stored in the activation matrix's dtype, so memory is
``n_samples x n_nodes`` of the grouped graph plus one batch of the layer in float64: a grouped
VGG16 never holds the 36.9k-column matrix. A group whose mean never varies over the samples is a
constant node (distance 1 to every other node), as a constant unit is.

How grouped summaries differ from full-resolution ones
------------------------------------------------------
Measured by ``benchmarks/bench_grouping.py`` (``benchmarks/results/grouping_20261201T133650Z.json``,
commit b7bbd52). LeNet trained 8 epochs (lr 0.01) on the embedded MNIST sample, test accuracy 7 %
at epoch 0, 86 % at 2, 95 % at 8; H0..H2 with ε ≤ 0.3 over 1000 held-out digits at every epoch
0..8; pairs of persistence ≤ 0.02 dropped. Full resolution has 1,820 nodes; ``"channel"`` 90
(10 + 20 channels, 50 + 10 units); ``{"chunk": 4}`` 456; ``{"chunk": 16}`` 115.

* **Kept: H0 and the shape of the curves.** H0 life falls under every grouping (full
  0.182 → 0.112, channel 0.240 → 0.141, chunk:4 0.181 → 0.116, chunk:16 0.185 → 0.119), and so
  does H1 midlife (0.248 → 0.196, 0.283 → 0.230, 0.255 → 0.210, 0.249 → 0.225). Full and grouped
  Betti curves (61 points on [0, 0.3]) have a median Pearson correlation over the epochs of
  0.98 / 0.70 / 0.75 for H0 / H1 / H2 per channel, 1.00 / 0.87 / 0.82 for chunk:4 and
  1.00 / 0.68 / 0.53 for chunk:16.
* **Changed: the values, and H2 nearly vanishes.** Counts scale with the number of nodes: at
  epoch 8 the H1 pairs per node are 0.37 full, 0.40 per channel, 0.36 for chunk:4 and 0.17 for
  chunk:16. H2 is where grouping costs most on a network this small: 12 → 170 pairs full from
  epoch 0 to 8, but at most 6 per channel, 16 for chunk:4 and 1 for chunk:16 at any epoch. Fewer
  nodes give longer H0 bars (per channel, H0 life is 26–32 % higher) and later-born cavities (per
  channel, H1 midlife 0.03 higher). So compare epochs or networks under one grouping; never
  compare a grouped value with a full one, or two groupings with each other.
* **The order of the epochs: the finer the grouping, the closer, summary by summary.** Spearman
  correlation over the 9 epochs between the grouped and the full value:

  - chunk:4: H0 area 0.97; H1 midlife 0.87, pairs 0.85, betti_max 0.83, area 0.90, but life 0.53.
  - channel: the areas follow (H0 0.98, H1 0.95, H2 0.63) and H1 midlife (0.77); H1 life (0.28)
    and betti_max (−0.02) do not.
  - chunk:16: H1 life 0.97 but midlife 0.43 and area 0.12; H2 has no cavities to rank.

  Most of the change happens in epochs 0–4. On the plateau after that the differences between
  epochs are within noise, and that is where the orders disagree.

Big networks, measured in the same run: 32x32 inputs (the embedded digits zero-padded), 1
training epoch, H0..H2 with ε ≤ 0.3 over 1000 test digits. H0..H2 completed for every one:

==========  =========  ======  =============  =======  =========  =======================  ==========
network     units      test    groups         nodes    edges      pairs H0 / H1 / H2       graph + H
==========  =========  ======  =============  =======  =========  =======================  ==========
alexnet     4,618      10 %    channel        1,162    60,658     1,162 / 143 / 17         0.9 s
alexnet                        nodes:2000     2,000    59,945     2,000 / 488 / 96         1.1 s
resnet18    25,098     87 %    channel        1,290    323,900    987 / 685 / 1,032        25 s
resnet18                       nodes:2000     2,000    511,037    2,000 / 1,582 / 1,998    31 s
vgg16       36,874     91 %    channel        1,930    790,859    1,930 / 1,337 / 1,891    36 s
vgg16                          nodes:2000     2,000    691,711    2,000 / 1,396 / 1,306    26 s
==========  =========  ======  =============  =======  =========  =======================  ==========

(AlexNet's 10 % means one epoch at lr 0.01 did not train it. The last column is the graph from the
recorded activations plus H0..H2, on the machine with only this benchmark running.) Grouped
graphs are **dense**: channel means are more strongly correlated than single units. 42 % of
VGG16's channel pairs pass the cut (|corr| ≥ 0.4), against 4.9 % of its unit pairs
(``bench_big.py``'s graph: 33.1 M edges). So the work is that of 0.3–0.8 M edges, not of 2,000
sparse nodes; persistence took 7–25 s of it.

For ResNet18 per channel, layer4's channel means *are* the avgpool outputs (equal up to float32
rounding: at most 1.5e-8 apart on a randomly initialised ResNet18). That gives 512 pairs of nodes
at distance ≈ 0. Merges at ε = 0 leave no pair, which is why there are only 987 H0 pairs for
1,290 nodes. Leave ``avgpool`` out of ``layers`` when that matters.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "GroupSpec",
    "Groups",
    "LayerGroups",
    "parse_groups",
    "resolve_groups",
    "unit_ranges",
]

#: What ``groups=`` accepts (see the module docstring).
GroupSpec = Union[None, str, Mapping[str, Any], "Groups"]

_KEYWORDS = ("chunk", "nodes")
_FORMS = ("None, 'units', 'channel', 'chunk:K', 'nodes:N', {'chunk': K}, {'nodes': N} or "
          "{layer name: one of these}")


@dataclass(frozen=True)
class _Rule:
    """How one layer (or every layer) is grouped: ``kind`` and its integer ``size``."""

    kind: str  # "units", "channel", "chunk" or "nodes"
    size: int = 0

    def text(self) -> str:
        return self.kind if self.kind in ("units", "channel") else f"{self.kind}:{self.size}"


@dataclass(frozen=True)
class Groups:
    """A validated, normalised grouping spec (what :func:`parse_groups` returns).

    Attributes
    ----------
    rule : _Rule or None
        The rule of every layer (``nodes`` here means nodes in total); None for a per-layer spec.
    per_layer : tuple of (str, _Rule)
        The per-layer rules, sorted by layer name; empty unless ``rule`` is None.
    """

    rule: Optional[_Rule]
    per_layer: tuple = ()

    @property
    def is_units(self) -> bool:
        """True when every unit is its own node (no grouping)."""
        return self.rule is not None and self.rule.kind == "units"

    def text(self) -> str:
        """The canonical text of the spec, equal for equal specs: ``"units"``, ``"channel"``,
        ``"chunk:16"``, ``"nodes:2000"``, or for a per-layer spec the JSON object
        ``{"layer": "rule", ...}`` with sorted keys."""
        if self.rule is not None:
            return self.rule.text()
        return json.dumps({name: r.text() for name, r in self.per_layer}, sort_keys=True)

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class LayerGroups:
    """The nodes of one layer: which of its units each averages.

    Attributes
    ----------
    layer : str
        Module name.
    shape : tuple of int
        Per-sample output shape of the layer (its units are ``prod(shape)``, in C order).
    runs : tuple of (start, stop, step)
        Consecutive nodes, each the mean of ``step`` consecutive units from ``start`` on, until
        unit ``stop`` (the last node of a run may be shorter); runs cover ``[0, units)`` in order.
    """

    layer: str
    shape: tuple
    runs: tuple

    @property
    def units(self) -> int:
        """Number of units of the layer."""
        return int(math.prod(self.shape))

    @property
    def n_nodes(self) -> int:
        """Number of nodes of the layer."""
        return sum(-(-(stop - start) // step) for start, stop, step in self.runs)

    @property
    def is_units(self) -> bool:
        """True when every unit of the layer is its own node."""
        return self.runs == ((0, self.units, 1),)

    def ranges(self) -> np.ndarray:
        """``(n_nodes, 2)`` int64 array: node ``i`` averages units ``[first, stop)``."""
        return unit_ranges(self.runs)

    def means(self, block: np.ndarray) -> np.ndarray:
        """Group means of one batch: ``(batch, units)`` float64 to ``(batch, n_nodes)`` float64."""
        r = self.ranges()
        sums = np.add.reduceat(block, r[:, 0], axis=1)
        sums /= (r[:, 1] - r[:, 0]).astype(np.float64)
        return sums

    def as_info(self) -> list:
        """The runs as a JSON-friendly list of ``[start, stop, step]``."""
        return [list(run) for run in self.runs]


def unit_ranges(runs: Sequence[Sequence[int]]) -> np.ndarray:
    """Expand runs ``(start, stop, step)`` to one ``[first, stop)`` unit range per node.

    Returns
    -------
    ndarray, shape (n_nodes, 2), int64
    """
    parts = []
    for start, stop, step in runs:
        first = np.arange(int(start), int(stop), int(step), dtype=np.int64)
        parts.append(np.column_stack([first, np.minimum(first + int(step), int(stop))]))
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# parsing


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"groups: {what} must be an integer >= 1, got {value!r}")
    return int(value)


def _text_rule(text: str, where: str) -> _Rule:
    t = text.strip()
    if t in ("units", "channel"):
        return _Rule(t)
    word, sep, num = t.partition(":")
    word, num = word.strip(), num.strip()
    if sep and word in _KEYWORDS:
        try:
            value = int(num)
        except ValueError:
            raise ValueError(f"groups: {where}{text!r} needs an integer after '{word}:' "
                             f"(e.g. '{word}:16')") from None
        return _Rule(word, _count(value, f"the number in {text!r}"))
    raise ValueError(f"groups: {where}{text!r} is not a grouping; use {_FORMS}")


def _keyword_rule(spec: Mapping[str, Any], where: str) -> _Rule:
    keys = list(spec)
    if len(keys) != 1:
        raise ValueError(f"groups: {where}{dict(spec)!r} is ambiguous: give one of 'chunk' "
                         "(units per node) or 'nodes' (number of nodes)")
    key = keys[0]
    return _Rule(key, _count(spec[key], f"{where}{{{key!r}: ...}}"))


def _layer_rule(spec: Any, layer: str) -> _Rule:
    where = f"layer {layer!r}: "
    if spec is None:
        return _Rule("units")
    if isinstance(spec, str):
        return _text_rule(spec, where)
    if isinstance(spec, Mapping):
        bad = [k for k in spec if k not in _KEYWORDS]
        if bad:
            raise ValueError(f"groups: {where}{dict(spec)!r} is not a grouping of one layer "
                             "(per-layer specs do not nest); use 'units', 'channel', "
                             "{'chunk': K} or {'nodes': N}")
        return _keyword_rule(spec, where)
    raise ValueError(f"groups: {where}got {type(spec).__name__} {spec!r}; use 'units', "
                     "'channel', {'chunk': K} or {'nodes': N}")


def parse_groups(groups: GroupSpec, layers: Optional[Sequence[str]] = None) -> Groups:
    """Validate and normalise a grouping spec (forms: see the module docstring).

    Parameters
    ----------
    groups : None, str, mapping or Groups
        The spec.
    layers : sequence of str, optional
        The recorded layers; given, a per-layer spec must name only these.

    Returns
    -------
    Groups

    Raises
    ------
    ValueError
        One line naming what is wrong or ambiguous and the accepted forms.
    """
    if isinstance(groups, Groups):
        parsed = groups
    elif groups is None:
        parsed = Groups(_Rule("units"))
    elif isinstance(groups, str):
        parsed = Groups(_text_rule(groups, ""))
    elif isinstance(groups, Mapping):
        keys = list(groups)
        if not keys:
            raise ValueError("groups={} names no layer; pass None (or 'units') for every unit "
                             "its own node")
        bad_keys = [k for k in keys if not isinstance(k, str)]
        if bad_keys:
            raise ValueError(f"groups: mapping keys must be layer names or 'chunk'/'nodes', got "
                             f"{bad_keys[0]!r}")
        kw = [k for k in keys if k in _KEYWORDS]
        if kw and len(kw) != len(keys):
            names = [k for k in keys if k not in _KEYWORDS]
            raise ValueError(f"groups: {dict(groups)!r} mixes the keyword {kw[0]!r} with layer "
                             f"names {names}; pass either {{{kw[0]!r}: K}} for every layer or "
                             "{layer: spec, ...}")
        if kw:
            parsed = Groups(_keyword_rule(groups, ""))
        else:
            parsed = Groups(None, tuple(sorted((k, _layer_rule(v, k)) for k, v in groups.items())))
    else:
        raise ValueError(f"groups must be {_FORMS}; got {type(groups).__name__}")
    if parsed.rule is None:
        if layers is not None:
            known = set(layers)
            unknown = [name for name, _ in parsed.per_layer if name not in known]
            if unknown:
                raise ValueError(f"groups names layers that are not recorded: {unknown}; "
                                 f"recorded layers: {list(layers)}")
        # a layer named with 'units' is grouped as an unnamed one: one canonical form
        kept = tuple((name, r) for name, r in parsed.per_layer if r.kind != "units")
        parsed = Groups(None, kept) if kept else Groups(_Rule("units"))
    return parsed


# --------------------------------------------------------------------------------------------
# resolution against the layers' output shapes


def _balanced(units: int, n: int) -> tuple:
    """``n`` runs of consecutive units whose sizes differ by at most 1, the longer ones first."""
    q, r = divmod(units, n)
    runs = []
    if r:
        runs.append((0, r * (q + 1), q + 1))
    if q:
        runs.append((r * (q + 1), units, q))
    return tuple(runs)


def _channel_runs(layer: str, shape: tuple, explicit: bool) -> tuple:
    units = int(math.prod(shape))
    if len(shape) < 2:
        if explicit:
            raise ValueError(f"groups: layer {layer!r} has per-sample output shape {shape}, which "
                             "has no channels (a conv layer's is (C, *spatial)); use 'units' or "
                             "chunks for it")
        return ((0, units, 1),)
    per_channel = units // int(shape[0])
    return ((0, units, per_channel),)


def _shares(total: int, sizes: Sequence[int]) -> list:
    """``total`` nodes shared among layers of ``sizes`` units in proportion (at least 1, at most
    the layer's units; largest remainders, ties to the earlier layer).

    Exact integer arithmetic: layer ``i``'s quota is ``total * sizes[i] / units`` and its
    remainder over ``n[i]`` nodes is compared as ``total * sizes[i] - n[i] * units``.
    """
    units = sum(sizes)
    n = [max(1, total * s // units) for s in sizes]

    def excess(i: int) -> int:  # (quota - n[i]) * units
        return total * sizes[i] - n[i] * units

    diff = total - sum(n)
    while diff > 0:
        free = sorted((i for i in range(len(sizes)) if n[i] < sizes[i]),
                      key=lambda i: (-excess(i), i))
        for i in free[:diff]:
            n[i] += 1
        diff = total - sum(n)
    while diff < 0:
        over = sorted((i for i in range(len(sizes)) if n[i] > 1), key=lambda i: (excess(i), i))
        for i in over[:-diff]:
            n[i] -= 1
        diff = total - sum(n)
    return n


def resolve_groups(groups: Groups, layers: Sequence[str],
                   shapes: Sequence[Sequence[int]]) -> list:
    """The nodes of each layer under ``groups``, given the layers' per-sample output shapes.

    Parameters
    ----------
    groups : Groups
        From :func:`parse_groups`.
    layers : sequence of str
        Layer names, in node order.
    shapes : sequence of tuple of int
        Per-sample output shape of each layer (without the batch dimension).

    Returns
    -------
    list of LayerGroups
        One per layer, in ``layers`` order.

    Raises
    ------
    ValueError
        A layer without units, ``"channel"`` named for a layer without channels, more nodes asked
        of a layer than it has units, or a total outside ``[number of layers, number of units]``.
    """
    shapes = [tuple(int(s) for s in shape) for shape in shapes]
    sizes = [int(math.prod(s)) for s in shapes]
    for name, size in zip(layers, sizes):
        if size < 1 and not groups.is_units:
            raise ValueError(f"groups: layer {name!r} has no units to group")
    rules = dict(groups.per_layer) if groups.rule is None else {}
    out = []
    if groups.rule is not None and groups.rule.kind == "nodes":
        total, units = groups.rule.size, sum(sizes)
        if total > units:
            raise ValueError(f"groups: {total} nodes asked for but the layers have {units} units; "
                             "pass None (or 'units') for every unit its own node")
        if total < len(layers):
            raise ValueError(f"groups: {total} nodes asked for but there are {len(layers)} layers "
                             "(at least one node each)")
        return [LayerGroups(name, shape, _balanced(size, n))
                for name, shape, size, n in zip(layers, shapes, sizes, _shares(total, sizes))]
    for name, shape, size in zip(layers, shapes, sizes):
        rule = groups.rule if groups.rule is not None else rules.get(name, _Rule("units"))
        if rule.kind == "units":
            runs = ((0, size, 1),)
        elif rule.kind == "channel":
            runs = _channel_runs(name, shape, explicit=groups.rule is None)
        elif rule.kind == "chunk":
            runs = ((0, size, min(rule.size, size)),)
        else:  # per-layer "nodes"
            if rule.size > size:
                raise ValueError(f"groups: layer {name!r} asked for {rule.size} nodes but has "
                                 f"{size} units")
            runs = _balanced(size, rule.size)
        out.append(LayerGroups(name, shape, runs))
    return out
