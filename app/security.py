"""Security for a server on one machine: who may talk to it, and from which page.

Loopback is not a wall: any page the learner visits can open a websocket to 127.0.0.1 or post a
form to it, and DNS rebinding can point a foreign name at it. So, as Jupyter Server does:

1. ``Origin`` (when present) must be exactly ``http://<allowed name>:<port>`` on every websocket
   upgrade and state-changing request, else 403 — checked first;
2. ``Host`` must be an allowed name with our port on every request, else 400 (DNS rebinding):
   loopback names, the bind address, and for a wildcard bind this machine's addresses and name;
3. when opened beyond loopback, every request needs the access token (a cookie set by the one-time
   URL, or ``Authorization: Bearer``), compared in constant time; without a usable token the server
   does not start, and never serves the network openly;
4. form posts carry a CSRF token (missing or wrong → 403); JSON bodies need none, because no
   cross-site page can send ``application/json`` without a CORS preflight, which we never grant.

Cookies ignore ports, so the session and token cookies are named after the port: two threadlabs on
one host keep separate sessions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
import tempfile
from pathlib import Path

import psutil
from flask import Flask, abort, redirect, request, session

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MIN_SECRET_CHARS = 32  # token_urlsafe(32) writes 43; anything shorter was cut off or typed in by hand
# URL-unreserved characters only: the token travels in ``?token=``, a cookie and a Bearer header
# unescaped, so a secret with anything else in it could never be sent back as it is.
_SECRET_RE = re.compile(r"[A-Za-z0-9._~-]+")


class SecurityConfigError(RuntimeError):
    """The server cannot be started safely (no usable secret, or open to the network without a
    token). ``threadlab serve`` prints the message on one line and exits with code 2."""


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in a 0600 file, so it survives restarts and never shows in argv.

    A file that is empty, short, not a token or unreadable is replaced by a new secret: a disk that
    was full at first start left ``access_token`` at 0 bytes, and an empty token used to mean an
    open server. Raises :class:`SecurityConfigError` when no secret can be written: failing to
    start is safe, starting without a secret is not.
    """
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):  # missing, unreadable, a folder, binary junk: all replaced
        value = ""
    if len(value) >= max(nbytes, MIN_SECRET_CHARS) and _SECRET_RE.fullmatch(value):
        return value
    value = secrets.token_urlsafe(nbytes)
    try:
        _write_atomically(path, value)
    except OSError as exc:
        raise SecurityConfigError(f"cannot write the secret file {path}: {exc.strerror or exc}") from exc
    return value


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: a reader (or a crash, or a full disk) sees the old
    file or the whole new one, never a half-written or empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a unique name (two servers starting at once do not share a temp file) created 0600
    # with O_EXCL, in the same folder so that os.replace is a rename on one file system.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here, not after the rename
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable; not every FS can
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def is_loopback(host: str) -> bool:
    """Whether a bind address keeps the server on this machine (no token needed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_remote(app: Flask) -> bool:
    """Open beyond loopback: every request then needs the access token."""
    return not is_loopback(app.config.get("HOST") or "127.0.0.1")


def token_cookie(app: Flask) -> str:
    """The access token's cookie name. Cookies ignore ports, so two threadlabs on one host (a
    teacher's and a test's) must not overwrite each other's: one name per port."""
    return f"threadlab_token_{app.config['PORT']}"


def session_cookie(port: int) -> str:
    """The session cookie's name for the server on ``port`` (see :func:`token_cookie`)."""
    return f"threadlab_session_{port}"


def same_secret(given: object, expected: str) -> bool:
    """Constant-time comparison that is simply False for anything that is not the secret.

    ``hmac.compare_digest`` raises TypeError for a non-ASCII str, so a header or form field of
    ``ä`` used to be a 500; compared as UTF-8 bytes it is just a wrong token.
    """
    if not isinstance(given, str) or not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


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


def browser_id() -> str:
    """A hash of this browser session's own random id: what a run it starts records as its owner.
    Hashed, so the data dir (which an instructor can read) never holds a usable session value."""
    if "bid" not in session:
        session["bid"] = secrets.token_urlsafe(16)
        # Kept across browser restarts: a learner's progress and scratch copies hang on this id
        # (a cookie that died with the browser lost them). Lifetime: PERMANENT_SESSION_LIFETIME.
        session.permanent = True
    return hashlib.sha256(session["bid"].encode()).hexdigest()[:32]


def may_control(run) -> bool:
    """Whether this request may stop, signal or dump ``run``. A page may, if its browser started
    the run, or if the server lets every viewer (``--shared-controls``): on a projected or shared
    run, a viewer's click must not end the class's demo. Scripts (JSON) may: they hold the token
    in remote mode, and a page cannot send JSON across sites."""
    from flask import current_app

    if request.is_json or not run.owner or current_app.config.get("SHARED_CONTROLS"):
        return True
    return hmac.compare_digest(run.owner, browser_id())


def _is_websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _expected_token(app: Flask) -> str | None:
    """The token every request must carry, or None when the server is open (loopback, no token).

    In remote mode a missing or empty token never means open: init_app refuses to start that way,
    and should the config change afterwards, requests get 503 rather than free access.
    """
    token = app.config.get("ACCESS_TOKEN") or ""
    if not isinstance(token, str) or len(token) < MIN_SECRET_CHARS:
        if token or is_remote(app):
            abort(503, description="this threadlab has no usable access token: restart it")
        return None
    return token


def _token_ok(app: Flask, expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.cookies.get(token_cookie(app), "")
    return same_secret(given, expected)


def check_request():
    """Runs before every request, websockets included; aborts on the first rule broken."""
    from flask import current_app as app

    changes_state = request.method not in SAFE_METHODS or _is_websocket()
    origin = request.headers.get("Origin")
    if changes_state and origin is not None and origin not in allowed_origins(app):
        abort(403, description="cross-origin request refused")
    if request.host not in allowed_hosts(app):
        abort(400, description="unknown Host header")
    expected = _expected_token(app)
    if expected is not None:
        given = request.args.get("token")
        if given and same_secret(given, expected):
            # The one-time URL: keep the token in an HttpOnly cookie and show a clean address,
            # so the token never sits in the address bar of a shared screen.
            response = redirect(request.path)
            response.set_cookie(token_cookie(app), given, httponly=True, samesite="Strict")
            return response
        if not _token_ok(app, expected):
            abort(401, description="this threadlab needs its access token")
    if request.method not in SAFE_METHODS and not request.is_json:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        if not same_secret(sent, session.get("csrf", "")):
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
    """Install the checks; refuse (SecurityConfigError) a config that would serve the network openly."""
    token = app.config.get("ACCESS_TOKEN")
    if is_remote(app) and not (isinstance(token, str) and len(token) >= MIN_SECRET_CHARS):
        raise SecurityConfigError(
            f"HOST {app.config.get('HOST')!r} opens threadlab to the network, which needs an "
            f"ACCESS_TOKEN of at least {MIN_SECRET_CHARS} characters; none usable was given")
    if token and not (isinstance(token, str) and len(token) >= MIN_SECRET_CHARS):
        raise SecurityConfigError(f"ACCESS_TOKEN is shorter than {MIN_SECRET_CHARS} characters")
    app.config["SESSION_COOKIE_NAME"] = session_cookie(app.config["PORT"])
    app.before_request(check_request)
    app.after_request(set_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["may_control"] = may_control
