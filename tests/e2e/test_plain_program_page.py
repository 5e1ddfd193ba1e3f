"""Plain programs in Chromium: listed on the index, an arguments field instead of parameters, and
a deadlock between two plain locks caught live, on a lesson page and on a watched program's run page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, LiveServer
from tests.e2e.conftest import SHOTS

PLAIN = ROOT / "tests" / "fixtures" / "plain_programs"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("plain-e2e"), "--lessons-dir", str(PLAIN))
    yield live
    live.stop()


def _deadlock_caught(page) -> None:
    banner = page.locator("#deadlock .deadlock-banner")
    expect(banner).to_contain_text("Deadlock", timeout=10_000)
    for name in ("Left", "Right", "lock_a", "lock_b"):
        expect(banner).to_contain_text(name)
    for name in ("Left", "Right"):
        expect(page.locator("table#threads tbody tr", has_text=name)).to_have_count(1)


def test_the_index_lists_the_programs(page, plain, console_errors):
    page.goto(plain.url + "/")
    for title in ("Deadlock: two threads take two plain locks", "Plain arguments: prints what it was given"):
        expect(page.get_by_text(title).first).to_be_visible()
    assert console_errors == []


def test_a_plain_program_page_runs_with_arguments_and_catches_its_deadlock(page, plain, console_errors,
                                                                          screenshot):
    page.goto(plain.url + "/lessons/30")
    field = page.locator("#p-args")
    expect(field).to_be_visible()
    expect(page.locator("#run-form")).to_contain_text("no shell runs them")
    field.fill("one 'two words'")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=20_000)
    expect(page.locator("table#log")).to_contain_text("args: ['one', 'two words']")

    page.goto(plain.url + "/lessons/34")
    expect(page.locator("#p-args")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    _deadlock_caught(page)
    screenshot(page, "plain-34-deadlock")
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=20_000)
    assert console_errors == []


def test_a_program_by_path_has_a_run_page_with_its_source(page, plain, console_errors):
    # What ``threadlab watch 34_deadlock.py`` opens: a program from outside the lessons folder.
    page.set_viewport_size({"width": 1280, "height": 720})
    code, body = plain.post_json("/runs", {"program": str(PLAIN / "34_deadlock.py"), "args": []})
    assert code == 201, body
    page.goto(plain.url + body["url"])
    _deadlock_caught(page)
    expect(page.locator("h1")).to_contain_text("Deadlock: two threads take two plain locks")
    expect(page.locator("#source")).to_contain_text("lock_a = threading.Lock()")
    # The viewport only (1280×720, what docs/screenshots/watch-deadlock.png shows), not the full page.
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "watch-deadlock.png"))
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=20_000)
    assert console_errors == []
