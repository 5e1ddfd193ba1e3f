"""The lesson file standard of DESIGN.md, checked for every lesson at once."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from lessons.kit.args import KIT_OPTIONS, Bounded

from .conftest import LESSONS, lesson_module, run_lesson

SECTIONS = ["Problem", "What to watch", "Expected output", "Failure modes", "Exercises"]
LESSON_FILES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
NUMBERS = [path.name[:2] for path in LESSON_FILES]


def test_all_fourteen_lessons_exist():
    assert [f"{n:02d}" for n in range(1, 15)] == NUMBERS


@pytest.mark.parametrize("path", LESSON_FILES, ids=NUMBERS)
def test_docstring_has_the_sections_in_order(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    title = doc.splitlines()[0] if doc else ""
    assert title and not title.endswith(":"), "a one-line title first"
    positions = [doc.find(f"\n{section}:") for section in SECTIONS]
    missing = [section for section, p in zip(SECTIONS, positions, strict=True) if p < 0]
    assert not missing, f"missing sections: {missing}"
    assert positions == sorted(positions), "sections out of order"
    exercises = doc[positions[-1]:]
    assert re.search(r"^\s*1\.", exercises, re.M), "three exercises"
    assert re.search(r"^\s*3\.", exercises, re.M), "three exercises"


@pytest.mark.parametrize("path", LESSON_FILES, ids=NUMBERS)
def test_launcher_api_and_size(path):
    source = path.read_text()
    tree = ast.parse(source)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"build_parser", "parse_args", "main"} <= functions
    assert 'if __name__ == "__main__":\n    raise SystemExit(main())' in source
    assert len(source.splitlines()) <= 190, "a learner should be able to read a lesson whole"


@pytest.mark.parametrize("number", NUMBERS)
def test_every_option_has_default_help_and_bounds(number):
    module = importlib.import_module(lesson_module(number))
    for action in module.build_parser()._actions:
        if action.dest in ("help", *KIT_OPTIONS):
            continue
        assert action.help, f"--{action.dest} needs a help text"
        assert action.default is not None, f"--{action.dest} needs a default"
        if action.type in (int, float):
            pytest.fail(f"--{action.dest}: use kit.int_range/float_range so the form knows its bounds")
        if isinstance(action.type, Bounded):
            assert action.type.min is not None and action.type.max is not None
        if action.dest == "duration":
            assert action.type.max >= 120, "--duration accepts at least 120 seconds"


@pytest.mark.parametrize("number", NUMBERS)
def test_runs_standalone_with_defaults(number):
    run = run_lesson(number, json_mode=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Result:" in run.stdout


@pytest.mark.parametrize("number", NUMBERS)
def test_json_mode_ends_with_a_result(number):
    run = run_lesson(number)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [e for e in run.events if e["kind"] == "stdout"], "JSON mode writes only JSON lines"
    kinds = [e["kind"] for e in run.events]
    assert "result" in kinds and "threads" in kinds
    assert all(e["v"] == 1 and isinstance(e["t"], float) for e in run.events)
