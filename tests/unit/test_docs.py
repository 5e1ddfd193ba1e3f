"""The docs a new user reads first must cover what exists (Datasette's habit)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LESSON_NUMBERS = sorted(p.name[:2] for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))


def test_readme_shows_the_two_commands_and_the_security_model():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/serve" in readme and "scripts/test" in readme and "## Security model" in readme


def test_examples_has_a_section_per_lesson_and_is_up_to_date():
    examples = (ROOT / "EXAMPLES.md").read_text()
    for number in LESSON_NUMBERS:
        assert f"\n## {number} " in examples, f"EXAMPLES.md lacks lesson {number}"
    before = examples
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_examples.py")], check=True)
    assert (ROOT / "EXAMPLES.md").read_text() == before, "run scripts/make_examples.py"


def test_concepts_page_links_lessons():
    concepts = (ROOT / "lessons" / "CONCEPTS.md").read_text()
    assert "GIL" in concepts and "/lessons/" in concepts
