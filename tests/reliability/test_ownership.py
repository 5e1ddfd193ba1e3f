"""One owner per run: the supervisor alone changes a run, whatever request threads, full disks,
deaf lessons or escaping children do around it. In-process (a RunManager and real lesson processes)
where the server's internals are the point, live where HTTP is."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time

import psutil
import pytest

from app.eventlog import EventLog
from app.record import FINAL, RunRecord, load_record
from app.registry import Registry
from app.run import Run
from app.runs import RunManager
from app.supervisor import Supervisor
from tests.live_helpers import FAULT_LESSONS, wait_gone, worker


@pytest.fixture(scope="module")
def lessons():
    return Registry(FAULT_LESSONS)


@pytest.fixture
def manager(tmp_path):
    manager = RunManager(tmp_path, time_limit=30, keep_runs=0)
    yield manager
    manager.shutdown(timeout=2)


def start(manager, lessons, key, **params):
    lesson = lessons.get(key)
    argv = [f"--{name.replace('_', '-')}={value}" for name, value in params.items()]
    return manager.start(lesson, params, argv)


def statuses(run) -> list[str]:
    return [e["status"] for e in map(json.loads, (line for line, _ in run.log.read(-1)))
            if e["kind"] == "status"]


def join_supervisor(run) -> None:
    """Wait for the run's supervisor to finish its last act (freeing the slot, pruning)."""
    for thread in threading.enumerate():
        if thread.name == f"threadlab-run-{run.id}":
            thread.join(5)


# -- the record ---------------------------------------------------------------------------------

def test_concurrent_saves_never_share_a_temp_file(tmp_path):
    record = RunRecord(id="r", lesson="01", params={}, argv=[])
    errors = []

    def save_many():
        try:
            for _ in range(500):
                record.save(tmp_path)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads((tmp_path / "run.json").read_text())["id"] == "r"
    assert list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize("content", ["[]", "null", '"text"', "{", '{"id": 3}',
                                     '{"id": "x", "lesson": "01", "params": [], "argv": [], '
                                     '"status": "exited", "started": 1}',
                                     '{"id": "x", "lesson": "01", "params": {"n": NaN}, "argv": [], '
                                     '"status": "exited", "started": 1}',
                                     '{"id": "x", "lesson": "01", "params": {}, "argv": [], '
                                     '"status": "exited", "started": Infinity}'])
def test_a_run_json_that_is_not_a_run_is_skipped_and_the_server_still_starts(tmp_path, content):
    good = RunRecord(id="good", lesson="01", params={"label": "\udcff"}, argv=[], status="exited")
    (tmp_path / "runs" / "good").mkdir(parents=True)
    good.save(tmp_path / "runs" / "good")
    (tmp_path / "runs" / "x").mkdir()
    (tmp_path / "runs" / "x" / "run.json").write_text(content)
    manager = RunManager(tmp_path)
    assert [run.id for run in manager.all()] == ["good"]
    assert manager.get("good").params == {"label": "\ufffd"}, "a lone surrogate is not served"
    json.dumps(manager.get("good").to_json()).encode("utf-8")


def test_the_transition_table_refuses_to_bring_an_ended_run_back(tmp_path):
    run = Run(RunRecord(id="r", lesson="01", params={}, argv=[], status="running"), tmp_path, live=False)
    run.transition("exited", exit_code=0)
    with pytest.raises(RuntimeError, match="exited -> stopping"):
        run.transition("stopping")
    assert run.status == "exited"


# -- the supervisor ------------------------------------------------------------------------------

def test_a_dump_to_a_lesson_that_never_reads_is_refused_once_the_pipe_is_full(manager, lessons):
    run = start(manager, lessons, "11")
    codes = [manager.dump(run).code for _ in range(6000)]  # 16 bytes each; a pipe holds 64 KiB
    assert codes[0] == 202 and codes[-1] == 409
    assert set(codes) == {202, 409} and codes.index(409) >= 4096 - 1
    assert manager.stop(run).code == 202, "the run is still in hand"
    assert run.wait_final(10) and run.status == "stopped"


def test_a_child_that_leaves_the_group_and_keeps_writing_does_not_keep_the_run_live(manager, lessons):
    run = start(manager, lessons, "12")
    assert run.wait_final(10), "the run ended when its leader exited"
    assert run.status == "exited"
    events = [json.loads(line) for line, _ in run.log.read(-1)]
    child = int(next(e["text"] for e in events if e.get("text", "").startswith("escapee child")).split()[-1])
    assert any("cut off" in e.get("text", "") for e in events if e["kind"] == "stderr")
    # With our end of its pipe closed, the escapee's next print fails and it exits.
    assert not wait_gone([child], 5), "the escapee lost its output and ended"


def test_a_full_disk_mid_run_loses_events_but_the_run_stays_stoppable(manager, lessons, monkeypatch):
    run = start(manager, lessons, "01", duration=60)
    pid = run.pid

    def full(self, items):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EventLog, "append", full)
    assert manager.stop(run).code == 202
    assert run.wait_final(10) and run.status == "stopped"
    assert not wait_gone([pid], 2)
    join_supervisor(run)
    assert run.log.closed, "viewers learn that the run has ended"
    assert load_record(run.folder).status == "stopped"


def test_a_supervisor_that_fails_still_ends_its_run_and_frees_its_slot(manager, lessons, monkeypatch):
    def broken(self, fd):
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(Supervisor, "_read", broken)
    run = start(manager, lessons, "01", duration=60)
    pid = run.pid
    assert run.wait_final(10) and run.status in FINAL
    join_supervisor(run)
    assert run.log.closed and manager.live_count() == 0
    assert not wait_gone([pid], 2), "the lesson was killed, not left running"
    assert statuses(run)[-1] == run.status


def test_a_run_that_cannot_be_stored_holds_no_slot(manager, lessons, monkeypatch):
    from app.runs import StorageError

    def full(self, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunRecord, "save", full)
    for _ in range(manager.max_live + 2):
        with pytest.raises(StorageError) as caught:
            start(manager, lessons, "08")
        assert caught.value.http_status == 507
    assert manager.live_count() == 0 and manager.all() == []


def test_a_watched_run_is_pruned_only_after_its_viewer_leaves(tmp_path, lessons):
    manager = RunManager(tmp_path, keep_runs=1)
    first = start(manager, lessons, "08")
    assert first.wait_final(10)
    with manager.viewing(first.id) as viewed:
        assert viewed is first
        second = start(manager, lessons, "08")
        assert second.wait_final(10)
        join_supervisor(second)  # its last act prunes: wait for it, not for a guess
        assert manager.get(first.id) is first and first.folder.exists(), "kept while watched"
    assert manager.get(first.id) is None and not first.folder.exists(), "pruned when left"
    assert manager.get(second.id) is second


def ended_runs(data_dir, count: int) -> list[str]:
    """``count`` ended runs on disk, oldest first (as a server that ran them would leave them)."""
    ids = []
    for n in range(count):
        record = RunRecord(id=f"{n:024x}", lesson="08", params={}, argv=[], status="exited",
                           exit_code=0, started=1000.0 + n, ended=1001.0 + n)
        folder = data_dir / "runs" / record.id
        folder.mkdir(parents=True)
        record.save(folder)
        (folder / "events.jsonl").write_text("")
        ids.append(record.id)
    return ids


def test_view_finds_and_counts_in_one_step_so_prune_cannot_slip_between(tmp_path):
    old, new = ended_runs(tmp_path, 2)
    manager = RunManager(tmp_path, keep_runs=0)
    manager.keep_runs = 1  # from now on, old is due for pruning
    run = manager.view(old)
    assert run is not None and run.id == old
    manager.prune()
    assert run.folder.exists() and manager.get(old) is run, "kept while counted as viewed"
    manager.leave(run)
    assert not run.folder.exists() and manager.view(old) is None, "pruned with its last viewer"
    with manager.viewing(old) as gone:
        assert gone is None
    with manager.viewing(new) as kept:
        assert kept is manager.get(new)


@pytest.fixture
def racing_app(tmp_path, monkeypatch):
    """An app whose run lookups are each followed by a prune that finds the oldest run due: what
    a run ending on another thread does, at the worst moment for a request that just looked up."""
    from app import create_app

    old, _ = ended_runs(tmp_path, 2)
    app = create_app({"DATA_DIR": str(tmp_path), "LESSONS_DIR": str(FAULT_LESSONS), "PORT": 8765,
                      "KEEP_RUNS": 0})
    manager = app.extensions["threadlab.runs"]
    manager.keep_runs = 1
    found = manager.get

    def get_then_prune(run_id):
        run = found(run_id)
        manager.prune()
        return run

    monkeypatch.setattr(manager, "get", get_then_prune)
    yield app, manager, old
    manager.shutdown(timeout=2)


@pytest.mark.parametrize("url", ["/api/runs/{}", "/api/runs/{}/state?t=0", "/runs/{}/moment?t=0",
                                 "/api/runs/{}/events", "/runs/{}/timeline"])
def test_a_run_pruned_between_lookup_and_read_is_a_404_never_a_read_of_a_deleted_folder(racing_app, url):
    app, manager, old = racing_app
    response = app.test_client().get(url.format(old), headers={"Host": "127.0.0.1:8765"})
    assert response.status_code == 404, response.get_data()[:200]
    assert not (manager.runs_dir / old).exists()


def test_a_download_keeps_its_run_until_the_response_is_closed(tmp_path):
    from app import create_app

    old, _ = ended_runs(tmp_path, 2)
    app = create_app({"DATA_DIR": str(tmp_path), "LESSONS_DIR": str(FAULT_LESSONS), "PORT": 8765,
                      "KEEP_RUNS": 0})
    manager = app.extensions["threadlab.runs"]
    manager.keep_runs = 1
    response = app.test_client().get(f"/api/runs/{old}/events?download=1",
                                     headers={"Host": "127.0.0.1:8765"}, buffered=False)
    assert response.status_code == 200
    manager.prune()
    assert (manager.runs_dir / old).exists(), "not pruned under an open download"
    response.close()
    assert not (manager.runs_dir / old).exists() and manager.get(old) is None, "pruned once closed"


# -- live: the stress test ------------------------------------------------------------------------

def test_500_racing_commands_against_8_ending_runs(fault_server):
    """8 runs end on their own while 500 stop/signal/dump requests race them from 32 threads."""
    import urllib.error
    import urllib.request

    codes: list[int] = []
    lock = threading.Lock()

    def fire(slice_):
        for run_id, kind, data in slice_:
            req = urllib.request.Request(f"{fault_server.url}/runs/{run_id}/{kind}", method="POST",
                                         data=json.dumps(data).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as response:
                    code = response.status
            except urllib.error.HTTPError as err:
                code = err.code
            with lock:
                codes.append(code)

    def storm(jobs):
        threads = [threading.Thread(target=fire, args=(jobs[i::32],)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    def round_of_8():
        """8 runs, 500 commands racing their ends; then check every run's record and log."""
        codes.clear()
        ids = [fault_server.start("01", duration=round(0.2 + 0.1 * i, 1)) for i in range(8)]
        kinds = [("stop", {}), ("signal", {"signal": "SIGUSR1"}), ("dump", {}),
                 ("signal", {"signal": "SIGINT"})]
        storm([(ids[i % 8], *kinds[i % 4]) for i in range(500)])
        assert len(codes) == 500
        assert all(code < 500 for code in codes), sorted(set(codes))
        assert set(codes) <= {202, 409}
        for run_id in ids:
            run = fault_server.wait_status(run_id, FINAL, timeout=15)
            folder = fault_server.log_path.parent / "runs" / run_id
            assert json.loads((folder / "run.json").read_text())["status"] == run["status"]
            seen = [e["status"] for e in fault_server.events(run_id) if e["kind"] == "status"]
            assert seen[:2] == ["starting", "running"] and seen[-1] == run["status"]
            assert [s for s in seen if s in FINAL] == [run["status"]], "exactly one final status"
            assert set(seen[2:-1]) <= {"stopping"}

    def run_fds(proc) -> int:
        """Pipes and pidfds: what a run holds in the server (gunicorn's sockets come and go)."""
        count = 0
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):  # it may close between listing and look
                count += os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(("pipe:", "anon_inode:[pidfd]"))
        return count

    proc = worker(fault_server)
    idle = run_fds(proc)
    for _ in range(2):
        round_of_8()
        deadline = time.monotonic() + 5
        while run_fds(proc) > idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run_fds(proc) == idle, "every run's pipes and pidfd closed"


def test_runs_and_commands_leave_no_thread_or_descriptor_behind(manager, lessons):
    """In-process, where every thread is ours to count: 8 runs under 480 racing commands."""
    threads_before, fds_before = threading.active_count(), len(os.listdir("/proc/self/fd"))
    runs = [start(manager, lessons, "01", duration=round(0.2 + 0.05 * i, 2)) for i in range(8)]
    asks = (lambda run: manager.stop(run), lambda run: manager.dump(run),
            lambda run: manager.send_signal(run, "SIGUSR1"))

    def pester(run):
        for i in range(60):
            assert asks[i % 3](run).code in (202, 409)

    pesterers = [threading.Thread(target=pester, args=(run,)) for run in runs]
    for t in pesterers:
        t.start()
    for t in pesterers:
        t.join(30)
    for run in runs:
        assert run.wait_final(10)
        join_supervisor(run)
    assert threading.active_count() == threads_before
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_a_lesson_without_the_kit_dies_with_the_server(tmp_path):
    from tests.live_helpers import start_fault_server

    live = start_fault_server(tmp_path)
    try:
        run_id = live.start("11")
        text = live.wait_for_event(run_id, lambda e: e.get("text", "").startswith("deaf and ready"))
        pid = int(text["text"].split()[-1])
        assert psutil.pid_exists(pid)
        worker(live).kill()  # SIGKILL: no shutdown code of ours runs
        assert not wait_gone([pid], 5), "the parent-death signal ended it"
    finally:
        live.stop()


def test_signals_after_the_leader_is_reaped_get_409(fault_server):
    run_id = fault_server.start("01", duration=0.1)
    fault_server.wait_status(run_id)
    for kind, data in (("signal", {"signal": "SIGINT"}), ("stop", {}), ("dump", {})):
        status, body = fault_server.post_json(f"/runs/{run_id}/{kind}", data)
        assert status == 409 and "already" in body["error"]


@pytest.mark.parametrize("after", ["-3", "-100000", "x", "1e3", "99999999999999999999999"])
def test_bad_after_is_a_400_for_events_and_sockets(fault_server, after):
    from tests.live_helpers import raw_upgrade

    run_id = fault_server.start("08")
    fault_server.wait_status(run_id)
    status, _, _ = fault_server.request("GET", f"/api/runs/{run_id}/events?after={after}")
    assert status == 400
    code, _ = raw_upgrade(fault_server.port, f"/api/runs/{run_id}/ws?after={after}",
                          {"Host": f"127.0.0.1:{fault_server.port}"})
    assert code == 400


@pytest.mark.parametrize("err, code", [(errno.ENOSPC, 507), (errno.EROFS, 503)])
def test_a_full_or_read_only_data_dir_is_a_clear_error_on_post_runs(tmp_path, monkeypatch, err, code):
    from app import create_app

    app = create_app({"DATA_DIR": str(tmp_path), "LESSONS_DIR": str(FAULT_LESSONS)})

    def cannot_write(self, folder):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(RunRecord, "save", cannot_write)
    client = app.test_client()
    response = client.post("/runs", json={"lesson": "08", "params": {}}, base_url="http://127.0.0.1:8765")
    assert response.status_code == code
    assert "cannot store a new run" in response.get_json()["error"]
    assert client.get("/api/runs", base_url="http://127.0.0.1:8765").get_json() == []
    assert app.extensions["threadlab.runs"].live_count() == 0
