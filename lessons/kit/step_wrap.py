"""What the step-mode wrappers of the traced primitives share: the methods they replaced, the test
"is this thread stepped?", and putting them in place.

The wrappers (``step_wrap_locks``, ``step_wrap_gates``, ``step_wrap_queues``,
``step_wrap_threads``) are installed over :mod:`.traced`'s methods (and ``Thread.start``/``join``)
by ``step.start()`` only, so that without step mode nothing of this costs anything. Each runs the
original when the calling thread is not stepped (a kit thread, or after ``free``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import sampler as sampler_module
from . import step_stepper
from .step_records import BUSY, RUNNING, rec_for
from .step_stepper import Stepper

BIG_TIMEOUT = 1e6  # a "forever" real timeout for a barrier whose timeout the step clock enforces
WRAPS = "__threadlab_wraps__"  # as sampler/traced: the original a wrapper wraps
Patch = tuple[type, str, Callable[..., Any]]  # (class, method name, its step-mode version)

# (class, name) → the method each wrapper replaced. Written by install() only, which the main
# thread runs in kit.setup() before any lesson thread is stepped; read by the wrappers after.
_ORIGINAL: dict[tuple[type, str], Any] = {}


def original(owner: type, name: str) -> Any:
    return _ORIGINAL[(owner, name)]


def stepping_here() -> Stepper | None:
    """The stepper, if it holds the calling thread (a lesson thread while stepping), else None."""
    stepper = step_stepper.current
    if stepper is None or not stepper.active:
        return None
    if sampler_module.is_kit_thread(threading.current_thread()):
        return None
    return stepper


@contextlib.contextmanager
def busy(stepper: Stepper) -> Iterator[None]:
    """Mark the calling thread surely running (``BUSY``) for the ``with`` body."""
    with stepper.cv:
        rec = rec_for(threading.current_thread())
        rec.status = BUSY
    try:
        yield
    finally:
        with stepper.cv:
            rec.status = RUNNING
            stepper.cv.notify_all()


def install(patches: list[Patch]) -> None:
    """Put the step-mode methods in place (again, if ``kit.setup`` replaced one, as it does
    ``Thread.join``), remembering each method replaced."""
    for owner, name, function in patches:
        current = owner.__dict__[name]
        if current is function:
            continue
        _ORIGINAL[(owner, name)] = current
        setattr(owner, name, function)
