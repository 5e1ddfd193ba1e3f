"""Runs: one lesson process each, from spawn to its final status.

Per run, three threads of the server take part:

- the **spawner** (one for the whole server, ``threadlab-spawner``) starts every lesson process.
  One long-lived thread, because Linux delivers a child's parent-death signal when the thread that
  forked it exits, and a request thread may come and go;
- the run's **reader** (``threadlab-read-<id>``) reads stdout and stderr as they come (never blocking
  the lesson on a full pipe), numbers each line's event and appends it to the run's
  :class:`~app.eventlog.EventLog`;
- the run's **waiter** (``threadlab-wait-<id>``) waits for the process to exit, kills whatever is left
  of its process group, lets the reader finish, and sets the final status.

Statuses follow DESIGN.md: starting, running, stopping, then exited / failed / stopped / killed /
timeout, or interrupted for a run that was live when the server died.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import output
from .eventlog import EventLog
from .registry import Lesson

LIVE = ("starting", "running", "stopping")
FINAL = ("exited", "failed", "stopped", "killed", "timeout", "interrupted")
INTERRUPT_GRACE = 3.0  # seconds after SIGINT before SIGTERM (DESIGN.md "Stop is graceful first")
TERMINATE_GRACE = 2.0  # seconds after SIGTERM before SIGKILL
DRAIN_TIMEOUT = 2.0  # seconds without a byte read before we stop waiting for the pipes to end
READ_SIZE = 256 * 1024  # bytes per pipe read: large enough that a flood costs few system calls
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RunLimitError(RuntimeError):
    """Too many runs at once; the API answers 429."""


def new_run_id() -> str:
    """Unique across restarts, and sortable by start time (a millisecond clock, then randomness)."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:12]}"


@dataclass
class Run:
    id: str
    lesson: str
    params: dict[str, Any]
    argv: list[str]
    folder: Path
    signals: list[str] = field(default_factory=list)
    status: str = "starting"
    exit_code: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    pid: int | None = None
    title: str = ""

    def __post_init__(self) -> None:
        self.log = EventLog(self.folder / "events.jsonl", live=self.status in LIVE)
        self.done = threading.Event()  # set once the final status is written; stop() waits on it
        self.sent_signals: set[int] = set()  # signals the dashboard sent, to tell stopped from killed
        self.stop_requested = False
        self.timed_out = False
        self.needed_kill = False
        self.proc: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.bytes_read = 0  # from the lesson's pipes; only the reader writes it (the waiter watches)
        self._watch_write: int | None = None
        self._limit_timer: threading.Timer | None = None  # the time limit; cancelled when the run ends
        self._seq = 0  # next event number
        # _append_lock guards _seq and the order of lines in events.jsonl: the reader, the waiter and
        # request threads (signal, stop) all append; each holds it for one batch.
        self._append_lock = threading.Lock()

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("id", "lesson", "title", "params", "status", "exit_code", "started", "ended", "pid",
                 "signals")}

    def save(self) -> None:
        """Write ``run.json`` atomically: a reader sees the old file or the new one, never half."""
        tmp = self.folder / "run.json.tmp"
        tmp.write_text(json.dumps({**self.to_json(), "argv": self.argv}, indent=1))
        os.replace(tmp, self.folder / "run.json")

    def append(self, events: list[tuple[dict[str, Any], bytes | None]]) -> None:
        with self._append_lock:
            items = [output.numbered(event, raw, self._seq + i) for i, (event, raw) in enumerate(events)]
            self._seq += len(items)
            self.log.append(items)

    @classmethod
    def load(cls, folder: Path) -> Run:
        """A run from its folder, as a server starting up finds it: no process is behind it any more.

        One that run.json still calls live was live when the server died (its process died with the
        server: the kit's watchdog), so it becomes ``interrupted`` *before* its log is opened: a
        live status would open the log for appending, with no index of the events already in it
        (the run would show none, and its websockets would wait for the end forever).
        """
        data = json.loads((folder / "run.json").read_text())
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        interrupted = fields.get("status") not in FINAL
        if interrupted:
            fields["status"], fields["ended"] = "interrupted", fields.get("ended") or time.time()
        run = cls(folder=folder, **fields)  # its log stays unread until someone asks for it
        run.done.set()
        if interrupted:
            run.save()
        return run


class RunManager:
    """Starts, follows and stops runs; keeps every run of the data dir listed."""

    def __init__(self, data_dir: Path, *, time_limit: float = 300, max_live: int = 8,
                 sample_interval: float = 0.1, keep_runs: int = 200) -> None:
        self.runs_dir = Path(data_dir) / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.time_limit = time_limit
        self.max_live = max_live
        self.sample_interval = sample_interval
        self.keep_runs = keep_runs  # ended runs kept on disk, those that ended last; 0 keeps all
        self._lock = threading.Lock()  # guards self._runs (new runs, lookups from request threads)
        self._runs: dict[str, Run] = {}
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="threadlab-spawner")
        self.closing = threading.Event()  # set at shutdown; websocket loops end when they see it
        self._load_existing()

    def reload(self) -> None:
        """Forget what is in memory and read the data dir again (see app/serve.py: a new worker)."""
        with self._lock:
            self._runs.clear()
        self._load_existing()

    def _load_existing(self) -> None:
        for meta in sorted(self.runs_dir.glob("*/run.json")):
            try:
                run = Run.load(meta.parent)  # marks a run that was live when we died interrupted
            except (ValueError, TypeError, OSError):
                continue  # not a run we can read; leave the folder for a person to look at
            self._runs[run.id] = run
        self.prune()

    def prune(self) -> None:
        """Delete the runs that ended longest ago beyond ``keep_runs``, folders and all.

        A flood run can leave a hundred megabytes of events behind, and a class runs lessons all
        day: without a bound the data dir only grows. Live runs are never touched, and a run that
        has just ended is the last to go, however long ago it started (someone is looking at it).
        """
        if not self.keep_runs:
            return
        with self._lock:
            ended = sorted((r for r in self._runs.values() if not r.live), key=lambda r: r.ended or r.started)
            old = ended[:max(0, len(ended) - self.keep_runs)]
            for run in old:
                del self._runs[run.id]
        for run in old:
            shutil.rmtree(run.folder, ignore_errors=True)  # a viewer reading it keeps its open file

    # -- queries -------------------------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def all(self) -> list[Run]:
        with self._lock:
            runs = list(self._runs.values())
        return sorted(runs, key=lambda r: r.started, reverse=True)

    def live_count(self) -> int:
        return sum(1 for run in self.all() if run.live)

    # -- starting ------------------------------------------------------------------------------

    def command(self, lesson: Lesson, argv: list[str]) -> list[str]:
        """The worker's argv: no shell, the server's own interpreter (a PATH shim costs ~95 ms)."""
        if lesson.path.parent.resolve() == (PROJECT_ROOT / "lessons").resolve():
            target = ["-m", f"lessons.{lesson.id}"]
        else:
            target = [str(lesson.path)]  # a lessons folder of its own (a teacher's, or the tests')
        return [sys.executable, *target, "--log-format", "json", *argv]

    def start(self, lesson: Lesson, params: dict[str, Any], argv: list[str]) -> Run:
        if self.closing.is_set():
            raise RunLimitError("the server is shutting down")
        with self._lock:
            if sum(1 for r in self._runs.values() if r.live) >= self.max_live:
                raise RunLimitError(f"at most {self.max_live} runs at once; stop one first")
            run_id = new_run_id()
            folder = self.runs_dir / run_id
            folder.mkdir()
            run = Run(id=run_id, lesson=lesson.id, title=lesson.title, params=params,
                      argv=self.command(lesson, argv), folder=folder, signals=list(lesson.signals))
            self._runs[run_id] = run
        run.save()
        run.append([(output.server_event("status", status="starting"), None)])
        try:
            self._spawner.submit(self._spawn, run).result()
        except OSError as exc:
            run.append([(output.text_event("stderr", f"could not start the lesson: {exc}"), None)])
            self._finish(run, "failed", None)
            return run
        run.reader = threading.Thread(target=self._read, args=(run,), name=f"threadlab-read-{run.id}",
                                      daemon=True)
        run.reader.start()
        threading.Thread(target=self._wait, args=(run,), name=f"threadlab-wait-{run.id}", daemon=True).start()
        return run

    def _spawn(self, run: Run) -> None:
        watch_read, watch_write = os.pipe()  # the lesson's kit watches watch_read for our death
        env = {
            **os.environ,
            "THREADLAB_PARENT_FD": str(watch_read),
            "THREADLAB_PARENT_PID": str(os.getpid()),
            "THREADLAB_SAMPLE_INTERVAL": str(self.sample_interval),
            "PYTHONIOENCODING": "utf-8",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        try:
            run.proc = subprocess.Popen(
                run.argv, cwd=PROJECT_ROOT, env=env, pass_fds=(watch_read,),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: signals and kills reach it all
            )
        except OSError:
            os.close(watch_write)
            raise
        finally:
            os.close(watch_read)
        run._watch_write = watch_write  # kept open for the run's life; closed by _finish
        run.pid = run.proc.pid
        run.status = "running"
        run.save()
        run.append([(output.server_event("status", status="running", pid=run.pid), None)])
        if self.time_limit:
            timer = threading.Timer(self.time_limit, self._expire, args=(run,))
            timer.name, timer.daemon = f"threadlab-limit-{run.id}", True
            run._limit_timer = timer
            timer.start()

    def _read(self, run: Run) -> None:
        proc = run.proc
        splitters = {"stdout": output.LineSplitter(), "stderr": output.LineSplitter()}
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                for key, _ in selector.select():
                    data = os.read(key.fd, READ_SIZE)
                    run.bytes_read += len(data)
                    if data:
                        lines = splitters[key.data].feed(data)
                    else:
                        selector.unregister(key.fileobj)
                        lines = splitters[key.data].flush()
                    if lines:
                        run.append([output.to_event(line, key.data) for line in lines])

    def _wait(self, run: Run) -> None:
        proc = run.proc
        # Wait without reaping, so the group id cannot be reused while we kill what is left of it.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        self._kill_group(run, signal.SIGKILL)  # children the lesson left behind holding our pipes
        code = proc.wait()
        # The group is gone, so the pipes end once drained; a flood can take a while to read (50 MB
        # under load), and finishing before the reader would close the log under its last events.
        # Only a reader making no progress (a process that left our group holds the pipe) is left.
        while run.reader.is_alive():
            seen = run.bytes_read
            run.reader.join(DRAIN_TIMEOUT)
            if run.bytes_read == seen:
                break
        self._finish(run, self._final_status(run, code), code)

    @staticmethod
    def _final_status(run: Run, code: int) -> str:
        if run.timed_out:
            return "timeout"
        if run.needed_kill:
            return "killed"
        if run.stop_requested:
            return "stopped"
        if code < 0:
            return "stopped" if -code in run.sent_signals else "killed"
        return "exited" if code == 0 else "failed"

    def _finish(self, run: Run, status: str, code: int | None) -> None:
        run.status, run.exit_code, run.ended = status, code, time.time()
        run.append([(output.server_event("status", status=status, exit_code=code), None)])
        run.save()
        run.log.close()
        if run._limit_timer is not None:
            # Each timer is a thread sleeping out the whole limit (300 s by default): without this,
            # every short run would leave one behind for minutes.
            run._limit_timer.cancel()
        if run._watch_write is not None:
            os.close(run._watch_write)
            run._watch_write = None
        for stream in (run.proc.stdin, run.proc.stdout, run.proc.stderr) if run.proc else ():
            with contextlib.suppress(OSError):
                stream.close()
        run.done.set()
        self.prune()

    # -- controlling ---------------------------------------------------------------------------

    def _kill_group(self, run: Run, sig: int) -> bool:
        try:
            os.killpg(run.pid, sig)  # the group id is the leader's pid (start_new_session)
            return True
        except (ProcessLookupError, PermissionError, TypeError):
            return False

    def send_signal(self, run: Run, name: str) -> None:
        """Send a declared signal to the run's process group (the caller checked the name)."""
        sig = signal.Signals[name]
        run.sent_signals.add(int(sig))
        run.append([(output.server_event("signal", signal=name, by="dashboard"), None)])
        self._kill_group(run, sig)

    def stop(self, run: Run, *, reason: str = "stop") -> None:
        """SIGINT, then SIGTERM after 3 s, then SIGKILL after 2 s more, to the run's whole group."""
        if not run.live or run.stop_requested:
            return
        run.stop_requested = True
        run.status = "stopping"
        run.save()
        run.append([(output.server_event("status", status="stopping", reason=reason), None)])
        threading.Thread(target=self._escalate, args=(run,), name=f"threadlab-stop-{run.id}",
                         daemon=True).start()

    def _escalate(self, run: Run) -> None:
        for sig, grace in ((signal.SIGINT, INTERRUPT_GRACE), (signal.SIGTERM, TERMINATE_GRACE)):
            run.sent_signals.add(int(sig))
            self._kill_group(run, sig)
            if run.done.wait(grace):
                return
        run.needed_kill = True
        self._kill_group(run, signal.SIGKILL)

    def _expire(self, run: Run) -> None:
        if run.live:
            run.timed_out = True
            self.stop(run, reason="time limit")

    def dump(self, run: Run) -> None:
        """Ask the lesson's kit for every thread's stack (a ``stacks`` event)."""
        try:
            run.proc.stdin.write(b'{"cmd": "dump"}\n')
            run.proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def shutdown(self, timeout: float = 4.0) -> None:
        """Stop every live run, SIGKILL whatever is left after ``timeout``: no process outlives us."""
        self.closing.set()
        live = [run for run in self.all() if run.live]
        for run in live:
            self.stop(run, reason="server stopping")
        deadline = time.monotonic() + timeout
        for run in live:
            if not run.done.wait(max(0.0, deadline - time.monotonic())):
                run.needed_kill = True
                self._kill_group(run, signal.SIGKILL)
        for run in live:
            run.done.wait(1.0)
        self._spawner.shutdown(wait=False)
