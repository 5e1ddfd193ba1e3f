"""Issue 15's docs page, "Watch your own program": linked from the README, every file it links or
runs exists, its screenshot is the deadlock view tests/e2e/test_plain_program_page.py takes, and
its example script is one the tests run through all three ways in."""

from __future__ import annotations

import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "watch-your-program.md"


def test_the_page_is_linked_from_the_readme_and_titled():
    assert "(docs/watch-your-program.md)" in (ROOT / "README.md").read_text()
    assert PAGE.read_text().startswith("# Watch your own program\n")


def test_every_link_and_command_of_the_page_names_a_file_that_exists():
    text = PAGE.read_text()
    links = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert "screenshots/watch-deadlock.png" in links
    for link in links:
        if not link.startswith("http"):
            assert (PAGE.parent / link).resolve().exists(), link
    for path in set(re.findall(r"(?:watch|--run) (tests/\S+\.py)", text)):
        assert (ROOT / path).is_file(), path


def test_the_screenshot_is_the_deadlock_view_at_its_viewport_size():
    shot = (ROOT / "docs" / "screenshots" / "watch-deadlock.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot[16:24])
    assert (width, height) == (1280, 720)  # what test_plain_program_page.py writes
    e2e = (ROOT / "tests" / "e2e" / "test_plain_program_page.py").read_text()
    assert 'SHOTS / "watch-deadlock.png"' in e2e, "the screenshot is kept up to date by a test"


def test_the_example_is_a_classic_plain_script_the_tests_run_every_way_in():
    example = ROOT / "tests" / "fixtures" / "plain_programs" / "34_deadlock.py"
    source = example.read_text()
    assert "build_parser" not in source and "lessons" not in source, "plain: no kit, no parser"
    assert "lock_a = threading.Lock()" in source and "lock_b = threading.Lock()" in source
    integration = (ROOT / "tests" / "integration" / "test_plain_programs.py").read_text()
    assert '"34_deadlock"' in integration  # POST /runs with args, deadlock banner
    assert "plain_programs/34_deadlock.py" in integration  # scripts/cli.py --run and watch
