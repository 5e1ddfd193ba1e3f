"""A shared moment marks its place in the log: ``/runs/<id>?t=`` opens the run at that instant with
the log row of that instant highlighted and scrolled into the log's view, and scrubbing moves the
mark (issue 12: "the log position shows the chosen instant")."""

from __future__ import annotations

import re

from playwright.sync_api import expect

VIEW = {"width": 1280, "height": 720}


def log_instants(server, run_id: str) -> list[tuple[float, int]]:
    """(seconds from the run's start, seq) of each log event, in order."""
    events = server.events(run_id)
    start = events[0]["t"]
    return [(event["t"] - start, event["seq"]) for event in events
            if event.get("kind") == "log" and isinstance(event.get("seq"), int)]


def expect_marked(page, seq: int) -> None:
    """Exactly the row of ``seq`` is marked, and it is inside the log's visible box."""
    marked = page.locator("#log-body tr.at-moment")
    expect(marked).to_have_count(1)
    expect(marked).to_have_attribute("data-seq", str(seq))
    inside = page.evaluate("""() => {
      const row = document.querySelector('#log-body tr.at-moment').getBoundingClientRect();
      const box = document.getElementById('log-scroll').getBoundingClientRect();
      return row.top >= box.top && row.bottom <= box.bottom;
    }""")
    assert inside, "the marked row is scrolled out of the log's view"


def test_a_shared_moment_marks_and_shows_its_log_row_and_scrubbing_moves_the_mark(page, server,
                                                                                  console_errors):
    # Lesson 06 logs about 70 rows: more than the log's box shows at once.
    run_id = server.start("06")
    assert server.wait_status(run_id, timeout=60)["status"] == "exited"
    instants = log_instants(server, run_id)
    assert len(instants) >= 30, f"too few log rows to scroll: {len(instants)}"
    # A moment a third of the way in: neither the top nor the end of the log (where it opens).
    t, _ = instants[len(instants) // 3]
    t = round(t + 0.00005, 6)
    seq = server.get_json(f"/api/runs/{run_id}/state?t={t}")["log_seq"]
    assert isinstance(seq, int)
    page.set_viewport_size(VIEW)
    page.goto(f"{server.url}/runs/{run_id}?t={t}")
    expect(page.locator("#live")).to_have_attribute("data-shown", re.compile(r"\d"), timeout=15_000)
    expect(page.locator(f'#log-body tr[data-seq="{instants[-1][1]}"]')).to_have_count(1)  # history in
    expect_marked(page, seq)
    top = page.evaluate("document.getElementById('log-scroll').scrollTop")
    assert top > 0, "the log did not scroll to the moment"
    # Scrubbing to another instant moves the one mark there.
    later, _ = instants[2 * len(instants) // 3]
    later = round(later + 0.00005, 6)
    seq_later = server.get_json(f"/api/runs/{run_id}/state?t={later}")["log_seq"]
    assert seq_later != seq
    page.locator("#timebar .tb-slider").fill(f"{later:.6f}")
    expect(page.locator("#moment-label")).to_contain_text(f"at {later:.4f} s")
    expect_marked(page, seq_later)
    # Back to live: no mark.
    page.locator("#timebar .tb-live").click()
    expect(page.locator("#log-body tr.at-moment")).to_have_count(0)
    assert console_errors == []
