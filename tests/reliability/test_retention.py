"""Retention: the data dir keeps the ``--keep-runs`` runs that ended last; older ones go, folders and
all, both as runs end and when a server starts on a data dir that holds more. Live runs stay."""

from __future__ import annotations

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
