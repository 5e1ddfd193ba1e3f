"""A learner's path through the dashboard, in a real browser against a live server."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_index_lists_every_lesson(page, server, console_errors):
    page.goto(server.url + "/")
    expect(page.locator(".lesson-card")).to_have_count(14)
    expect(page.get_by_role("link", name=re.compile("Producer.consumer"))).to_be_visible()
    assert console_errors == []


def test_run_lesson_03_live_and_stop(page, server, console_errors, screenshot):
    page.goto(server.url + "/")
    page.get_by_role("link", name=re.compile("Producer.consumer")).click()
    expect(page.locator("form#run-form")).to_be_visible()
    page.fill("#p-producers", "3")
    page.fill("#p-duration", "60")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text("running")
    expect(page.locator("table#log tbody tr").first).to_be_visible()
    threads = page.locator("table#threads tbody tr")
    for name in ("Producer-1", "Producer-2", "Producer-3", "Consumer-1"):
        expect(threads.filter(has=page.locator("td.name", has_text=name))).to_have_count(1)
    expect(page.locator("#source .thread-mark").first).to_be_visible()
    screenshot(page, "lesson03-running")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text(re.compile("stopped|exited"), timeout=10_000)
    expect(page.locator("#result")).to_contain_text("produced")
    assert console_errors == []


def test_bad_parameter_shows_beside_its_field(page, server, console_errors):
    page.goto(server.url + "/lessons/03")
    page.fill("#p-producers", "0")
    page.get_by_role("button", name="Run", exact=True).click()
    error = page.locator("#error-producers")
    expect(error).to_contain_text("from 1 to 16")
    expect(page.locator("#run-status")).to_contain_text("idle")
    assert not [e for e in console_errors if "400" not in e]


def test_a_narrow_window_never_scrolls_sideways(page, server, console_errors, screenshot):
    # A learner with the lesson file beside the dashboard, or a phone: wide tables and the source
    # scroll inside their own boxes, the page itself fits the window.
    page.set_viewport_size({"width": 420, "height": 800})
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    for path in ("/", "/concepts", "/lessons/03"):
        page.goto(server.url + path)
        assert page.evaluate(overflow) == 0, path
    page.fill("#p-duration", "30")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("table#threads tbody tr td.name", has_text="Consumer-2")).to_be_visible()
    expect(page.locator("table#log tbody tr").first).to_be_visible()
    assert page.evaluate(overflow) == 0, "lesson page while running"
    screenshot(page, "lesson03-narrow")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text(re.compile("stopped|exited"), timeout=10_000)
    assert console_errors == []
