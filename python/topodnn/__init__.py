"""topodnn: the topology of what deep networks learn.

The main entry points, resolved lazily so that ``import topodnn`` stays cheap (torch, MPI and the
compiled engine are loaded only when first used):

- :func:`topodnn.persistence` — Vietoris–Rips persistence of a distance matrix, in memory, serial
  or across the ranks of an mpi4py communicator (module :mod:`topodnn.engine`).
- :func:`topodnn.functional_graph`, :func:`topodnn.topology` — from a torch model to its
  functional graph and to its persistence diagrams (module :mod:`topodnn.graph`); for big
  networks, ``groups=`` makes a node of a conv channel or a chunk of units (:mod:`topodnn.grouping`).
- :mod:`topodnn.io` — DIPHA binary files; :mod:`topodnn.results` — the files a run leaves
  behind (layout, atomic writes, verified reads); :mod:`topodnn.summaries` — Betti curves, life,
  midlife; :mod:`topodnn.plots`; :mod:`topodnn.training`, :mod:`topodnn.networks`,
  :mod:`topodnn.datasets`; :mod:`topodnn.early_stopping`, :mod:`topodnn.gap`.
- :func:`topodnn.init_mpi` — initialise MPI with the package's fast start-up defaults (one
  machine; the user's MCA settings win) and return :mod:`mpi4py.MPI`: call it instead of
  importing ``mpi4py.MPI`` first in a script that passes ``comm=``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "persistence": "topodnn.engine",
    "functional_graph": "topodnn.graph",
    "topology": "topodnn.pipeline",
    "save_dipha": "topodnn.graph",
    "betti_curve": "topodnn.summaries",
    "summarise_diagrams": "topodnn.summaries",
    "init_mpi": "topodnn._mpi",
}
_SUBMODULES = (
    "cli", "datasets", "early_stopping", "engine", "gap", "graph", "grouping", "io", "networks",
    "pipeline", "plots", "results", "summaries", "training",
)

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"topodnn.{name}")
    raise AttributeError(f"module 'topodnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
