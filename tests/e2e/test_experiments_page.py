"""Experiments from lesson 05's page: Run xN with a progress bar and a plot, then a sweep."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_run_ten_times_then_sweep(page, server, console_errors, screenshot):
    page.goto(server.url + "/lessons/05")
    page.fill("#p-threads", "2")
    page.fill("#p-increments", "100")  # short runs: the parameters come from the run form
    page.fill("#x-repeat", "10")
    page.get_by_role("button", name="Run ×N").click()
    expect(page).to_have_url(re.compile(r"/experiments/[0-9a-f]{24}$"))
    progress = page.locator("#experiment-progress")
    expect(progress).to_have_attribute("aria-valuemax", "10")
    expect(progress).to_have_attribute("aria-valuenow", "10", timeout=60_000)
    expect(page.locator("#experiment-status")).to_contain_text("done")
    expect(page.locator("#plot-lost_updates svg .mark")).to_have_count(10)
    expect(page.locator("#plot-lost_updates .headline")).to_contain_text("lost_updates > 0 in 10 of 10")
    href = page.locator("#plot-lost_updates svg a").first.get_attribute("href")
    assert re.fullmatch(r"/runs/[0-9a-f]{24}", href)
    screenshot(page, "experiment-repeat")

    page.goto(server.url + "/lessons/05")
    page.fill("#p-threads", "2")
    page.fill("#p-increments", "100")
    page.fill("#x-repeat", "3")
    page.select_option("#x-sweep-name", "switch_interval")
    page.fill("#x-sweep-values", "0, 0.5")
    page.get_by_role("button", name="Sweep").click()
    expect(page.locator("#experiment-status")).to_contain_text("done", timeout=60_000)
    plot = page.locator("#plot-lost_updates svg")
    expect(plot.locator("g.group")).to_have_count(2)
    expect(plot.locator(".mark")).to_have_count(6)
    expect(plot).to_contain_text("switch_interval=0.5")
    expect(page.locator("#plot-lost_updates .headline")).to_contain_text("0 of 3 (switch_interval=0.5)")
    screenshot(page, "experiment-sweep")
    assert console_errors == []


def test_a_bad_sweep_value_is_shown_in_the_form(page, server, console_errors):
    page.goto(server.url + "/lessons/05")
    page.select_option("#x-sweep-name", "threads")
    page.fill("#x-sweep-values", "2, 99")
    page.get_by_role("button", name="Sweep").click()
    expect(page.locator("#experiment-error")).to_contain_text("sweep.values")
    expect(page).to_have_url(re.compile(r"/lessons/05$"))
    assert not [e for e in console_errors if "400" not in e]
