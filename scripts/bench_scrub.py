#!/usr/bin/env python3
"""Benchmark of time travel in Chromium: how long one step (→) takes, from the key to the panes.

    .venv/bin/python scripts/bench_scrub.py            # 60 steps over a finished lesson-05 run
    .venv/bin/python scripts/bench_scrub.py --steps 20

A live server on the project's lessons runs lesson 05 once; its page (``/runs/<id>``) is opened in
Debian's Chromium and scrubbed to its start, then stepped event by event with the → key. Each step
is timed in the page (``performance.now()`` from the key press until ``#live[data-shown]`` names
the new instant, i.e. the request went out, the moment came back and its rows, banner and source
markers are in place). The figure is the median and p99 over the steps; the target is < 100 ms.
The baseline, measured in the same run, is the same page's time for a websocket-free round trip
to the server (``fetch`` of /api/runs/<id>): what any step costs at least.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_stream import Report, load, pct, progress  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.conftest import LiveServer  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Evaluated through the DevTools protocol, which the page's CSP does not apply to.
STEP = """() => new Promise((resolve) => {
  const live = document.getElementById("live"), old = live.dataset.shown, t0 = performance.now();
  const watch = new MutationObserver(() => {
    if (live.dataset.shown !== old) { watch.disconnect(); resolve(performance.now() - t0); }
  });
  watch.observe(live, {attributes: true, attributeFilter: ["data-shown"]});
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
  setTimeout(() => { watch.disconnect(); resolve(-1); }, 5000);
})"""
ROUND_TRIP = """(url) => { const t0 = performance.now();
  return fetch(url).then((r) => r.text()).then(() => performance.now() - t0); }"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="threadlab-bench-scrub-"))
    progress(f"bench_scrub: {args.steps} steps; Chromium {CHROMIUM}; load {load()}")
    server = LiveServer(tmp)
    try:
        run_id = server.start("05")
        server.wait_status(run_id, timeout=60)
        events = len(server.events(run_id))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{server.url}/runs/{run_id}?t=0")
            page.wait_for_selector("#live[data-shown]")
            steps = [page.evaluate(STEP) for _ in range(args.steps)]
            trips = [page.evaluate(ROUND_TRIP, f"/api/runs/{run_id}") for _ in range(args.steps)]
            browser.close()
        done = [s for s in steps if s >= 0]
        report.add("12", f"one step (→ key to panes) over a {events:,}-event run, p50 / p99",
                   f"{statistics.median(done):.1f} / {pct(done, 99):.1f} ms",
                   f"{statistics.median(trips):.1f} ms a bare round trip", "< 100 ms",
                   len(done) == len(steps) and pct(done, 99) < 100)
        report.note(f"steps that did not land in 5 s: {len(steps) - len(done)}; load {load()}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report.print(f"bench_scrub, {time.strftime('%Y-%m-%d %H:%M')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
