"""Host and Origin, against a live server: DNS rebinding gets 400, cross-site requests and websocket
hijacking get 403 (checked before anything else), and a refused upgrade is never upgraded."""

from __future__ import annotations

import json

import pytest

from tests.live_helpers import raw_request, raw_upgrade

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture(scope="module")
def run_id(fault_server):
    """A run that has ended, so every run route has something to answer about."""
    run_id = fault_server.start("08")
    fault_server.wait_status(run_id)
    return run_id


def bad_hosts(port: int) -> list[str]:
    return [
        f"evil.example:{port}",  # DNS rebinding: a foreign name resolving to 127.0.0.1
        f"127.0.0.1.evil.example:{port}",
        f"127.0.0.1:{port}.evil.example",
        f"localhost:{port}0",
        f"127.0.0.1:{port + 1}",
        "127.0.0.1",  # no port
        "localhost",
        "[::1]",
        f"127.0.0.2:{port}",  # loopback, but not a name we answer to
        f"0.0.0.0:{port}",
        f"localhost.:{port}",
        "",
    ]


def bad_origins(port: int, other_port: int) -> list[str]:
    return [
        "http://evil.example",
        f"http://evil.example:{port}",
        f"http://127.0.0.1:{port}.evil.example",
        f"http://localhost:{port}0",
        f"http://127.0.0.1:{other_port}",  # another local service's page
        f"http://127.0.0.1:{port}/",  # not how a browser writes an origin: not exact
        f"https://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}",
        "http://127.0.0.1",
        "null",  # sandboxed iframes, file:// pages, data: URLs
        "",
    ]


def get_routes(run_id: str) -> list[str]:
    return ["/", "/lessons/01", "/lessons/01_sleeper", f"/runs/{run_id}", "/concepts",
            "/api/lessons", "/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/events",
            f"/runs/{run_id}/timeline", "/static/threadlab.css", "/no-such-page"]


def test_allowed_hosts_are_answered(fault_server, run_id):
    port = fault_server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        for path in get_routes(run_id)[:-1]:
            status, _, body = raw_request(port, "GET", path, {"Host": host})
            assert status == 200, (host, path, status, body[:200])


def test_bad_host_gets_400_on_every_route(fault_server, run_id):
    port = fault_server.port
    for host in bad_hosts(port):
        for path in get_routes(run_id):
            status, _, body = raw_request(port, "GET", path, {"Host": host})
            assert status == 400, (host, path, status, body[:200])
        for path in ("/runs", f"/runs/{run_id}/stop", f"/runs/{run_id}/signal", f"/runs/{run_id}/dump"):
            status, _, _ = raw_request(port, "POST", path, {"Host": host, **JSON},
                                       json.dumps({"lesson": "08", "params": {}}).encode())
            assert status == 400, (host, path, status)


def test_forwarded_headers_do_not_override_host(fault_server):
    port = fault_server.port
    good, evil = f"127.0.0.1:{port}", f"evil.example:{port}"
    assert raw_request(port, "GET", "/api/runs", {"Host": evil, "X-Forwarded-Host": good})[0] == 400
    assert raw_request(port, "GET", "/api/runs", {"Host": good, "X-Forwarded-Host": evil})[0] == 200


def test_two_host_headers_are_refused(fault_server):
    port = fault_server.port
    conn_headers = [("Host", f"127.0.0.1:{port}"), ("Host", f"evil.example:{port}")]
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", "/api/runs", skip_host=True)
        for name, value in conn_headers:
            conn.putheader(name, value)
        conn.endheaders()
        assert conn.getresponse().status == 400
    finally:
        conn.close()


def test_bad_host_on_websocket_upgrade_gets_400_not_101(fault_server, run_id):
    port = fault_server.port
    for host in bad_hosts(port):
        for path in (f"/api/runs/{run_id}/ws", f"/runs/{run_id}/ws"):
            status, head = raw_upgrade(port, path, {"Host": host})
            assert status == 400, (host, path, head)


def test_bad_origin_gets_403_on_state_changing_requests_and_starts_nothing(fault_server, run_id):
    port = fault_server.port
    before = len(fault_server.get_json("/api/runs"))
    for origin in bad_origins(port, port + 1):
        headers = {"Host": f"127.0.0.1:{port}", "Origin": origin, **JSON}
        for path in ("/runs", f"/runs/{run_id}/stop", f"/runs/{run_id}/signal", f"/runs/{run_id}/dump"):
            status, _, body = raw_request(port, "POST", path, headers,
                                          json.dumps({"lesson": "08", "params": {}}).encode())
            assert status == 403, (origin, path, status, body[:200])
            assert "cross-origin" in json.loads(body)["error"]
        # Other methods change state too (or would); Origin is checked before routing answers 405.
        for method in ("PUT", "DELETE", "PATCH"):
            assert raw_request(port, method, "/runs", headers, b"{}")[0] == 403, (origin, method)
    assert len(fault_server.get_json("/api/runs")) == before


def test_origin_is_checked_first(fault_server, run_id):
    """Before Host (both wrong → 403) and before CSRF (a form without a token → the origin error)."""
    port = fault_server.port
    status, _, _ = raw_request(port, "POST", "/runs",
                               {"Host": f"evil.example:{port}", "Origin": "http://evil.example", **JSON},
                               b'{"lesson": "08"}')
    assert status == 403
    status, _ = raw_upgrade(port, f"/api/runs/{run_id}/ws",
                            {"Host": f"evil.example:{port}", "Origin": "http://evil.example"})
    assert status == 403
    status, _, body = raw_request(port, "POST", "/runs",
                                  {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example",
                                   "Accept": "application/json",
                                   "Content-Type": "application/x-www-form-urlencoded"},
                                  b"lesson=08")
    assert status == 403 and "cross-origin" in json.loads(body)["error"]
    # For an unknown run the websocket's own check (404) comes after the origin check too.
    assert raw_upgrade(port, "/api/runs/nope/ws",
                       {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"})[0] == 403


def test_allowed_origins_pass(fault_server, run_id):
    port = fault_server.port
    for name in ("127.0.0.1", "localhost", "[::1]"):
        origin = f"http://{name}:{port}"
        status, _, body = raw_request(port, "POST", "/runs",
                                      {"Host": f"127.0.0.1:{port}", "Origin": origin, **JSON},
                                      b'{"lesson": "no-such-lesson", "params": {}}')
        assert status == 400 and json.loads(body)["field"] == "lesson", (origin, status, body)
        for path in (f"/api/runs/{run_id}/ws", f"/runs/{run_id}/ws"):
            status, head = raw_upgrade(port, path, {"Host": f"{name}:{port}", "Origin": origin})
            assert status == 101, (origin, path, head)
    # Scripts send no Origin at all: that is allowed.
    assert raw_upgrade(port, f"/api/runs/{run_id}/ws", {"Host": f"127.0.0.1:{port}"})[0] == 101


def test_bad_origin_on_websocket_upgrade_gets_403_not_101(fault_server, run_id):
    port = fault_server.port
    for origin in bad_origins(port, port + 1):
        for path in (f"/api/runs/{run_id}/ws", f"/runs/{run_id}/ws"):
            status, head = raw_upgrade(port, path, {"Host": f"127.0.0.1:{port}", "Origin": origin})
            assert status == 403, (origin, path, head)
            assert "upgrade" not in head.lower().split("\r\n", 1)[-1], head


def test_cors_is_never_granted(fault_server):
    port = fault_server.port
    preflight = {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example",
                 "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    for method, path in (("OPTIONS", "/runs"), ("GET", "/api/runs"), ("GET", "/api/lessons")):
        _, headers, _ = raw_request(port, method, path, preflight)
        assert not [h for h in headers if h.lower().startswith("access-control-")], (method, path)


def test_websocket_for_an_unknown_run_gets_404_not_101(fault_server):
    port = fault_server.port
    for path in ("/api/runs/nope/ws", "/runs/nope/ws", "/api/runs/0/ws?after=5"):
        status, head = raw_upgrade(port, path, {"Host": f"127.0.0.1:{port}",
                                                "Origin": f"http://127.0.0.1:{port}"})
        assert status == 404, (path, head)
