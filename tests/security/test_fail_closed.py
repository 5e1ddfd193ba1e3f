"""Fail closed: a server opened beyond loopback never serves without a usable access token; secrets
are whole or replaced, atomically; tokens of any text are compared without a 500; cookies are one per
port; and the links printed for students are ones that connect. In process, no live server."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

import app.cli as cli
import app.security as security
from app import create_app
from app.security import SecurityConfigError, read_or_create_secret
from tests.conftest import free_port

PORT = 8765
HOST = {"Host": f"127.0.0.1:{PORT}"}
TOKEN = "t" * 43


def make_app(tmp_path: Path, **config):
    return create_app({"DATA_DIR": str(tmp_path / "data"), "PORT": PORT, **config})


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- secret files --------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"\n", b"short", b"x" * 20 + b"\n", b"\xff\xfe" * 30,
                                     b"has spaces in it and is long enough to pass a length check"])
def test_an_empty_short_or_garbled_secret_file_is_replaced(tmp_path, content):
    path = tmp_path / "access_token"
    path.write_bytes(content)
    os.chmod(path, 0o644)
    value = read_or_create_secret(path)
    assert len(value) >= 32 and value.isascii() and " " not in value
    assert path.read_text() == value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == value, "a good secret is kept across restarts"
    assert not leftovers(tmp_path)


def test_an_unreadable_secret_file_is_replaced(tmp_path, monkeypatch):
    path = tmp_path / "secret_key"
    path.write_text("k" * 43)
    os.chmod(path, 0o000)
    real_read = Path.read_text

    def refused(self, *args, **kwargs):  # as for a 0000 file (root, running these tests, reads any)
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    value = read_or_create_secret(path)
    monkeypatch.undo()
    assert value != "k" * 43 and path.read_text() == value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_folder_where_the_secret_should_be_stops_the_start(tmp_path):
    path = tmp_path / "secret_key"
    (path / "inside").mkdir(parents=True)
    with pytest.raises(SecurityConfigError, match="secret_key"):
        read_or_create_secret(path)
    assert not leftovers(tmp_path)


def test_a_secret_that_cannot_be_written_raises_and_leaves_nothing_half_done(tmp_path, monkeypatch):
    path = tmp_path / "access_token"
    path.write_bytes(b"")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(SecurityConfigError, match="No space left"):
        read_or_create_secret(path)
    assert path.read_bytes() == b"" and not leftovers(tmp_path)


def test_the_secret_is_written_to_a_unique_temp_file_then_renamed(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((Path(src), Path(dst), Path(src).read_text()))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    value = read_or_create_secret(tmp_path / "secret_key")
    [(src, dst, text)] = seen
    assert src.parent == tmp_path and src.name != "secret_key" and dst == tmp_path / "secret_key"
    assert text == value


def test_serve_refuses_to_start_when_no_token_can_be_kept(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "access_token").write_bytes(b"")  # what a full disk at first start left behind
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full")))
    monkeypatch.setattr("app.serve.serve", lambda *a: pytest.fail("served without a token"))
    code = cli.main(["serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "access_token" in err and "disk full" in err, err


def test_serve_regenerates_an_empty_token_file(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "access_token").write_bytes(b"")
    served = []
    monkeypatch.setattr("app.serve.serve", lambda app, host, port: served.append(app))
    code = cli.main(["serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(data)])
    assert code == 0
    token = (data / "access_token").read_text()
    assert len(token) >= 32 and served[0].config["ACCESS_TOKEN"] == token


# -- remote mode needs a token -------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "short"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "teacher.example"])
def test_create_app_refuses_remote_mode_without_a_usable_token(tmp_path, host, token):
    with pytest.raises(SecurityConfigError, match="ACCESS_TOKEN"):
        make_app(tmp_path, HOST=host, ACCESS_TOKEN=token)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(tmp_path, host):
    client = make_app(tmp_path, HOST=host).test_client()
    assert client.get("/api/runs", headers=HOST).status_code == 200


def test_a_token_lost_after_start_refuses_instead_of_opening(tmp_path):
    app = make_app(tmp_path, HOST="0.0.0.0", ACCESS_TOKEN=TOKEN)
    client = app.test_client()
    bearer = {**HOST, "Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/runs", headers=bearer).status_code == 200
    assert client.get("/api/runs", headers=HOST).status_code == 401
    for lost in (None, ""):
        app.config["ACCESS_TOKEN"] = lost
        for headers in (HOST, bearer, {**HOST, "Authorization": "Bearer "}):
            response = client.get("/api/runs", headers=headers)
            assert response.status_code == 503, (lost, headers)
            assert "access token" in response.get_json()["error"]


# -- non-ASCII tokens are wrong tokens, not 500s -------------------------------------------------

NON_ASCII = ["\xe4", "t\xe4ken" + "x" * 40, "\u20ac", "\xff" * 43]


@pytest.mark.parametrize("given", NON_ASCII)
def test_a_non_ascii_access_token_gets_401(tmp_path, given):
    client = make_app(tmp_path, HOST="0.0.0.0", ACCESS_TOKEN=TOKEN).test_client()
    cookie = f"threadlab_token_{PORT}"
    latin1 = given.encode("utf-8").decode("latin-1")  # how a WSGI server hands over header bytes
    for path, headers in (("/api/runs", {**HOST, "Authorization": f"Bearer {latin1}"}),
                          ("/api/runs", {**HOST, "Cookie": f"{cookie}={latin1}"}),
                          ("/api/runs", {**HOST, "Cookie": f"{cookie}={given}"})):
        assert client.get(path, headers=headers).status_code == 401, headers
    assert client.get("/api/runs", query_string={"token": given}, headers=HOST).status_code == 401


@pytest.mark.parametrize("given", NON_ASCII)
def test_a_non_ascii_csrf_token_gets_403(tmp_path, given):
    client = make_app(tmp_path).test_client()
    assert client.get("/lessons/01", headers=HOST).status_code in (200, 404)  # a session, if any
    latin1 = given.encode("utf-8").decode("latin-1")
    assert client.post("/runs", data={"lesson": "01", "csrf_token": given}, headers=HOST).status_code == 403
    assert client.post("/runs", data={"lesson": "01"},
                       headers={**HOST, "X-CSRF-Token": latin1}).status_code == 403


# -- one cookie name per port --------------------------------------------------------------------

def test_session_and_token_cookies_are_named_after_the_port(tmp_path):
    names = set()
    for port in (8765, 8766):
        app = create_app({"DATA_DIR": str(tmp_path / "data"), "PORT": port, "HOST": "0.0.0.0",
                          "ACCESS_TOKEN": TOKEN})
        client = app.test_client()
        host = {"Host": f"127.0.0.1:{port}"}
        response = client.get(f"/?token={TOKEN}", headers=host)
        assert response.status_code in (302, 303)
        token_cookie = response.headers["Set-Cookie"].split("=")[0]
        assert token_cookie == f"threadlab_token_{port}"
        assert app.config["SESSION_COOKIE_NAME"] == f"threadlab_session_{port}"
        with app.test_request_context("/", headers=host):
            from flask import session

            session["csrf"] = "x"
            out = app.make_response("")
            app.session_interface.save_session(app, session, out)
            assert out.headers["Set-Cookie"].startswith(f"threadlab_session_{port}=")
        names |= {token_cookie, app.config["SESSION_COOKIE_NAME"]}
    assert len(names) == 4


# -- links for students ----------------------------------------------------------------------------

ADDRESSES = ["127.0.0.1", "::1", "192.0.2.2", "10.1.2.3", "fd00::2", "2001:db8::5", "fe80::1%eth0",
             "fe80::2"]


@pytest.fixture
def addresses(monkeypatch):
    monkeypatch.setattr(security, "machine_addresses", lambda: list(ADDRESSES))


def test_an_ipv4_wildcard_prints_only_ipv4_links(addresses, monkeypatch):
    monkeypatch.setattr(cli, "_dual_stack", lambda: True)  # irrelevant to an IPv4 socket
    assert cli._student_urls("0.0.0.0", 9000) == ["http://192.0.2.2:9000/", "http://10.1.2.3:9000/"]


def test_an_ipv6_wildcard_prints_ipv4_links_only_when_dual_stack(addresses, monkeypatch):
    monkeypatch.setattr(cli, "_dual_stack", lambda: True)
    assert cli._student_urls("::", 9000) == ["http://192.0.2.2:9000/", "http://10.1.2.3:9000/",
                                             "http://[fd00::2]:9000/", "http://[2001:db8::5]:9000/"]
    monkeypatch.setattr(cli, "_dual_stack", lambda: False)
    assert cli._student_urls("::", 9000) == ["http://[fd00::2]:9000/", "http://[2001:db8::5]:9000/"]


def test_no_reachable_address_means_no_link_not_a_wildcard_one(monkeypatch):
    monkeypatch.setattr(security, "machine_addresses", lambda: ["127.0.0.1", "::1", "fd00::2"])
    assert cli._student_urls("0.0.0.0", 9000) == []


def test_a_specific_address_is_its_own_link(addresses):
    assert cli._student_urls("192.0.2.2", 9000) == ["http://192.0.2.2:9000/"]
    assert cli._student_urls("fd00::2", 9000) == ["http://[fd00::2]:9000/"]


def test_dual_stack_is_read_from_a_socket_made_as_gunicorn_makes_it():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        expected = probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    assert cli._dual_stack() is expected
