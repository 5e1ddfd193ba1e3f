"""``threadlab watch prog.py ARGS...``: run a plain program in the dashboard and print the URL of
its live run: the threadlab already answering on 127.0.0.1:PORT, or one started detached for it
(log and pid in the data dir). Only 127.0.0.1 is ever asked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import ROOT, default_data_dir, defaults
from .cli import bind_problem, dashboard_url

SERVE_WAIT_S = 15.0  # how long a freshly started dashboard may take to answer (gunicorn boots)


def _http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, decoded JSON or None) of a GET (or a JSON POST when ``body`` is given); status 0
    when nothing answered. Only 127.0.0.1 is ever asked (see cmd_watch)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError):  # refused, reset, timed out: no dashboard there (yet)
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def threadlab_answers(port: int) -> bool:
    """Whether a threadlab serves ``127.0.0.1:port``: its ``/api/runs`` answers a JSON list. Any
    other server on the port (or a threadlab in remote mode, which wants a token) does not."""
    status, answer = _http_json(f"http://127.0.0.1:{port}/api/runs", timeout=2.0)
    return status == 200 and isinstance(answer, list)


def start_server(port: int, data_dir: Path) -> subprocess.Popen | None:
    """``threadlab serve`` on loopback, detached: a session of its own, so it outlives this command
    and the terminal's Ctrl-C; output in ``<data dir>/serve.log``, its pid in ``serve.pid`` (to stop
    it: ``kill $(cat serve.pid)``). Returns once it answers, or None (the log says why)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with open(data_dir / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": python_path}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (data_dir / "serve.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + SERVE_WAIT_S
    while time.monotonic() < deadline:
        if threadlab_answers(port):
            return proc
        if proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def cmd_watch(args: argparse.Namespace) -> int:
    """Run a plain program in the dashboard (a threadlab on ``--port``, or one started for it) and
    print the URL of its live run. The run goes on in the server, with a lesson's protections (its
    own process group, the time limit, Stop, the 8-run cap), after this command has exited."""
    program = Path(args.program).resolve()
    if not program.is_file() or program.suffix != ".py":
        print(f"threadlab: no such Python program: {args.program}", file=sys.stderr)
        return 2
    if not threadlab_answers(args.port):
        if problem := bind_problem(defaults.HOST, args.port):
            print(f"threadlab: cannot start a dashboard: {problem}", file=sys.stderr)
            return 2
        data_dir = Path(args.data_dir or default_data_dir())
        if start_server(args.port, data_dir) is None:
            print(f"threadlab: the dashboard did not start; see {data_dir / 'serve.log'}", file=sys.stderr)
            return 2
        print(f"threadlab: started a dashboard at {dashboard_url('127.0.0.1', args.port)} "
              f"(its pid is in {data_dir / 'serve.pid'})", file=sys.stderr)
    status, answer = _http_json(f"http://127.0.0.1:{args.port}/runs",
                                {"program": str(program), "args": list(args.args)}, timeout=30.0)
    if status != 201 or not isinstance(answer, dict) or "id" not in answer:
        reason = answer.get("error") if isinstance(answer, dict) else f"HTTP {status or 'no answer'}"
        print(f"threadlab: the dashboard refused the run: {reason}", file=sys.stderr)
        return 1
    print(f"http://127.0.0.1:{args.port}/runs/{answer['id']}", flush=True)
    return 0
