"""Any plain Python program under the kit (``python -m lessons.kit.run``): its threads, prints and
log lines as events, its own primitives traced and named by assignment, and python's exit codes."""

from __future__ import annotations

import functools
import json
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lessons.kit import traced

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "tests" / "fixtures" / "plain_programs"
RUN = [sys.executable, "-m", "lessons.kit.run"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLAB_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(*args: str, log_format: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run([*RUN, "--log-format", log_format, *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@functools.cache
def events_of(program: str, *args: str) -> tuple[int, tuple[dict, ...], str]:
    """Run a fixture once per test session (each costs a process): exit code, events, stderr."""
    done = run(str(PROGRAMS / program), *args)
    lines = done.stdout.splitlines()
    parsed = [json.loads(line) for line in lines]  # every line must be an event: nothing else
    return done.returncode, tuple(parsed), done.stderr


def logs(events, logger=None) -> list[dict]:
    return [e for e in events if e["kind"] == "log" and (logger is None or e["logger"] == logger)]


def thread_names(events) -> tuple[set[str], set[str]]:
    started = {e["name"] for e in events if e["kind"] == "thread" and e["op"] == "start"}
    rows = {r["name"] for e in events if e["kind"] == "threads" for r in e["threads"]}
    return started, rows


def test_argv_passed_through():
    code, events, _ = events_of("30_plain_args.py", "one", "two words")
    assert code == 0
    assert [e["msg"] for e in logs(events, "print")] == ["args: ['one', 'two words']"]


def test_no_main_guard_joins_every_thread_and_finishes():
    code, events, stderr = events_of("31_no_main_guard.py")
    assert code == 0, stderr
    started, rows = thread_names(events)
    assert {"Worker-0", "Worker-1", "Worker-2"} <= started
    assert {"Worker-0", "Worker-1", "Worker-2", "MainThread"} <= rows
    assert not any(name.startswith("threadlab-") for name in started | rows)
    prints = logs(events, "print")
    assert {(e["thread"], e["msg"]) for e in prints} >= {
        (f"Worker-{n}", f"worker {n} step {s}") for n in range(3) for s in range(3)
    }
    assert prints[-1]["msg"] == "all threads joined" and prints[-1]["thread"] == "MainThread"


def test_prints_are_log_events_of_their_thread():
    code, events, _ = events_of("32_print_only.py")
    assert code == 0
    prints = logs(events, "print")
    for e in prints:
        assert e["level"] == "INFO" and isinstance(e["thread_id"], int)
        if e["msg"] != "main done":
            assert e["thread"] == f"Printer-{e['msg'][1]}", e
    assert len(prints) == 13
    started, rows = thread_names(events)
    assert {"Printer-0", "Printer-1", "Printer-2"} <= started & rows


def test_print_text_mode_equals_plain_python():
    program = str(PROGRAMS / "32_print_only.py")
    plain = subprocess.run([sys.executable, program], capture_output=True, text=True, timeout=60)
    kit = run(program, log_format="text")
    assert kit.returncode == plain.returncode == 0
    # print writes a line's text and its newline in two calls, so under plain python too two
    # threads' lines may merge ("P0 doneP1 done" then an empty line): compare the messages and the
    # number of lines, not the lines themselves.
    message = re.compile(r"P\d says hello \d|P\d done|main done")
    assert sorted(message.findall(kit.stdout)) == sorted(message.findall(plain.stdout))
    assert len(sorted(message.findall(plain.stdout))) == 13
    assert kit.stdout.count("\n") == plain.stdout.count("\n")
    assert kit.stderr == ""


def test_logging_keeps_the_programs_format():
    code, events, stderr = events_of("33_logging_format.py")
    assert code == 0
    assert stderr == ""  # every record became an event, none also went to stderr
    records = logs(events, "root")
    assert len(records) == 5  # no duplicates, none lost
    for e in records:
        # "%(asctime)s %(threadName)-10s %(levelname)s %(message)s"
        stamp, rest = e["msg"][:23], e["msg"][24:]
        time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")
        assert rest.startswith(f"{e['thread']:<10} {e['level']} ")
    by_thread = {(e["thread"], e["level"]) for e in records}
    assert by_thread == {("Logger-0", "INFO"), ("Logger-1", "INFO"), ("Logger-0", "WARNING"),
                         ("Logger-1", "WARNING"), ("MainThread", "INFO")}


def test_deadlock_of_plain_locks_is_found_and_named():
    code, events, _ = events_of("34_deadlock.py")
    assert code == 0
    deadlocks = [e for e in events if e["kind"] == "deadlock"]
    assert [e["op"] for e in deadlocks] == ["formed", "broken"]
    cycle = {entry["thread"]: entry for entry in deadlocks[0]["cycle"]}
    assert cycle["Left"]["holds"] == ["lock_a"] and cycle["Left"]["waits_for"] == "lock_b"
    assert cycle["Right"]["holds"] == ["lock_b"] and cycle["Right"]["waits_for"] == "lock_a"
    assert "Left gave up waiting for lock_b" in deadlocks[1]["how"]
    # the snapshots show the holds and waits too
    rows = [r for e in events if e["kind"] == "threads" for r in e["threads"]]
    assert any(r["name"] == "Left" and r["waiting_for"] == "lock_b" and r["holds"] == ["lock_a"]
               for r in rows)
    assert any(r["name"] == "Left" and r["where"].startswith("34_deadlock.py:") for r in rows)


def test_no_trace_leaves_the_programs_locks_alone():
    done = run("--no-trace", str(PROGRAMS / "34_deadlock.py"))
    assert done.returncode == 0
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [e for e in events if e["kind"] in ("sync", "state", "deadlock")
                and str(e.get("obj", "")).startswith(("lock_", "34_deadlock"))]
    assert not [e for e in events if e["kind"] == "deadlock"]
    assert {"Left", "Right"} <= thread_names(events)[0]


def test_condition_hand_over_is_traced():
    code, events, _ = events_of("35_condition.py")
    assert code == 0
    assert [e["msg"] for e in logs(events, "print") if e["thread"] == "Consumer"] == [
        f"consumed {i}" for i in range(5)
    ]
    waits = [e for e in events if e["kind"] == "state" and e["obj"] == "ready"]
    assert waits and {e["thread"] for e in waits} == {"Consumer"}
    notifies = [e for e in events if e["kind"] == "sync" and e["op"] == "notify"]
    assert notifies and {e["obj"] for e in notifies} == {"ready"}


def test_thread_pool_internals_stay_untraced():
    code, events, _ = events_of("36_thread_pool.py")
    assert code == 0
    assert [e["msg"] for e in logs(events, "print")] == ["sum of squares: 2870"]
    started, _ = thread_names(events)
    assert any(name.startswith("Pool") for name in started)
    # the executor's queue, locks and futures are the standard library's: nothing traced
    assert not [e for e in events if e["kind"] == "sync"]


def test_exit_code_is_the_programs():
    code, events, _ = events_of("37_exits_3.py")
    assert code == 3
    assert [e["msg"] for e in logs(events, "print")] == ["worker finished"]


def test_traceback_and_partial_lines(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent("""\
        import threading
        def work():
            print("half", end="")
            print(" a line")
            print("no newline at all", end="")
        t = threading.Thread(target=work, name="Half")
        t.start(); t.join()
        raise ValueError("boom")
    """))
    done = run(str(program))
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert "kit" not in done.stderr and done.stderr.endswith("ValueError: boom\n")
    prints = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["thread"], e["msg"]) for e in logs(prints, "print")] == [
        ("Half", "half a line"), ("Half", "no newline at all")
    ]


def test_naming_and_only_program_primitives_traced(tmp_path):
    program = tmp_path / "names.py"
    program.write_text(textwrap.dedent("""\
        import queue
        import threading
        lock_top = threading.Lock()
        class Counter:
            def __init__(self):
                self.lock = threading.RLock()
        def f():
            local_lock = threading.Lock()
            c = Counter()
            c.sem = threading.BoundedSemaphore(2)
            cond = threading.Condition(local_lock)
            events = [threading.Event() for _ in range(2)]
            q = queue.Queue()
            print(lock_top.name, local_lock.name, c.lock.name, c.sem.name, cond.name,
                  cond.lock.name, Counter().lock.name, q.name, *[e.name for e in events])
            print(type(q.mutex).__module__, type(q.not_empty) is threading.Condition,
                  isinstance(cond, threading.Condition), isinstance(q.not_empty, threading.Condition),
                  isinstance(q, queue.Queue))
        f()
    """))
    done = run(str(program), log_format="text")
    assert done.returncode == 0, done.stderr
    names, kinds = done.stdout.splitlines()
    assert names.split() == ["lock_top", "local_lock", "Counter.lock", "c.sem", "cond",
                             "local_lock", "Counter.lock#2", "q", "names.py:12", "names.py:12#2"]
    # queue's own lock and conditions are the originals (made by stdlib code)
    assert kinds.split() == ["_thread", "False", "True", "True", "True"]


# --- the traced primitives behave like the originals (in-process) -------------------------------


@pytest.mark.parametrize("make", [threading.Barrier, traced.Barrier])
def test_barrier_semantics(make):
    barrier = make(3)
    indices = []
    threads = [threading.Thread(target=lambda: indices.append(barrier.wait())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(indices) == [0, 1, 2]
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(timeout=0.05)  # nobody else comes: broken
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken
    barrier.abort()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()


@pytest.mark.parametrize("make", [queue.Queue, traced.Queue, traced.LifoQueue,
                                  traced.PriorityQueue])
def test_queue_semantics(make):
    q = make(maxsize=1)
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, block=False)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.05)
    assert q.full() and q.qsize() == 1
    threading.Timer(0.05, q.get).start()
    q.put(3, timeout=5)  # blocks until the timer's get makes room
    assert q.get() == 3
    q.task_done()
    q.task_done()
    q.join()
    with pytest.raises(ValueError):
        q.task_done()
    got = []
    consumer = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    consumer.start()
    time.sleep(0.05)
    q.put("late")
    consumer.join(5)
    assert got == ["late"]
    threading.Timer(0.05, q.task_done).start()
    q.join()  # one unfinished task, finished by the timer


def test_traced_queue_reports_a_blocking_get(monkeypatch):
    import io

    from lessons.kit import events

    stream = io.BytesIO()
    events.enable(stream)
    try:
        q = traced.Queue(name="jobs")
        threading.Timer(0.05, q.put, args=("x",)).start()
        assert q.get(timeout=5) == "x"
    finally:
        events.disable()
    states = [json.loads(line) for line in stream.getvalue().splitlines()]
    states = [(e["state"], e.get("outcome")) for e in states if e["kind"] == "state"]
    assert states == [("waiting-queue", None), ("running", "got")]


@pytest.mark.parametrize("make", [threading.BoundedSemaphore, traced.BoundedSemaphore])
def test_bounded_semaphore_semantics(make):
    sem = make(2)
    assert sem.acquire() and sem.acquire(blocking=False)
    assert not sem.acquire(blocking=False)
    assert not sem.acquire(timeout=0.05)
    sem.release()
    with sem:
        assert not sem.acquire(blocking=False)
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
