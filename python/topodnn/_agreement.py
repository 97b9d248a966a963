"""Agreement of the ranks of an mpi4py communicator on the validation of a call.

Under MPI every rank checks its own arguments, then (``comm`` given, more than one rank) the
verdicts are exchanged in one small ``allgather`` on the given communicator *before any other
collective*: if one rank's input is bad, every rank raises the same :class:`ValueError`, with the
message of the first failing rank and ``"(on rank r of P)"``; if the ranks passed arguments that
must agree but do not (a threshold, a content hash of a model...), every rank raises a
:class:`ValueError` naming what differs and on which ranks.

What cannot be detected: a rank that never makes the call (it returned early, raised elsewhere,
or passed an invalid communicator, which is refused before the exchange): the other ranks wait
in the ``allgather`` forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Optional, TypeVar

__all__ = ["agree", "agree_on", "check_comm", "comm_size", "on_rank", "digest"]

T = TypeVar("T")


def check_comm(comm: Any) -> None:
    """Refuse anything but ``None`` or a valid mpi4py intracommunicator (checked locally)."""
    if comm is None:
        return
    from mpi4py import MPI

    if not isinstance(comm, MPI.Comm) or isinstance(comm, MPI.Intercomm):
        raise ValueError(
            f"comm must be an mpi4py intracommunicator (e.g. mpi4py.MPI.COMM_WORLD) or None, "
            f"got {type(comm).__name__}"
        )
    if comm == MPI.COMM_NULL:
        raise ValueError("comm is MPI.COMM_NULL; pass a valid communicator or None")


def comm_size(comm: Any) -> int:
    """Number of ranks of ``comm`` (1 for ``None``)."""
    return 1 if comm is None else int(comm.Get_size())


def on_rank(message: str, rank: int, size: int) -> str:
    """``message`` as every rank reports it: ``"<message> (on rank r of P)"``."""
    return f"{message} (on rank {rank} of {size})"


def _text(exc: BaseException) -> str:
    msg = str(exc)
    return msg if isinstance(exc, ValueError) else f"{type(exc).__name__}: {msg}"


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def agree(
    comm: Any,
    error: Optional[BaseException],
    facts: Optional[Mapping[str, Any]] = None,
    *,
    call: str,
) -> None:
    """Exchange this rank's verdict and facts; raise the same ValueError on every rank if needed.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        Already checked with :func:`check_comm`. ``None`` or one rank: ``error`` is raised as it
        is, nothing is exchanged.
    error : exception or None
        This rank's validation failure, if any.
    facts : mapping of str to picklable values, optional
        What must be equal on every rank (arguments, content hashes), in the order to report.
        Compared only when no rank failed.
    call : str
        Name of the public function, for the message on differing facts.

    Raises
    ------
    ValueError
        On every rank: the first failing rank's message (a non-ValueError is prefixed with its
        type) followed by ``"(on rank r of P)"``; or, if facts differ, one line naming each
        differing fact with its values and ranks.
    """
    size = comm_size(comm)
    if size <= 1:
        if error is not None:
            raise error
        return
    mine = (None if error is None else _text(error), None if facts is None else dict(facts))
    everyone = comm.allgather(mine)
    for r, (msg, _) in enumerate(everyone):
        if msg is not None:
            raise ValueError(on_rank(msg, r, size)) from error
    keys: list[str] = []
    for _, f in everyone:
        for k in f or {}:
            if k not in keys:
                keys.append(k)
    parts = []
    for k in keys:
        values = [(f or {}).get(k, "(not given)") for _, f in everyone]
        if all(v == values[0] for v in values[1:]):
            continue
        groups: dict[str, list[int]] = {}
        for r, v in enumerate(values):
            groups.setdefault(repr(v) if not isinstance(v, str) else v, []).append(r)
        parts.append(f"{k}: " + "; ".join(f"{v} on {_ranks(rs)}" for v, rs in groups.items()))
    if parts:
        raise ValueError(
            f"{call}: the ranks were given different inputs ({' | '.join(parts)}); every rank "
            "must pass the same inputs and arguments"
        )


def agree_on(comm: Any, check: Callable[[], tuple[T, Mapping[str, Any]]], *, call: str) -> T:
    """Run ``check()`` (returns ``(value, facts)``), agree on its outcome, return ``value``.

    Any exception raised by ``check`` is this rank's verdict (see :func:`agree`); with ``comm``
    ``None`` or one rank it propagates unchanged.
    """
    try:
        value, facts = check()
    except Exception as exc:  # every rank must learn of it before the first collective
        agree(comm, exc, None, call=call)
        raise  # pragma: no cover - agree() always raises when given an error
    agree(comm, None, facts, call=call)
    return value


def digest() -> "hashlib._Hash":
    """The content hash used in facts (BLAKE2b, 8 bytes; reported as 16 hex digits)."""
    return hashlib.blake2b(digest_size=8)
