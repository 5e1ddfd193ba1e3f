"""The describe probe (app/probe.py, lessons/kit/describe.py): no process a lesson file starts at
import outlives it, and one file that hangs does not hold up the listing of the folder."""

from __future__ import annotations

import re
import sys
import uuid

import psutil
import pytest

from app import create_app, defaults
from app.registry import Registry, load_lessons

GOOD = {"Host": "127.0.0.1:8765"}
PARSER = "\n\ndef build_parser():\n    import argparse\n\n    return argparse.ArgumentParser()\n"
# Each starts a process at import that would sleep a minute; {cmd} names it uniquely.
STARTERS = {
    "60_popen": "import subprocess\nsubprocess.Popen({cmd})\n",
    "61_own_session": "import subprocess\nsubprocess.Popen({cmd}, start_new_session=True)\n",
    # A shell that leaves a setsid'd grandchild behind and exits, then an import that never ends.
    "62_daemon_then_hang": "import shlex, subprocess, time\n"
                           "subprocess.Popen(['sh', '-c', 'setsid ' + shlex.join({cmd}) + ' &'])\n"
                           "time.sleep(120)\n",
}


def _leftovers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if marker in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.fixture
def marker():
    marker = f"threadlab-probe-test-{uuid.uuid4().hex}"
    yield marker
    for proc in _leftovers(marker):  # a failed test must not leave them either
        proc.kill()


def test_processes_started_at_import_are_killed_and_reported(tmp_path, marker):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    cmd = [sys.executable, "-c", "import time; time.sleep(60)", marker]
    for stem, body in STARTERS.items():
        (lessons / f"{stem}.py").write_text(f'"""{stem}."""\n' + body.format(cmd=cmd) + PARSER)
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "LESSONS_DIR": str(lessons), "PORT": 8765})
    try:
        index = app.test_client().get("/", headers=GOOD).get_data(as_text=True)
    finally:
        app.extensions["threadlab.runs"].shutdown(timeout=5)
    reasons = re.findall(r'<p class="error">Could not read this file: ([^<]+)</p>', index)
    assert len(reasons) == len(STARTERS), index
    assert reasons[:2] == ["started a process at import"] * 2  # the describer saw and killed them
    # No answer at all: the server stopped the describer and killed what it had adopted.
    assert reasons[2] == ("started a process at import (and gave no answer in "
                          f"{defaults.METADATA_TIMEOUT:g} s)")
    assert _leftovers(marker) == []


def test_a_hanging_file_is_pending_past_the_deadline_then_reported(tmp_path):
    (tmp_path / "70_good.py").write_text('"""Good."""\nprint(1)\n')
    hangs = tmp_path / "71_hangs.py"
    hangs.write_text('"""Hangs."""\nimport time\ntime.sleep(120)\n' + PARSER)
    registry = Registry(tmp_path)
    _, pending = load_lessons(sorted(tmp_path.glob("*.py")), wait=0.05)
    assert pending.pending and not pending.available
    assert pending.error == "did not finish describing itself in 0.05 s"
    # The probe went on without the listing: a listing that waits long enough gets its answer.
    _, done = load_lessons([tmp_path / "70_good.py", hangs], wait=30)
    assert not done.pending and done.error.startswith("hung at import (no answer in")
    lessons = registry.all()
    assert [lesson.pending for lesson in lessons] == [False, False]
    assert lessons[1].error == done.error
