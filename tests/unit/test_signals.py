"""The kit's app-level Signal and EventLoop (lessons/kit/signals.py)."""

from __future__ import annotations

import gc
import logging
import sys
import threading

import pytest

from lessons.kit.signals import EventLoop, Signal


class Receiver:
    """An object whose bound method is a slot: it records what it got, and in which thread."""

    def __init__(self) -> None:
        self.got: list[tuple] = []
        self.threads: list[str] = []

    def on_value(self, *args, **kwargs) -> None:
        self.got.append((args, kwargs))
        self.threads.append(threading.current_thread().name)


def test_connect_emit_disconnect():
    signal, receiver, calls = Signal("changed"), Receiver(), []

    def function_slot(value, *, unit):
        calls.append((value, unit))

    signal.connect(receiver.on_value)
    signal.connect(function_slot)
    assert signal.emit(3, unit="ms") == 2
    assert receiver.got == [((3,), {"unit": "ms"})] and calls == [(3, "ms")]

    assert signal.disconnect(receiver.on_value)  # a fresh bound method equal to the connected one
    assert not signal.disconnect(receiver.on_value), "only one connection to remove"
    assert signal.emit(4, unit="s") == 1
    assert len(receiver.got) == 1 and calls[-1] == (4, "s")
    assert len(signal) == 1


def test_direct_slots_run_in_the_emitting_thread():
    signal, receiver = Signal(), Receiver()
    signal.connect(receiver.on_value)
    emitter = threading.Thread(target=signal.emit, args=(1,), name="Emitter")
    emitter.start()
    emitter.join(timeout=5)
    assert receiver.threads == ["Emitter"]


def test_bound_method_slot_is_dropped_when_its_owner_is_collected():
    signal, keeper = Signal(), Receiver()
    calls: list[int] = []

    class Owner:
        def on_value(self, value):
            calls.append(value)

    owner = Owner()
    signal.connect(owner.on_value)
    signal.connect(keeper.on_value)
    signal.emit(1)
    assert calls == [1] and len(signal) == 2

    del owner
    gc.collect()  # certain collection, even if a reference cycle kept it alive
    assert signal.emit(2) == 1
    assert calls == [1], "a collected owner's slot must not be called"
    assert len(signal) == 1 and len(keeper.got) == 2


def test_plain_functions_and_lambdas_are_held_strongly():
    signal, calls = Signal(), []
    signal.connect(lambda value: calls.append(value))  # nothing else holds this lambda
    gc.collect()
    assert signal.emit(5) == 1 and calls == [5]


def test_a_raising_slot_is_logged_and_does_not_stop_the_others(caplog):
    signal, before, after = Signal("risky"), Receiver(), Receiver()

    def broken(_value):
        raise RuntimeError("slot bug")

    signal.connect(before.on_value)
    signal.connect(broken)
    signal.connect(after.on_value)
    with caplog.at_level(logging.ERROR, logger="threadlab.kit.signals"):
        assert signal.emit(7) == 3
    assert len(before.got) == 1 and len(after.got) == 1
    assert any("broken" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_slot_may_connect_and_emit_from_inside_emit_without_deadlock():
    signal, late, depth = Signal(), Receiver(), []

    def reentrant(value):
        depth.append(value)
        if value == 0:
            signal.connect(late.on_value)
            signal.emit(1)  # re-enters emit: would deadlock if emit held its lock while calling

    signal.connect(reentrant)
    worker = threading.Thread(target=signal.emit, args=(0,), name="Emitter", daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "emit deadlocked on its own lock"
    assert depth == [0, 1] and len(late.got) == 1


def test_queued_slots_run_in_the_loop_thread_only():
    signal, loop, receiver = Signal("item_ready"), EventLoop("UI"), Receiver()
    direct = Receiver()
    signal.connect(receiver.on_value, loop=loop)
    signal.connect(direct.on_value)
    done = threading.Event()  # set by the test once every emitter has finished; the UI loop waits on it
    ui = threading.Thread(target=loop.run, kwargs={"stop": done, "timeout": 10}, name="UI")
    ui.start()
    emitters = [threading.Thread(target=lambda: [signal.emit(i) for i in range(20)], name=f"Worker-{n}")
                for n in range(1, 4)]
    for thread in emitters:
        thread.start()
    for thread in emitters:
        thread.join(timeout=10)
    done.set()
    ui.join(timeout=10)
    assert not ui.is_alive()
    assert len(receiver.got) == 60, "the loop drains what was posted before stop"
    assert set(receiver.threads) == {"UI"}
    assert set(direct.threads) == {"Worker-1", "Worker-2", "Worker-3"}


def test_event_loop_process_pending_and_timeouts():
    loop, ran = EventLoop("test"), []
    assert loop.process_pending() == 0
    loop.post(lambda: ran.append("a"))
    loop.post(lambda: ran.append("b"))
    assert loop.process_pending(timeout=1) == 2 and ran == ["a", "b"]
    assert loop.run(timeout=0.1) == 0  # returns on its own when nothing comes
    with pytest.raises(ValueError):
        loop.run()


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond, so a connect lands in the middle of an emit's prune/copy."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def test_concurrent_connect_and_emit_lose_no_connection(fast_switching):
    signal, errors = Signal(), []
    threads_n, per_thread = 6, 200
    start = threading.Barrier(threads_n * 2)  # lines every thread up so connects and emits overlap

    def connector():
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                signal.connect(lambda *_: None)  # distinct lambdas: each is its own connection
        except Exception as error:  # anything at all is a failure
            errors.append(error)

    def emitter():
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                signal.emit(1)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=connector, name=f"Connector-{i}") for i in range(threads_n)]
    threads += [threading.Thread(target=emitter, name=f"Emitter-{i}") for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(signal) == threads_n * per_thread
