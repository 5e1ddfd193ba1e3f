"""A run's supervisor: the one thread that owns a run, from spawning its process to its final status.

Everything about a run that changes is changed here and nowhere else, so none of it needs a lock
between server threads (see app/run.py for what request threads may do). The supervisor is an
event loop over a few file descriptors and a few deadlines:

- the lesson's stdout and stderr: read as they come (a lesson never blocks on a full pipe), split
  into lines (app/pipes.py), numbered and appended to the event log, which viewers follow;
- a wake-up pipe: request threads post commands (stop, signal, dump) and write a byte to it;
- the process itself (a Linux pidfd, readable once the leader has exited): then whatever is left of
  its process group is killed *before* the leader is reaped, while its pid still names the group;
- deadlines: the time limit (in step mode it counts only running time: app/deadlines.py, fed the
  kit's ``step`` and ``paused`` events as they are read), and Stop's SIGINT → SIGTERM → SIGKILL
  escalation (app/stopping.py: the signals, and the final status they decide).

Every write to the run's event log and record goes through its writer (app/run_writer.py).

The thread that spawns a process must outlive it: Linux sends a child its parent-death signal when
the *thread* that forked it exits. The supervisor forks the lesson and ends only after reaping it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from . import models, output
from .checking import Practice
from .deadlines import STEP_KINDS, TimeLimit
from .pipes import DRAIN_AFTER_EXIT, Events, OutputPipes
from .run import Command, Run
from .run_writer import RunWriter
from .stopping import ESCALATION, STOP_GRACES, Stopping
from .worker import Worker

_log = logging.getLogger("threadlab.supervisor")


class Supervisor:
    def __init__(self, run: Run, argv: list[str], env: dict[str, str], cwd: str, *,
                 time_limit: float, release: Callable[[str], None],
                 on_end: Callable[[Run], None], practice: Practice | None = None) -> None:
        self.run = run
        self.argv, self.env, self.cwd = argv, env, cwd
        self.time_limit = time_limit
        # The manager's: ``release`` frees the run's slot just before its final status (so a client
        # that sees the status can start another run at once), ``on_end`` is our last act (pruning).
        self.release, self.on_end = release, on_end
        self.practice = practice  # an exercise to check and a prediction to reveal at the end
        self.worker: Worker | None = None  # the lesson's process, once it has started
        self.stopping = Stopping()  # Stop's escalation, and the flags behind the final status
        self.writer = RunWriter(run)  # every write to the run's log and record goes through it
        self.deadlines: dict[str, float] = {}  # name → time.monotonic() when it is due
        # The run time limit while it applies (None: no limit, or stopping, or exited). Invariant:
        # while it applies, deadlines["limit"] is limit.due(), absent when that is None (a step-mode
        # run waiting for the learner); only this thread touches either.
        self.limit: TimeLimit | None = None
        self.pipes: OutputPipes | None = None  # the lesson's stdout and stderr, once it runs
        self.thread = threading.Thread(target=self._main, name=f"threadlab-run-{run.id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # -- the thread ----------------------------------------------------------------------------

    def _main(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        self.run.open_inbox(wake_write)
        try:
            self.writer.append(output.server_event("status", status="starting"))
            if self._spawn():
                self._loop(wake_read)
        except BaseException:  # whatever went wrong, the run must still end (finally, below)
            _log.exception("supervisor of run %s failed", self.run.id)
            self.writer.append(output.text_event("stderr", "threadlab: the run's supervisor failed; "
                                                           "the lesson was killed"))
        finally:
            self._end()
            for fd in (wake_read, wake_write):
                os.close(fd)

    def _spawn(self) -> bool:
        try:
            self.worker = Worker(self.argv, self.env, self.cwd)
        except OSError as exc:
            self.writer.append(output.text_event("stderr", f"could not start the lesson: {exc}"))
            return False
        self.run.transition("running", pid=self.worker.pid)
        self.writer.save()
        self.writer.append(output.server_event("status", status="running", pid=self.worker.pid))
        if self.time_limit:
            self.limit = TimeLimit(self.time_limit, time.monotonic())
            self._limit_moved()
        return True

    def _loop(self, wake_read: int) -> None:
        worker = self.worker
        with selectors.DefaultSelector() as selector:
            self.pipes = OutputPipes(worker.outputs, selector)
            selector.register(wake_read, selectors.EVENT_READ, "wake")
            selector.register(worker.exit_fd, selectors.EVENT_READ, "exit")
            while self.pipes.open or not worker.reaped:
                timeout = min(self.deadlines.values(), default=None)
                if timeout is not None:
                    timeout = max(0.0, timeout - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.data == "wake":
                        os.read(wake_read, 4096)
                        for command in self.run.take_commands():
                            self._carry_out(command)
                    elif key.data == "exit":
                        selector.unregister(worker.exit_fd)
                        self._leader_exited()
                    else:
                        self._read(key.fd)
                self._run_due_deadlines()

    def _read(self, fd: int) -> None:
        name, events = self.pipes.read(fd)
        if events:
            self.writer.append_many(events)
            if self.run.step and self.limit is not None and name == "stdout":
                self._count_running_time(events)

    def _count_running_time(self, events: Events) -> None:
        """Step mode: the kit's steps start the running time, its pauses stop it (app/deadlines.py)."""
        now = time.monotonic()
        moved = False
        for event, _ in events:
            if event.get("kind") in STEP_KINDS:
                moved = self.limit.seen(event, now) or moved
        if moved:
            self._limit_moved()

    def _limit_moved(self) -> None:
        due = self.limit.due()
        if due is None:
            self.deadlines.pop("limit", None)
        else:
            self.deadlines["limit"] = due

    def _leader_exited(self) -> None:
        self.worker.reap()  # what the lesson left in its group is killed first
        self.limit = None
        self.deadlines = {"cut-off": time.monotonic() + DRAIN_AFTER_EXIT}

    def _run_due_deadlines(self) -> None:
        now = time.monotonic()
        for name, when in sorted(self.deadlines.items(), key=lambda item: item[1]):
            if when > now or name not in self.deadlines:
                continue
            del self.deadlines[name]
            if name == "limit":
                self.stopping.timed_out = True
                self._stop("time limit", STOP_GRACES)
            elif name in ESCALATION:
                self.stopping.escalate(self.worker, name)
            elif name == "cut-off":
                self._cut_off_leftover_writers()

    def _cut_off_leftover_writers(self) -> None:
        self.pipes.cut_off()  # the loop ends; _end closes the pipes under the leftover writer
        self.writer.append(output.text_event(
            "stderr", "threadlab: the lesson has exited, but a process it started outside its "
                      "process group still holds its output; that output is cut off here"))

    # -- commands ------------------------------------------------------------------------------

    def _carry_out(self, command: Command) -> None:
        if self.worker.reaped:  # decided by this thread, which alone reaps: no race with the exit
            command.answer(409, f"run already {self.stopping.final_status(self.worker)}: "
                                "its process has exited")
        elif command.kind == "stop":
            self._stop(command.args.get("reason", "stop"), command.args.get("graces", STOP_GRACES))
            command.answer(202)
        elif command.kind == "kill":
            self.stopping.kill(self.worker)
            command.answer(202)
        elif command.kind == "signal":
            sig = signal.Signals[command.args["name"]]
            self.writer.append(output.server_event("signal", signal=sig.name, by="dashboard"))
            self.stopping.signal(self.worker, sig)
            command.answer(202)
        elif command.kind == "dump":
            command.answer(*self.worker.send_command())
        elif command.kind == "step":  # step mode: a step (or free) for the kit's stepper
            command.answer(*self.worker.send_command(command.args["line"]))
        else:
            command.answer(400, f"unknown command {command.kind!r}")

    def _stop(self, reason: str, graces: tuple[float, float]) -> None:
        """SIGINT now, SIGTERM after ``graces[0]``, SIGKILL ``graces[1]`` later; once per run."""
        if not self.stopping.begin(reason):
            return
        self.run.transition("stopping")
        self.writer.save()
        self.writer.append(output.server_event("status", status="stopping", reason=reason))
        escalation = self.stopping.interrupt(self.worker, graces, time.monotonic())  # SIGINT now
        self.limit = None
        self.deadlines.pop("limit", None)
        self.deadlines.update(escalation)

    # -- the end -------------------------------------------------------------------------------

    def _end(self) -> None:
        """Final status, saved and logged; pipes closed; every waiting request answered. Each step
        is guarded, because the one thing that must happen whatever failed is the run ending."""
        steps: list[Callable[[], Any]] = [self._reap_for_sure, self._finish_record,
                                          self._close_worker]
        for step in steps:
            try:
                step()
            except Exception:
                _log.exception("ending run %s", self.run.id)
        for command in self.run.close_inbox():
            command.answer(409, f"run already {self.run.status}")
        models.run_ended(self.run)  # its view model, built once now that its log is closed
        self.on_end(self.run)

    def _reap_for_sure(self) -> None:
        if self.worker is not None:
            self.worker.reap()

    def _finish_record(self) -> None:
        status = self.stopping.final_status(self.worker)
        code = self.worker.returncode if self.worker is not None else None
        # In this order. The final status event is on disk before the status changes, so whoever
        # sees the final status finds every event in the log. The log is closed last: a viewer
        # that ends when it sees the log closed (the page's socket) then draws the final status,
        # not the one before it.
        verdicts = self._verdicts(status)
        try:
            self.writer.append(output.server_event("status", status=status, exit_code=code))
        finally:
            try:
                final = {"status": status, "exit_code": code, "ended": time.time(), **verdicts}
                self.writer.save(dataclasses.replace(self.run.record, **final))  # on disk first, too
                self.release(self.run.id)
                self.run.transition(**final)
            finally:
                self.run.log.close()

    def _verdicts(self, status: str) -> dict[str, Any]:
        """The exercise's check and the prediction's reveal, logged; the record fields they set.
        A check that fails to run costs the learner a verdict, never the run its ending."""
        if self.practice is None:
            return {}
        try:
            events, fields = self.practice.verdicts(self.run.log, self.run.record.params, status,
                                                    self.run.id)
        except Exception:
            _log.exception("checking run %s", self.run.id)
            return {}
        self.writer.append_many([(output.server_event(kind, **event), None) for kind, event in events])
        return fields

    def _close_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
