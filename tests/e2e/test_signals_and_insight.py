"""Buttons for signals, the deadlock banner and the threads-on-source view, in Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_sigint_button_ends_lesson_10_cleanly(page, server, console_errors):
    page.goto(server.url + "/lessons/10")
    for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()
    page.fill("#p-duration", "60")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text("running")
    expect(page.locator("table#threads tbody tr", has_text="Worker-1")).to_have_count(1)
    page.get_by_role("button", name="SIGINT", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=10_000)
    expect(page.locator("table#log")).to_contain_text("SIGINT")
    expect(page.locator("#result")).to_contain_text("ended_by")
    assert console_errors == []


def test_lesson_09_deadlock_banner_and_source_marks(page, server, console_errors, screenshot):
    page.goto(server.url + "/lessons/09")
    page.select_option("#p-strategy", "deadlock")
    page.get_by_role("button", name="Run", exact=True).click()
    banner = page.locator("#deadlock .deadlock-banner")
    expect(banner).to_contain_text("Deadlock detected", timeout=10_000)
    expect(banner).to_contain_text(re.compile("Transfer-AB.*waits for"))
    expect(banner.locator("svg.cycle")).to_be_visible()
    marks = page.locator("#source .thread-mark")
    expect(marks.filter(has_text="Transfer-AB")).to_have_count(1)
    screenshot(page, "lesson09-deadlock-page")
    screenshot(banner, "lesson09-deadlock-banner")
    screenshot(page.locator("#source"), "lesson09-source-with-threads")
    screenshot(page.locator("table#threads"), "lesson09-thread-table")
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=20_000)
    expect(page.locator("#timeline svg .lane").first).to_be_visible()
    screenshot(page.locator("#timeline"), "lesson09-timeline")
    assert console_errors == []
