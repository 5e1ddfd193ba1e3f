"""The per-run view model: lanes per thread life, states over time, crashes, deadlocks, folding."""

import json

import pytest

from app import models
from app.eventlog import EventLog
from app.models import status_text
from app.viewmodel import ViewModel

T0 = 1_700_000_000.0  # the run's first event: run second 0


class FakeRun:
    def __init__(self, log: EventLog, run_id: str = "r1", live: bool = True) -> None:
        self.log, self.id, self.live = log, run_id, live
        self.status, self.exit_code = "running", None


def lines(events: list[dict]) -> list[tuple[bytes, dict]]:
    out = []
    for seq, event in enumerate(events):
        event = {"v": 1, "seq": seq, **event, "t": T0 + event["t"]} if "t" in event else event
        out.append((json.dumps(event).encode(), event))
    return out


def model_of(tmp_path, events: list[dict], *, garbage: bool = False) -> ViewModel:
    """Events written to a real log, closed, and read back from disk as ``(raw, None)``."""
    log = EventLog(tmp_path / "events.jsonl", live=True)
    items = lines(events)
    if garbage:
        items[1:1] = [(b"garbage", {}), (b'{"kind": "log", "t": tor', {}), (b"[]", {})]
    log.append(items)
    log.close()
    return ViewModel(FakeRun(EventLog(tmp_path / "events.jsonl", live=False), live=False)).refresh()


def thread(t, op, name, ident, **extra):
    return {"kind": "thread", "t": t, "op": op, "name": name, "ident": ident, "daemon": False, **extra}


def row(name, ident, state="running", native=None, alive=True, **extra):
    return {"name": name, "ident": ident, "native_id": native or ident, "daemon": False, "alive": alive,
            "state": state, "where": "l.py:3 f", "line": 3, "func": "f", "holds": [], "waiting_for": None,
            **extra}


def snap(t, *rows):
    return {"kind": "threads", "t": t, "threads": list(rows)}


def by_lane(state):
    return {th["lane"]: th for th in state["threads"]}


def test_a_reused_name_and_ident_gets_a_lane_per_life(tmp_path):
    model = model_of(tmp_path, [
        {"kind": "status", "t": 0.0, "status": "running"},
        thread(1.0, "start", "Handler-1", 7), thread(1.5, "end", "Handler-1", 7),
        thread(2.0, "start", "Handler-1", 7), thread(2.5, "end", "Handler-1", 7)])
    assert model.state_at(0.5)["threads"] == []
    assert by_lane(model.state_at(1.2))["Handler-1"]["state"] == "running"
    second = by_lane(model.state_at(2.2))
    assert second["Handler-1"]["state"] == "done" and second["Handler-1 ·2"]["state"] == "running"
    assert second["Handler-1 ·2"]["name"] == "Handler-1"
    assert {th["state"] for th in model.state_at(3.0)["threads"]} == {"done"}


def test_snapshots_alone_split_lanes_by_native_id_and_end_them(tmp_path):
    model = model_of(tmp_path, [
        snap(0.0, row("MainThread", 1), row("Worker", 5, native=50)),
        snap(0.1, row("MainThread", 1), row("Worker", 5, native=50, state="done", alive=False),
             row("Worker", 5, native=51, state="sleeping")),
        snap(0.2, row("MainThread", 1), row("Worker", 5, native=51, state="sleeping"))])
    at = by_lane(model.state_at(0.15))
    assert at["Worker"]["state"] == "done" and at["Worker ·2"]["state"] == "sleeping"
    assert at["MainThread"]["where"] == "l.py:3 f"


def test_traced_state_events_give_exact_intervals_and_win_over_late_samples(tmp_path):
    model = model_of(tmp_path, [
        thread(0.0, "start", "Consumer-2", 3),
        {"kind": "state", "t": 1.25, "thread": "Consumer-2", "ident": 3, "state": "waiting-queue",
         "obj": "q"},
        snap(1.3, row("Consumer-2", 3, "waiting-queue", waiting_for="q")),
        {"kind": "state", "t": 1.8, "thread": "Consumer-2", "ident": 3, "state": "running", "obj": "q"},
        snap(1.85, row("Consumer-2", 3, "waiting-queue")),  # sampled late: the wait had ended
        snap(2.0, row("Consumer-2", 3, "sleeping")),  # untraced: only the sample knows
        snap(3.0, row("Consumer-2", 3))])
    states = [by_lane(model.state_at(t))["Consumer-2"]["state"] for t in (1.0, 1.5, 1.9, 2.5, 3.0)]
    assert states == ["running", "waiting-queue", "running", "sleeping", "running"]
    assert by_lane(model.state_at(1.5))["Consumer-2"]["waiting_for"] == "q"
    (lane,) = model.lanes_between(T0, T0 + 3)
    assert [segment[2] for segment in lane["segments"]] == [
        "running", "waiting-queue", "running", "sleeping", "running"]


def test_a_crash_is_kept_with_its_exception_and_counted(tmp_path):
    model = model_of(tmp_path, [
        thread(0.0, "start", "Worker-1", 4), thread(0.0, "start", "Worker-2", 5),
        thread(1.0, "crash", "Worker-1", 4, exc={"type": "RuntimeError", "message": "boom"},
               where="l.py:9 f"),
        thread(1.5, "end", "Worker-2", 5),
        {"kind": "status", "t": 2.0, "status": "exited", "exit_code": 0}])
    before, after = by_lane(model.state_at(0.5)), by_lane(model.state_at(1.2))
    assert before["Worker-1"]["state"] == "running" and before["Worker-1"]["exc"] is None
    assert after["Worker-1"]["state"] == "crashed"
    assert after["Worker-1"]["exc"] == {"type": "RuntimeError", "message": "boom", "where": "l.py:9 f"}
    assert model.summary()["crashed"] == 1
    run = FakeRun(None)
    run.status, run.exit_code = "exited", 0
    assert status_text(run, model) == {"text": "exited 0 · 1 thread crashed", "warning": True}


def test_a_crashed_row_in_a_snapshot_counts_too(tmp_path):
    model = model_of(tmp_path, [snap(0.0, row("W", 1)),
                                snap(1.0, row("W", 1, "crashed", alive=False, exc={"type": "KeyError"}))])
    assert by_lane(model.state_at(1.0))["W"]["exc"]["type"] == "KeyError"


def test_deadlocks_formed_and_broken_and_the_older_form(tmp_path):
    cycle = [{"thread": "A", "holds": ["x"], "waits_for": "y"},
             {"thread": "B", "holds": ["y"], "waits_for": "x"}]
    model = model_of(tmp_path, [
        snap(0.0, row("A", 1), row("B", 2)),
        {"kind": "deadlock", "t": 1.0, "op": "formed", "cycle": cycle, "since": T0 + 0.7},
        {"kind": "deadlock", "t": 2.0, "op": "broken", "how": "timeout"},
        {"kind": "deadlock", "t": 3.0, "cycle": cycle}, snap(4.0, row("A", 1), row("B", 2))])
    assert model.state_at(0.9)["deadlock"] is None  # the cycle is only said once reported
    first = model.state_at(1.5)["deadlock"]
    assert first["cycle"] == cycle and first["since"] == pytest.approx(0.7)
    assert first["formed_at"] == pytest.approx(1.0)
    # Before the break the banner must not know how it will end (it said "broken" at 1.5 s).
    assert "broken_at" not in first and "how" not in first
    broken = model.state_at(2.5)["deadlock"]
    assert broken["broken_at"] == pytest.approx(2.0) and broken["how"] == "timeout"
    assert broken["formed_at"] == pytest.approx(1.0)  # the first cycle, as the live banner shows it
    second = model.state_at(3.5)["deadlock"]  # the older form: no op, never broken
    assert second["formed_at"] == pytest.approx(3.0) and "broken_at" not in second
    assert model.summary()["deadlocked"] == 1


def test_garbage_lines_are_skipped(tmp_path):
    events = [snap(0.0, row("W", 1)), {"kind": "log", "t": 0.5, "thread": "W", "msg": "hi"},
              snap(1.0, row("W", 1))]
    model = model_of(tmp_path, events, garbage=True)
    assert model.count == 6 and model.complete
    assert [th["name"] for th in model.state_at(0.7)["threads"]] == ["W"]


def test_log_seq_stepping_and_clamping(tmp_path):
    model = model_of(tmp_path, [
        snap(0.0, row("W", 1)), {"kind": "log", "t": 0.5, "thread": "W", "msg": "a"},
        {"kind": "stderr", "t": 0.75, "text": "x"}, snap(1.0, row("W", 1, "sleeping"))])
    assert model.state_at(0.2)["log_seq"] is None
    assert model.state_at(0.6)["log_seq"] == 1 and model.state_at(0.8)["log_seq"] == 2
    assert model.state_at(99)["t"] == 1.0 and model.state_at(-3)["t"] == 0.0
    assert model.events_times() == [0.0, 0.5, 0.75, 1.0]  # W appears, a log line, stderr, W sleeps
    assert model.step(0.5, 1) == 0.75 and model.step(0.5, -1) == 0.0 and model.step(1.0, 1) is None


def test_folding_as_events_arrive_gives_what_folding_them_at_once_does(tmp_path):
    events = [thread(0.0, "start", "MainThread", 1)]
    for i in range(1, 60):
        name, ident = f"Worker-{i % 3}", 10 + i % 3
        events.append(thread(i * 0.1, "start", name, ident) if i % 7 == 1 else
                      {"kind": "state", "t": i * 0.1, "thread": name, "ident": ident,
                       "state": "waiting-lock" if i % 2 else "running", "obj": "l"})
        if i % 7 == 0:
            events.append(thread(i * 0.1 + 0.01, "end", name, ident))
        if i % 5 == 0:
            events.append(snap(i * 0.1 + 0.02, row("MainThread", 1, "sleeping")))
    items = lines(events)
    live = EventLog(tmp_path / "live.jsonl", live=True)
    model = ViewModel(FakeRun(live))
    for start in range(0, len(items), 9):
        live.append(items[start:start + 9])
        model.refresh()
    live.close()
    model.refresh()
    whole = model_of(tmp_path, events)
    for t in [i * 0.037 for i in range(180)]:
        assert model.state_at(t) == whole.state_at(t), t
    assert model.events_times() == whole.events_times() and model.complete


def test_why_a_run_failed(tmp_path):
    model = model_of(tmp_path, [
        {"kind": "stderr", "t": 0.0, "text": "Traceback (most recent call last):"},
        {"kind": "stderr", "t": 0.0, "text": '  File "x.py", line 1, in <module>'},
        {"kind": "stderr", "t": 0.0, "text": "RuntimeError: boom"},
        {"kind": "status", "t": 0.1, "status": "failed", "exit_code": 1}])
    assert model.summary()["why"] == "exit code 1: RuntimeError: boom (traceback in the log)"
    (tmp_path / "b").mkdir()
    plain = model_of(tmp_path / "b", [{"kind": "status", "t": 0.1, "status": "failed", "exit_code": 2}])
    assert plain.summary()["why"] == "exit code 2: the lesson's own check failed (no traceback)"
    (tmp_path / "c").mkdir()
    result = model_of(tmp_path / "c", [{"kind": "result", "t": 0.1, "values": {"passed": False}},
                                       {"kind": "status", "t": 0.2, "status": "exited", "exit_code": 0}])
    assert result.summary()["why"] == "result says passed is false"


def test_the_cache_keeps_live_models_and_a_few_finished_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    runs = []
    for i in range(8):
        (tmp_path / str(i)).mkdir()
        runs.append(FakeRun(EventLog(tmp_path / str(i) / "events.jsonl", live=True), f"r{i}", live=i < 2))
        if i >= 2:
            runs[-1].log.close()  # a finished run's log is closed before its status is final
    built = [models.model_for(run) for run in runs]
    assert models.model_for(runs[7]) is built[7]
    kept = set(models._cache)
    assert {"r0", "r1"} <= kept and len(kept - {"r0", "r1"}) == models.KEEP_FINISHED
    assert models.model_for(runs[0]) is built[0]
    for run in runs:
        run.log.close()


def test_a_state_event_newer_than_the_last_sample_says_what_the_thread_waits_for(tmp_path):
    model = model_of(tmp_path, [
        {"kind": "status", "t": 0.0, "status": "running"},
        snap(0.1, row("MainThread", 1, state="waiting-event", waiting_for="Event.wait")),
        {"kind": "state", "t": 0.2, "thread": "MainThread", "ident": 1, "state": "waiting-join",
         "obj": "Worker-1"},
        {"kind": "state", "t": 0.4, "thread": "MainThread", "ident": 1, "state": "running",
         "obj": "Worker-1", "outcome": "joined"},
        {"kind": "status", "t": 0.5, "status": "exited"},
    ])
    assert by_lane(model.state_at(0.15))["MainThread"]["waiting_for"] == "Event.wait"
    joining = by_lane(model.state_at(0.3))["MainThread"]
    assert (joining["state"], joining["waiting_for"]) == ("waiting-join", "Worker-1")
    after = by_lane(model.state_at(0.45))["MainThread"]
    assert (after["state"], after["waiting_for"]) == ("running", None)


def failed_run(code: int | None) -> FakeRun:
    run = FakeRun(None)
    run.status, run.exit_code = "failed", code
    return run


def test_a_failed_run_says_why_a_traceback_or_its_own_check(tmp_path):
    (tmp_path / "a").mkdir()
    raised = model_of(tmp_path / "a", [
        {"kind": "stderr", "t": 0.0, "text": "Traceback (most recent call last):"},
        {"kind": "stderr", "t": 0.0, "text": '  File "x.py", line 1, in <module>'},
        {"kind": "stderr", "t": 0.0, "text": "KeyError: 'x'"},
        {"kind": "status", "t": 0.1, "status": "failed", "exit_code": 1}])
    assert status_text(failed_run(1), raised) == {
        "text": "failed 1 · KeyError: 'x' (traceback in the log)", "warning": True}
    (tmp_path / "b").mkdir()
    checked = model_of(tmp_path / "b", [  # lesson 05 with its check failing: returns 1, no traceback
        {"kind": "log", "t": 0.0, "thread": "MainThread", "level": "INFO", "msg": "locked 3998 of 4000"},
        {"kind": "status", "t": 0.1, "status": "failed", "exit_code": 1}])
    text = status_text(failed_run(1), checked)["text"]
    assert text == "failed 1 · the lesson's own check failed (no traceback)"
    assert "traceback in the log" not in text
    (tmp_path / "c").mkdir()
    logged = model_of(tmp_path / "c", [  # the lesson logged the exception, then returned 1
        {"kind": "log", "t": 0.0, "thread": "MainThread", "level": "ERROR", "msg": "gave up",
         "exc": "Traceback (most recent call last):\n  File \"x.py\", line 2, in f\nTimeoutError: late\n"},
        {"kind": "status", "t": 0.1, "status": "failed", "exit_code": 1}])
    assert status_text(failed_run(1), logged)["text"] == \
        "failed 1 · TimeoutError: late (traceback in the log)"
    (tmp_path / "d").mkdir()
    unstarted = model_of(tmp_path / "d", [{"kind": "status", "t": 0.0, "status": "failed", "reason": "busy"}])
    text = status_text(failed_run(None), unstarted)["text"]
    assert text.startswith("failed · the lesson never started") and "check" not in text


def test_a_sample_taken_before_a_threads_end_but_written_after_it_is_no_new_lane(tmp_path):
    # The sampler saw Worker alive just before it ended; its snapshot reached the log after the
    # thread's own end event (whatever time it carries). It must not reopen a lane or add a row.
    for stamp in (0.95, 1.05):
        (tmp_path / str(stamp)).mkdir()
        model = model_of(tmp_path / str(stamp), [
            thread(0.0, "start", "MainThread", 1, native_id=10),
            thread(0.5, "start", "Worker", 5, native_id=50), thread(1.0, "end", "Worker", 5, native_id=50),
            snap(stamp, row("MainThread", 1, native=10), row("Worker", 5, native=50)),
            snap(1.5, row("MainThread", 1, native=10),
                 row("Worker", 5, native=50, state="done", alive=False))])
        at = by_lane(model.state_at(1.2))
        assert set(at) == {"MainThread", "Worker"}, stamp
        assert at["Worker"]["state"] == "done"
        assert [lane["display"] for lane in model.lanes_between(T0, T0 + 2)] == ["MainThread", "Worker"]


def test_a_crash_told_by_its_event_and_by_samples_counts_once(tmp_path):
    model = model_of(tmp_path, [
        thread(0.0, "start", "W", 5, native_id=50),
        thread(1.0, "crash", "W", 5, native_id=50, exc={"type": "KeyError", "message": "k"},
               where="l.py:9 f"),
        snap(0.98, row("W", 5, native=50)),  # taken just before the crash, written after it
        snap(1.2, row("W", 5, native=50, state="crashed", alive=False, exc={"type": "KeyError"}))])
    assert model.summary()["crashed"] == 1
    assert list(by_lane(model.state_at(1.3))) == ["W"]
    assert by_lane(model.state_at(1.3))["W"]["state"] == "crashed"


def test_a_crash_event_after_a_sample_saw_the_thread_finished_is_the_same_life(tmp_path):
    # The other order: a sample saw it finished (late, at 1.2) before its crash event (at 1.0)
    # reached the log. The event's exact time wins; still one lane and one crash.
    model = model_of(tmp_path, [
        thread(0.0, "start", "W", 5, native_id=50),
        snap(1.2, row("W", 5, native=50, state="crashed", alive=False, exc={"type": "KeyError"})),
        thread(1.0, "crash", "W", 5, native_id=50, exc={"type": "KeyError", "message": "k"},
               where="l.py:9 f")])
    assert model.summary()["crashed"] == 1
    at = by_lane(model.state_at(1.1))
    assert list(at) == ["W"] and at["W"]["state"] == "crashed"
    assert at["W"]["exc"] == {"type": "KeyError", "message": "k", "where": "l.py:9 f"}
