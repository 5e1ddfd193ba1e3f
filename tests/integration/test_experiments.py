"""Experiments against a live server: real runs of lesson 05, stats checked against their events."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import statistics
import time

import psutil

from tests.conftest import LiveServer

QUICK = {"threads": 2, "increments": 100}  # a run of about half a second
FINAL = ("exited", "failed", "stopped", "killed", "timeout", "interrupted")


def wait_done(server, experiment_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = server.get_json(f"/api/experiments/{experiment_id}")
        if data["status"] != "running":
            return data
        time.sleep(0.2)
    raise AssertionError(f"experiment still running after {timeout}s: {data['progress']}")


def start(server, **body) -> str:
    status, answer = server.post_json("/experiments", {"lesson": "05", "params": QUICK, **body})
    assert status == 201, answer
    return answer["id"]


def own_result(server, run_id: str) -> dict:
    return [e for e in server.events(run_id) if e.get("kind") == "result"][-1]["values"]


def test_repeat_and_sweep_stats_match_the_runs_own_results(server):
    plain = start(server, repeat=6)
    sweep = start(server, repeat=3, sweep={"name": "switch_interval", "values": [0, 0.5]})
    for experiment_id, groups in ((plain, ["all"]), (sweep, ["0.0", "0.5"])):
        data = wait_done(server, experiment_id)
        assert data["status"] == "done" and len(data["runs"]) == 6
        assert data["progress"]["done"] == 6 and data["progress"]["queued"] == 0
        for group in groups:
            ids = [r["id"] for r in data["runs"] if (str(r["sweep"]) if r["sweep"] is not None
                                                      else "all") == group]
            lost = [own_result(server, run_id)["lost_updates"] for run_id in ids]
            got = data["stats"]["lost_updates"][group]
            assert (got["n"], got["min"], got["median"], got["max"]) == (
                len(lost), min(lost), statistics.median(lost), max(lost))
            assert sum(got["counts"]) == len(lost)
            assert got["point"] == {"rule": "lost_updates > 0", "of": len(lost),
                                    "hits": sum(v > 0 for v in lost)}
        status, body, _ = server.request("GET", f"/api/experiments/{experiment_id}.csv")
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert status == 200 and len(rows) == 6
        assert {row["run_id"] for row in rows} == {r["id"] for r in data["runs"]}
    swept = server.get_json(f"/api/experiments/{sweep}")["stats"]["lost_updates"]
    assert swept["0.0"]["point"]["hits"] == 3, "sleep(0) in the gap: the race shows every run"
    assert swept["0.5"]["point"]["hits"] == 0, "a 0.5 s interval never switches inside the gap"


def test_stats_keep_the_lessons_order_and_the_page_leads_with_its_key_figure(server):
    data_id = start(server, repeat=2)
    data = wait_done(server, data_id)
    status, body, _ = server.request("GET", f"/api/experiments/{data_id}")
    answer = json.loads(body)  # a dict keeps the order the server wrote its keys in
    emitted = list(own_result(server, data["runs"][0]["id"]))
    assert status == 200 and emitted.index("lost_updates") > 0, emitted
    assert list(answer["stats"]) == emitted, "the lesson's order, not sorted"
    assert list(answer["runs"][0]["values"]) == emitted
    status, page, _ = server.request("GET", f"/experiments/{data_id}")
    figures = [line.split('id="plot-')[1].split('"')[0] for line in page.decode().splitlines()
               if 'class="plot" id="plot-' in line]
    assert status == 200 and figures[0] == "lost_updates", figures
    assert sorted(figures) == sorted(emitted)


def test_invalid_input_names_the_field_and_starts_nothing(server):
    before = len(server.get_json("/api/runs"))
    for body, field in [
        ({"repeat": 0}, "repeat"),
        ({"repeat": 201}, "repeat"),
        ({"repeat": "x"}, "repeat"),
        ({"sweep": {"name": "nope", "values": [1]}}, "sweep.name"),
        ({"sweep": {"name": "threads", "values": [2, 1]}}, "sweep.values"),
        ({"sweep": {"name": "threads", "values": list(range(2, 14))}}, "sweep.values"),
        ({"repeat": 100, "sweep": {"name": "threads", "values": [2, 3, 4]}}, "repeat"),
        ({"params": {"threads": 99}}, "threads"),
        ({"bogus": 1}, "bogus"),
    ]:
        status, answer = server.post_json("/experiments", {"lesson": "05", **body})
        assert (status, answer.get("field")) == (400, field), (body, answer)
    status, answer = server.post_json("/experiments", {"lesson": "99", "repeat": 2})
    assert (status, answer["field"]) == (400, "lesson")
    assert len(server.get_json("/api/runs")) == before


def test_cancel_stops_live_and_queued_runs(server):
    long_runs = {"threads": 2, "increments": 10_000, "switch_interval": 0.000001}
    status, answer = server.post_json("/experiments", {"lesson": "05", "params": long_runs, "repeat": 20})
    assert status == 201
    experiment_id = answer["id"]
    deadline = time.monotonic() + 20
    while server.get_json(f"/api/experiments/{experiment_id}")["progress"]["running"] == 0:
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.1)
    status, answer = server.post_json(f"/experiments/{experiment_id}/cancel", {})
    assert status == 202
    data = wait_done(server, experiment_id, timeout=30)
    assert data["status"] == "cancelled"
    started = [r for r in data["runs"] if r["id"]]
    assert started and len(started) < 20
    for slot in started:  # each ran to its end before the cancel, or was stopped by it
        assert server.get_json(f"/api/runs/{slot['id']}")["status"] == slot["status"]
        assert slot["status"] in ("exited", "stopped"), slot
    assert "stopped" in {slot["status"] for slot in started}, "a run live at the cancel was stopped"
    assert all(r["status"] == "cancelled" for r in data["runs"] if not r["id"])


def test_an_experiment_left_running_is_interrupted_after_a_restart(tmp_path):
    first = LiveServer(tmp_path)
    try:
        status, answer = first.post_json("/experiments", {
            "lesson": "05", "repeat": 30, "params": {"increments": 10_000, "switch_interval": 0.000001}})
        assert status == 201
        experiment_id = answer["id"]
        deadline = time.monotonic() + 20
        while first.get_json(f"/api/experiments/{experiment_id}")["progress"]["running"] == 0:
            assert time.monotonic() < deadline, "no run started"  # killed with runs in flight
            time.sleep(0.05)
    finally:  # no shutdown: SIGKILL to the server and its workers, so the file still says running
        server_tree = [first.proc.pid, *(p.pid for p in psutil.Process(first.proc.pid).children(
            recursive=True) if "--log-format" not in p.cmdline())]
        for pid in server_tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.proc.wait()
        first.stop()
    stored = json.loads((tmp_path / "experiments" / f"{experiment_id}.json").read_text())
    assert stored["status"] == "running"
    second = LiveServer(tmp_path)
    try:
        data = second.get_json(f"/api/experiments/{experiment_id}")
        assert data["status"] == "interrupted"
        assert not [r for r in data["runs"] if r["status"] in ("queued", "running", "starting")]
    finally:
        second.stop()
