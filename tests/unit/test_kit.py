"""The lesson kit: JSON log events, argument bounds, thread states, traced primitives."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import threading
import time

import pytest

from lessons.kit import events, frames, traced
from lessons.kit.args import int_range, lesson_parser
from lessons.kit.logsetup import JsonEventHandler
from lessons.kit.sampler import Sampler


@pytest.fixture
def captured():
    stream = io.BytesIO()
    events.enable(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    events._stream = None


def test_log_event_has_the_schema_fields(captured):
    logger = logging.getLogger("test.kit")
    logger.addHandler(handler := JsonEventHandler())
    logger.setLevel(logging.INFO)
    try:
        logger.info("put item %d", 7, extra={"worker_id": 3})
    finally:
        logger.removeHandler(handler)
    (event,) = captured()
    assert event["v"] == 1 and event["kind"] == "log" and isinstance(event["t"], float)
    fields = (event["level"], event["logger"], event["msg"], event["worker_id"])
    assert fields == ("INFO", "test.kit", "put item 7", 3)
    assert event["thread"] == threading.current_thread().name and event["thread_id"] == threading.get_ident()


def test_bounded_int_rejects_out_of_range():
    kind = int_range(1, 5)
    assert kind("3") == 3 and (kind.min, kind.max) == (1, 5)
    for bad in ("0", "6", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            kind(bad)
    parser = lesson_parser("Title.\n\nmore")
    assert parser.description == "Title."
    assert parser.parse_args([]).log_format == "text"


def _state_of(target, *args):
    thread = threading.Thread(target=target, args=args, name="Probe", daemon=True)
    thread.start()
    time.sleep(0.15)
    import sys
    return frames.classify(sys._current_frames()[thread.ident])


def test_states_from_frames():
    import queue
    # Each call is made from this file's code, as a lesson makes it: its frame shows the call.
    assert _state_of(lambda: time.sleep(0.5))[0] == "sleeping"
    assert _state_of(lambda: threading.Event().wait(0.5))[0] == "waiting-event"

    def get_from_empty_queue():
        with contextlib.suppress(queue.Empty):
            queue.Queue().get(timeout=0.5)

    assert _state_of(get_from_empty_queue)[0] == "waiting-queue"
    lock = threading.Lock()
    lock.acquire()
    assert _state_of(lambda: lock.acquire(timeout=0.5))[0] == "waiting-lock"
    assert _state_of(lambda: [i for i in range(10**7)])[0] == "running"  # bytecode: the GIL moves
    lock.release()
    cond = threading.Condition()
    assert _state_of(lambda: cond.acquire() and cond.wait(0.5))[0] == "waiting-condition"


def test_traced_lock_reports_holder_waiter_and_cycle(captured):
    a, b = traced.Lock("A"), traced.Lock("B")
    ready = threading.Barrier(2)

    def take(first, second):
        with first:
            ready.wait()
            if second.acquire(timeout=0.6):
                second.release()

    t1 = threading.Thread(target=take, args=(a, b), name="T1")
    t2 = threading.Thread(target=take, args=(b, a), name="T2")
    t1.start(), t2.start()
    time.sleep(0.2)
    assert traced.holds(t1.ident) == ["A"] and traced.waiting(t1.ident)[0] == "B"
    cycle = traced.find_cycle()
    assert cycle and {c["thread"] for c in cycle} == {"T1", "T2"}
    t1.join(2), t2.join(2)
    assert traced.find_cycle() is None and traced.holds(t1.ident) == []
    ops = [(e["op"], e["obj"]) for e in captured() if e["kind"] == "sync"]
    assert ("wait", "B") in ops and ("timeout", "A") in ops or ("timeout", "B") in ops


def test_traced_rlock_and_condition_behave_like_the_originals():
    rlock = traced.RLock("R")
    with rlock, rlock:
        assert traced.holds(threading.get_ident()) == ["R"]
    assert traced.holds(threading.get_ident()) == []
    cond = traced.Condition(name="C")
    box = []
    def put():
        with cond:
            box.append(1)
            cond.notify()
    with cond:
        threading.Thread(target=put).start()
        assert cond.wait_for(lambda: box, timeout=2)
    sem = traced.BoundedSemaphore(1, name="S")
    with sem:
        assert not sem.acquire(blocking=False)
    with pytest.raises(ValueError):
        sem.release()


def test_sampler_snapshot_and_deadlock_event(captured):
    sampler = Sampler(interval=0.05, snapshots=True)
    a, b = traced.Lock("left"), traced.Lock("right")
    ready = threading.Barrier(2)

    def take(first, second):
        with first:
            ready.wait()
            if second.acquire(timeout=1.0):
                second.release()

    threads = [threading.Thread(target=take, args=(a, b), name="Left-First"),
               threading.Thread(target=take, args=(b, a), name="Right-First")]
    for t in threads:
        t.start()
    sampler.start()
    for t in threads:
        t.join(3)
    sampler.stop()
    out = captured()
    deadlocks = [e for e in out if e["kind"] == "deadlock"]
    assert len(deadlocks) == 1 and len(deadlocks[0]["cycle"]) == 2
    rows = [row for e in out if e["kind"] == "threads" for row in e["threads"]]
    assert any(r["name"] == "Left-First" and r["state"] == "waiting-lock" and r["holds"] == ["left"]
               for r in rows)
    assert all(not r["name"].startswith("threadlab-") for r in rows)
    final = [e for e in out if e["kind"] == "threads"][-1]["threads"]
    assert {r["name"]: r["state"] for r in final}["Left-First"] == "done"


def test_sampler_shows_a_thread_that_came_and_went_between_two_samples(captured):
    sampler = Sampler(interval=10.0, snapshots=True)  # one sample at start, the next far away
    sampler.start()
    time.sleep(0.05)
    brief = threading.Thread(target=lambda: None, name="Brief", daemon=True)
    brief.start()
    brief.join(1)
    sampler.stop()
    final = [e for e in captured() if e["kind"] == "threads"][-1]["threads"]
    (row,) = [r for r in final if r["name"] == "Brief"]
    assert (row["alive"], row["state"], row["daemon"]) == (False, "done", True)
    assert threading.getprofile() is None  # the hook is gone with the sampler


def test_a_finished_threads_row_never_takes_the_locks_of_a_thread_reusing_its_ident():
    # CPython reuses a finished thread's ident for a new thread (lesson 05: Locked-1 often gets
    # Unlocked-1's). Traced locks know threads by ident, so a finished thread's row must not ask them.
    lock = traced.Lock("reused")
    holder_ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holder_ready.set()
            release.wait(5)

    holder = threading.Thread(target=hold, name="Holder")
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=5) and lock.release(), name="Waiter")
    finished = threading.Thread(target=lambda: None, name="Finished")
    finished.start()
    finished.join(1)
    holder.start()
    holder_ready.wait(5)
    waiter.start()
    try:
        deadline = time.monotonic() + 5
        while not traced.waiting(waiter.ident) and time.monotonic() < deadline:
            time.sleep(0.01)
        finished._ident = waiter.ident  # what ident reuse amounts to, made certain
        row = Sampler(interval=1.0, snapshots=True)._row(finished, None)
        assert (row["state"], row["holds"], row["waiting_for"]) == ("done", [], None)
        finished._ident = holder.ident
        row = Sampler(interval=1.0, snapshots=True)._row(finished, None)
        assert (row["state"], row["holds"], row["waiting_for"]) == ("done", [], None)
    finally:
        release.set()
        holder.join(5)
        waiter.join(5)
