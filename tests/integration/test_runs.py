"""Server and real worker processes: start, stream, stop, persist, replay."""

from __future__ import annotations

import time

import pytest

from tests.live_helpers import ws_json_events


def test_lesson_03_streams_and_ends_exited(server):
    run_id = server.start("03", producers=2, consumers=3, duration=1)
    events = ws_json_events(server, run_id)
    assert [e["seq"] for e in events] == list(range(len(events))), "gapless seq"
    run = server.get_json(f"/api/runs/{run_id}")
    assert (run["status"], run["exit_code"]) == ("exited", 0)
    assert any(e["kind"] == "log" for e in events)
    names = {t["name"] for e in events if e["kind"] == "threads" for t in e["threads"]}
    assert {"MainThread", "Producer-1", "Producer-2", "Consumer-1", "Consumer-2", "Consumer-3"} <= names
    result = [e for e in events if e["kind"] == "result"][-1]["values"]
    assert result["produced"] == result["consumed"] > 0 and result["left"] == 0
    statuses = [e["status"] for e in events if e["kind"] == "status"]
    assert statuses == ["starting", "running", "exited"]


def test_events_are_persisted_and_replayed_after_the_run(server):
    run_id = server.start("03", duration=0.3)
    server.wait_status(run_id)
    from_ws = ws_json_events(server, run_id)
    from_http = server.events(run_id)
    assert from_ws == from_http and from_http[-1]["kind"] == "status"
    assert server.events(run_id, after=len(from_http) - 3) == from_http[-2:]
    listed = server.get_json("/api/runs")
    assert listed[0]["started"] >= listed[-1]["started"] and run_id in {r["id"] for r in listed}


def test_stop_ends_a_long_run_gracefully(server):
    run_id = server.start("03", duration=120)
    server.wait_for_event(run_id, lambda e: e["kind"] == "log")
    started = time.monotonic()
    status, body = server.post_json(f"/runs/{run_id}/stop", {})
    assert status == 202
    run = server.wait_status(run_id, timeout=10)
    assert run["status"] == "stopped" and time.monotonic() - started < 3
    result = [e for e in server.events(run_id) if e["kind"] == "result"]
    assert result and result[0]["values"]["left"] == 0, "the lesson wound down and drained its queue"
    assert server.post_json(f"/runs/{run_id}/stop", {})[0] == 409


def test_dump_writes_a_stacks_event_for_every_thread(server):
    run_id = server.start("03", duration=120, producers=2, consumers=2)
    server.wait_for_event(run_id, lambda e: e["kind"] == "threads" and len(e["threads"]) == 5)
    assert server.post_json(f"/runs/{run_id}/dump", {})[0] == 202
    stacks = server.wait_for_event(run_id, lambda e: e["kind"] == "stacks")
    names = {t["name"] for t in stacks["threads"]}
    assert names == {"MainThread", "Producer-1", "Producer-2", "Consumer-1", "Consumer-2"}
    assert all(t["frames"] and t["frames"][-1]["line"] for t in stacks["threads"])
    snapshots = [e for e in server.events(run_id) if e["kind"] == "threads"]
    assert all(isinstance(t["cpu_s"], float) for t in snapshots[-1]["threads"])
    server.post_json(f"/runs/{run_id}/stop", {})
    server.wait_status(run_id)


@pytest.mark.parametrize("params, field", [
    ({"producers": 0}, "producers"),
    ({"producers": 17}, "producers"),
    ({"producers": "two"}, "producers"),
    ({"producers": True}, "producers"),
    ({"duration": "nan"}, "duration"),
    ({"duration": ""}, "duration"),
    ({"queue_size": "9" * 40}, "queue_size"),
    ({"nonsense": 1}, "nonsense"),
])
def test_bad_params_get_400_naming_the_field_and_start_nothing(server, params, field):
    before = len(server.get_json("/api/runs"))
    status, body = server.post_json("/runs", {"lesson": "03", "params": params})
    assert status == 400 and body["field"] == field
    assert len(server.get_json("/api/runs")) == before


def test_unknown_lesson_and_run_ids(server):
    assert server.post_json("/runs", {"lesson": "../../etc/passwd", "params": {}})[0] == 400
    assert server.request("GET", "/api/runs/nope")[0] == 404
    assert server.request("GET", "/runs/nope")[0] == 404
    assert server.post_json("/runs/nope/stop", {})[0] == 404


def test_lesson_ids_by_number_or_full_name(server):
    lessons = server.get_json("/api/lessons")
    assert [lesson["number"] for lesson in lessons] == [f"{n:02d}" for n in range(1, 15)]
    p03 = next(lesson for lesson in lessons if lesson["number"] == "03")
    assert p03["id"] == "03_producer_consumer"
    producers = next(p for p in p03["params"] if p["name"] == "producers")
    assert producers == {"name": "producers", "flag": "--producers", "type": "int", "default": 2,
                         "help": producers["help"], "choices": None, "min": 1, "max": 16}
    assert not any(p["name"] in ("log_format", "verbose") for p in p03["params"])
    run_id = server.start("03_producer_consumer", duration=0.2)
    assert server.wait_status(run_id)["lesson"] == "03_producer_consumer"


def test_timeline_svg_has_a_lane_per_thread(server):
    run_id = server.start("03", duration=0.5, producers=2, consumers=2)
    server.wait_status(run_id)
    status, body, headers = server.request("GET", f"/runs/{run_id}/timeline")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    svg = body.decode()
    for name in ("MainThread", "Producer-1", "Producer-2", "Consumer-1", "Consumer-2"):
        assert f'data-thread="{name}"' in svg


def test_lesson_09_deadlock_is_seen_through_the_api(server):
    run_id = server.start("09", strategy="deadlock")
    run = server.wait_status(run_id, timeout=30)
    assert run["status"] == "exited"
    events = server.events(run_id)
    formed, broken = [e for e in events if e["kind"] == "deadlock"]
    assert (formed["op"], broken["op"]) == ("formed", "broken")
    assert len(formed["cycle"]) == 2
    assert all(entry["holds"] and entry["waits_for"] for entry in formed["cycle"])
    # When it formed, and how it broke: the transfer that gave up, named.
    assert formed["since"] <= formed["t"] and broken["since"] == formed["since"]
    assert "gave up" in broken["how"] and any(c["thread"] in broken["how"] for c in formed["cycle"])
    state = server.get_json(f"/api/runs/{run_id}/state?t={formed['t'] - events[0]['t'] + 0.01:.3f}")
    assert state["deadlock"] and {c["thread"] for c in state["deadlock"]["cycle"]} == \
        {c["thread"] for c in formed["cycle"]}
    assert "broken_at" not in state["deadlock"], "before the break, the outcome is not known yet"
    after = server.get_json(f"/api/runs/{run_id}/state?t={broken['t'] - events[0]['t'] + 0.01:.3f}")
    # After it, the banner says when and how it broke (as the live one does), no longer a deadlock.
    assert after["deadlock"]["how"] == broken["how"]
    assert after["deadlock"]["broken_at"] == pytest.approx(broken["t"] - events[0]["t"], abs=0.002)
    rows = [row for e in events if e["kind"] == "threads" for row in e["threads"]]
    assert any(row["state"] == "waiting-lock" for row in rows)
    assert any(row["holds"] for row in rows)
    svg = server.request("GET", f"/runs/{run_id}/timeline")[1].decode()
    for name in {row["name"] for row in rows}:
        assert f'data-thread="{name}"' in svg, name
