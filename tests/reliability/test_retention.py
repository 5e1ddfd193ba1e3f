"""Retention: the data dir keeps the ``--keep-runs`` runs that ended last; older ones go, folders and
all, both as runs end and when a server starts on a data dir that holds more. Live runs stay."""

from __future__ import annotations

import time

from tests.live_helpers import start_fault_server


def run_folders(data_dir) -> set[str]:
    return {p.parent.name for p in (data_dir / "runs").glob("*/run.json")}


def test_only_the_newest_ended_runs_are_kept(tmp_path):
    live = start_fault_server(tmp_path, "--keep-runs", "3")
    try:
        sleeper = live.start("01", duration=60)  # live all along: never a candidate
        quick = []
        for _ in range(5):
            quick.append(live.start("08"))
            live.wait_status(quick[-1])
        listed = {r["id"] for r in live.get_json("/api/runs")}
        assert listed == {sleeper, *quick[-3:]}
        assert run_folders(tmp_path) == listed
        assert live.request("GET", f"/api/runs/{quick[0]}")[0] == 404
        assert live.post_json(f"/runs/{sleeper}/stop", {})[0] == 202
        live.wait_status(sleeper)  # the oldest start but the latest end: it stays, quick[2] goes
        assert {r["id"] for r in live.get_json("/api/runs")} == {sleeper, *quick[-2:]}
        assert run_folders(tmp_path) == {sleeper, *quick[-2:]}
    finally:
        live.stop()


def test_a_server_starting_on_a_fuller_data_dir_prunes_it(tmp_path):
    live = start_fault_server(tmp_path)  # the default keeps 200
    try:
        runs = []
        for _ in range(4):
            runs.append(live.start("08"))
            live.wait_status(runs[-1])
        assert len(run_folders(tmp_path)) == 4
    finally:
        live.stop()
    live = start_fault_server(tmp_path, "--keep-runs", "2")
    try:
        assert [r["id"] for r in live.get_json("/api/runs")] == runs[:1:-1]  # newest first
        assert run_folders(tmp_path) == set(runs[2:])
    finally:
        live.stop()


def test_runs_an_experiment_shows_are_never_pruned(tmp_path):
    live = start_fault_server(tmp_path, "--keep-runs", "2")
    try:
        status, answer = live.post_json("/experiments", {"lesson": "08", "params": {}, "repeat": 5})
        assert status == 201, answer
        experiment = live.get_json(f"/api/experiments/{answer['id']}")
        deadline = time.monotonic() + 60
        while experiment["status"] == "running":
            assert time.monotonic() < deadline, experiment["progress"]
            time.sleep(0.1)
            experiment = live.get_json(f"/api/experiments/{answer['id']}")
        shown = {r["id"] for r in experiment["runs"]}
        assert len(shown) == 5 and experiment["status"] == "done"
        quick = []
        for _ in range(3):  # runs of nobody's experiment: only the newest 2 are kept
            quick.append(live.start("08"))
            live.wait_status(quick[-1])
        assert run_folders(tmp_path) == shown | set(quick[-2:])
        for run_id in shown:  # each run the experiment links to still opens
            assert live.request("GET", f"/api/runs/{run_id}")[0] == 200
    finally:
        live.stop()
