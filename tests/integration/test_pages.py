"""Every page renders with its landmarks; a run page replays a finished run."""

from __future__ import annotations

import re

import pytest

NUMBERS = [f"{n:02d}" for n in range(1, 15)]


@pytest.mark.parametrize("number", NUMBERS)
def test_lesson_page_has_every_landmark(server, number):
    status, body, headers = server.request("GET", f"/lessons/{number}", headers={"Accept": "text/html"})
    html = body.decode()
    assert status == 200 and "Content-Security-Policy" in headers
    for landmark in ('id="run-form"', ">Run</button>", 'id="run-status"', 'id="threads"', 'id="log"',
                     'id="timeline"', 'id="source"', ">Stop</button>"):
        assert landmark in html, landmark
    lesson = next(entry for entry in server.get_json("/api/lessons") if entry["number"] == number)
    for name in lesson["signals"]:
        assert f">{name}</button>" in html


def test_concepts_page_renders_markdown(server):
    status, body, _ = server.request("GET", "/concepts", headers={"Accept": "text/html"})
    html = body.decode()
    assert status == 200 and "<h2" in html and "GIL" in html and 'href="/lessons/' in html


def test_run_page_of_a_finished_run(server):
    run_id = server.start("01", workers=2)
    server.wait_status(run_id)
    status, body, _ = server.request("GET", f"/runs/{run_id}", headers={"Accept": "text/html"})
    html = body.decode()
    assert status == 200 and f'hx-ws:connect="/runs/{run_id}/ws"' in html and "exited" in html
    index = server.request("GET", "/", headers={"Accept": "text/html"})[1].decode()
    assert f"/runs/{run_id}" in index


def test_recent_runs_show_what_was_changed_from_the_defaults(server):
    changed = server.start("01", workers=2, daemon=True)
    plain = server.start("01")
    for run_id in (changed, plain):
        server.wait_status(run_id)
    index = server.request("GET", "/", headers={"Accept": "text/html"})[1].decode()

    def row(run_id: str) -> str:
        start = index.index(f'href="/runs/{run_id}"')
        return index[start:index.index("</tr>", start)]

    assert '<td class="flags">--workers 2 --daemon</td>' in row(changed)
    assert '<td class="flags">defaults</td>' in row(plain)
    assert re.search(r"<td>\d+\.\d s</td>", row(plain))
