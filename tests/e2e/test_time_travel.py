"""Time travel in a real browser: scrub a finished run, share a moment, and a view that never lies
(crashed threads, a deadlock's start and its break, the table in view after Run)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

VIEW = {"width": 1280, "height": 720}


def first_instant(server, run_id: str, predicate) -> float:
    """The first instant, stepping through the run's events, whose state matches ``predicate``."""
    events = server.events(run_id)
    start = events[0]["t"]
    for event in events:
        t = round(event["t"] - start + 0.0005, 4)
        state = server.get_json(f"/api/runs/{run_id}/state?t={t}")
        if predicate(state):
            return state["t"]
    raise AssertionError("no such instant in the run")


def unlocked_running(state) -> bool:
    return any(th["name"].startswith("Unlocked-") and th["state"] == "running" for th in state["threads"])


def test_scrub_a_finished_lesson_05_back_to_an_unlocked_thread_running(page, server, console_errors,
                                                                        screenshot):
    run_id = server.start("05")
    assert server.wait_status(run_id, timeout=60)["status"] == "exited"
    t = first_instant(server, run_id, unlocked_running)
    page.set_viewport_size(VIEW)
    page.goto(f"{server.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("exited")
    expect(page.locator("#timeline svg")).to_be_visible()
    page.locator("#timebar .tb-slider").fill(f"{t:.6f}")
    expect(page.locator("#live")).to_have_attribute("data-shown", re.compile(r"\d"), timeout=15_000)
    rows = page.locator("#moment-body tr")
    expect(rows.filter(has_text=re.compile(r"Unlocked-\d")).filter(has_text="running").first).to_be_visible()
    expect(page.locator("#threads-body")).to_be_hidden()
    expect(page.locator("#timeline-cursor")).to_have_count(1)
    # Step with the keyboard: → moves to the next event, ← to the one before it.
    panes = page.locator("#live")
    expect(panes).to_have_attribute("data-shown", re.compile(r"\d"))
    shown = panes.get_attribute("data-shown")
    page.keyboard.press("ArrowRight")
    expect(panes).not_to_have_attribute("data-shown", shown)
    after = panes.get_attribute("data-shown")
    assert float(after) > float(shown)
    page.keyboard.press("ArrowLeft")
    expect(panes).not_to_have_attribute("data-shown", after)
    assert float(panes.get_attribute("data-shown")) < float(after), "the previous event, before it"
    share = page.locator("#timebar .tb-share")
    expect(share).to_have_attribute("href", re.compile(rf"/runs/{run_id}\?t=\d+\.\d+"))
    screenshot(page, "scrubbed-run")
    page.locator("#timebar .tb-live").click()
    expect(page.locator("#threads-body")).to_be_visible()
    assert console_errors == []


def test_a_shared_moment_and_the_state_api_agree(page, server, console_errors):
    run_id = server.start("05")
    server.wait_status(run_id, timeout=60)
    t = first_instant(server, run_id, unlocked_running)
    state = server.get_json(f"/api/runs/{run_id}/state?t={t}")
    page.goto(f"{server.url}/runs/{run_id}?t={t}")
    expect(page.locator("#moment-label")).to_contain_text(f"at {t:.4f} s")
    rows = page.locator("#moment-body tr")
    expect(rows).to_have_count(len(state["threads"]))
    for thread in state["threads"]:
        row = rows.filter(has=page.locator("td.name", has_text=re.compile(f"^{re.escape(thread['lane'])}$")))
        expect(row.locator(".state")).to_have_text(thread["state"])
    assert console_errors == []


def test_a_thread_that_raises_shows_crashed_and_the_status_warns(page, fault_server, console_errors):
    page.goto(f"{fault_server.url}/lessons/13")
    page.get_by_role("button", name="Run", exact=True).click()
    status = page.locator("#run-status")
    expect(status).to_contain_text("exited 0 · 1 thread crashed")
    expect(status).to_have_class(re.compile(r"\bwarning\b"))
    crashed = page.locator("#threads-body tr.crashed")
    expect(crashed).to_have_count(1)
    expect(crashed.locator(".state")).to_have_text("crashed")
    expect(crashed.locator(".exc")).to_have_text("IndexError")
    assert [e for e in console_errors if "Failed to load resource" not in e] == []


def test_lesson_09_shows_when_the_cycle_formed_and_how_it_broke(page, server, console_errors):
    page.goto(server.url + "/lessons/09")
    page.select_option("#p-strategy", "deadlock")
    page.get_by_role("button", name="Run", exact=True).click()
    banner = page.locator("#deadlock .deadlock-banner")
    expect(banner).to_contain_text("Deadlock broken", timeout=20_000)
    expect(banner).to_contain_text(re.compile(r"formed at \d+\.\d\d s; broken at \d+\.\d\d s: \S+ gave up"))
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=20_000)
    assert console_errors == []


def test_at_1280x720_the_status_table_and_timeline_are_in_view_after_run(page, server, console_errors):
    page.set_viewport_size(VIEW)
    page.goto(server.url + "/lessons/03")
    page.fill("#p-duration", "30")
    run = page.get_by_role("button", name="Run", exact=True)
    run.scroll_into_view_if_needed()  # the form sits below the explanation
    run.click()
    expect(page.locator("table#threads tbody tr td.name", has_text="Consumer-1")).to_be_visible()
    for selector in ("#run-status", "table#threads", "#timeline"):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + min(box["height"], 60) <= VIEW["height"], selector
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text(re.compile("stopped|exited"), timeout=10_000)
    assert console_errors == []
