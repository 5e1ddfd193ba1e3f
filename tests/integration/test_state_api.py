"""One instant of a run over HTTP: /api/runs/<id>/state?t=, the page's ?t=, and the timeline's ETag."""

import json

import pytest


@pytest.fixture(scope="module")
def run05(server):
    run_id = server.start("05", threads=2, increments=200)
    run = server.wait_status(run_id, timeout=60)
    assert run["status"] == "exited", run
    return run_id, server.events(run_id)


def test_a_thread_seen_running_is_running_at_that_instant(server, run05):
    run_id, events = run05
    first = events[0]["t"]
    seen = [(e["t"] - first, row) for e in events if e["kind"] == "threads"
            for row in e["threads"] if row["alive"] and row["state"] == "running"][:10]
    assert seen, "no snapshot showed a running thread"
    answers = []
    for t, row in seen:
        state = server.get_json(f"/api/runs/{run_id}/state?t={t:.6f}")
        assert state["t"] == pytest.approx(t, abs=1e-5)
        (mine,) = [th for th in state["threads"] if th["ident"] == row["ident"] and th["name"] == row["name"]]
        answers.append(mine["state"])
        assert set(mine) >= {"name", "lane", "ident", "state", "where", "line", "holds", "waiting_for",
                             "daemon", "exc"}
    # A traced wait may begin in the instant a sample was taken; most samples must agree.
    assert answers.count("running") >= len(answers) / 2, answers


def test_the_end_and_beyond_it_show_every_thread_finished(server, run05):
    run_id, events = run05
    end = server.get_json(f"/api/runs/{run_id}/state?t=99999")
    assert end["t"] == pytest.approx(events[-1]["t"] - events[0]["t"], abs=1e-3)
    assert end["threads"] and {th["state"] for th in end["threads"]} <= {"done", "crashed"}
    assert end["deadlock"] is None
    assert server.get_json(f"/api/runs/{run_id}/state?t=0")["t"] == 0


def test_the_page_and_the_state_take_the_same_t(server, run05):
    run_id, _ = run05
    assert server.get_json(f"/api/runs/{run_id}/state?t=0.25")["t"] == 0.25
    assert server.request("GET", f"/runs/{run_id}?t=0.25")[0] == 200
    assert server.request("GET", f"/runs/{run_id}")[0] == 200


@pytest.mark.parametrize("query", ["", "?t=", "?t=abc", "?t=nan", "?t=inf", "?t=-1"])
def test_a_bad_t_is_a_400_naming_t(server, run05, query):
    run_id, _ = run05
    status, body, _ = server.request("GET", f"/api/runs/{run_id}/state{query}")
    assert status == 400 and json.loads(body)["error"].startswith("t:")
    if query:
        assert server.request("GET", f"/runs/{run_id}{query}")[0] == (200 if query == "?t=" else 400)


def test_a_finished_runs_timeline_has_an_etag_and_answers_304(server, run05):
    run_id, _ = run05
    status, body, headers = server.request("GET", f"/runs/{run_id}/timeline")
    assert status == 200 and headers["ETag"] == f'"{run_id}-{len(server.events(run_id))}"'
    assert b"data-t0=" in body and b"data-lane=" in body
    status, body, _ = server.request("GET", f"/runs/{run_id}/timeline",
                                     headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    zoomed = server.request("GET", f"/runs/{run_id}/timeline?from=0.1&to=0.3")
    assert zoomed[0] == 200 and b'data-from="0.100"' in zoomed[1]
    assert server.request("GET", f"/runs/{run_id}/timeline?from=x")[0] == 400


def test_the_run_json_says_how_many_threads_crashed_and_why(server, run05):
    run_id, _ = run05
    run = server.get_json(f"/api/runs/{run_id}")
    assert run["crashed"] == 0 and run["why"] is None and run["status"] == "exited"
