"""``threadlab``: one command for people and scripts.

    threadlab serve [--host 127.0.0.1] [--port 8765] [--data-dir DIR] [--keep-runs N]
    threadlab list
    threadlab run 03 --producers 2 --consumers 4 --duration 10
    threadlab run path/to/prog.py ARGS...       (a plain program, under the kit, text output)
    threadlab watch [--port 8765] [--data-dir DIR] path/to/prog.py ARGS...

``serve`` exits with code 2, one line on stderr, when it cannot start safely: the port is taken, or
it is opened beyond loopback and no access token can be kept. ``watch`` (app/watch.py) runs a plain
program in the dashboard and prints the URL of its live run.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

from . import ROOT, create_app, default_data_dir, defaults
from .registry import Registry
from .security import SecurityConfigError, is_loopback


def dashboard_url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _dual_stack() -> bool:
    """Whether a socket bound to ``::`` also takes IPv4 connections here.

    gunicorn binds ``[::]`` without setting IPV6_V6ONLY, so the system default decides (Linux:
    ``net.ipv6.bindv6only``; BSDs: on). Asked of a socket made the same way, not guessed.
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            return probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    except (OSError, AttributeError):
        return False


def _student_urls(host: str, port: int) -> list[str]:
    """What students can type: for a wildcard bind, each of this machine's LAN addresses that the
    bind actually listens on. 0.0.0.0 takes IPv4 only, so an IPv6 link would not connect; ``::``
    takes IPv6, and IPv4 too only on a dual-stack socket. A link that cannot connect is not shown,
    so none may be left (the caller says so)."""
    from .security import is_wildcard, machine_addresses

    if not is_wildcard(host):
        return [dashboard_url(host, port)]
    bound = ipaddress.ip_address(host)
    families = {4} if bound.version == 4 else ({4, 6} if _dual_stack() else {6})
    urls = []
    for text in machine_addresses():
        address = ipaddress.ip_address(text.split("%")[0])
        # Loopback is not for students; link-local needs a zone id no browser link carries.
        if address.version in families and not (address.is_loopback or address.is_link_local):
            urls.append(dashboard_url(text, port))
    return urls


def bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served, or None. Asked before gunicorn, which would retry for
    five seconds and then exit with a bare "Can't connect"."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot serve on {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} is already in use (another threadlab?): open that one, "
                        f"or start this one with --port {port + 1}")
            return f"cannot serve on {host}:{port}: {exc.strerror}"
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from .security import read_or_create_secret
    from .serve import serve

    if problem := bind_problem(args.host, args.port):
        print(f"threadlab: {problem}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir or default_data_dir())
    config = {"DATA_DIR": str(data_dir), "HOST": args.host, "PORT": args.port,
              "RUN_TIME_LIMIT": args.time_limit, "KEEP_RUNS": args.keep_runs,
              "SHARED_CONTROLS": args.shared_controls, "ALLOW_EDITS": args.allow_edits}
    if args.lessons_dir:
        config["LESSONS_DIR"] = str(Path(args.lessons_dir).resolve())
    url = dashboard_url(args.host, args.port)
    try:
        if not is_loopback(args.host):
            # Beyond loopback only with a token: kept in a 0600 file, never in argv or the process
            # list. No usable token (a full disk, a read-only data dir) means no server, not an
            # open one: SecurityConfigError, here or from create_app (the session secret).
            config["ACCESS_TOKEN"] = read_or_create_secret(data_dir / "access_token")
        app = create_app(config)
    except SecurityConfigError as exc:
        print(f"threadlab: not starting: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"threadlab is open to the network at {url}")
        student_urls = _student_urls(args.host, args.port)
        for student_url in student_urls:
            print(f"Give students this one-time link: {student_url}?token=<the token in "
                  f"{data_dir / 'access_token'}>")
        if not student_urls:
            print(f"No network address of this machine is reachable on {args.host}: students "
                  "cannot connect until it has one.")
    else:
        print(f"threadlab: open {url}")
    print(f"data: {data_dir}   stop: Ctrl-C", flush=True)
    serve(app, args.host, args.port)
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    for lesson in Registry(ROOT / "lessons").all():
        note = "" if lesson.available else f"  (needs {', '.join(lesson.requires)})"
        print(f"{lesson.number}  {lesson.title}{note}")
    return 0


def run_lesson(key: str, passthrough: list[str]) -> int:
    """Run a lesson in the foreground with human-readable output; its exit code is ours."""
    lesson = Registry(ROOT / "lessons").get(key)
    if lesson is None:
        print(f"no lesson {key!r}; try --list", file=sys.stderr)
        return 2
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    try:
        return subprocess.call([sys.executable, "-m", f"lessons.{lesson.id}", *passthrough],
                               cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 130


def is_program(target: str) -> bool:
    """A ``--run``/``watch`` target names a program file (not a lesson number) when it looks like
    a path: it ends in ``.py`` or has a folder in it."""
    return target.endswith(".py") or "/" in target or os.sep in target


def run_program(path: str, passthrough: list[str], *, log_format: str = "text",
                trace: bool = True) -> int:
    """Run a plain program in the foreground under the kit (``python -m lessons.kit.run``): text
    output by default, as the program's own; its exit code is ours. It runs in the caller's
    working directory, as ``python prog.py`` would: a program may open files relative to it."""
    program = Path(path)
    if not program.is_file():
        print(f"no such program: {path}", file=sys.stderr)
        return 2
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    options = ["--log-format", log_format, *([] if trace else ["--no-trace"])]
    try:
        return subprocess.call([sys.executable, "-m", "lessons.kit.run", *options,
                                str(program.absolute()), *passthrough], env=env)
    except KeyboardInterrupt:
        return 130


# -- threadlab watch -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadlab", description="Learn Python threading by watching it.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the dashboard")
    serve.add_argument("--host", default=defaults.HOST, help="address to bind (loopback by default)")
    serve.add_argument("--port", type=int, default=defaults.PORT)
    serve.add_argument("--data-dir", help="where runs are kept (default: per-user data folder)")
    serve.add_argument("--lessons-dir", help="a folder of NN_*.py lessons to serve instead of ours")
    serve.add_argument("--time-limit", type=float, default=defaults.RUN_TIME_LIMIT,
                       help="seconds a run may take before it is stopped (status timeout)")
    serve.add_argument("--keep-runs", type=int, default=defaults.KEEP_RUNS, metavar="N",
                       help="ended runs kept in the data dir: the N that ended last (0: keep every run)")
    serve.add_argument("--shared-controls", action="store_true",
                       help="let every viewer of a run stop or signal it (by default only the browser "
                            "that started it can: a projected demo is not ended by a student's click)")
    serve.add_argument("--allow-edits", action="store_true",
                       help="on a server open to the network, let learners edit and run their own "
                            "copies of the lessons (that runs their code on this machine; always "
                            "allowed on loopback)")
    sub.add_parser("list", help="list the lessons")
    run = sub.add_parser("run", help="run one lesson here; flags after the id go to the lesson")
    run.add_argument("lesson", help="two-digit number or full name, or a program's path (prog.py)")
    watch = sub.add_parser("watch", help="run a plain program in the dashboard; print its run's URL")
    watch.add_argument("--port", type=int, default=defaults.PORT,
                       help="the dashboard's port on 127.0.0.1 (reused if one answers, else started)")
    watch.add_argument("--data-dir", help="data dir of a dashboard started for this (default: per-user)")
    watch.add_argument("program", help="path to a .py file")
    watch.add_argument("args", nargs=argparse.REMAINDER, help="the program's own arguments")
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        if is_program(args.lesson):
            return run_program(args.lesson, rest)
        return run_lesson(args.lesson, rest)
    if args.command == "watch":
        from .watch import cmd_watch  # here: watch uses this module's helpers

        return cmd_watch(args)
    if args.command == "serve" and args.keep_runs < 0:
        parser.error("--keep-runs must be 0 (keep every run) or more")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"serve": cmd_serve, "list": cmd_list}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
