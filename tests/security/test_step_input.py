"""A step's thread and a schedule's thread names: anything unusable is a 400 naming the field,
never a 500 (Python calls "²" a digit, refuses int() of 5,000 digits, and cannot write a lone
surrogate out as UTF-8)."""

from __future__ import annotations

import json
import time

import pytest

from app import create_app
from tests.conftest import ROOT

LESSONS = ROOT / "tests" / "fixtures" / "step_lessons"
GOOD = {"Host": "127.0.0.1:8765"}
FINAL = ("exited", "failed", "stopped", "killed", "timeout")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("data")), "LESSONS_DIR": str(LESSONS),
                      "PORT": 8765})
    yield app.test_client()
    app.extensions["threadlab.runs"].shutdown(timeout=5)


@pytest.fixture(scope="module")
def held_run(client):
    answer = client.post("/runs", json={"lesson": "01", "params": {}, "step": True}, headers=GOOD)
    assert answer.status_code == 201
    yield answer.get_json()["id"]
    client.post(f"/runs/{answer.get_json()['id']}/step", json={"free": True}, headers=GOOD)


def raw_step(client, run_id: str, body: str):
    return client.post(f"/runs/{run_id}/step", data=body, content_type="application/json",
                       headers=GOOD)


@pytest.mark.parametrize("thread", ["9" * 5000, "0", str(2**64), 2**64, 0, -5, 1.5, "", "x" * 201,
                                    [], {}, None, True])
def test_an_unusable_thread_is_a_400_naming_it(client, held_run, thread):
    answer = client.post(f"/runs/{held_run}/step", json={"thread": thread}, headers=GOOD)
    assert (answer.status_code, answer.get_json()["field"]) == (400, "thread")


@pytest.mark.parametrize("thread", ["²", "٣", "-1", "1e3"])
def test_a_name_that_merely_looks_numeric_is_a_name_no_thread_has(client, held_run, thread):
    answer = client.post(f"/runs/{held_run}/step", json={"thread": thread}, headers=GOOD)
    assert answer.status_code == 409 and thread in answer.get_json()["error"]


def test_a_lone_surrogate_in_a_step_is_a_400(client, held_run):
    answer = raw_step(client, held_run, '{"thread": "A\\ud800"}')
    assert (answer.status_code, answer.get_json()["field"]) == (400, "thread")


def test_a_lone_surrogate_in_a_schedule_is_a_400_and_starts_nothing(client):
    before = len(client.get("/api/runs", headers=GOOD).get_json())
    body = '{"lesson": "01", "params": {}, "schedule": [{"thread": "\\udc80", "until": "line"}]}'
    answer = client.post("/runs", data=body, content_type="application/json", headers=GOOD)
    assert (answer.status_code, answer.get_json()["field"]) == (400, "schedule")
    assert len(client.get("/api/runs", headers=GOOD).get_json()) == before


def test_an_ident_as_ascii_digits_still_steps_that_thread(client):
    run_id = client.post("/runs", json={"lesson": "01", "params": {}, "step": True},
                         headers=GOOD).get_json()["id"]
    deadline = time.monotonic() + 20
    first = client.post(f"/runs/{run_id}/step", json={"thread": "MainThread", "until": "sync"},
                        headers=GOOD)  # main starts A
    assert first.status_code == 200, first.get_json()
    a = next(t for t in first.get_json()["paused"]["threads"] if t["name"] == "A")
    answer = client.post(f"/runs/{run_id}/step", json={"thread": str(a["ident"])}, headers=GOOD)
    assert answer.status_code == 200, answer.get_json()
    assert client.post(f"/runs/{run_id}/step", json={"free": True}, headers=GOOD).status_code == 200
    while client.get(f"/api/runs/{run_id}", headers=GOOD).get_json()["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    schedule = client.get(f"/api/runs/{run_id}", headers=GOOD).get_json()["schedule"]
    assert schedule[1]["thread"] == "A", json.dumps(schedule)  # the ident named A
