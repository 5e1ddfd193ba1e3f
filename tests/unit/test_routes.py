"""Every route, in process (``create_app`` and Flask's test client): Host, Origin and CSRF checks,
JSON validation, 404 for unknown runs, and never a 500 for bad input.

The routes are read from ``app.url_map``, so a route added later is covered without editing this
file; a route with a URL argument this file cannot fill fails ``test_every_rule_can_be_called``
rather than being skipped.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from flask import Flask, got_request_exception
from werkzeug.routing import Rule

from app import create_app
from tests.conftest import ROOT

FAULT_LESSONS = ROOT / "tests" / "fixtures" / "fault_lessons"
PORT = 8765
HOST = f"127.0.0.1:{PORT}"
GOOD = {"Host": HOST}
UNKNOWN_RUN = "0000000000000000nope"
# What each URL argument is filled with: a lesson that exists, a run that does not, a real file.
ARGUMENTS = {"key": "01", "run_id": UNKNOWN_RUN, "experiment_id": UNKNOWN_RUN, "name": "lost_updates",
             "filename": "threadlab.css"}
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
BAD_HOSTS = ["evil.example:8765", f"127.0.0.1:{PORT + 1}", "127.0.0.1", "localhost.evil.example:8765",
             "[::2]:8765", "0.0.0.0:8765", "\xe4:8765", ""]
FOREIGN_ORIGINS = ["http://evil.example", "null", f"http://127.0.0.1:{PORT + 1}", f"https://{HOST}",
                   f"http://{HOST}.evil.example", "http://\xe4"]
NON_ASCII = ["\xe4", "jeton-\u20ac", "\xff" * 40]
FINAL = ("exited", "failed", "stopped", "killed", "timeout", "interrupted")


def latin1(text: str) -> str:
    """``text`` as a WSGI server hands over its UTF-8 bytes in a header."""
    return text.encode("utf-8").decode("latin-1")


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("routes")), "LESSONS_DIR": str(FAULT_LESSONS),
                      "PORT": PORT})
    errors: list[BaseException] = []

    def record(sender, exception, **extra):  # the exception behind a 500, for the failure message
        errors.append(exception)

    got_request_exception.connect(record, app, weak=False)
    app.extensions["test.errors"] = errors
    yield app
    app.extensions["threadlab.runs"].shutdown(timeout=5)


@pytest.fixture
def client(app):
    app.extensions["test.errors"].clear()
    return app.test_client()


def rules(app: Flask) -> list[Rule]:
    return sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)


def methods(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"OPTIONS"})


def changes_state(rule: Rule) -> list[str]:
    """Methods the Origin and CSRF rules apply to: every POST (and PUT, ...) and the upgrade."""
    return ["GET"] if rule.websocket else [m for m in methods(rule) if m not in ("GET", "HEAD")]


def path(app: Flask, rule: Rule, **values) -> str:
    return app.url_map.bind(HOST).build(rule.endpoint, {**ARGUMENTS, **values}, append_unknown=False)


def call(client, rule: Rule, method: str, url: str, headers: dict[str, str] | None = None, **kwargs):
    headers = {**GOOD, **(headers or {})}
    if rule.websocket:
        headers = {**UPGRADE, **headers}
    return client.open(url, method=method, headers=headers, buffered=True, **kwargs)


def describe(response) -> str:
    return f"{response.status_code} {response.get_data()[:200]!r}"


class Outcomes:
    """Every (request, status) of a sweep, so one failing test lists every route that went wrong."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.wrong: list[str] = []

    def expect(self, what: str, response, allowed) -> None:
        allowed = (allowed,) if isinstance(allowed, int) else tuple(allowed)
        errors = self.app.extensions["test.errors"]
        if response.status_code not in allowed or response.status_code >= 500 or errors:
            self.wrong.append(f"{what}: {describe(response)} (wanted {allowed}) {errors[-1:]!r}")
            errors.clear()

    def check(self) -> None:
        assert not self.wrong, "\n".join(self.wrong)


def status(client, run_id: str) -> str:
    return client.get(f"/api/runs/{run_id}", headers=GOOD).get_json()["status"]


def wait_final(client, run_id: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while (now := status(client, run_id)) not in FINAL:
        assert time.monotonic() < deadline, f"run {run_id} still {now}"
        time.sleep(0.05)
    return now


def session_token(client) -> str:
    page = client.get("/lessons/01", headers=GOOD)
    assert page.status_code == 200, describe(page)
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page.get_data())
    assert match, "the lesson page has a form with a CSRF token"
    return match.group(1).decode()


# -- the route table -----------------------------------------------------------------------------

def test_every_rule_can_be_called(app):
    """A route with a URL argument not in ARGUMENTS would be skipped silently by every sweep."""
    for rule in rules(app):
        assert set(rule.arguments) <= set(ARGUMENTS), f"{rule.rule}: add its arguments to ARGUMENTS"
    assert {"/runs", "/runs/<run_id>/stop", "/api/runs/<run_id>/ws"} <= {r.rule for r in rules(app)}


def test_every_route_answers_a_good_request_without_a_500(app, client):
    out = Outcomes(app)
    for rule in rules(app):
        for method in methods(rule):
            json = {} if method not in ("GET", "HEAD") else None
            response = call(client, rule, method, path(app, rule), json=json)
            # Unknown run → 404; POST /runs with {} → 400 (no lesson); everything else answers.
            out.expect(f"{method} {rule.rule}", response, (200, 400, 404))
    out.check()


# -- Host, Origin, CSRF --------------------------------------------------------------------------

def test_a_bad_host_gets_400_on_every_route(app, client):
    out = Outcomes(app)
    for rule in rules(app):
        for method in methods(rule):
            for host in BAD_HOSTS:
                response = call(client, rule, method, path(app, rule), {"Host": host})
                out.expect(f"{method} {rule.rule} Host {host!r}", response, 400)
    out.check()


def test_a_foreign_origin_gets_403_on_every_state_changing_route(app, client):
    token = session_token(client)
    out = Outcomes(app)
    for rule in rules(app):
        for method in changes_state(rule):
            for origin in FOREIGN_ORIGINS:
                url = path(app, rule, run_id=UNKNOWN_RUN)
                for kwargs in ({"json": {"lesson": "08"}}, {"data": {"lesson": "08", "csrf_token": token}}):
                    if rule.websocket:
                        kwargs = {}
                    response = call(client, rule, method, url, {"Origin": origin}, **kwargs)
                    out.expect(f"{method} {rule.rule} Origin {origin!r} {kwargs}", response, 403)
    out.check()
    assert client.get("/api/runs", headers=GOOD).get_json() == [], "nothing was started"


def test_a_form_post_without_the_right_csrf_token_gets_403_on_every_route(app, client):
    token = session_token(client)
    out = Outcomes(app)
    for rule in rules(app):
        for method in changes_state(rule):
            if rule.websocket:
                continue  # an upgrade has no body; Origin guards it
            url = path(app, rule)
            attempts = {
                "no token": ({"lesson": "08"}, {}),
                "empty token": ({"lesson": "08", "csrf_token": ""}, {}),
                "wrong token": ({"lesson": "08", "csrf_token": token + "x"}, {}),
                "forged header": ({"lesson": "08"}, {"X-CSRF-Token": "forged"}),
                **{f"non-ASCII field {t!r}": ({"lesson": "08", "csrf_token": t}, {}) for t in NON_ASCII},
                **{f"non-ASCII header {t!r}": ({"lesson": "08"}, {"X-CSRF-Token": latin1(t)})
                   for t in NON_ASCII},
                "text/plain JSON": (b'{"lesson": "08"}', {"Content-Type": "text/plain"}),
            }
            for what, (data, headers) in attempts.items():
                response = call(client, rule, method, url, headers, data=data)
                out.expect(f"{method} {rule.rule} {what}", response, 403)
            # The session's own token passes the check (what follows is the route's own answer).
            response = call(client, rule, method, url, data={"lesson": "08", "csrf_token": token})
            answers = (303, 400, 404) if method == "POST" else (200, 400, 404)  # PUT/DELETE: JSON API
            out.expect(f"{method} {rule.rule} right token", response, answers)
    out.check()
    started = client.get("/api/runs", headers=GOOD).get_json()
    assert len(started) == 1, "only the form with the right token started a run"
    wait_final(client, started[0]["id"])


# -- JSON validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("payload, field", [
    ({"lesson": "99"}, "lesson"),
    ({"lesson": ""}, "lesson"),
    ({"lesson": "../01_sleeper"}, "lesson"),
    ({"lesson": "\xe4"}, "lesson"),
    ({"lesson": ["01"]}, "lesson"),
    ({"params": {}}, "lesson"),
    ({"lesson": "01", "params": {"count": 0}}, "count"),
    ({"lesson": "01", "params": {"count": "many"}}, "count"),
    ({"lesson": "01", "params": {"duration": float("nan")}}, "duration"),
    ({"lesson": "01", "params": {"mode": "wild"}}, "mode"),
    ({"lesson": "01", "params": {"loud": "maybe"}}, "loud"),
    ({"lesson": "01", "params": {"label": "a\x00b"}}, "label"),
    ({"lesson": "01", "params": {"nonsense": 1}}, "nonsense"),
    ({"lesson": "01", "params": []}, "params"),
    ({"lesson": "01", "duration": 5}, "duration"),
])
def test_post_runs_with_a_bad_field_gets_400_naming_it(app, client, payload, field):
    before = [run["id"] for run in client.get("/api/runs", headers=GOOD).get_json()]
    response = client.post("/runs", json=payload, headers=GOOD)
    assert response.status_code == 400, describe(response)
    assert response.get_json()["field"] == field, response.get_json()
    assert [run["id"] for run in client.get("/api/runs", headers=GOOD).get_json()] == before


@pytest.mark.parametrize("raw", [
    nested(30_000),  # fits the 64 KiB body limit, far past the JSON parser's recursion limit
    b"{" + b'"a":{' * 10_000 + b"}" * 10_001,
    b"not json", b"", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}", b'{"lesson": "01"',
    b'{"lesson": "01", "params": {"duration": 1e999}}',  # parses as inf
])
def test_post_runs_with_a_bad_json_body_gets_400(app, client, raw):
    response = client.post("/runs", data=raw, headers={**GOOD, "Content-Type": "application/json"})
    assert response.status_code == 400, describe(response)
    assert not app.extensions["test.errors"], app.extensions["test.errors"]


def test_post_runs_with_json_nested_100000_deep_is_refused_not_a_500(app, client):
    """200 KB of brackets: over MAX_CONTENT_LENGTH (64 KiB), so 413 before any parsing; either way
    the client is told its body is wrong, never a 500."""
    response = client.post("/runs", data=nested(100_000), content_type="application/json", headers=GOOD)
    assert response.status_code in (400, 413), describe(response)


# -- unknown runs --------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", [UNKNOWN_RUN, "..", "ä", "x" * 300, "%00", "01", "runs"])
def test_every_run_route_gives_404_for_an_unknown_run(app, client, run_id):
    out = Outcomes(app)
    run_rules = [rule for rule in rules(app) if "run_id" in rule.arguments]
    assert len(run_rules) >= 9
    for rule in run_rules:
        for method in methods(rule):
            kwargs = {"json": {"signal": "SIGINT"}} if method == "POST" else {}
            response = call(client, rule, method, path(app, rule, run_id=run_id), **kwargs)
            out.expect(f"{method} {rule.rule} run_id={run_id!r}", response, 404)
            if method != "HEAD" and not rule.websocket:
                wanted = "application/json" if rule.rule.startswith("/api/") or kwargs else None
                if wanted:
                    assert response.get_json()["status"] == 404, describe(response)
    out.check()


# -- no 500 for anything -------------------------------------------------------------------------

def bad_requests(token: str):
    """(label, extra headers, request kwargs, query string) of the bad input sent to every route."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    yield "nested JSON", {}, {"data": nested(30_000), "content_type": "application/json"}, ""
    yield "nested JSON 100000", {}, {"data": nested(100_000), "content_type": "application/json"}, ""
    yield "broken JSON", {}, {"data": b'{"signal": ', "content_type": "application/json"}, ""
    yield "JSON array", {}, {"json": ["SIGINT"]}, ""
    yield "JSON field types", {}, {"json": {"signal": ["SIGINT"], "lesson": {"a": 1}, "params": 7}}, ""
    yield "non-UTF-8 JSON", {}, {"data": b'{"signal": "\xff"}', "content_type": "application/json"}, ""
    yield "huge body", {}, {"data": b"x" * 200_000, "content_type": "application/json"}, ""
    yield "non-UTF-8 form", form, {"data": b"csrf_token=" + token.encode() + b"&signal=\xff&lesson=\xfe"}, ""
    fields = {"csrf_token": token, "signal": "SIG\x00INT", "lesson": "\xe4"}
    yield "form field types", {}, {"data": fields}, ""
    yield "multipart junk", {"Content-Type": "multipart/form-data; boundary=zz"}, {"data": b"--zz\r\nx"}, ""
    yield "odd query", {}, {}, "after=abc&t=NaN&download=%FF&token=%E2%82%AC&x=" + "y" * 5000
    yield "negative after", {}, {}, "after=-999999999999999999999&t=-1e999"
    odd = {"Accept": "\xe4/\xe4", "HX-Request": "\xe4", "Cookie": f"threadlab_session_{PORT}=\xe4\xff"}
    yield "non-ASCII headers", odd, {}, ""
    yield "htmx", {"HX-Request": "true", "Accept": "text/html"}, {"json": {"signal": "SIGKILL"}}, ""


def test_no_route_gives_a_500_for_bad_input(app, client):
    token = session_token(client)
    out = Outcomes(app)
    for rule in rules(app):
        for method in methods(rule):
            for label, headers, kwargs, query in bad_requests(token):
                url = path(app, rule) + (f"?{query}" if query else "")
                response = call(client, rule, method, url, headers, **kwargs)
                out.expect(f"{method} {rule.rule} {label}", response, range(200, 500))
    out.check()


# -- the run routes with real runs ---------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(app):
    """A live run (the sleeper, which takes SIGINT and SIGUSR1) and an ended one (08, quick)."""
    client = app.test_client()
    ended = client.post("/runs", json={"lesson": "08"}, headers=GOOD).get_json()["id"]
    live = client.post("/runs", json={"lesson": "01", "params": {"duration": 60}}, headers=GOOD)
    assert live.status_code == 201, describe(live)
    live_id = live.get_json()["id"]
    assert wait_final(client, ended) == "exited"
    deadline = time.monotonic() + 20
    while status(client, live_id) != "running":
        assert time.monotonic() < deadline, status(client, live_id)
        time.sleep(0.05)
    yield live_id, ended
    client.post(f"/runs/{live_id}/stop", json={}, headers=GOOD)
    assert wait_final(client, live_id, timeout=10) == "stopped"


def test_run_routes_with_real_runs_answer_bad_input_without_a_500(app, client, runs):
    token = session_token(client)
    out = Outcomes(app)
    for run_id in runs:
        for rule in rules(app):
            if "run_id" not in rule.arguments or rule.websocket:
                continue  # the test client cannot hold a websocket open; tests/integration does
            for method in methods(rule):
                if method == "POST" and rule.rule.endswith("/stop"):
                    continue  # stopping the live run is the fixture's last step
                for label, headers, kwargs, query in bad_requests(token):
                    url = path(app, rule, run_id=run_id) + (f"?{query}" if query else "")
                    response = call(client, rule, method, url, headers, **kwargs)
                    out.expect(f"{method} {rule.rule} ({run_id}) {label}", response, range(200, 500))
    out.check()
    assert status(client, runs[0]) == "running", "no bad input stopped it"


@pytest.mark.parametrize("payload, status", [
    ({"signal": "SIGKILL"}, 400),  # not declared by the lesson
    ({"signal": "SIGUSR2"}, 400),
    ({"signal": "sigint"}, 400),
    ({"signal": "\xe4"}, 400),
    ({"signal": ""}, 400),
    ({}, 400),
    ({"signal": "SIGINT", "pid": 1}, 400),
    ({"signal": ["SIGINT"]}, 400),
])
def test_signal_validation(app, client, runs, payload, status):
    response = client.post(f"/runs/{runs[0]}/signal", json=payload, headers=GOOD)
    assert response.status_code == status, describe(response)
    assert "error" in response.get_json()


def test_an_ended_run_answers_409_to_stop_signal_and_dump(app, client, runs):
    for action, payload in (("stop", {}), ("dump", {})):
        response = client.post(f"/runs/{runs[1]}/{action}", json=payload, headers=GOOD)
        assert response.status_code == 409, (action, describe(response))


def test_the_run_endpoints_read_an_ended_run(app, client, runs):
    events = client.get(f"/api/runs/{runs[1]}/events", headers=GOOD)
    assert events.status_code == 200
    kinds = [json.loads(line)["kind"] for line in events.get_data().splitlines()]
    assert kinds[0] == "status" and "result" in kinds
    assert client.get(f"/api/runs/{runs[1]}/events?after=abc", headers=GOOD).status_code in (200, 400)
    assert client.get(f"/runs/{runs[1]}/timeline", headers=GOOD).mimetype == "image/svg+xml"
