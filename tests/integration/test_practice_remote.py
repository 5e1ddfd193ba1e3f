"""A classroom server (``threadlab serve --host 0.0.0.0``, real gunicorn): editing a lesson runs the
learner's code on the teacher's machine, so it is refused unless the teacher passed
``--allow-edits``, and the page says which it is. Started the way a teacher starts it, so the flag
itself is under test, not only the setting it turns on."""

from __future__ import annotations

import http.cookiejar
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, free_port

LESSONS = ROOT / "tests" / "fixtures" / "exercise_lessons"
FINAL = ("exited", "failed", "stopped", "killed", "timeout")


class ClassroomServer:
    """``threadlab serve --host 0.0.0.0`` on a free port, with the access token it wrote."""

    def __init__(self, data_dir, *extra: str) -> None:
        self.port = free_port()
        # One browser: the copy is kept per browser (its session cookie), as a script with a jar.
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - kept for the server's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", str(self.port),
             "--data-dir", str(data_dir), "--lessons-dir", str(LESSONS), *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        token_path = data_dir / "access_token"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a stranger gets 401: the server is up, with its token
            if token_path.exists() and self.request("GET", "/api/runs", token=False)[0] == 401:
                self.token = token_path.read_text().strip()
                return
            assert self.proc.poll() is None, (data_dir / "server.log").read_text()
            time.sleep(0.1)
        raise AssertionError("the server did not start: " + (data_dir / "server.log").read_text())

    def request(self, method: str, path: str, data=None, token: bool = True) -> tuple[int, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", body, headers, method=method)
        try:
            with self.opener.open(req, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""  # not listening yet

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.mark.parametrize("allow", [False, True], ids=["without-allow-edits", "with-allow-edits"])
def test_a_classroom_server_edits_only_with_allow_edits(tmp_path, allow):
    server = ClassroomServer(tmp_path, *(["--allow-edits"] if allow else []))
    try:
        original = (LESSONS / "01_counter.py").read_text()
        edited = original.replace("FACTOR = 1 ", "FACTOR = 2 ")
        put = server.request("PUT", "/api/lessons/01/scratch", {"source": edited})
        page = server.request("GET", "/lessons/01")[1].decode()
        if not allow:
            assert put[0] == 403 and "--allow-edits" in json.loads(put[1])["error"]
            assert server.request("DELETE", "/api/lessons/01/scratch")[0] == 403
            assert server.request("POST", "/runs", {"lesson": "01", "scratch": True})[0] == 403
            assert "Editing is off on this shared server" in page and 'id="editor-pane"' not in page
            assert "editing is off on this shared server" in page, "the code-change card says so too"
            return
        assert put[0] == 200 and json.loads(put[1])["edited"] is True
        assert 'id="editor-pane"' in page and "Editing is off" not in page
        status, body = server.request("POST", "/runs", {"lesson": "01", "params": {"count": 4},
                                                         "exercise": 2, "scratch": True})
        assert status == 201, body
        deadline = time.monotonic() + 30
        while (run := json.loads(server.request("GET", f"/api/runs/{json.loads(body)['id']}")[1])
               )["status"] not in FINAL:
            assert time.monotonic() < deadline, run
            time.sleep(0.1)
        assert run["scratch"] is True and run["check"]["passed"] is True, run
        assert (LESSONS / "01_counter.py").read_text() == original, "the lesson file never changes"
    finally:
        server.stop()
