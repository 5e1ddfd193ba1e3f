"""Security for a server on one machine: who may talk to it, and from which page.

Loopback is not a wall: any page the learner visits can open a websocket to 127.0.0.1 or post a
form to it, and DNS rebinding can point a foreign name at it. So, as Jupyter Server does:

1. ``Origin`` (when present) must be exactly ``http://<allowed name>:<port>`` on every websocket
   upgrade and state-changing request, else 403 — checked first;
2. ``Host`` must be an allowed name with our port on every request, else 400 (DNS rebinding):
   loopback names, the bind address, and for a wildcard bind this machine's addresses and name;
3. when opened beyond loopback, every request needs the access token (a cookie set by the one-time
   URL, or ``Authorization: Bearer``), compared in constant time;
4. form posts carry a CSRF token (missing or wrong → 403); JSON bodies need none, because no
   cross-site page can send ``application/json`` without a CORS preflight, which we never grant.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import secrets
import socket
from pathlib import Path

import psutil
from flask import Flask, abort, redirect, request, session

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_COOKIE = "threadlab_token"


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in a 0600 file, so it survives restarts and never shows in argv."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value


def allowed_hosts(app: Flask) -> frozenset[str]:
    return _allowed_hosts(app.config.get("HOST") or "127.0.0.1", app.config["PORT"])


@functools.lru_cache(maxsize=8)
def _allowed_hosts(bind: str, port: int) -> frozenset[str]:
    names = set(LOOPBACK_NAMES) | {_url_host(bind)}
    if is_wildcard(bind):  # 0.0.0.0 or ::, for a classroom: every address this machine answers on
        names |= {_url_host(address) for address in machine_addresses()} | {socket.gethostname()}
    return frozenset(f"{name}:{port}" for name in names)


def is_wildcard(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        return False


def machine_addresses() -> list[str]:
    """This machine's IP addresses, from its network interfaces (link-local IPv6 left out)."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6) and "%" not in address.address:
                found.append(address.address)
    return found


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def allowed_origins(app: Flask) -> set[str]:
    return {f"http://{host}" for host in allowed_hosts(app)}


def csrf_token() -> str:
    """This browser session's CSRF token (created on first use), for hidden form fields."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _is_websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _token_ok(app: Flask) -> bool:
    expected = app.config.get("ACCESS_TOKEN")
    if not expected:
        return True
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.cookies.get(TOKEN_COOKIE, "")
    return hmac.compare_digest(given.encode(), expected.encode())


def check_request():
    """Runs before every request, websockets included; aborts on the first rule broken."""
    from flask import current_app as app

    changes_state = request.method not in SAFE_METHODS or _is_websocket()
    origin = request.headers.get("Origin")
    if changes_state and origin is not None and origin not in allowed_origins(app):
        abort(403, description="cross-origin request refused")
    if request.host not in allowed_hosts(app):
        abort(400, description="unknown Host header")
    if app.config.get("ACCESS_TOKEN"):
        given = request.args.get("token")
        if given and hmac.compare_digest(given.encode(), app.config["ACCESS_TOKEN"].encode()):
            # The one-time URL: keep the token in an HttpOnly cookie and show a clean address,
            # so the token never sits in the address bar of a shared screen.
            response = redirect(request.path)
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict")
            return response
        if not _token_ok(app):
            abort(401, description="this threadlab needs its access token")
    if request.method == "POST" and not request.is_json:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(403, description="missing or wrong CSRF token: reload the page")
    return None


def set_headers(response):
    """A Content-Security-Policy that allows only our own scripts, plus a few cheap hardening headers."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def init_app(app: Flask) -> None:
    app.before_request(check_request)
    app.after_request(set_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
