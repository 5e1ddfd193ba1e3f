"""A finished run's view model saved beside its log and read back (app/model_store.py), who builds it
and when (app/model_builder.py, app/models.py): the same answers as a fold, once, and a saved model
that is missing, stale, from another version or damaged is folded again, never an error."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from app import model_builder, model_store, models, timeline
from app.eventlog import EventLog
from app.viewmodel import ViewModel

from .conftest import wait_until

T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


class FakeRun:
    def __init__(self, log: EventLog, run_id: str = "r1", live: bool = False) -> None:
        self.log, self.id, self.live = log, run_id, live


def write_run(folder: Path, steps: int = 300, seed: int = 1) -> Path:
    """A finished run's log with something of everything a model keeps: threads born, renamed,
    crashed and reused, waits, lock hand-offs, log lines and errors, snapshots, a deadlock formed
    and broken, a traceback, results, the final status, and lines that are no events."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.jsonl"
    names = ["MainThread", "Worker-1", "Worker-2", "Worker-3"]
    lines = []

    def emit(t: float, **event) -> None:
        lines.append(json.dumps({"seq": len(lines), "v": 1, "t": T0 + t, **event}))

    emit(0.0, kind="status", status="running", pid=1)
    for i, name in enumerate(names):
        emit(0.001 * i, kind="thread", op="start", name=name, ident=100 + i, native_id=900 + i, daemon=i > 2)
    for step in range(steps):
        t = 0.01 + step * 0.01
        name = rng.choice(names[1:])
        ident = 100 + names.index(name)
        roll = rng.random()
        if roll < 0.3:
            state = rng.choice(["waiting-lock", "running", "waiting-queue"])
            emit(t, kind="state", thread=name, ident=ident, state=state, obj=rng.choice(["lock", "q"]))
        elif roll < 0.5:
            emit(t, kind="sync", op="acquired", obj="lock", thread=name)
        elif roll < 0.8:
            emit(t, kind="log", level=rng.choice(["INFO", "INFO", "ERROR"]), thread=name, thread_id=ident,
                 msg=f"step {step} ✓")
        else:
            emit(t, kind="threads", threads=[
                {"name": n, "ident": 100 + k, "native_id": 900 + k, "daemon": k > 2, "alive": True,
                 "state": rng.choice(["running", "sleeping"]), "where": f"l.py:{k + step % 5} f",
                 "line": k, "holds": ["lock"] if k == step % 4 else [], "waiting_for": None}
                for k, n in enumerate(names)])
        if step == 100:
            cycle = [{"thread": "Worker-1", "holds": "a", "waits_for": "b"}]
            emit(t, kind="deadlock", cycle=cycle, since=0.4)
        if step == 150:
            emit(t, kind="deadlock", op="broken", how="timeout")
            emit(t, kind="thread", op="crash", name="Worker-3", ident=103,
                 exc={"type": "RuntimeError", "message": "boom"}, where="l.py:9 f")
            emit(t, kind="thread", op="start", name="Worker-3", ident=103, native_id=977)  # reused
        if step == 200:
            lines.append("not an event")
            lines.append('{"kind": "log", "t": "soon"}')
    emit(3.5, kind="stderr", text="Traceback (most recent call last):")
    emit(3.5, kind="stderr", text="ValueError: bad")
    emit(3.6, kind="result", values={"produced": 10, "ok": True})
    emit(3.7, kind="status", status="failed", exit_code=1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def folded(path: Path) -> ViewModel:
    return ViewModel(FakeRun(EventLog(path, live=False))).refresh()


def loaded(path: Path) -> ViewModel | None:
    model = ViewModel(FakeRun(EventLog(path, live=False)))
    return model if model_store.load_into(model, model.run.log) else None


def saved(path: Path) -> ViewModel:
    model = folded(path)
    model_store.save(model, model.run.log, model_store.stamp(path))
    return model


def assert_same(a: ViewModel, b: ViewModel) -> None:
    """Every question the pages ask, answered alike."""
    assert (a.count, a.duration, a.summary(), a.status, a.exit_code, a.results) == \
        (b.count, b.duration, b.summary(), b.status, b.exit_code, b.results)
    assert a.events_times() == b.events_times()
    assert (a.rows, list(a.newest_rows), a.newest) == (b.rows, list(b.newest_rows), b.newest)
    for t in [i * 0.05 for i in range(80)]:
        assert a.state_at(t) == b.state_at(t), t
        assert a.step(t, 1) == b.step(t, 1) and a.step(t, -1) == b.step(t, -1)
    for t0, t1 in [(None, None), (0.5, 1.5), (1.0, 1.01), (3.0, None)]:
        assert timeline.render_model(a, t0, t1) == timeline.render_model(b, t0, t1)
    first = (a.first_t or 0.0)
    assert a.lanes_between(first, first + 10, 0.01) == b.lanes_between(first, first + 10, 0.01)


def test_a_saved_model_answers_as_the_fold_it_was_saved_from(tmp_path):
    path = write_run(tmp_path / "run")
    model = saved(path)
    back = loaded(path)
    assert back is not None and back.complete
    assert_same(model, back)
    assert model.summary()["crashed"] == 1 and "ValueError: bad" in model.summary()["why"]


@pytest.mark.parametrize("kinds", ["log lines only", "nothing at all", "threads, no samples"])
def test_a_run_with_empty_columns_is_saved_and_loaded(tmp_path, kinds):
    path = tmp_path / "run" / "events.jsonl"
    path.parent.mkdir()
    lines = {"log lines only": [{"kind": "log", "t": T0 + i, "msg": f"flood {i}", "thread": "MainThread"}
                                for i in range(30)],
             "nothing at all": [],
             "threads, no samples": [{"kind": "thread", "op": "start", "t": T0, "name": "W",
                                      "ident": 1}]}[kinds]
    path.write_text("".join(json.dumps({"seq": i, **e}) + "\n" for i, e in enumerate(lines)))
    model = saved(path)
    back = loaded(path)
    assert back is not None, "a model with empty columns must load"
    assert_same(model, back)


def test_the_saved_file_is_json_and_arrays_never_pickle(tmp_path):
    path = write_run(tmp_path / "run")
    saved(path)
    data = (tmp_path / "run" / model_store.FILE).read_bytes()
    first, rest = data.split(b"\n", 1)
    magic, version, size, crc = first.rsplit(b" ", 3)
    assert magic == model_store.MAGIC and int(version) == model_store.VERSION
    header = json.loads(rest[:int(size)])
    assert header["log"]["events"] == folded(path).count and b"pickle" not in data[:2]


def test_the_log_takes_the_saved_index_instead_of_reading_itself(tmp_path):
    path = write_run(tmp_path / "run")
    saved(path)
    model = ViewModel(FakeRun(EventLog(path, live=False)))
    log = model.run.log
    assert log._offsets is None and model_store.load_into(model, log)
    offsets, size = log.index()
    fresh = EventLog(path, live=False)
    assert (list(offsets), size) == (list(fresh.index()[0]), fresh.index()[1])
    lines = path.read_bytes().split(b"\n")
    assert log.lines_at([0, 7, len(lines) - 2, len(lines) + 5]) == [lines[0], lines[7], lines[-2], b""]


def damage(path: Path, how: str) -> None:
    file = path.parent / model_store.FILE
    data = bytearray(file.read_bytes())
    head = data.index(b"\n") + 1
    if how == "version":
        data[:head] = data[:head].replace(b"model %d " % model_store.VERSION, b"model 99 ")
    elif how == "truncated":
        del data[-100:]
    elif how == "trailing":
        data += b"\0"
    elif how == "payload":
        data[-50] ^= 0xFF
    elif how == "header":
        data[head + 30] ^= 0x01
    elif how == "garbage":
        data = bytearray(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle: never run, never read
    elif how == "empty":
        data = bytearray()
    elif how == "crafted":  # a header that passes its checksum but is not a model
        header = json.loads(data[head:head + int(data[:head].split()[-2])])
        header["lanes"][0]["start"] = "soon"
        raw = json.dumps(header).encode()
        first = b"%s %d %d %d\n" % (model_store.MAGIC, model_store.VERSION, len(raw), zlib.crc32(raw))
        data = bytearray(first + raw + data[head + int(data[:head].split()[-2]):])
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["version", "truncated", "trailing", "payload", "header", "garbage",
                                 "empty", "crafted", "missing"])
def test_a_damaged_or_foreign_model_is_not_loaded(tmp_path, how):
    path = write_run(tmp_path / "run")
    saved(path)
    if how == "missing":
        (tmp_path / "run" / model_store.FILE).unlink()
    else:
        damage(path, how)
    model = ViewModel(FakeRun(EventLog(path, live=False)))
    assert not model_store.load_into(model, model.run.log)
    assert model.count == 0 and not model.complete and model.run.log._offsets is None  # untouched


def test_a_model_of_a_log_that_changed_since_is_stale(tmp_path):
    path = write_run(tmp_path / "run")
    saved(path)
    assert loaded(path) is not None
    with open(path, "ab") as f:
        f.write(b'{"seq": 9999, "v": 1, "t": 1700000009.0, "kind": "log", "msg": "appended"}\n')
    assert loaded(path) is None
    saved(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"step 1 ", b"step 9 ", 1))  # same size, rewritten later
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert loaded(path) is None


@pytest.fixture
def fresh_models(monkeypatch):
    """An empty model cache and build table, and runs counted long from 5 kB."""
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    monkeypatch.setattr(model_builder, "_builds", {})
    monkeypatch.setattr(model_builder, "_queue", type(model_builder._queue)())
    monkeypatch.setattr(model_builder, "BUILD_AT", 5000)


def count_folds(monkeypatch) -> list[int]:
    folds, real = [], ViewModel.refresh

    def refresh(self):
        folds.append(self.count)
        return real(self)

    monkeypatch.setattr(ViewModel, "refresh", refresh)
    return folds


@pytest.mark.parametrize("how", ["missing", "payload", "version", "crafted"])
def test_a_first_look_without_a_good_saved_model_folds_and_saves_one(tmp_path, fresh_models, how):
    path = write_run(tmp_path / "run")
    saved(path)
    if how == "missing":
        (tmp_path / "run" / model_store.FILE).unlink()
    else:
        damage(path, how)
    model = models.model_for(FakeRun(EventLog(path, live=False)))
    assert_same(model, folded(path))
    assert_same(loaded(path), model)  # saved again, good this time


def test_a_run_whose_log_is_gone_is_an_empty_model_not_an_error(tmp_path, fresh_models):
    (tmp_path / "run").mkdir()
    model = models.model_for(FakeRun(EventLog(tmp_path / "run" / "events.jsonl", live=False)))
    assert model.complete and model.count == 0 and model.summary()["crashed"] == 0


def test_a_first_look_loads_the_saved_model_and_folds_nothing(tmp_path, fresh_models, monkeypatch):
    path = write_run(tmp_path / "run")
    reference = saved(path)
    folds = count_folds(monkeypatch)
    model = models.model_for(FakeRun(EventLog(path, live=False)))
    assert_same(model, reference)
    assert all(count == reference.count for count in folds)  # every refresh found it complete


def test_two_viewers_at_once_fold_a_finished_run_once(tmp_path, fresh_models, monkeypatch):
    path = write_run(tmp_path / "run", steps=3000)
    run = FakeRun(EventLog(path, live=False))
    started, real = [], model_builder.model_store.load_into

    def slow_load(model, log):  # the first viewer is still looking when the second comes
        started.append(1)
        time.sleep(0.3)
        return real(model, log)

    monkeypatch.setattr(model_builder.model_store, "load_into", slow_load)
    saves, real_save = [], model_builder.model_store.save
    monkeypatch.setattr(model_builder.model_store, "save", lambda *a: saves.append(1) or real_save(*a))
    got = []
    viewers = [threading.Thread(target=lambda: got.append(models.model_for(run))) for _ in range(3)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(30)
    assert len(got) == 3 and got[0] is got[1] is got[2] and got[0].complete
    assert started == [1] and saves == [1]


def test_a_viewer_waits_for_the_build_under_way_instead_of_folding(tmp_path, fresh_models, monkeypatch):
    path = write_run(tmp_path / "run")
    folder = str(path.parent)
    build = model_builder.Build(folder, started=True)
    model_builder._builds[folder] = build  # as the builder thread marks a build it has started
    folds = count_folds(monkeypatch)
    got = []
    run = FakeRun(EventLog(path, live=False))
    viewer = threading.Thread(target=lambda: got.append(models.model_for(run)))
    viewer.start()
    time.sleep(0.3)
    assert viewer.is_alive() and not got  # waiting for the build, not folding
    reference = saved(path)  # the build's process writes the model...
    del model_builder._builds[folder]
    build.done.set()  # ...and ends
    viewer.join(10)
    assert_same(got[0], reference)
    assert folds.count(0) == 1  # only `saved` above folded from the start


def test_a_viewer_takes_over_a_build_still_queued(tmp_path, fresh_models):
    path = write_run(tmp_path / "run")
    build = model_builder.Build(str(path.parent))
    model_builder._builds[build.folder] = build
    model_builder._queue.append(build)  # queued behind another run's build
    model = models.model_for(FakeRun(EventLog(path, live=False)))
    assert model.complete and not model_builder._queue and not model_builder._builds
    assert loaded(path) is not None  # the viewer saved what it folded


def test_a_run_that_ends_has_its_model_built_in_a_process_of_its_own(tmp_path, fresh_models):
    path = write_run(tmp_path / "run", steps=1000)
    small = write_run(tmp_path / "small", steps=1)
    models.run_ended(FakeRun(EventLog(small, live=False), "small"))
    models.run_ended(FakeRun(EventLog(path, live=False)))
    assert small.stat().st_size < model_builder.BUILD_AT < path.stat().st_size
    wait_until(lambda: not model_builder._builds, timeout=60, what="the build")
    assert_same(loaded(path), folded(path))
    assert not (small.parent / model_store.FILE).exists()  # a short run's fold is quick: not saved


def test_the_builder_process_skips_a_current_model_and_ignores_a_vanished_run(tmp_path):
    path = write_run(tmp_path / "run")
    assert model_builder.build(path.parent) is True
    assert model_builder.build(path.parent) is False
    gone = subprocess.run([sys.executable, "-m", "app.model_builder", str(tmp_path / "gone")], cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert gone.returncode == 0, gone.stderr


def test_a_page_history_is_what_a_page_viewer_takes_in_reading_every_line(tmp_path, fresh_models):
    from app import stream

    path = write_run(tmp_path / "run", steps=2000)
    path.write_bytes(path.read_bytes().replace(b"not an event\n", b""))  # such a line is no row here
    run = FakeRun(EventLog(path, live=False))
    history = models.page_history(run, stream.MAX_LOG_ROWS)
    view = stream.PageView(None, run)
    cursor = -1
    while batch := run.log.read(cursor, stream.JSON_BATCH):
        view.take_all(batch)
        cursor += len(batch)
    assert history["cursor"] == cursor
    for name in stream._HISTORY:
        mine, theirs = history[name], getattr(view, name)
        if name == "rows":
            mine, theirs = [line for line, _ in mine], [line for line, _ in theirs]
        elif name == "threads":
            mine, theirs = mine[0], theirs[0]
        assert mine == theirs, name
    assert models.page_history(FakeRun(EventLog(tmp_path / "live.jsonl", live=True), "r2", live=True), 10) \
        is None


def test_no_thread_for_the_builder_leaves_no_build_behind(tmp_path, fresh_models, monkeypatch):
    # A build queued with no thread to run it would make every later viewer wait for it in vain.
    path = write_run(tmp_path / "run", steps=3000)
    monkeypatch.setattr(model_builder, "_worker", None)

    def no_thread(self) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(model_builder.threading.Thread, "start", no_thread)
    model_builder.queue_build(EventLog(path, live=False))
    assert model_builder._builds == {} and not model_builder._queue
    assert model_builder._worker is None
