"""CSRF tokens on form posts, and the access token a server opened beyond loopback requires."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import psutil
import pytest

from app.security import machine_addresses
from tests.conftest import ROOT, LiveServer, free_port
from tests.live_helpers import FAULT_LESSONS, FINAL, Session, raw_request, raw_upgrade, wait_gone


def count_runs(live) -> int:
    return len(live.get_json("/api/runs"))


# -- CSRF ----------------------------------------------------------------------------------------

def test_form_post_with_the_pages_token_starts_a_run(fault_server):
    session = Session(fault_server, "/lessons/08")
    status, headers, _ = session.post_form("/runs", {"lesson": "08", "csrf_token": session.token})
    assert status == 303 and headers["Location"].startswith("/runs/")
    fault_server.wait_status(headers["Location"].rsplit("/", 1)[-1])
    # htmx may send the token as a header instead of a field.
    status, _, _ = session.post_form("/runs", {"lesson": "08"}, {"X-CSRF-Token": session.token})
    assert status == 303


def test_form_post_without_a_valid_token_gets_403_and_starts_nothing(fault_server):
    session, other = Session(fault_server, "/lessons/08"), Session(fault_server, "/lessons/08")
    assert session.token != other.token
    before = count_runs(fault_server)
    attempts = [
        session.post_form("/runs", {"lesson": "08"}),  # no token
        session.post_form("/runs", {"lesson": "08", "csrf_token": ""}),
        session.post_form("/runs", {"lesson": "08", "csrf_token": session.token + "x"}),
        session.post_form("/runs", {"lesson": "08", "csrf_token": other.token}),  # another session's
        session.post_form("/runs", {"lesson": "08", "csrf_token": session.token}, cookie=False),
        session.post_form("/runs", {"lesson": "08"}, {"X-CSRF-Token": "forged"}),
        # Non-ASCII tokens: hmac.compare_digest raises TypeError on a non-ASCII str (it was a 500).
        session.post_form("/runs", {"lesson": "08", "csrf_token": "jeton-ä€"}),
        session.post_form("/runs", {"lesson": "08"}, {"X-CSRF-Token": "jeton-\xe4"}),
    ]
    for status, _, body in attempts:
        assert status == 403, (status, body[:200])
    assert count_runs(fault_server) == before


def test_cross_site_form_encodings_get_403(fault_server):
    """What a foreign page can send without a preflight: urlencoded, multipart and text/plain
    (the last dressed up as JSON), all with the learner's cookies."""
    session = Session(fault_server, "/lessons/08")
    port = fault_server.port
    before = count_runs(fault_server)
    base = {"Host": f"127.0.0.1:{port}", "Cookie": session.cookie}
    text_plain = raw_request(port, "POST", "/runs", {**base, "Content-Type": "text/plain"},
                             b'{"lesson": "08", "params": {}}')
    boundary = "x7MA4YWxkTrZu0gW"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"lesson\"\r\n\r\n08\r\n"
                 f"--{boundary}--\r\n").encode()
    multi = raw_request(port, "POST", "/runs",
                        {**base, "Content-Type": f"multipart/form-data; boundary={boundary}"}, multipart)
    no_type = raw_request(port, "POST", "/runs", base, b'{"lesson": "08", "params": {}}')
    for status, _, body in (text_plain, multi, no_type):
        assert status == 403, (status, body[:200])
    assert count_runs(fault_server) == before


def test_cross_site_form_post_changes_nothing_even_with_a_stolen_token(fault_server):
    """Origin is checked first: a foreign page gets 403 even if it somehow had the CSRF token."""
    session = Session(fault_server, "/lessons/01")
    run_id = fault_server.start("01", duration=60)
    fault_server.wait_for_event(run_id, lambda e: e["kind"] == "log" and e.get("msg") == "ready")
    before = count_runs(fault_server)
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{fault_server.port + 1}"):
        for path, fields in (("/runs", {"lesson": "08"}), (f"/runs/{run_id}/stop", {}),
                             (f"/runs/{run_id}/signal", {"signal": "SIGINT"})):
            status, _, _ = session.post_form(path, {**fields, "csrf_token": session.token},
                                             {"Origin": origin})
            assert status == 403, (origin, path)
    assert fault_server.get_json(f"/api/runs/{run_id}")["status"] == "running"
    assert count_runs(fault_server) == before
    # The page's own form, from the page's own origin, does stop it.
    status, _, _ = session.post_form(f"/runs/{run_id}/stop", {"csrf_token": session.token},
                                     {"Origin": f"http://127.0.0.1:{fault_server.port}"})
    assert status == 303
    assert fault_server.wait_status(run_id, timeout=5)["status"] == "stopped"
    # Read once the run has ended, the whole log says the refused requests did nothing: the only
    # stopping is the one the page asked for, and no signal event but none at all.
    events = fault_server.events(run_id)
    assert not [e for e in events if e["kind"] == "signal"]
    assert [e.get("reason") for e in events if e.get("status") == "stopping"] == ["stop"]


def test_json_requests_need_no_csrf_token(fault_server):
    port = fault_server.port
    status, _, body = raw_request(port, "POST", "/runs",
                                  {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"},
                                  b'{"lesson": "08", "params": {}}')
    assert status == 201, body
    fault_server.wait_status(json.loads(body)["id"])


# -- remote access: the access token -------------------------------------------------------------

class TokenServer(LiveServer):
    """``threadlab serve --host 0.0.0.0``: beyond loopback, so every request needs the token.

    Bound to every interface only for the few seconds of these tests, and useless without the
    token. LiveServer waits for a 200 from /api/runs, which a token server never gives a stranger,
    so this one waits for its 401 instead.
    """

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept for the server's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", str(self.port),
             "--data-dir", str(data_dir), "--lessons-dir", str(FAULT_LESSONS)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.token_path = data_dir / "access_token"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if raw_request(self.port, "GET", "/api/runs", self.host())[0] == 401:
                    self.token = self.token_path.read_text().strip()
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def host(self, **extra) -> dict[str, str]:
        return {"Host": f"127.0.0.1:{self.port}", **extra}

    def bearer(self, **extra) -> dict[str, str]:
        return self.host(Authorization=f"Bearer {self.token}", **extra)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    live = TokenServer(tmp_path_factory.mktemp("remote"))
    yield live
    live.stop()


def test_the_token_is_random_and_kept_in_a_0600_file_never_in_argv(token_server):
    assert len(token_server.token) >= 32
    assert stat.S_IMODE(os.stat(token_server.token_path).st_mode) == 0o600
    master = psutil.Process(token_server.proc.pid)
    for process in (master, *master.children(recursive=True)):
        assert token_server.token not in " ".join(process.cmdline())
    assert token_server.token not in token_server.output(), "the server prints where, not what"


def test_without_the_token_everything_is_refused(token_server):
    port = token_server.port
    for path in ("/", "/lessons/01", "/api/lessons", "/api/runs", "/static/threadlab.css",
                 "/?token=wrong", "/?token="):
        assert raw_request(port, "GET", path, token_server.host())[0] == 401, path
    wrong = {"Authorization": "Bearer " + "x" * len(token_server.token)}
    assert raw_request(port, "GET", "/api/runs", token_server.host(**wrong))[0] == 401
    assert raw_request(port, "GET", "/api/runs",
                       token_server.host(Authorization=token_server.token))[0] == 401, "Bearer only"
    cookie = f"threadlab_token_{port}"
    assert raw_request(port, "GET", "/api/runs", token_server.host(Cookie=f"{cookie}=wrong"))[0] == 401
    # Non-ASCII anywhere a token goes is a wrong token (401), never a 500.
    for path, headers in (("/api/runs", token_server.host(Authorization="Bearer t\xe4ken")),
                          ("/api/runs", token_server.host(Cookie=f"{cookie}=t\xe4ken")),
                          ("/api/runs?token=t%C3%A4ken", token_server.host()),
                          ("/api/runs?token=%E2%82%AC", token_server.host())):
        assert raw_request(port, "GET", path, headers)[0] == 401, (path, headers)
    # The token cookie of a threadlab on another port (cookies ignore ports) is not ours.
    other = token_server.host(Cookie=f"threadlab_token_{port + 1}={token_server.token}")
    assert raw_request(port, "GET", "/api/runs", other)[0] == 401
    status, _, _ = raw_request(port, "POST", "/runs",
                               token_server.host(**{"Content-Type": "application/json"}),
                               b'{"lesson": "08", "params": {}}')
    assert status == 401
    assert raw_upgrade(port, "/api/runs/nope/ws", token_server.host())[0] == 401
    status, _, body = raw_request(port, "GET", "/api/runs", token_server.bearer())
    assert status == 200 and json.loads(body) == []


def test_scripts_send_the_token_as_a_bearer_header(token_server):
    port = token_server.port
    status, _, body = raw_request(port, "POST", "/runs",
                                  token_server.bearer(**{"Content-Type": "application/json"}),
                                  b'{"lesson": "01", "params": {"duration": 30}}')
    assert status == 201, body
    run_id = json.loads(body)["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run = json.loads(raw_request(port, "GET", f"/api/runs/{run_id}", token_server.bearer())[2])
        if run["status"] == "running":
            break
        time.sleep(0.05)
    # The lesson gets neither the token nor the path to it.
    lesson = psutil.Process(run["pid"])
    assert token_server.token not in " ".join(lesson.cmdline())
    assert token_server.token not in json.dumps(lesson.environ())
    assert raw_upgrade(port, f"/api/runs/{run_id}/ws", token_server.bearer())[0] == 101
    status, _, _ = raw_request(port, "POST", f"/runs/{run_id}/stop",
                               token_server.bearer(**{"Content-Type": "application/json"}), b"{}")
    assert status == 202
    deadline = time.monotonic() + 10
    while json.loads(raw_request(port, "GET", f"/api/runs/{run_id}",
                                 token_server.bearer())[2])["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not wait_gone([run["pid"]], 5)


def test_the_one_time_url_sets_an_httponly_cookie_and_redirects_to_a_clean_url(token_server):
    port = token_server.port
    status, headers, _ = raw_request(port, "GET", f"/lessons/01?token={token_server.token}",
                                     token_server.host())
    assert status in (302, 303) and headers["Location"].endswith("/lessons/01")
    assert "token" not in headers["Location"]
    cookie = headers["Set-Cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes
    pair = cookie.split(";")[0]
    assert pair == f"threadlab_token_{port}={token_server.token}", "one token cookie per port"
    status, _, body = raw_request(port, "GET", "/lessons/01", token_server.host(Cookie=pair))
    assert status == 200 and b"run-form" in body
    assert raw_upgrade(port, "/api/runs/nope/ws", token_server.host(Cookie=pair))[0] == 404


def test_the_token_does_not_lift_host_and_origin_checks(token_server):
    port = token_server.port
    evil_host = {**token_server.bearer(), "Host": f"evil.example:{port}"}
    assert raw_request(port, "GET", "/api/runs", evil_host)[0] == 400
    status, _, _ = raw_request(port, "POST", "/runs",
                               token_server.bearer(**{"Content-Type": "application/json",
                                                      "Origin": "http://evil.example"}),
                               b'{"lesson": "08", "params": {}}')
    assert status == 403
    # The address given to --host is an allowed name, with our port.
    assert raw_request(port, "GET", "/api/runs",
                       {**token_server.bearer(), "Host": f"0.0.0.0:{port}"})[0] == 200
    # Bound to every interface, it answers to each of this machine's addresses and to its name:
    # what students type. A neighbour's address is still refused.
    names = [f"[{a}]" if ":" in a else a for a in machine_addresses()] + [socket.gethostname()]
    for name in names:
        headers = {**token_server.bearer(), "Host": f"{name}:{port}"}
        assert raw_request(port, "GET", "/api/runs", headers)[0] == 200
    elsewhere = {**token_server.bearer(), "Host": f"203.0.113.250:{port}"}
    assert raw_request(port, "GET", "/api/runs", elsewhere)[0] == 400
    # The printed links are ones students can use: never 0.0.0.0, and on an IPv4 bind only IPv4
    # addresses (an IPv6 link to 0.0.0.0 cannot connect).
    lan = [name for name in names[:-1] if name not in ("127.0.0.1", "[::1]")]
    for name in lan:
        printed = f"one-time link: http://{name}:{port}/?token=" in token_server.output()
        assert printed == (":" not in name), name
    assert "http://0.0.0.0:" not in token_server.output().split("one-time link")[-1]
    # Form posts still need their CSRF token, cookie or not.
    status, _, _ = raw_request(port, "POST", "/runs",
                               token_server.bearer(**{"Content-Type": "application/x-www-form-urlencoded"}),
                               urlencode({"lesson": "08"}).encode())
    assert status == 403


def test_a_browser_id_outlives_the_browser_session(tmp_path):
    # Progress and scratch copies hang on the browser's id: a cookie without an expiry died with
    # the browser, and took them along.
    from app import create_app

    app = create_app({"DATA_DIR": str(tmp_path), "PORT": 8765})
    client = app.test_client()
    answer = client.put("/api/lessons/01/scratch", json={"source": "x = 1\n"},
                        headers={"Host": "127.0.0.1:8765"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [cookie] = answer.headers.getlist("Set-Cookie")
    assert "Expires=" in cookie, cookie
