"""Two files of one number in a lessons folder: the index links each card to its own file (by the
file's name, not its number), and each runs."""

from __future__ import annotations

import re
import time

import pytest

from app import create_app

GOOD = {"Host": "127.0.0.1:8765"}
LESSON = '''"""{title}

Problem:
    Two files may share a number; each is its own lesson.
"""

from lessons import kit


def main(argv=None) -> int:
    kit.setup(kit.lesson_parser(__doc__).parse_args(argv))
    kit.emit_result(which="{which}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


@pytest.fixture
def client(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    for which, title in (("a", "First of two"), ("b", "Second of two")):
        (lessons / f"05_{which}.py").write_text(LESSON.format(title=title, which=which))
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "LESSONS_DIR": str(lessons), "PORT": 8765})
    yield app.test_client()
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def test_each_card_links_to_its_own_file_and_each_runs(client):
    index = client.get("/", headers=GOOD).get_data(as_text=True)
    links = re.findall(r'<a href="(/lessons/[^"]+)"><span class="num">05</span> ([^<]+)</a>', index)
    assert links == [("/lessons/05_a", "First of two"), ("/lessons/05_b", "Second of two")]
    for href, title in links:
        page = client.get(href, headers=GOOD).get_data(as_text=True)
        assert title in page
        lesson_id = href.rsplit("/", 1)[1]
        answer = client.post("/runs", json={"lesson": lesson_id, "params": {}}, headers=GOOD)
        assert answer.status_code == 201, answer.get_json()
        run_id = answer.get_json()["id"]
        deadline = time.monotonic() + 20
        while (run := client.get(f"/api/runs/{run_id}", headers=GOOD).get_json())["status"] in (
                "starting", "running", "stopping"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run["status"] == "exited" and run["lesson"] == lesson_id
        events = client.get(f"/api/runs/{run_id}/events", headers=GOOD).get_data(as_text=True)
        assert f'"which": "{lesson_id[-1]}"' in events or f'"which":"{lesson_id[-1]}"' in events
