"""The kit tells what happens as it happens: ``thread`` and ``state`` events, the new states
(``waiting-join``, ``waiting-event-loop``, ``crashed``) and a deadlock that forms and breaks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from lessons.kit import frames, sampler, traced
from lessons.kit.sampler import Sampler
from tests.unit.conftest import wait_until

from ..lessons.conftest import run_lesson

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def hooks(captured):
    """Thread events and traced joins on, as ``kit.setup`` turns them on in JSON mode."""
    sampler.install_thread_hooks()
    yield captured
    sampler.uninstall_thread_hooks()


@pytest.fixture
def hook_calls(monkeypatch):
    """threading.excepthook replaced by a recorder: the kit must still call whatever hook is set
    (and pytest's own hook would turn the crash we provoke into a warning)."""
    calls: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: calls.append(args.thread.name))
    return calls



def of(out, kind, **match):
    return [e for e in out if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def pop_from_empty():
    items: list[int] = []
    items.pop()  # the line a crash must point at


CRASH_LINE = pop_from_empty.__code__.co_firstlineno + 2


def test_a_thread_that_raises_gives_one_crash_event_and_no_end(hooks, hook_calls):
    crasher = threading.Thread(target=pop_from_empty, name="Crasher")
    crasher.start()
    crasher.join(5)
    mine = [e for e in hooks() if e["kind"] == "thread" and e["name"] == "Crasher"]
    assert [e["op"] for e in mine] == ["start", "crash"]
    crash = mine[1]
    assert crash["exc"] == {"type": "IndexError", "message": "pop from empty list"}
    assert crash["where"] == f"test_kit_events.py:{CRASH_LINE} pop_from_empty"
    assert crash["ident"] == crasher.ident and crash["native_id"] == crasher.native_id
    assert crash["daemon"] is False
    assert hook_calls == ["Crasher"]  # the hook in place still ran (it prints the traceback)


def test_fifty_threads_of_a_millisecond_each_all_start_and_end(hooks):
    threads = [threading.Thread(target=time.sleep, args=(0.001,), name=f"Brief-{i}")
               for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    life = [(e["op"], e["name"]) for e in hooks() if e["kind"] == "thread"]
    for thread in threads:
        assert life.count(("start", thread.name)) == 1 and life.count(("end", thread.name)) == 1
        assert life.index(("start", thread.name)) < life.index(("end", thread.name))


def test_a_subclass_overriding_run_is_seen_too(hooks):
    class Worker(threading.Thread):
        def run(self) -> None:
            pass

    worker = Worker(name="Subclassed")
    worker.start()
    worker.join(5)
    assert [e["op"] for e in of(hooks(), "thread", name="Subclassed")] == ["start", "end"]


def test_a_contended_traced_lock_gives_waiting_lock_then_running(captured):
    lock = traced.Lock("contended")
    lock.acquire()
    got = threading.Thread(target=lambda: lock.acquire(timeout=5) and lock.release(), name="Getter")
    got.start()
    wait_until(lambda: traced.waiting(got.ident), what="Getter blocked")
    lock.release()
    got.join(5)
    gave_up = threading.Thread(target=lambda: lock.acquire(timeout=0.05), name="Quitter")
    lock.acquire()
    try:
        gave_up.start()
        gave_up.join(5)
    finally:
        lock.release()
    out = captured()
    states = [(e["state"], e.get("outcome")) for e in of(out, "state", thread="Getter")]
    assert states == [("waiting-lock", None), ("running", "acquired")]
    assert all(e["obj"] == "contended" and e["ident"] == got.ident
               for e in of(out, "state", thread="Getter"))
    states = [(e["state"], e.get("outcome")) for e in of(out, "state", thread="Quitter")]
    assert states == [("waiting-lock", None), ("running", "timeout")]


def test_uncontended_acquires_and_waits_that_need_not_block_say_nothing(captured):
    lock, event = traced.Lock("free"), traced.Event("already-set")
    event.set()
    for _ in range(100):
        with lock:
            assert event.wait(1)
    assert not of(captured(), "state")


def test_a_blocking_join_gives_waiting_join_then_running(hooks):
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(5,), name="Slow")
    worker.start()
    joiner = threading.Thread(target=worker.join, name="Joiner")
    joiner.start()
    wait_until(lambda: traced.waiting(joiner.ident), what="Joiner blocked in join")
    assert traced.waiting(joiner.ident)[:2] == ("Slow", "waiting-join")
    release.set()
    joiner.join(5)
    worker.join(5)  # already over: a join that does not block says nothing
    # Only our joins of Slow: this thread's join of Joiner above may have blocked a moment too.
    joins = [(e["thread"], e["state"], e.get("outcome")) for e in of(hooks(), "state", obj="Slow")]
    assert joins == [("Joiner", "waiting-join", None), ("Joiner", "running", "joined")]


def test_a_join_that_times_out_says_so(hooks):
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(5,), name="Slower")
    worker.start()
    try:
        worker.join(0.02)
    finally:
        release.set()
        worker.join(5)
    outcomes = [e.get("outcome") for e in of(hooks(), "state", obj="Slower")]
    assert outcomes[:2] == [None, "timeout"]


def test_setup_again_installs_no_second_wrapper(hooks):
    sampler.install_thread_hooks()  # what a second kit.setup() does
    brief = threading.Thread(target=lambda: None, name="Once")
    brief.start()
    brief.join(5)
    assert [e["op"] for e in of(hooks(), "thread", name="Once")] == ["start", "end"]


@pytest.mark.parametrize("installed", [False, True], ids=["frames", "traced-join"])
def test_a_snapshot_of_a_thread_joining_another_says_waiting_join(installed, captured):
    if installed:
        sampler.install_thread_hooks()
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(5,), name="Worked")
    joiner = threading.Thread(target=lambda: worker.join(5), name="Joining")
    worker.start()
    joiner.start()
    try:
        snapshots = Sampler(interval=1.0, snapshots=True)
        row = wait_until(lambda: next((r for r in snapshots.rows() if r["name"] == "Joining"
                                       and r["state"] == "waiting-join"), None),
                         what="the joiner's row says waiting-join")
        assert row["waiting_for"] == ("Worked" if installed else "Thread.join")
    finally:
        release.set()
        joiner.join(5)
        worker.join(5)
        sampler.uninstall_thread_hooks()


def test_a_finished_crashed_threads_row_says_crashed(hooks, hook_calls):
    crasher = threading.Thread(target=pop_from_empty, name="Crashed")
    crasher.start()
    crasher.join(5)
    snapshots = Sampler(interval=1.0, snapshots=True)
    snapshots._born.append(crasher)  # as the newborn hook notes it: it came and went unseen
    (row,) = [r for r in snapshots.rows() if r["name"] == "Crashed"]
    assert (row["alive"], row["state"]) == (False, "crashed")
    assert row["exc"] == {"type": "IndexError", "message": "pop from empty list"}
    assert row["where"] == f"test_kit_events.py:{CRASH_LINE} pop_from_empty"


def test_an_idle_asyncio_loop_and_a_qt_exec_wait_for_the_event_loop():
    loop_idle = threading.Event()

    def run_loop() -> None:
        async def idle() -> None:
            loop_idle.set()
            await asyncio.sleep(5)

        asyncio.run(idle())

    looper = threading.Thread(target=run_loop, name="Looper", daemon=True)
    looper.start()
    loop_idle.wait(5)
    seen = wait_until(lambda: frames.classify(frames.current_frames().get(looper.ident))[0]
                      == "waiting-event-loop", what="the loop idle in its selector")
    assert seen
    # Qt's exec() is C++ down to the end: what shows is the lesson's call. A C function stands in.
    app = types.SimpleNamespace(exec=time.sleep, exec_=time.sleep)
    qt = threading.Thread(target=lambda: app.exec(0.5), name="Qt", daemon=True)
    qt.start()
    wait_until(lambda: frames.classify(frames.current_frames().get(qt.ident))[0]
               == "waiting-event-loop", what="exec() seen as the Qt event loop")


def test_a_deadlock_forms_then_breaks_naming_the_thread_that_gave_up(captured):
    watcher = Sampler(interval=0.05, snapshots=False)
    a, b = traced.Lock("lock-A"), traced.Lock("lock-B")
    ready = threading.Barrier(2)

    def take(first, second, patience):
        with first:
            ready.wait()
            if second.acquire(timeout=patience):
                second.release()

    # The impatient one gives up first: it must be the one named.
    impatient = threading.Thread(target=take, args=(a, b, 0.8), name="Impatient")
    patient = threading.Thread(target=take, args=(b, a, 5.0), name="Patient")
    watcher.start()
    impatient.start(), patient.start()
    impatient.join(5), patient.join(5)
    watcher.stop()
    deadlocks = of(captured(), "deadlock")
    assert [e["op"] for e in deadlocks] == ["formed", "broken"]
    formed, broken = deadlocks
    assert formed["since"] < formed["t"] - 0.25  # when it formed, not when it was reported
    assert broken["since"] == formed["since"] and broken["cycle"] == formed["cycle"]
    assert {c["thread"] for c in formed["cycle"]} == {"Impatient", "Patient"}
    assert broken["how"] == "Impatient gave up waiting for lock-B (timeout)"


PROGRAM = """
    import sys, threading
    sys.path.insert(0, {root!r})
    from lessons import kit
    from lessons.kit import traced
    args = kit.lesson_parser("x").parse_args(["--log-format", "json"])
    kit.setup(args)
    kit.setup(args)  # as tests calling main() twice do: events must not double
    gate = traced.Event("gate")
    waiter = threading.Thread(target=gate.wait, args=(5,), name="Waiter")
    waiter.start()
    threading.Thread(target=lambda: [].pop(), name="Crasher").start()
    import time; time.sleep(0.1)
    gate.set()
    waiter.join()
"""


def test_setup_twice_in_one_process_does_not_double_the_events():
    env = {**os.environ, "THREADLAB_SAMPLE_INTERVAL": "0"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PROGRAM).format(root=str(ROOT))],
                          capture_output=True, text=True, timeout=30, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    life = [(e["name"], e["op"]) for e in out if e["kind"] == "thread"]
    assert sorted(life) == [("Crasher", "crash"), ("Crasher", "start"),
                            ("Waiter", "end"), ("Waiter", "start")]
    assert "IndexError: pop from empty list" in proc.stderr  # the default hook still printed it
    states = [(e["thread"], e["state"]) for e in out if e["kind"] == "state"]
    assert states.count(("Waiter", "waiting-event")) == 1
    assert states.count(("MainThread", "waiting-join")) <= 1


def test_lesson_09_shows_the_deadlock_formed_then_broken():
    run = run_lesson("09", "--strategy", "deadlock")
    assert run.returncode == 0, run.stderr[-3000:]
    deadlocks = run.of_kind("deadlock")
    assert [e["op"] for e in deadlocks] == ["formed", "broken"]
    gave_up = {e["thread"] for e in run.of_kind("state") if e.get("outcome") == "timeout"}
    how = deadlocks[1]["how"]
    assert any(how.startswith(f"{name} gave up waiting for account-") for name in gave_up), how
    assert how.endswith("(timeout)")
