"""The lesson kit: JSON log events, argument bounds, thread states, traced primitives."""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
import time

import pytest

from lessons.kit import control, frames, sampler, traced
from lessons.kit.args import int_range, lesson_parser
from lessons.kit.logsetup import JsonEventHandler
from lessons.kit.sampler import Sampler
from tests.unit.conftest import wait_until


@pytest.fixture
def free_threaded(monkeypatch):
    """Pretend to be a free-threaded build running without the GIL (3.13t)."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)


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


def _state_of(target, expected, release):
    """Run ``target`` in a thread until its frames say ``expected`` (or 5 s pass); the state seen.

    Polls instead of sleeping a fixed time: the answer comes as soon as the thread is in its call,
    however slow the machine. ``release`` then lets the thread finish, and it is joined.
    """
    thread = threading.Thread(target=target, name="Probe", daemon=True)
    thread.start()
    seen = ""
    try:
        deadline = time.monotonic() + 5
        while seen != expected and time.monotonic() < deadline:
            frame = frames.current_frames().get(thread.ident)
            seen = frames.classify(frame)[0] if frame is not None else "not started"
            time.sleep(0.001)  # let the probe have the GIL now and then
        return seen
    finally:
        release()
        thread.join(5)


def test_states_from_frames():
    # Each call is made from this file's code, as a lesson makes it: its frame shows the call.
    # Every wait is long (5 s) and ended by the test, so none can finish before it is seen.
    assert _state_of(lambda: time.sleep(0.3), "sleeping", lambda: None) == "sleeping"
    event = threading.Event()
    assert _state_of(lambda: event.wait(5), "waiting-event", event.set) == "waiting-event"

    box: queue.Queue[int] = queue.Queue()
    assert _state_of(lambda: box.get(timeout=5), "waiting-queue", lambda: box.put(1)) == (
        "waiting-queue"
    )
    lock = threading.Lock()
    lock.acquire()
    assert _state_of(lambda: lock.acquire(timeout=5), "waiting-lock", lock.release) == (
        "waiting-lock"
    )
    spin = threading.Event()

    def busy() -> None:
        while not spin.is_set():  # bytecode all the way: the GIL moves, the thread is running
            sum(range(100))

    assert _state_of(busy, "running", spin.set) == "running"
    cond = threading.Condition()

    def notify() -> None:
        with cond:
            cond.notify_all()

    def wait_on_condition() -> None:
        with cond:
            cond.wait(5)

    assert _state_of(wait_on_condition, "waiting-condition", notify) == "waiting-condition"


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
    # Both blocked, each holding one lock: seen as soon as it happens (they wait 0.6 s).
    wait_until(lambda: traced.waiting(t1.ident) and traced.waiting(t2.ident), what="both waiting")
    assert traced.holds(t1.ident) == ["A"] and traced.waiting(t1.ident)[0] == "B"
    cycle = traced.find_cycle()
    assert cycle and {c["thread"] for c in cycle} == {"T1", "T2"}
    t1.join(2), t2.join(2)
    assert traced.find_cycle() is None and traced.holds(t1.ident) == []
    ops = [(e["op"], e["obj"]) for e in captured() if e["kind"] == "sync"]
    # Both blocking waits were reported, and at least one of them gave up: the first to time out
    # releases its lock, so the other may get it just in time (then "acquired", not "timeout").
    assert ("wait", "A") in ops and ("wait", "B") in ops
    assert ("timeout", "A") in ops or ("timeout", "B") in ops


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
    # Reported once when it formed, and once more when a timeout broke it (test_kit_events.py).
    assert [e["op"] for e in deadlocks] == ["formed", "broken"]
    assert len(deadlocks[0]["cycle"]) == 2
    rows = [row for e in out if e["kind"] == "threads" for row in e["threads"]]
    assert any(r["name"] == "Left-First" and r["state"] == "waiting-lock" and r["holds"] == ["left"]
               for r in rows)
    assert all(not r["name"].startswith("threadlab-") for r in rows)
    final = [e for e in out if e["kind"] == "threads"][-1]["threads"]
    assert {r["name"]: r["state"] for r in final}["Left-First"] == "done"


def test_sampler_shows_a_thread_that_came_and_went_between_two_samples(captured):
    sampler = Sampler(interval=10.0, snapshots=True)  # one sample at start, the next far away
    sampler.start()
    # Start Brief only once that first sample is written, so only the newborn hook can catch it.
    wait_until(lambda: any(e["kind"] == "threads" for e in captured()), what="a first snapshot")
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
        wait_until(lambda: traced.waiting(waiter.ident), what="Waiter blocked on the lock")
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


HAMMER_ROUNDS = 300  # per writer: under 2 s with the lock; without it, failed 5 runs in 5


def test_write_snapshot_from_two_threads_at_once(monkeypatch):
    # write_snapshot runs in threadlab-sampler and, at the same time, in the lesson's thread
    # (emit_result, stop). Unserialised, one thread iterated _rows while the other added to it:
    # "dictionary changed size during iteration" inside emit_result. Threads coming and going
    # (Churn) make the table grow and, past MAX_FINISHED, shrink; 50 finished rows make each pass
    # over it long enough to be cut into; a tiny switch interval makes the two writers interleave
    # between almost any two bytecodes.
    monkeypatch.setattr(sampler, "MAX_FINISHED", 50)
    snapshots = Sampler(interval=1.0, snapshots=True)  # not started: the two writers are ours
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            brief = threading.Thread(target=lambda: None, name="Churn")
            brief.start()
            brief.join()

    def hammer() -> None:
        try:
            for _ in range(HAMMER_ROUNDS):
                snapshots.write_snapshot(force=True)
        except Exception as exc:  # any of them is the failure we look for
            errors.append(exc)

    churners = [threading.Thread(target=churn, name=f"Churner-{i}") for i in range(1, 5)]
    writers = [threading.Thread(target=hammer, name=f"Writer-{i}") for i in (1, 2)]
    previous = sys.getswitchinterval()
    threading.setprofile(snapshots._note_new_thread)  # newborns too: their list is drained as well
    sys.setswitchinterval(1e-6)
    try:
        for thread in churners:
            thread.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(60)
    finally:
        sys.setswitchinterval(previous)
        threading.setprofile(None)
        stop.set()
        for thread in churners:
            thread.join(10)
    assert not any(w.is_alive() for w in writers)
    assert not errors, f"{len(errors)} writer(s) failed, first: {errors[0]!r}"


def test_gil_build_reads_other_threads_frames(captured):
    release = threading.Event()
    sleeper = threading.Thread(target=lambda: release.wait(5), name="Sleeper", daemon=True)
    sleeper.start()
    try:
        assert frames.gil_enabled() and frames.limitation() is None
        assert sleeper.ident in frames.current_frames()
        event = control.stacks_event()
        assert "limited" not in event
        (row,) = [t for t in event["threads"] if t["name"] == "Sleeper"]
        assert any(f["func"].endswith("Event.wait") for f in row["frames"])
    finally:
        release.set()
        sleeper.join(5)


def test_free_threaded_build_never_reads_another_threads_frames(captured, free_threaded):
    # Without the GIL, reading a running thread's frames is a known crash: the kit must not try.
    # States then come from traced primitives only, dumps show the caller's own stack, and both
    # say so in "limited".
    held, release = traced.Lock("held"), threading.Event()
    plain = threading.Event()
    holder_in = threading.Event()

    def hold() -> None:
        with held:
            holder_in.set()
            release.wait(5)

    holder = threading.Thread(target=hold, name="Holder")
    waiter = threading.Thread(target=lambda: held.acquire(timeout=5) and held.release(),
                              name="Waiter")
    idler = threading.Thread(target=lambda: plain.wait(5), name="Idler")  # an untraced wait
    holder.start()
    holder_in.wait(5)
    waiter.start()
    idler.start()
    try:
        wait_until(lambda: traced.waiting(waiter.ident), what="Waiter blocked on the traced lock")
        assert not frames.gil_enabled() and frames.current_frames() == {}
        snapshots = Sampler(interval=1.0, snapshots=True)
        snapshots.write_snapshot(force=True)
        (event,) = [e for e in captured() if e["kind"] == "threads"]
        assert event["limited"] == frames.FREE_THREADED_NOTE
        rows = {r["name"]: r for r in event["threads"]}
        assert (rows["Waiter"]["state"], rows["Waiter"]["waiting_for"]) == ("waiting-lock", "held")
        assert rows["Holder"]["holds"] == ["held"]
        # Blocked in an untraced Event.wait, yet "running": nothing safe could tell otherwise.
        assert rows["Idler"]["state"] == "running"
        assert all(r["where"] == "" for r in rows.values())

        dump = control.stacks_event()
        assert dump["limited"] == frames.FREE_THREADED_NOTE
        by_name = {t["name"]: t["frames"] for t in dump["threads"]}
        assert {"Holder", "Waiter", "Idler"} <= set(by_name)
        assert by_name["Holder"] == by_name["Waiter"] == by_name["Idler"] == []
        # The calling thread (this one) still gets its own stack, which is always safe to walk.
        mine = by_name[threading.current_thread().name]
        assert any(f["func"].endswith(
            "test_free_threaded_build_never_reads_another_threads_frames") for f in mine)
    finally:
        release.set()
        plain.set()
        for thread in (holder, waiter, idler):
            thread.join(5)
