"""Input: every parameter validated (400 naming the field, nothing started), lesson ids only from
the registry, request size limits, and a Content-Security-Policy on pages."""

from __future__ import annotations

import json

import pytest

from tests.live_helpers import Session, Tags, raw_request

HUGE = 10**30


def count_runs(live) -> int:
    return len(live.get_json("/api/runs"))


def post_raw(live, body: bytes, content_type: str = "application/json", path: str = "/runs"):
    return raw_request(live.port, "POST", path,
                       {"Host": f"127.0.0.1:{live.port}", "Content-Type": content_type,
                        "Accept": "application/json"}, body)


# Lesson 01 (the sleeper) has one option of each type: duration float [0, 600], count int [1, 100],
# label str, mode choice (calm, busy), loud bool.
@pytest.mark.parametrize("params, field", [
    ({"nonsense": 1}, "nonsense"),
    ({"duration": 1, "zzz": 1}, "zzz"),
    ({"duration": "nan"}, "duration"),
    ({"duration": "NaN"}, "duration"),
    ({"duration": float("nan")}, "duration"),  # the JSON literal NaN, which Python's parser takes
    ({"duration": float("inf")}, "duration"),
    ({"duration": "-inf"}, "duration"),
    ({"count": float("nan")}, "count"),
    ({"count": True}, "count"),
    ({"duration": False}, "duration"),
    ({"count": 1.5}, "count"),
    ({"count": "1.5"}, "count"),
    ({"count": HUGE}, "count"),
    ({"count": str(HUGE)}, "count"),
    ({"count": "9" * 5000}, "count"),
    ({"count": 101}, "count"),
    ({"count": 0}, "count"),
    ({"count": -1}, "count"),
    ({"duration": 1e300}, "duration"),
    ({"duration": -0.5}, "duration"),
    ({"count": ""}, "count"),
    ({"duration": "   "}, "duration"),
    ({"count": None}, "count"),
    ({"count": [1]}, "count"),
    ({"count": {"n": 1}}, "count"),
    ({"duration": "1; rm -rf /"}, "duration"),
    ({"label": "x" * 201}, "label"),
    ({"label": "x" * 20000}, "label"),
    ({"label": "a\x00b"}, "label"),
    ({"label": ["a"]}, "label"),
    ({"label": None}, "label"),
    ({"mode": "wild"}, "mode"),
    ({"mode": ""}, "mode"),
    ({"mode": "calm "}, "mode"),
    ({"loud": "maybe"}, "loud"),
    ({"loud": 1}, "loud"),
    ({"loud": None}, "loud"),
])
def test_bad_parameters_get_400_naming_the_field_and_start_nothing(fault_server, params, field):
    before = count_runs(fault_server)
    status, body = fault_server.post_json("/runs", {"lesson": "01", "params": params})
    assert status == 400, body
    assert body["field"] == field and body["error"].startswith(f"{field}:"), body
    assert count_runs(fault_server) == before


@pytest.mark.parametrize("payload, field", [
    ({"lesson": "01", "duration": 5}, "duration"),  # beside "params" instead of in it
    ({"lesson": "01", "params": {}, "argv": ["--duration", "5"]}, "argv"),
    ({"lesson": "01", "params": []}, "params"),
    ({"lesson": "01", "params": "duration=5"}, "params"),
    ({"lesson": "01", "params": None}, "params"),
])
def test_bad_request_bodies_get_400_naming_the_field(fault_server, payload, field):
    before = count_runs(fault_server)
    status, body = fault_server.post_json("/runs", payload)
    assert status == 400 and body["field"] == field, body
    assert count_runs(fault_server) == before


def test_bodies_that_are_not_a_json_object_get_400(fault_server):
    for raw in (b"[1, 2]", b'"01"', b"null", b"{not json", b"", b"\xff\xfe"):
        status, _, body = post_raw(fault_server, raw)
        assert status == 400, (raw, status, body[:200])


def test_form_parameters_are_validated_the_same_way(fault_server):
    session = Session(fault_server, "/lessons/01")
    before = count_runs(fault_server)
    for fields, field in (({"duration": "nan"}, b"duration"), ({"count": "1e400"}, b"count"),
                          ({"nonsense": "1"}, b"nonsense"), ({"count": ""}, b"count")):
        status, _, body = session.post_form("/runs", {"lesson": "01", "csrf_token": session.token,
                                                      **fields}, {"HX-Request": "true"})
        assert status == 400 and field in body, (fields, status)
    assert count_runs(fault_server) == before


@pytest.mark.parametrize("lesson", [
    "../../etc/passwd", "/etc/passwd", "01_sleeper.py", "./01_sleeper", "fault_lessons/01_sleeper",
    "tests/fixtures/fault_lessons/01_sleeper.py", "lessons.01_sleeper", "lessons/01", "1", 1, 1.0,
    "001", "01 ", " 01", "01\x00", "01_SLEEPER", "01_sleeper/", "99", "", None, ["01"], {"id": "01"},
    "03_producer_consumer",  # a lesson of the project, not of the folder this server serves
])
def test_lesson_ids_come_only_from_the_registry(fault_server, lesson):
    before = count_runs(fault_server)
    status, body = fault_server.post_json("/runs", {"lesson": lesson, "params": {}})
    assert status == 400 and body["field"] == "lesson", body
    assert count_runs(fault_server) == before


def test_lesson_pages_take_registry_ids_only(fault_server):
    port = fault_server.port
    for path in ("/lessons/..%2F..%2Fetc%2Fpasswd", "/lessons/01_sleeper.py", "/lessons/%2Fetc%2Fpasswd",
                 "/lessons/99", "/lessons/..", "/lessons/03_producer_consumer"):
        status, _, _ = raw_request(port, "GET", path, {"Host": f"127.0.0.1:{port}"})
        assert status == 404, path
    assert raw_request(port, "GET", "/lessons/01", {"Host": f"127.0.0.1:{port}"})[0] == 200


def test_request_size_is_limited(fault_server):
    before = count_runs(fault_server)
    big = json.dumps({"lesson": "01", "params": {"label": "x" * 200_000}}).encode()
    assert post_raw(fault_server, big)[0] == 413
    assert post_raw(fault_server, b"lesson=01&label=" + b"x" * 200_000,
                    "application/x-www-form-urlencoded")[0] == 413
    assert post_raw(fault_server, json.dumps({"signal": "x" * 200_000}).encode(),
                    path="/runs/nope/signal")[0] in (404, 413)
    assert count_runs(fault_server) == before
    # Just under the limit is read, and refused for what it says.
    just_under = json.dumps({"lesson": "01", "params": {"label": "x" * 60_000}}).encode()
    status, _, body = post_raw(fault_server, just_under)
    assert status == 400 and json.loads(body)["field"] == "label"


def test_chunked_bodies_are_limited_too(fault_server):
    import socket

    body = json.dumps({"lesson": "01", "params": {"label": "x" * 200_000}}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                      for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    head = (f"POST /runs HTTP/1.1\r\nHost: 127.0.0.1:{fault_server.port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", fault_server.port), timeout=10) as sock:
        sock.sendall(head + chunks)
        answer = sock.recv(200)
    assert answer.split(b" ")[1] in (b"400", b"413"), answer


def test_pages_carry_a_content_security_policy_and_no_inline_script(fault_server):
    port = fault_server.port
    run_id = fault_server.start("08")
    fault_server.wait_status(run_id)
    for path in ("/", "/lessons/01", f"/runs/{run_id}", "/concepts", "/no-such-page"):
        status, headers, body = raw_request(port, "GET", path,
                                            {"Host": f"127.0.0.1:{port}", "Accept": "text/html"})
        assert status in (200, 404), path
        csp = headers["Content-Security-Policy"]
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";") if d.strip())
        script_src = directives.get("script-src", directives.get("default-src"))
        assert script_src == "'self'", csp
        assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'", csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        page = Tags(body.decode())
        assert not "".join(page.script_text).strip(), f"inline script on {path}"
        scripts = [attrs.get("src") for tag, attrs in page.tags if tag == "script"]
        assert all(src and src.startswith("/static/") for src in scripts), scripts
        handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
        assert not handlers, f"inline event handlers on {path}: {handlers}"
