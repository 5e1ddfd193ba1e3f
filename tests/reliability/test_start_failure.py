"""A run whose supervisor thread cannot start (the process is out of threads) is refused with a
503, ends `failed` on disk and in its log with the reason, and gives its slot back at once."""

from __future__ import annotations

import json

import pytest

from app import create_app, supervisor
from tests.conftest import ROOT

GOOD = {"Host": "127.0.0.1:8765"}


@pytest.fixture
def app(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "LESSONS_DIR": str(ROOT / "lessons"), "PORT": 8765,
                      "MAX_LIVE_RUNS": 1})
    yield app
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def test_no_thread_for_the_supervisor_is_a_503_and_a_failed_run_that_holds_no_slot(
        app, tmp_path, monkeypatch):
    client = app.test_client()

    def no_thread(self) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(supervisor.Supervisor, "start", no_thread)
        answer = client.post("/runs", json={"lesson": "01", "params": {}}, headers=GOOD)
    assert answer.status_code == 503 and "too busy" in answer.get_json()["error"]
    [folder] = (tmp_path / "runs").iterdir()
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "failed" and record["ended"] is not None
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["stderr", "status"] and [e["seq"] for e in events] == [0, 1]
    assert "could not start a thread" in events[0]["text"] and events[1]["status"] == "failed"
    assert client.get(f"/api/runs/{folder.name}", headers=GOOD).get_json()["status"] == "failed"
    # The one slot is free again: the next run starts.
    assert client.post("/runs", json={"lesson": "01", "params": {}}, headers=GOOD).status_code == 201
