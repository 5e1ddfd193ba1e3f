"""The in-page editor is vendored like htmx: the lesson page loads it from ``static/vendor/`` under a
folder named with its version, the file is that version, its licence lies beside it, and no script
comes from another site (no CDN: a classroom without internet still edits)."""

from __future__ import annotations

import re

from app import create_app
from tests.conftest import ROOT

PORT = 8765
GOOD = {"Host": f"127.0.0.1:{PORT}"}
LESSONS = ROOT / "tests" / "fixtures" / "exercise_lessons"


def lesson_page(tmp_path) -> str:
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "LESSONS_DIR": str(LESSONS), "PORT": PORT})
    try:
        return app.test_client().get("/lessons/01", headers=GOOD).get_data(as_text=True)
    finally:
        app.extensions["threadlab.runs"].shutdown(timeout=5)


def test_the_editor_is_served_from_its_versioned_vendor_folder_with_its_licence(tmp_path):
    page = lesson_page(tmp_path)
    sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    assert sources and all(src.startswith("/static/") for src in sources), sources
    editor = [src for src in sources if "/ace-" in src]
    assert {src.rsplit("/", 1)[1] for src in editor} == {"ace.js", "mode-python.js"}, editor
    version = re.fullmatch(r"/static/vendor/ace-(\d+\.\d+\.\d+)/ace\.js", editor[0]).group(1)
    folder = ROOT / "static" / "vendor" / f"ace-{version}"
    assert f't.version="{version}"' in (folder / "ace.js").read_text(), "the folder names its version"
    assert (folder / "mode-python.js").stat().st_size > 0
    licence = (folder / "LICENSE.txt").read_text()
    assert "Ajax.org B.V." in licence and "Redistribution and use" in licence
    assert f"Ace editor {version}" in (ROOT / "README.md").read_text(), "the README names it"
