"""The live deadlock watch's question: is there a cycle in the wait-for graph of traced locks?

Read from :mod:`.traced_state`'s tables and each lock's owner. Re-exported by :mod:`.traced`.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from .traced_state import _waiting, _waiting_on, holds


def find_cycle() -> list[dict[str, Any]] | None:
    """A cycle in the wait-for graph of traced locks, as ``[{thread, holds, waits_for}, ...]``.

    Thread A waits for lock L whose owner is B: an edge A → B (A → A when a thread asks again for a
    plain Lock it holds: a deadlock of one). Only locks count (one owner each);
    a semaphore's many holders would make cycles that are not deadlocks.
    """
    found = find_cycle_detail()
    return found.cycle if found is not None else None


class Cycle(NamedTuple):
    cycle: list[dict[str, Any]]  # as find_cycle() returns it
    idents: list[int]  # the threads of ``cycle``, in the same order
    since: float  # time.monotonic() when the last of its waits began: when the cycle formed


def find_cycle_detail() -> Cycle | None:
    """:func:`find_cycle`, plus the threads' idents and when the cycle formed."""
    edges: dict[int, tuple[int, str, float]] = {}
    # One copy of _waiting, then only the copy is read: each entry is one consistent wait.
    for ident, (name, state, since) in list(_waiting.items()):
        lock = _waiting_on.get(ident)
        owner = lock._owner if lock is not None else None
        if state == "waiting-lock" and owner is not None:
            # owner == ident: a thread waiting for itself (plain Lock)
            edges[ident] = (owner, name, since)
    for start in edges:
        path, seen = [start], {start}
        node = start
        while node in edges:
            node = edges[node][0]
            if node == start:
                return Cycle(
                    [_cycle_entry(ident, edges[ident][1]) for ident in path],
                    path,
                    max(edges[ident][2] for ident in path),
                )
            if node in seen:
                break
            seen.add(node)
            path.append(node)
    return None


def _cycle_entry(ident: int, waits_for: str) -> dict[str, Any]:
    names = {t.ident: t.name for t in threading.enumerate()}
    return {"thread": names.get(ident, str(ident)), "holds": holds(ident), "waits_for": waits_for}
