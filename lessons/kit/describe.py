"""Read one lesson file's metadata and print it as one JSON object: the registry's probe.

Run as ``python -m lessons.kit.describe PATH`` (project root on ``PYTHONPATH`` and as cwd). The
server never imports a lesson itself: a teacher's file may start threads, loop for ever, fork or
call ``sys.exit`` at import. This short-lived process takes that risk instead, and the server
kills its whole process group when it is done or out of time.

The file is parsed with :mod:`ast` first. One with no top-level ``build_parser`` is a *plain
program* (a tutorial script, often with no ``__main__`` guard): importing it would run it, so it is
described from its syntax tree alone — docstring, ``SIGNALS``/``REQUIRES`` when they are literals,
no parameters, ``"plain": true`` — and none of it runs. Only a file with a parser is imported,
because the parser is code and the form needs what it builds.

The answer is one line on the *original* stdout: ``{"doc", "signals", "requires", "params",
"exercises", "plain"}``, ``exercises`` being the lesson's exercise file (see
:func:`read_exercises`), or ``{"error": "..."}`` when the file cannot be read. Everything the
lesson writes while it is imported (``print``, C-level writes, child processes) goes to stderr
instead, so it cannot corrupt that line.

No process the lesson starts outlives the probe, even one that leaves the process group
(``start_new_session=True``, a double-forked daemon): this process is a *child subreaper*, so every
orphaned descendant becomes its child. Before it answers it kills them all and lists the file as
unavailable ("started a process at import"); when the import never returns, the server stops this
process and kills its children the same way (app/probe.py).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import math
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from .args import KIT_OPTIONS, Bounded
from .boot import PARENT_GONE_EXIT, die_with_parent, parent_gone

_forked: list[int] = []  # set in the parent when the lesson calls os.fork() during import
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def _safe(value: Any) -> Any:
    """A JSON-safe value: scalars as they are, text that UTF-8 can carry, anything else as text."""
    if isinstance(value, str):
        # A lone surrogate in a docstring or default would fail later, wherever the page is encoded.
        return value.encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _safe(str(value))


def describe_action(action: argparse.Action) -> dict[str, Any]:
    """One argparse option as the dashboard's form sees it (type, bounds, choices, default)."""
    flag = max(action.option_strings, key=len) if action.option_strings else action.dest
    param: dict[str, Any] = {
        "name": _safe(action.dest), "flag": _safe(flag), "type": "str",
        "default": _safe(action.default), "help": _safe(action.help or ""),
        "choices": None, "min": None, "max": None,
    }
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        param["type"] = "bool"
    elif action.choices is not None:
        param.update(type="choice", choices=[_safe(c) for c in action.choices])
    elif isinstance(action.type, Bounded):
        param.update(type=action.type.kind.__name__, min=_safe(action.type.min),
                     max=_safe(action.type.max))
    elif action.type in (int, float):
        param["type"] = action.type.__name__
    return param


def _names(value: Any) -> list[str]:
    # SIGNALS = "SIGINT" is a common slip for ("SIGINT",); do not split it into letters.
    if isinstance(value, str):
        return [_safe(value)]
    return [_safe(str(v)) for v in value]


def _binds_build_parser(statements: list[ast.stmt]) -> bool:
    """Whether top-level code binds ``build_parser``: a ``def``, an import or an assignment, also
    inside a top-level ``if``/``try`` (``from common import build_parser`` is a parser too)."""
    name = "build_parser"
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.If, ast.Try)):
            nested = [getattr(node, part, []) for part in ("body", "orelse", "finalbody")]
            nested += [handler.body for handler in getattr(node, "handlers", [])]
            if any(_binds_build_parser(body) for body in nested):
                return True
    return False


def _literal(tree: ast.Module, name: str) -> Any:
    """The value of the last top-level ``NAME = <literal>``, or () when there is none (or it is not
    a literal: a plain program is never run to compute it)."""
    value: Any = ()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            try:
                found = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(found, (str, tuple, list, set, frozenset)):
                value = found
    return value


def describe_plain(tree: ast.Module) -> dict[str, Any]:
    """A plain program's answer, from its syntax tree alone."""
    return {
        "doc": _safe(ast.get_docstring(tree) or ""),
        "signals": _names(_literal(tree, "SIGNALS")),
        "requires": _names(_literal(tree, "REQUIRES")),
        "params": [],
        "plain": True,
    }


def _describe(path: Path) -> dict[str, Any]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        line = getattr(exc, "lineno", None)
        return {"error": f"cannot be parsed: {type(exc).__name__}: "
                         f"{getattr(exc, 'msg', exc)}{f' (line {line})' if line else ''}"}
    except (OSError, RecursionError, MemoryError) as exc:
        return {"error": f"cannot be read: {type(exc).__name__}"}
    if not _binds_build_parser(tree.body):
        return describe_plain(tree)
    name = f"threadlab_describe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return {"error": f"not a Python file: {path.name}"}
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a real import would be: dataclasses in the file look it up.
    sys.modules[name] = module
    # The lesson's folder first on sys.path, as when it runs as a script: its own helpers import.
    sys.path.insert(0, str(path.parent))
    start_pid = os.getpid()
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        return {"error": f"exited at import with SystemExit({exc.code!r})"}
    except KeyboardInterrupt:
        return {"error": "interrupted at import (KeyboardInterrupt)"}
    except BaseException as exc:  # any failure is the answer, not our crash
        return {"error": f"crashed at import: {type(exc).__name__}: {exc}"}
    if os.getpid() != start_pid:
        os._exit(0)  # a forked child got past the import: only the original process answers
    if _forked:
        return {"error": "forked a process at import (os.fork)"}
    answer: dict[str, Any] = {
        "doc": _safe(module.__doc__ or ""),
        "signals": _names(getattr(module, "SIGNALS", ())),
        "requires": _names(getattr(module, "REQUIRES", ())),
        "params": [],
        "plain": False,
    }
    if callable(getattr(module, "build_parser", None)):
        try:
            parser = module.build_parser()
            answer["params"] = [describe_action(a) for a in parser._actions
                                if a.option_strings and a.dest not in ("help", *KIT_OPTIONS)]
        except SystemExit as exc:
            return {"error": f"build_parser() exited with SystemExit({exc.code!r})"}
        except BaseException as exc:  # a parser that cannot be built: the lesson cannot run
            return {"error": f"build_parser() failed: {type(exc).__name__}: {exc}"}
    return answer


def read_exercises(path: Path) -> dict[str, Any]:
    """The lesson's exercise file (``exercises/<stem>.toml`` beside it) as JSON-ready data: {} when
    there is none, ``{"error": ...}`` when it cannot be read. Data only: no code of it runs."""
    file = path.parent / "exercises" / f"{path.stem}.toml"
    try:
        with open(file, "rb") as f:
            table = tomllib.load(f)
        json.dumps(table, allow_nan=False)  # dates or NaN would make the whole answer unsendable
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        return {"error": f"{file.name}: {exc}"}
    return table


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _become_subreaper() -> None:
    # Orphans the lesson leaves (a double fork, a setsid'd grandchild) are reparented to us, not
    # to init, so _kill_children finds them. Linux only; elsewhere the server's killpg remains.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children() -> list[int]:
    """This process's children, from /proc (the lesson's Popen objects are not to be trusted)."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()  # the name may hold spaces and ")"
        except OSError:  # gone meanwhile
            continue
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


def _kill_children() -> bool:
    """Kill every process the lesson started, grandchildren included; whether there was one.

    Each child is killed and reaped before the next look: its own children, orphaned, are ours
    then (we are a subreaper). A pid is ours until we reap it, so it cannot name another process.
    Bounded, for a lesson that forks without end."""
    any_found = False
    for _ in range(100):
        children = _children()
        if not children:
            break
        any_found = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):  # reaped by the lesson's code meanwhile
                os.waitpid(pid, 0)
    return any_found


def _answer(answer_fd: int, answer: dict[str, Any]) -> None:
    """Kill what the lesson started, write the one answer line, and leave at once."""
    try:
        started = _kill_children()
    except BaseException:  # the answer must still go out; the server's killpg remains
        started = False
    if _forked:
        answer = {"error": "forked a process at import (os.fork)"}
    elif started:
        answer = {"error": "started a process at import"}
    try:
        line = json.dumps(answer, ensure_ascii=True, allow_nan=False)
    except BaseException as exc:  # e.g. a lesson object whose __str__ raises
        line = json.dumps({"error": f"could not describe: {type(exc).__name__}"})
    # One line: the registry reads up to the newline and does not wait for end-of-file, which a
    # child the lesson forked would hold open.
    _write_all(answer_fd, line.encode("ascii") + b"\n")
    # Not sys.exit: non-daemon threads the lesson started would keep this process alive.
    os._exit(0)


def main(argv: list[str]) -> None:
    """Describe ``argv[1]`` on the real stdout, then leave at once, whatever the lesson started."""
    # A file that hangs at import must not outlive a server that dies while it waits for us.
    die_with_parent()
    if parent_gone():
        os._exit(PARENT_GONE_EXIT)
    answer_fd = os.dup(1)
    # At the fd level, so prints, C extensions and child processes all land on stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.register_at_fork(after_in_parent=lambda: _forked.append(1))
    _become_subreaper()
    try:
        answer = _describe(Path(argv[1])) if len(argv) == 2 else {"error": "usage: describe PATH"}
        if "error" in answer:
            answer = {"error": _safe(answer["error"])}
        else:
            answer["exercises"] = read_exercises(Path(argv[1]))
    except BaseException as exc:
        answer = {"error": f"could not describe: {type(exc).__name__}"}
    _answer(answer_fd, answer)


if __name__ == "__main__":
    main(sys.argv)
