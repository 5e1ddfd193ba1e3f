"""The docs a new user reads first must cover what exists (Datasette's habit)."""

from __future__ import annotations

import ast
import re
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


def test_line_numbers_quoted_in_the_examples_point_into_the_functions_they_name():
    # "14_profiling_and_debugging.py:85 in stuck_worker" or '..._debugging.py", line 85 in stuck_worker':
    # sample output goes stale when a lesson is edited above the quoted line.
    quote = re.compile(r'(\d\d_\w+\.py)(?::|", line )(\d+) in (\w+)')
    checked = 0
    for page in (ROOT / "docs" / "examples").glob("*.md"):
        for file_name, line, function in quote.findall(page.read_text()):
            tree = ast.parse((ROOT / "lessons" / file_name).read_text())
            spans = [(node.lineno, node.end_lineno) for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef) and node.name == function]
            assert any(first <= int(line) <= last for first, last in spans), \
                f"{page.name}: {file_name}:{line} is not in {function}(); update the sample output"
            checked += 1
    assert checked >= 5  # lesson 14's sample quotes several
