"""Whose code made a primitive, and what did it call it? For tracing a plain program's primitives.

``python -m lessons.kit.run`` replaces ``threading.Lock`` and friends; each call then asks:

- :func:`from_program`: was the caller the program's own code? Only then is a traced primitive
  made. Calls from the standard library (``queue.Queue.__init__``, ``concurrent.futures``,
  ``logging``), from site-packages and from the kit itself get the plain original, so the kit never
  traces (or reports) what the program did not write.
- :func:`assigned_name`: what the program assigned the new primitive to, read from the creating
  frame's bytecode: the instruction right after the call. ``lock_a = threading.Lock()`` stores
  with ``STORE_NAME``/``STORE_GLOBAL``/``STORE_FAST``/``STORE_DEREF`` → ``lock_a``;
  ``self.lock = threading.Lock()`` loads ``self`` then ``STORE_ATTR`` → ``Counter.lock`` (the class
  of ``self``), ``counter.lock = ...`` → ``counter.lock``. Anything else (a list, a dict, an
  argument) is named by where it was made: ``prog.py:18``.
- :func:`unique`: names are the traced primitives' identities in the wait-for graph, so two
  ``Account`` objects' ``self.lock`` become ``Account.lock`` and ``Account.lock#2``.
"""

from __future__ import annotations

import dis
import itertools
import os
from types import CodeType, FrameType

from . import frames

_STORES = frozenset({"STORE_NAME", "STORE_GLOBAL", "STORE_FAST", "STORE_DEREF"})
_LOADS = frozenset({"LOAD_NAME", "LOAD_GLOBAL", "LOAD_FAST", "LOAD_DEREF"})

# Caches shared by every creating thread without a lock, on purpose (as frames' caches): each entry
# is written by one dict assignment (atomic under the GIL, per-dict locked without it), and two
# threads racing on a key store the same value, so a lost race costs one recomputation.
_program_cache: dict[str, bool] = {}
# (code, offset of the call) → ("name", name) | ("attr", object's variable, attribute) | None
_target_cache: dict[tuple[CodeType, int], tuple[str, ...] | None] = {}
# base name → its counter. setdefault and next() are single operations (atomic), so two threads
# naming at once get different numbers without a lock.
_used: dict[str, itertools.count] = {}


def from_program(filename: str) -> bool:
    """True for the program's own files: not the standard library, site-packages, or the kit."""
    known = _program_cache.get(filename)
    if known is None:
        known = not (
            filename.startswith("<")  # <frozen ...>, <string>: never a file the program wrote
            or frames.is_stdlib(filename)
            or frames.is_kit(os.path.abspath(filename))
            or "site-packages" in filename
            or "dist-packages" in filename
        )
        _program_cache[filename] = known
    return known


def _target(code: CodeType, offset: int) -> tuple[str, ...] | None:
    key = (code, offset)
    if key in _target_cache:
        return _target_cache[key]
    target: tuple[str, ...] | None = None
    instructions = list(dis.get_instructions(code))  # without CACHE entries: "next" is real
    for i, instruction in enumerate(instructions):
        # The first instruction after the call. f_lasti is the call's own offset on 3.12+, but
        # on 3.11 the offset of its last inline CACHE entry: "after it" fits both.
        if instruction.offset <= offset:
            continue
        after = instructions[i : i + 2]
        if after and after[0].opname in _STORES:
            target = ("name", after[0].argval)
        elif (len(after) == 2 and after[0].opname in _LOADS
              and after[1].opname == "STORE_ATTR"):
            target = ("attr", after[0].argval, after[1].argval)
        break
    _target_cache[key] = target
    return target


def assigned_name(frame: FrameType) -> str:
    """The name the call being executed in ``frame`` is assigned to (see the module docstring)."""
    target = _target(frame.f_code, frame.f_lasti)
    if target is None:
        return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    if target[0] == "name":
        return target[1]
    owner, attribute = target[1], target[2]
    if owner == "self":
        obj = frame.f_locals.get("self")
        if obj is not None:
            return f"{type(obj).__name__}.{attribute}"
    return f"{owner}.{attribute}"


def unique(name: str) -> str:
    """``name`` the first time, then ``name#2``, ``name#3``, ... (see the module docstring)."""
    number = next(_used.setdefault(name, itertools.count(1)))
    return name if number == 1 else f"{name}#{number}"
