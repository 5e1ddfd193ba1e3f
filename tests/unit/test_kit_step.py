"""Step mode (``lessons/kit/step.py``): real threads held at every line and sync point, let go one
step at a time through stdin, replayed from a schedule, deadlocks reported at once, timeouts that
count only running time. Each test runs a small lesson-style program in a subprocess."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lessons.kit import step

ROOT = Path(__file__).resolve().parents[2]

RACE = '''
"""Two threads add one to a shared counter, the read and the write on separate lines."""
import threading

from lessons import kit


class Counter:
    value = 0


counter = Counter()


def bump():
    tmp = counter.value
    counter.value = tmp + 1


def main():
    kit.setup(kit.lesson_parser(__doc__).parse_args())
    workers = [threading.Thread(target=bump, name=name, daemon=True) for name in "AB"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=5)
    kit.emit_result(counter=counter.value)


main()
'''

DEADLOCK = '''
"""Two threads take two traced locks in opposite orders."""
import threading

from lessons import kit
from lessons.kit import traced

one, two = traced.Lock("lock-1"), traced.Lock("lock-2")


def take(first, second):
    with first:
        with second:
            pass


def main():
    kit.setup(kit.lesson_parser(__doc__).parse_args())
    workers = [threading.Thread(target=take, args=(one, two), name="A", daemon=True),
               threading.Thread(target=take, args=(two, one), name="B", daemon=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=0.2)
    kit.emit_result(stuck=sum(worker.is_alive() for worker in workers))


main()
'''

TIMEOUT = '''
"""H holds a traced lock (for --hold seconds of sleep) while T tries it with a 0.2 s timeout."""
import threading
import time

from lessons import kit
from lessons.kit import traced

gate = traced.Lock("gate")
got = []


def hold(seconds):
    with gate:
        time.sleep(seconds)
        done = True


def take():
    got.append(gate.acquire(timeout=0.2))


def main():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args()
    kit.setup(args)
    workers = [threading.Thread(target=hold, args=(args.hold,), name="H", daemon=True),
               threading.Thread(target=take, name="T", daemon=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=5)
    kit.emit_result(got=got)


main()
'''

MANY = '''
"""Two workers add 50 each under a traced lock."""
import threading

from lessons import kit
from lessons.kit import traced

lock = traced.Lock("counter-lock")
total = [0]


def work():
    for _ in range(50):
        with lock:
            total[0] += 1


def main():
    kit.setup(kit.lesson_parser(__doc__).parse_args())
    workers = [threading.Thread(target=work, name=f"Worker-{n}") for n in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=5)
    kit.emit_result(total=total[0])


main()
'''

EVERYTHING = '''
"""A producer and two consumers through every traced primitive, with timeouts on every wait."""
import threading

from lessons import kit
from lessons.kit import traced

jobs = traced.Queue(maxsize=1, name="jobs")
ready = traced.Condition(name="ready")
started = traced.Event("started")
room = traced.Semaphore(1, name="room")
line_up = traced.Barrier(3, timeout=5, name="line-up")
tally = traced.RLock("tally")
done = []
flag = []


def produce():
    line_up.wait()
    with ready:
        flag.append(1)
        ready.notify_all()
    started.set()
    for n in range(4):
        jobs.put(n, timeout=5)
    for _ in range(2):
        jobs.put(None, timeout=5)


def consume():
    line_up.wait()
    with ready:
        ready.wait_for(lambda: flag, timeout=5)
    started.wait(timeout=5)
    while (item := jobs.get(timeout=5)) is not None:
        with room:
            with tally:
                with tally:
                    done.append(item)


def main():
    kit.setup(kit.lesson_parser(__doc__).parse_args())
    workers = [threading.Thread(target=produce, name="Producer"),
               threading.Thread(target=consume, name="Consumer-1"),
               threading.Thread(target=consume, name="Consumer-2")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=5)
    kit.emit_result(done=sorted(done))


main()
'''

OFF = '''
"""Without THREADLAB_STEP: no trace function, no step module, the original methods."""
import sys
import threading

from lessons import kit
from lessons.kit import traced


def main():
    kit.setup(kit.lesson_parser(__doc__).parse_args())
    seen = []
    worker = threading.Thread(target=lambda: seen.append(repr(sys.gettrace())), name="Worker")
    worker.start()
    worker.join(timeout=5)
    kit.emit_result(main_trace=repr(sys.gettrace()), new_thread_trace=repr(threading.gettrace()),
                    worker_trace=seen[0], step_loaded="lessons.kit.step" in sys.modules,
                    lock_acquire=traced.Lock.acquire.__module__,
                    thread_start=threading.Thread.start.__module__)


main()
'''

START_BOTH = [("MainThread", "sync"), ("MainThread", "sync")]  # main starts A, then B


def program(tmp_path: Path, source: str, name: str = "lesson.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


@pytest.fixture(autouse=True)
def _no_process_left():
    """A test that fails leaves its program held: end it."""
    yield
    for proc in Stepped.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    Stepped.started.clear()


class Stepped:
    """A program run in step mode: its events as they come, step commands on its stdin."""

    started: list[subprocess.Popen] = []

    def __init__(self, path: Path, *args: str, schedule: list | None = None,
                 step_mode: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLAB_")}
        env.update(PYTHONPATH=str(ROOT), THREADLAB_SAMPLE_INTERVAL="0")
        if step_mode:
            env["THREADLAB_STEP"] = "1"
        if schedule is not None:
            env["THREADLAB_SCHEDULE"] = json.dumps(schedule)
        self.proc = subprocess.Popen(
            [sys.executable, str(path), "--log-format", "json", *args], cwd=ROOT, env=env,
            stdin=subprocess.PIPE if schedule is None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        Stepped.started.append(self.proc)
        self.events: list[dict] = []  # every event taken from the queue, in order
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def expect(self, kind: str, timeout: float = 5.0, end_ok: bool = False, **match) -> dict:
        """The next event of ``kind`` whose fields include ``match`` (earlier ones are kept);
        with ``end_ok``, ``{}`` if the program ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                event = "timeout"
            if event is None and end_ok:
                self._queue.put(None)  # for finish()
                return {}
            if event is None or event == "timeout":
                self.proc.kill()
                tail = "\n".join(json.dumps(e) for e in self.events[-15:])
                pytest.fail(f"no {kind} {match} ({'ended' if event is None else 'timed out'});"
                            f" last events:\n{tail}\nstderr:\n{self.proc.stderr.read()[-3000:]}")
            self.events.append(event)
            if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event

    def quiet(self, seconds: float) -> list[dict]:
        """The events that arrive within ``seconds`` (waits that long)."""
        time.sleep(seconds)
        got = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return got
            if event is not None:
                got.append(event)
                self.events.append(event)

    def send(self, **command) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def step(self, thread: str, until: str = "line", end_ok: bool = False) -> dict:
        """Step ``thread``; return the ``paused`` state that step led to (``{}``: the end)."""
        self.send(cmd="step", thread=thread, until=until)
        granted = self.expect("step", thread=thread)
        return self.expect("paused", steps=granted["n"], end_ok=end_ok)

    def finish(self, timeout: float = 5.0) -> tuple[int, list[dict]]:
        """Wait for the end; its exit code and every event."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        code = self.proc.wait(timeout=timeout)
        while (event := self._queue.get(timeout=timeout)) is not None:
            self.events.append(event)
        return code, self.events

    def result(self) -> dict:
        code, events = self.finish()
        assert code == 0, self.proc.stderr.read()[-3000:]
        return next(e["values"] for e in events if e["kind"] == "result")


def held(paused: dict) -> dict[str, dict]:
    return {t["name"]: t for t in paused["threads"]}


def pauses(events: list[dict]) -> list[list[tuple]]:
    """Who was held where, at each ``paused`` (the last, when every thread has gone, is
    written only if the process lives long enough to see that moment)."""
    return [[(t["name"], t["next"], t["sync"], t["can_run"]) for t in e["threads"]]
            + [(t["name"], t["waiting_for"]) for t in e["blocked"]]
            for e in events if e["kind"] == "paused" and (e["threads"] or e["blocked"])]


def schedule_of(events: list[dict]) -> list[dict]:
    return [{"free": True} if e.get("free") else {"thread": e["thread"], "until": e["until"]}
            for e in events if e["kind"] == "step"]


def without_final_free(plan: list[dict]) -> list[dict]:
    return plan[:-1] if plan and plan[-1].get("free") else plan


def play_race(path: Path, order: str) -> tuple[dict, list[dict]]:
    run = Stepped(path)
    paused = run.expect("paused")
    assert held(paused)["MainThread"]["sync"] == {"op": "start", "obj": "A", "kind": "thread"}
    for name, until in START_BOTH:
        paused = run.step(name, until)
    assert held(paused)["A"]["source"] == held(paused)["B"]["source"] == "tmp = counter.value"
    assert held(paused)["MainThread"]["sync"] == {"op": "join", "obj": "A", "kind": "thread"}
    for name in order:
        paused = run.step(name)
    assert set(held(paused)) == {"MainThread"}  # both workers ran to their end
    run.send(cmd="free")
    return run.result(), run.events


@pytest.mark.parametrize(("order", "expected"), [("AABB", 2), ("ABAB", 1)])
def test_a_schedule_decides_the_race_every_time_and_replays(tmp_path, order, expected):
    path = program(tmp_path, RACE)
    schedules = []
    for _ in range(2):
        result, events = play_race(path, order)
        assert result == {"counter": expected}
        schedules.append(schedule_of(events))
    assert schedules[0] == schedules[1] == [
        *({"thread": name, "until": until} for name, until in START_BOTH),
        *({"thread": name, "until": "line"} for name in order), {"free": True}]
    steps = [e for e in events if e["kind"] == "step"]
    assert [s["at"] for s in steps[2:4]] == ["lesson.py:15", "lesson.py:16" if order == "AABB"
                                             else "lesson.py:15"]
    # Replay: the recorded schedule, and the same without its final free (the run goes free
    # by itself after the list), three times each: the same interleaving, the same result.
    for plan in (schedules[0], schedules[0][:-1]):
        for _ in range(3):
            run = Stepped(path, schedule=plan)
            assert run.result() == {"counter": expected}
            replayed = schedule_of(run.events)
            assert replayed == plan + ([] if plan[-1].get("free") else [{"free": True}])
            assert [e["source"] for e in run.events if e["kind"] == "step"] == \
                ["schedule"] * len(replayed)


def test_opposite_lock_orders_stepped_into_a_deadlock_are_reported_at_once(tmp_path):
    run = Stepped(program(tmp_path, DEADLOCK))
    run.expect("paused")
    for name, until in START_BOTH:
        run.step(name, until)
    paused = run.step("A", "sync")  # from its first line to the acquire on it
    assert held(paused)["A"]["sync"] == {"op": "acquire", "obj": "lock-1", "kind": "lock"}
    run.step("A", "sync")  # takes lock-1, held before lock-2
    run.step("B", "sync")
    assert not any(e["kind"] == "deadlock" for e in run.events)
    run.send(cmd="step", thread="B", until="sync")  # takes lock-2, held before lock-1
    granted = run.expect("step", thread="B")
    paused = run.expect("paused", steps=granted["n"])
    deadlock = run.expect("deadlock", op="formed")
    assert deadlock["t"] - granted["t"] < 0.1  # at once, not after the sampler's 300 ms
    assert deadlock["step"] is True and deadlock["stall"] is False
    assert {c["thread"]: (c["holds"], c["waits_for"]) for c in deadlock["cycle"]} == {
        "A": (["lock-1"], "lock-2"), "B": (["lock-2"], "lock-1")}
    threads = held(paused)
    assert threads["A"]["can_run"] is False and threads["B"]["can_run"] is False
    assert threads["A"]["why"] == "waits for lock-2, held by B"
    assert threads["B"]["why"] == "waits for lock-1, held by A"
    assert threads["MainThread"]["can_run"] is True  # it may still join (and time out)
    # A step that cannot run is refused, saying why, and changes nothing.
    run.send(cmd="step", thread="A")
    refused = run.expect("log", refused={"cmd": "step", "thread": "A"})
    assert refused["level"] == "ERROR"
    assert refused["msg"] == "step refused: A cannot run: waits for lock-2, held by B"
    run.send(cmd="step", thread="Nobody")
    assert "no lesson thread 'Nobody'" in run.expect("log", refused={
        "cmd": "step", "thread": "Nobody"})["msg"]
    assert not [e for e in run.quiet(0.05) if e["kind"] in ("step", "paused")]
    run.send(cmd="free")
    assert run.expect("deadlock", op="broken")["how"].startswith("free")
    assert run.result() == {"stuck": 2}  # free does not undo a deadlock: main's joins time out


def test_a_lock_timeout_does_not_fire_while_paused_but_does_while_a_thread_runs(tmp_path):
    path = program(tmp_path, TIMEOUT)

    def into_the_wait(run: Stepped) -> dict:
        run.expect("paused")
        for name, until in START_BOTH:
            run.step(name, until)
        run.step("H")  # `with gate:` → its acquire
        run.step("H")  # holds the gate, at the sleep
        paused = run.step("T")  # at the timed acquire: it may run (it gives up by itself)
        assert held(paused)["T"]["can_run"] is True
        paused = run.step("T")  # now waits, 0.2 s on the step clock
        (waiting,) = paused["blocked"]
        assert (waiting["name"], waiting["waiting_for"], waiting["state"]) == (
            "T", "gate", "waiting-lock")
        assert waiting["timeout_at"] == pytest.approx(paused["clock"] + 0.2, abs=0.05)
        return paused

    run = Stepped(path, "--hold", "0")
    into_the_wait(run)
    assert not [e for e in run.quiet(1.0) if e["kind"] in ("sync", "state", "paused")]
    run.step("H")  # sleep(0)
    paused = run.step("H")  # done = True
    # Python reports a with-block's exit as its `with` line once more: held there, still holding.
    assert held(paused)["H"]["source"] == "with gate:" and paused["blocked"][0]["name"] == "T"
    paused = run.step("H")  # leaves the with: the gate is T's now, and T ends
    assert set(held(paused)) == {"MainThread"} and not paused["blocked"]
    run.send(cmd="free")
    assert run.result() == {"got": [True]}
    assert not [e for e in run.events if e["kind"] == "sync" and e["op"] == "timeout"]

    # While H sleeps (running) the step clock runs too: T gives up after 0.2 s of it.
    run = Stepped(path, "--hold", "0.5")
    paused = into_the_wait(run)
    began = time.monotonic()
    run.send(cmd="step", thread="H")
    timeout = run.expect("sync", op="timeout", obj="gate")
    assert timeout["thread"] == "T" and 0.15 < time.monotonic() - began < 0.45
    run.send(cmd="free")
    assert run.result() == {"got": [False]}


def test_free_lets_the_run_finish_normally(tmp_path):
    run = Stepped(program(tmp_path, MANY))
    run.expect("paused")
    for name, until in START_BOTH:
        run.step(name, until)
    for name in ("Worker-1", "Worker-2", "Worker-1"):
        run.step(name, "sync")
    run.send(cmd="free")
    freed = run.expect("step", free=True)
    assert run.result() == {"total": 100}
    after = run.events[run.events.index(freed):]
    assert not [e for e in after if e["kind"] in ("paused", "step") and e is not freed]


def test_a_run_whose_stdin_closes_goes_free_instead_of_hanging(tmp_path):
    run = Stepped(program(tmp_path, MANY))
    run.expect("paused")
    run.step("MainThread", "sync")
    run.proc.stdin.close()  # the controller is gone: nobody can send a step any more
    assert run.expect("step", free=True)["source"] == "stdin"
    assert run.result() == {"total": 100}


def test_every_traced_primitive_steps_and_replays_to_the_same_result(tmp_path):
    """Always step the first held thread that can run, to its next sync point; then replay."""
    path = program(tmp_path, EVERYTHING)
    run = Stepped(path)
    paused = run.expect("paused")
    ops = set()
    for _ in range(300):
        ops.update((t["sync"]["kind"], t["sync"]["op"]) for t in paused["threads"] if t["sync"])
        movable = [t for t in paused["threads"] if t["can_run"]]
        if not movable:
            break
        paused = run.step(movable[0]["name"], "sync", end_ok=True)
        if not paused:
            break
    assert not any(e["kind"] == "deadlock" for e in run.events)
    assert run.result() == {"done": [0, 1, 2, 3]}
    assert ops >= {("barrier", "wait"), ("condition", "notify_all"), ("condition", "wait_for"),
                   ("event", "set"), ("event", "wait"), ("queue", "put"), ("queue", "get"),
                   ("semaphore", "acquire"), ("semaphore", "release"), ("rlock", "acquire"),
                   ("thread", "start"), ("thread", "join")}
    plan = schedule_of(run.events)
    replay = Stepped(path, schedule=plan)
    assert replay.result() == {"done": [0, 1, 2, 3]}
    # A final free is not part of the interleaving: the recorded run may go free when its
    # controller closes stdin after the last step, and the replay may go free by itself after
    # the list, or end before it gets there.
    assert without_final_free(schedule_of(replay.events)) == without_final_free(plan)
    assert pauses(replay.events) == pauses(run.events)


def test_step_mode_off_costs_nothing(tmp_path):
    run = Stepped(program(tmp_path, OFF), step_mode=False)
    assert run.result() == {
        "main_trace": "None", "new_thread_trace": "None", "worker_trace": "None",
        "step_loaded": False, "lock_acquire": "lessons.kit.traced", "thread_start": "threading"}
    assert not [e for e in run.events if e["kind"] in ("paused", "step")]


def test_a_schedule_is_checked_before_it_is_used():
    assert step.parse_schedule('[{"thread": "A"}, {"free": true}]') == [
        {"thread": "A", "until": "line"}, {"free": True}]
    for bad, why in (("{", "not JSON"), ('{"thread": "A"}', "not a JSON list"),
                     ('[{"thread": "A", "until": "soon"}]', "until must be"),
                     ('[{"who": "A"}]', "step 1 is neither")):
        with pytest.raises(ValueError, match=why):
            step.parse_schedule(bad)
