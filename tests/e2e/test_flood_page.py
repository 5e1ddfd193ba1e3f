"""A lesson that floods its output: the page stays bounded, shows the newest rows and counts the rest."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_flooding_run_keeps_the_log_bounded_and_counts_what_it_hides(page, fault_server, console_errors):
    run_id = fault_server.start("04", mb=20, newlines=True)  # ~230k short lines as fast as it can
    page.goto(f"{fault_server.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=60_000)
    expect(page.locator("#log-hidden")).to_contain_text(re.compile(r"\d+ rows not drawn"), timeout=20_000)
    rows = page.locator("table#log tbody tr")
    assert 0 < rows.count() <= 1000
    expect(rows.last).to_contain_text("flood done")  # the newest rows are the ones drawn
    hidden = int(re.search(r"(\d+) rows", page.locator("#log-hidden").inner_text()).group(1))
    total = sum(1 for e in fault_server.events(run_id) if e["kind"] in ("log", "stdout", "stderr"))
    assert hidden + rows.count() == total
    assert console_errors == []
