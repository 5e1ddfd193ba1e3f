"""Experiments of lessons that crash or hang: every such run is counted and linked on the page and
in the API, with no result claimed for it (none is dropped silently)."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_experiments import FINAL, wait_done
from tests.live_helpers import start_fault_server


@pytest.fixture(scope="module")
def short_limit_server(tmp_path_factory):
    live = start_fault_server(tmp_path_factory.mktemp("experiment-faults"), "--time-limit", "1.5")
    yield live
    live.stop()


def page(server, experiment_id: str) -> str:
    status, body, _ = server.request("GET", f"/experiments/{experiment_id}",
                                     headers={"Accept": "text/html"})
    assert status == 200
    return body.decode()


def run_links(html: str) -> set[str]:
    return set(re.findall(r'<a href="/runs/([^"]+)">run ', html))


# The crash ends before any result; the sleeper, stopped at its time limit, reports what it did.
@pytest.mark.parametrize("lesson, params, outcome, values", [
    ("06", {}, "failed", {}), ("01", {"duration": 60}, "timeout", {"stopped_early": 1})])
def test_runs_that_fail_or_time_out_are_counted_and_linked(short_limit_server, lesson, params,
                                                            outcome, values):
    status, answer = short_limit_server.post_json("/experiments", {"lesson": lesson, "params": params,
                                                                   "repeat": 3})
    assert status == 201, answer
    data = wait_done(short_limit_server, answer["id"], timeout=60)
    assert data["status"] == "done"
    assert [r["status"] for r in data["runs"]] == [outcome] * 3
    assert all(r["id"] and (r["values"] or {}) == values for r in data["runs"])
    for run in data["runs"]:
        assert short_limit_server.get_json(f"/api/runs/{run['id']}")["status"] in FINAL
    html = page(short_limit_server, answer["id"])
    assert "Runs that did not exit cleanly (3)" in html
    assert run_links(html) == {r["id"] for r in data["runs"]}
    said = "its result is in the plots" if values else "no result"
    assert html.count(f"· {said}") == 3
