"""The cheap paths of traced locks stay truthful: the owner is recorded on the fast path and after
a wait; a contended wait is in the tables at once, written as events once it sleeps on the lock
(or was shown), and never lost for a deadlock. (How fast they are is scripts/bench_tracing.py's
business.)"""

from __future__ import annotations

import threading
import time

import pytest

from lessons.kit import traced
from lessons.kit.sampler import Sampler
from tests.unit.conftest import wait_until


def of(out, kind, **match):
    return [e for e in out if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def in_table(thread: threading.Thread):
    """The thread's wait, read without counting as a look (waiting() would make it written)."""
    return traced._waiting.get(thread.ident)


@pytest.mark.parametrize("make", [traced.Lock, traced.RLock])
def test_the_fast_path_records_the_owner_and_nothing_else(make, captured):
    lock, me = make("fast"), threading.get_ident()
    for _ in range(3):
        with lock:
            assert lock.owner() == me and traced.holds(me) == ["fast"]
            assert lock._is_owned()
        assert lock.owner() is None and traced.holds(me) == []
    assert lock.acquire(blocking=False)
    assert lock.owner() == me
    lock.release()
    assert not captured()  # uncontended: no event at all


def test_an_rlock_counts_its_owner_s_takes_and_refuses_a_stranger_s_release():
    lock, me = traced.RLock("again"), threading.get_ident()
    with lock, lock:
        assert (lock.owner(), lock._depth) == (me, 2)
        stranger: list[BaseException] = []
        thread = threading.Thread(target=lambda: stranger.append(_raises(lock.release)))
        thread.start(), thread.join(5)
        assert isinstance(stranger[0], RuntimeError) and lock.owner() == me
    assert (lock.owner(), lock._depth, lock.locked()) == (None, 0, False)


def _raises(call) -> BaseException | None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
        return exc
    return None


@pytest.fixture
def yield_long(monkeypatch):
    """A waiter keeps giving up the GIL instead of sleeping on the lock, for ``seconds``."""
    def set_to(seconds: float) -> None:
        monkeypatch.setattr(traced, "YIELDS", 10**9)
        monkeypatch.setattr(traced, "YIELD_FOR", seconds)
    return set_to


@pytest.mark.parametrize("make", [traced.Lock, traced.RLock])
def test_a_wait_that_ends_while_yielding_is_in_the_tables_but_not_written(
    make, captured, yield_long
):
    yield_long(30.0)  # it ends while the waiter still yields: whatever this test takes
    lock = make("busy")
    got: list[int | None] = []
    lock.acquire()
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=10) and lock.owner()),
                              name="Waiter")
    waiter.start()
    wait = wait_until(lambda: in_table(waiter), what="Waiter in the table")
    assert wait[:2] == ("busy", "waiting-lock")
    assert traced._waiting_on[waiter.ident] is lock  # an edge of the wait-for graph already
    lock.release()
    waiter.join(5)
    assert got == [waiter.ident]  # it took the lock, and recorded itself as the owner
    assert waiter.ident not in traced._waiting and waiter.ident not in traced._waiting_on
    assert not of(captured(), "state") and not of(captured(), "sync")


def test_a_wait_that_waiting_showed_is_written_however_short(captured, yield_long):
    yield_long(30.0)
    lock = traced.Lock("shown")
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=10) and lock.release(),
                              name="Waiter")
    waiter.start()
    wait_until(lambda: traced.waiting(waiter.ident), what="Waiter shown waiting")
    lock.release()
    waiter.join(5)
    out = captured()
    states = [(e["state"], e.get("outcome")) for e in of(out, "state", thread="Waiter")]
    assert states == [("waiting-lock", None), ("running", "acquired")]
    assert [e["op"] for e in of(out, "sync", thread="Waiter")] == ["wait", "acquired"]


def test_a_wait_that_sleeps_on_the_lock_is_written_while_it_lasts_dated_when_it_began(
    captured, yield_long
):
    yield_long(0.05)  # it sleeps on the lock 50 ms after it began
    lock = traced.Lock("slow")
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=10) and lock.release(),
                              name="Waiter")
    waiter.start()
    # Written before the wait ends (the lock is still ours here), nobody having looked at it.
    start = wait_until(lambda: of(captured(), "state", thread="Waiter"), what="the wait written")
    assert [(e["state"], e["obj"]) for e in start] == [("waiting-lock", "slow")]
    since = in_table(waiter)[2]  # time.monotonic() when the wait began
    began = time.time() - (time.monotonic() - since)
    assert abs(start[0]["t"] - began) < 0.005  # dated when it began, not 50 ms later
    lock.release()
    waiter.join(5)
    end = of(captured(), "state", thread="Waiter")[1]
    assert (end["state"], end["outcome"]) == ("running", "acquired")
    assert end["t"] >= start[0]["t"] + 0.05
    assert traced.recent_waits()[-1][1:] == (waiter.ident, "Waiter", "slow", "acquired")


def test_timed_acquires_keep_threading_s_meaning(captured, monkeypatch):
    monkeypatch.setattr(traced, "YIELD_FOR", 0.02)
    lock = traced.Lock("timed")
    lock.acquire()
    try:
        assert lock.acquire(blocking=False) is False
        assert lock.acquire(timeout=0) is False
        with pytest.raises(ValueError):
            lock.acquire(timeout=-2)
        monkeypatch.setattr(traced, "YIELDS", 10**9)
        began = time.monotonic()
        assert lock.acquire(timeout=0.01) is False  # over before it stops yielding
        assert time.monotonic() - began >= 0.01
        began = time.monotonic()
        assert lock.acquire(timeout=0.05) is False  # sleeps on the lock for its last 30 ms
        assert time.monotonic() - began >= 0.05
    finally:
        lock.release()
    # Only the wait that slept on the lock is written, as a timeout.
    states = [(e["state"], e.get("outcome")) for e in of(captured(), "state")]
    assert states == [("waiting-lock", None), ("running", "timeout")]
    assert [e["op"] for e in of(captured(), "sync")] == ["wait", "timeout"]


def test_a_deadlock_of_two_plain_locks_is_seen_written_and_explained(captured):
    watcher = Sampler(interval=0.05, snapshots=False)  # the deadlock watch alone
    a, b = traced.Lock("lock-A"), traced.Lock("lock-B")
    ready = threading.Barrier(2)

    def take(first, second, patience):
        with first:
            ready.wait()
            if second.acquire(timeout=patience):
                second.release()

    impatient = threading.Thread(target=take, args=(a, b, 0.8), name="Impatient")
    patient = threading.Thread(target=take, args=(b, a, 5.0), name="Patient")
    watcher.start()
    impatient.start(), patient.start()
    impatient.join(5), patient.join(5)
    watcher.stop()
    out = captured()
    formed, broken = of(out, "deadlock")
    assert {(c["thread"], tuple(c["holds"]), c["waits_for"]) for c in formed["cycle"]} == {
        ("Impatient", ("lock-A",), "lock-B"), ("Patient", ("lock-B",), "lock-A")}
    assert broken["how"] == "Impatient gave up waiting for lock-B (timeout)"
    # Both waits of the cycle lasted far over QUIET: both written, start and end.
    assert [(e["state"], e.get("outcome")) for e in of(out, "state", thread="Impatient")] == [
        ("waiting-lock", None), ("running", "timeout")]
    assert [(e["state"], e.get("outcome")) for e in of(out, "state", thread="Patient")] == [
        ("waiting-lock", None), ("running", "acquired")]
