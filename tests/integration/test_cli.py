"""The command line: ``scripts/cli.py --list`` / ``--run`` for scripts and CI, ``threadlab serve``'s
clear refusal of an address it cannot bind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

from tests.conftest import ROOT, free_port

CLI = [sys.executable, str(ROOT / "scripts" / "cli.py")]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_list_names_every_lesson_with_its_title():
    listed = run(*CLI, "--list")
    assert listed.returncode == 0, listed.stderr
    numbers = sorted(p.name[:2] for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    lines = listed.stdout.splitlines()
    assert [line[:2] for line in lines] == numbers
    assert any(line.startswith("03  Producer/consumer") for line in lines)


def test_run_passes_flags_through_and_prints_text_with_the_result():
    result = run(*CLI, "--run", "03", "--producers", "2", "--consumers", "4", "--duration", "0.5")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Result:" in output and "Consumer-4" in output and "Producer-2" in output
    assert not output.lstrip().startswith("{"), "text, not JSON, unless asked"
    result_block = output[output.index("Result:"):]
    numbers = dict(re.findall(r"^\s+(\w+)\s+= (\d+)$", result_block, re.M))
    assert numbers["produced"] == numbers["consumed"] != "0" and numbers["left"] == "0"


def test_run_returns_the_lessons_exit_code_and_refuses_unknown_lessons():
    bad_flag = run(*CLI, "--run", "05", "--threads", "1")  # below the lesson's minimum of 2
    assert bad_flag.returncode == 2 and "--threads" in bad_flag.stderr
    unknown = run(*CLI, "--run", "99")
    assert unknown.returncode == 2 and "no lesson '99'" in unknown.stderr


def test_serve_on_a_port_in_use_says_so_at_once(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run(sys.executable, "-m", "app.cli", "serve", "--port", str(port),
                     "--data-dir", str(tmp_path), timeout=20)
    assert result.returncode == 2  # gunicorn on its own would retry, then exit 1 with "Can't connect"
    assert f"port {port} is already in use" in result.stderr and f"--port {port + 1}" in result.stderr
    assert "open http" not in result.stdout  # no URL printed for a server that never started
