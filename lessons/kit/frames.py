"""Reading another thread's Python frames: where it is in the lesson, and what it is waiting for.

A thread blocked in C (``time.sleep``, ``lock.acquire``, ``socket.recv``) has no Python frame of its
own, so its state is read from two places: the standard-library function it is inside
(``Queue.get`` → waiting-queue; found by qualified name, outermost first) or, when the innermost
frame is the lesson's own code, the call expression being executed (``time.sleep(0.1)`` → sleeping,
found from the instruction's source position). Both are cached per code position, so a sample costs
a few dictionary look-ups per thread. An event loop waiting for work is told apart from other
waits: asyncio's selector called by ``BaseEventLoop._run_once``, a Qt ``exec()``/``exec_()`` called
from the lesson, and the kit's own ``EventLoop.run`` are ``waiting-event-loop``.

**This module is the only place in the kit that reads another thread's frames** (``sys.
_current_frames``, and ``f_back``, ``f_lasti``, ``f_lineno`` of what it returns), so the question
"is that safe?" has one answer, here:

- *With the GIL* (every build the project supports today) it is safe. A thread changes its own
  frame stack (pushes, pops, moves its instruction pointer) only while it holds the GIL, and so do
  we while we read: while one of our bytecodes runs, the thread we look at is stopped between two
  of its own, or in C code that does not touch its Python frames. A frame object that has returned
  by the time we read it keeps its own copy of its data, so reading it is stale, never unsafe. What
  we read is not one instant across threads (the GIL may pass between two of our reads), which is
  fine for a table refreshed ten times a second.
- *Without the GIL* (a free-threaded build, ``sys._is_gil_enabled()`` False) the other thread runs
  in parallel and frees or rewrites the frame we are reading: a known use-after-free crash
  (python/cpython#152355, found with ThreadSanitizer in ``PyFrame_GetLineNumber``). There,
  :func:`current_frames` returns nothing, so snapshots are built from the traced primitives alone
  (no ``where``; ``running`` unless a traced primitive says otherwise) and :func:`thread_stacks`
  shows only the calling thread's own stack, which is always safe to walk. Events built that way
  carry ``limited`` (:data:`FREE_THREADED_NOTE`) so nobody mistakes the gap for an idle thread.
"""

from __future__ import annotations

import gc
import linecache
import os
import re
import sys
import sysconfig
import threading
from collections.abc import Iterable
from types import CodeType, FrameType, TracebackType

KIT_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB_DIRS = tuple(
    {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
)

# Standard-library functions that block, by qualified name → state. Checked from the outermost
# stdlib frame inwards, because ``Queue.get`` is built on ``Condition.wait``:
# the outer one says more.
BLOCKING_QUALNAMES = {
    "Queue.get": "waiting-queue",
    "Queue.put": "waiting-queue",
    "Queue.join": "waiting-queue",
    "Event.wait": "waiting-event",
    "Future.result": "waiting-event",
    "Future.exception": "waiting-event",
    "wait": "waiting-event",  # concurrent.futures.wait
    "as_completed": "waiting-event",
    # A join waits for a thread to end, not for a lock (that threading builds it on a lock is a
    # detail): shown as waiting-lock it was drawn in a deadlock's colour.
    "Thread.join": "waiting-join",
    "Semaphore.acquire": "waiting-lock",
    "BoundedSemaphore.acquire": "waiting-lock",
    "Barrier.wait": "waiting-condition",
    "Condition.wait": "waiting-condition",
    "Condition.wait_for": "waiting-condition",
    "BaseSelector.select": "waiting-io",
    "EpollSelector.select": "waiting-io",
    "PollSelector.select": "waiting-io",
    "SelectSelector.select": "waiting-io",
    "socket.accept": "waiting-io",
    "Popen.wait": "waiting-io",
    "Popen.communicate": "waiting-io",
    # The kit's signals-and-slots loop, idle between queued calls (a slot it runs is lesson code,
    # where the walk below stops, so a busy slot still shows as what it does).
    "EventLoop.run": "waiting-event-loop",
}

# A selector's select() called straight from asyncio's loop iteration is the loop waiting for work.
_SELECTS = frozenset(q for q in BLOCKING_QUALNAMES if q.endswith("Selector.select"))
_ASYNCIO_RUN_ONCE = "BaseEventLoop._run_once"

# The last name of a call made from the lesson's own code → state.
BLOCKING_CALLS = {
    "sleep": "sleeping",
    "acquire": "waiting-lock",
    "join": "waiting-join",
    "wait": "waiting-condition",
    "wait_for": "waiting-condition",
    "get": "waiting-queue",
    "put": "waiting-queue",
    "recv": "waiting-io",
    "recvfrom": "waiting-io",
    "accept": "waiting-io",
    "read": "waiting-io",
    "readline": "waiting-io",
    "select": "waiting-io",
    "poll": "waiting-io",
    "input": "waiting-io",
    "connect": "waiting-io",
    "sendall": "waiting-io",
    # Qt's event loops (QApplication, QEventLoop, QThread, QDialog): C++ all the way down, so the
    # call from the lesson is all there is to see. Only as a method call: the builtin exec() runs
    # Python code, whose own frames would be innermost.
    "exec": "waiting-event-loop",
    "exec_": "waiting-event-loop",
}
_METHOD_ONLY = frozenset({"exec", "exec_"})

_CALL_RE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")
# Caches shared by the sampler and the command thread without a lock, on purpose: each entry is
# written by one dict assignment (atomic), and two threads racing on a key store the same value,
# so a lost race costs one recomputation, never a wrong answer.
_callee_cache: dict[tuple[CodeType, int], str] = {}
_stdlib_cache: dict[str, bool] = {}

FREE_THREADED_NOTE = (
    "free-threaded build: other threads' frames are not read (a known crash there); "
    "states come from traced primitives only"
)


def gil_enabled() -> bool:
    """False only on a free-threaded build running without the GIL (3.13t and later).

    Asked each time rather than once at import: such a build can turn the GIL back on at run time
    (an extension that needs it), and tests switch it by monkeypatching ``sys._is_gil_enabled``.
    """
    return getattr(sys, "_is_gil_enabled", lambda: True)()


def limitation() -> str | None:
    """:data:`FREE_THREADED_NOTE` where other threads' frames cannot be read, else ``None``."""
    return None if gil_enabled() else FREE_THREADED_NOTE


# Serialises the kit's calls of sys._current_frames() (sampler, dump, emit_result) and guards the
# collector switch below: with two callers at once, one could turn the collector back on while
# the other is still inside the call.
_current_frames_lock = threading.Lock()


def current_frames() -> dict[int, FrameType]:
    """Every thread's innermost frame by ident (``sys._current_frames()``): ``{}`` without the GIL.

    The one call in the kit that reaches into other threads' stacks; see the module docstring for
    why it is safe under the GIL and why it must not run without it.

    The garbage collector is off during the call. ``sys._current_frames()`` holds the runtime's
    thread-list lock while it allocates; a collection there runs Python code (weakref callbacks,
    ``__del__``), which may hand the GIL to a thread that is starting or ending and so needs that
    same lock: a deadlock (python/cpython#106883, seen here on 3.11 with threads coming and going).
    A lesson thread that switches the collector itself during these microseconds may find it on
    again: the one gap left, since ``gc`` has no way to switch it for one call only.
    """
    if not gil_enabled():
        return {}
    with _current_frames_lock:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames()
        finally:
            if was_enabled:
                gc.enable()


def thread_stacks(threads: Iterable[threading.Thread]) -> list[dict]:
    """``{name, ident, frames}`` for each of ``threads``, at one instant (a ``stacks`` event).

    Without the GIL only the calling thread's own stack is filled in (walking one's own frames is
    always safe); the others come with their names and no frames.
    """
    current = current_frames()  # empty only without the GIL: we are a thread ourselves
    if not current:
        # Our caller's frame (this helper's own says nothing): ours to walk, even in parallel.
        current = {threading.get_ident(): sys._getframe(1)}
    return [
        {"name": t.name, "ident": t.ident, "frames": stack(current.get(t.ident))} for t in threads
    ]


def is_stdlib(filename: str) -> bool:
    """True for files of the standard library (site-packages excluded)."""
    known = _stdlib_cache.get(filename)
    if known is None:
        path = os.path.realpath(filename)
        known = path.startswith(_STDLIB_DIRS) and "site-packages" not in path
        _stdlib_cache[filename] = known
    return known


def is_kit(filename: str) -> bool:
    return filename.startswith(KIT_DIR)


def callee(frame: FrameType) -> str:
    """The name called by the instruction ``frame`` is executing (``"time.sleep"``), or ``""``."""
    key = (frame.f_code, frame.f_lasti)
    name = _callee_cache.get(key)
    if name is None:
        name = ""
        positions = list(frame.f_code.co_positions())
        index = frame.f_lasti // 2
        if 0 <= index < len(positions):
            line, end_line, col, end_col = positions[index]
            if line is not None and line == end_line and col is not None:
                text = linecache.getline(frame.f_code.co_filename, line)[col:end_col]
                match = _CALL_RE.match(text)
                name = match.group(1) if match else ""
        _callee_cache[key] = name
    return name


def classify(frame: FrameType | None) -> tuple[str, str]:
    """``(state, detail)`` for a live thread whose innermost frame is ``frame``."""
    if frame is None:
        return "running", ""
    # Walk out through library frames (stdlib and the kit), remembering the outermost blocking one.
    state, detail = "", ""
    current: FrameType | None = frame
    while current is not None and (
        is_stdlib(current.f_code.co_filename) or is_kit(current.f_code.co_filename)
    ):
        qualname = current.f_code.co_qualname
        if qualname in BLOCKING_QUALNAMES:
            state, detail = BLOCKING_QUALNAMES[qualname], qualname
            caller = current.f_back
            if qualname in _SELECTS and caller and caller.f_code.co_qualname == _ASYNCIO_RUN_ONCE:
                state, detail = "waiting-event-loop", "asyncio event loop"
        current = current.f_back
    if state:
        return state, detail
    name = callee(frame)
    last = name.rpartition(".")[2]
    if last in _METHOD_ONLY and "." not in name:
        return "running", name
    return BLOCKING_CALLS.get(last, "running"), name


def position(frame: FrameType) -> tuple[CodeType, int]:
    """Where ``frame`` is: its code object and the offset of its last instruction (``f_lasti``).

    The survey compares two looks at a thread by this: the same pair twice, and the thread may be
    waiting there. Only ever given frames from :func:`current_frames`, so the free-threaded case
    never gets here (that function returns ``{}`` without the GIL); under the GIL the read is as
    safe as the module docstring says.
    """
    return frame.f_code, frame.f_lasti


def lesson_frame(frame: FrameType | None, main_file: str | None) -> FrameType | None:
    """The innermost frame in the lesson's own file (else the innermost outside stdlib and kit)."""
    fallback = None
    current = frame
    while current is not None:
        filename = current.f_code.co_filename
        if main_file and filename == main_file:
            return current
        if fallback is None and not is_stdlib(filename) and not is_kit(filename):
            fallback = current
        current = current.f_back
    return fallback


def where(frame: FrameType | None) -> dict:
    """``where`` (``"file.py:42 producer"``), plus ``line`` and ``func`` for the source view."""
    if frame is None:
        return {"where": "", "line": None, "func": ""}
    code = frame.f_code
    return {
        "where": f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}",
        "line": frame.f_lineno,
        "func": code.co_name,
    }


def traceback_where(tb: TracebackType | None, main_file: str | None) -> dict:
    """:func:`where` for an exception: the innermost traceback entry in the lesson's own file, else
    the innermost outside stdlib and kit (as :func:`lesson_frame` picks frames), with the line the
    traceback gives (a finished frame's own line number may have moved on)."""
    entries = []  # outermost first, as the traceback links them
    while tb is not None:
        entries.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    fallback = None
    for code, line in reversed(entries):
        filename = code.co_filename
        if main_file and filename == main_file:
            fallback = (code, line)
            break
        if fallback is None and not is_stdlib(filename) and not is_kit(filename):
            fallback = (code, line)
    if fallback is None:
        return {"where": "", "line": None, "func": ""}
    code, line = fallback
    return {
        "where": f"{os.path.basename(code.co_filename)}:{line} {code.co_name}",
        "line": line,
        "func": code.co_name,
    }


def stack(frame: FrameType | None, limit: int = 40) -> list[dict]:
    """A thread's stack, outermost first like a traceback: file, line, function and source text."""
    frames = []
    current = frame
    while current is not None and len(frames) < limit:
        code = current.f_code
        frames.append(
            {
                "file": code.co_filename,
                "line": current.f_lineno,
                "func": code.co_qualname,
                "code": linecache.getline(code.co_filename, current.f_lineno or 0).strip(),
            }
        )
        current = current.f_back
    frames.reverse()
    return frames
