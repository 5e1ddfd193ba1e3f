"""Shared fixtures: a real threadlab server on a free port, and a small client for its API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``threadlab serve`` in a subprocess (gunicorn, real workers), with helpers for its API."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept for the server's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
             "--data-dir", str(data_dir), *extra],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/api/runs", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    # -- HTTP helpers ----------------------------------------------------------------------------

    def request(self, method: str, path: str, data=None, headers=None, raw: bytes | None = None):
        """(status, body bytes, headers) — never raises for HTTP errors."""
        body = raw if raw is not None else (json.dumps(data).encode() if data is not None else None)
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=body, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def get_json(self, path: str):
        status, body, _ = self.request("GET", path)
        assert status == 200, (status, body)
        return json.loads(body)

    def post_json(self, path: str, data: dict) -> tuple[int, dict]:
        status, body, _ = self.request("POST", path, data=data)
        return status, json.loads(body) if body else {}

    def start(self, lesson: str, **params) -> str:
        status, body = self.post_json("/runs", {"lesson": lesson, "params": params})
        assert status == 201, body
        return body["id"]

    def wait_status(self, run_id: str, statuses=("exited", "failed", "stopped", "killed", "timeout"),
                    timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get_json(f"/api/runs/{run_id}")
            if run["status"] in statuses:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s")

    def events(self, run_id: str, after: int = -1) -> list[dict]:
        status, body, _ = self.request("GET", f"/api/runs/{run_id}/events?after={after}")
        assert status == 200
        return [json.loads(line) for line in body.splitlines()]

    def wait_for_event(self, run_id: str, predicate, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events(run_id):
                if predicate(event):
                    return event
            time.sleep(0.1)
        raise AssertionError("event not seen in time")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One live server for the whole session (the project's lessons, a temp data dir)."""
    live = LiveServer(tmp_path_factory.mktemp("server"))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory):
    """A live server on the fault lessons (tests/fixtures/fault_lessons), one per test module."""
    from tests.live_helpers import start_fault_server  # here: live_helpers imports this module

    live = start_fault_server(tmp_path_factory.mktemp("faults"))
    yield live
    live.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test that used a live server fails, show the server's output with the failure."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("server", "fault_server"):
            live = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(live, LiveServer):
                report.sections.append((f"{name} output", live.output()[-5000:]))


os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
