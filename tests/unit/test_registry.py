"""The registry reads lessons without running them in the server, ours, a teacher's and hostile ones."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from app import probe as probe_module
from app.params import ParamError, to_argv, validate
from app.registry import Registry, parse_docstring

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ROOT / "tests" / "fixtures" / "teacher_lessons"


@pytest.fixture(scope="module")
def ours():
    return Registry(ROOT / "lessons")


@pytest.fixture(scope="module")
def teachers():
    return Registry(TEACHER)


def test_docstring_sections():
    doc = "Title here.\n\nProblem:\n    Line one\n    line two.\n\nExercises:\n    1. a\n"
    title, sections = parse_docstring(doc)
    assert title == "Title here."
    assert sections == {"Problem": "Line one\nline two.", "Exercises": "1. a"}


def test_lesson_03_metadata(ours):
    lesson = ours.get("03")
    assert lesson is ours.get("03_producer_consumer")
    assert lesson.title.startswith("Producer/consumer")
    assert set(lesson.sections) == {"Problem", "What to watch", "Expected output", "Failure modes",
                                    "Exercises"}
    producers = lesson.param("producers")
    assert (producers.type, producers.min, producers.max, producers.default) == ("int", 1, 16, 2)
    assert lesson.param("log_format") is None and lesson.param("verbose") is None
    assert lesson.available and lesson.signals == ()


def test_unknown_ids_are_none(ours):
    assert ours.get("99") is None and ours.get("../03_producer_consumer") is None


def test_teacher_lesson_is_discovered_without_bounds(teachers):
    lesson = teachers.get("42")
    assert lesson.title == "A teacher's own lesson that follows only part of the standard."
    kinds = {p.name: p.type for p in lesson.params}
    assert kinds == {"rounds": "int", "speed": "float", "mode": "choice", "name": "str", "loud": "bool"}
    values = validate(lesson, {"rounds": "1000000", "speed": 3, "mode": "slow", "loud": True})
    assert values == {"rounds": 1000000, "speed": 3.0, "mode": "slow", "name": "x", "loud": True}
    assert to_argv(lesson, values) == ["--rounds=1000000", "--speed=3.0", "--mode=slow", "--name=x", "--loud"]


def test_a_teacher_file_without_a_parser_is_a_plain_program_read_without_running_it(teachers):
    # 43 raises at import; with no build_parser it is never imported, so it is listed, runnable.
    broken = teachers.get("43")
    assert broken.plain and broken.available and not broken.error
    assert broken.title == "A file that fails to import: the index must still list it, marked unavailable."
    assert broken.to_json()["plain"] is True and broken.params == []


def test_registry_notices_a_new_file(tmp_path):
    registry = Registry(tmp_path)
    assert registry.all() == []
    (tmp_path / "50_new.py").write_text('"""New."""\n')
    assert [lesson.id for lesson in registry.all()] == ["50_new"]


@pytest.mark.parametrize("raw, field", [
    ({"producers": 0}, "producers"), ({"producers": 1.5}, "producers"), ({"producers": True}, "producers"),
    ({"producers": None}, "producers"), ({"producers": [1]}, "producers"), ({"duration": "inf"}, "duration"),
    ({"duration": float("nan")}, "duration"), ({"duration": ""}, "duration"), ({"x": 1}, "x"),
    ({"queue_size": "1" * 31}, "queue_size"),
])
def test_validation_refuses_with_the_field(ours, raw, field):
    with pytest.raises(ParamError) as err:
        validate(ours.get("03"), raw)
    assert err.value.field == field


def test_validation_accepts_form_strings_and_ints_for_floats(ours):
    lesson = ours.get("03")
    values = validate(lesson, {"producers": "3", "duration": 2}, from_form=True)
    assert values["producers"] == 3 and values["duration"] == 2.0
    assert "--producers=3" in to_argv(lesson, values)


def test_text_params_cannot_become_options(teachers):
    lesson = teachers.get("42")
    values = validate(lesson, {"name": "--loud"})
    assert "--name=--loud" in to_argv(lesson, values) and "--loud" not in to_argv(lesson, values)
    with pytest.raises(ParamError):
        validate(lesson, {"name": "x" * 201})
    with pytest.raises(ParamError):
        validate(lesson, {"mode": "medium"})


# --- Hostile files: the server never runs a lesson's code, it asks a subprocess with a timeout. ---

HOSTILE = ROOT / "tests" / "fixtures" / "hostile_lessons"
PARSER = "\n\ndef build_parser():\n    import argparse\n\n    return argparse.ArgumentParser()\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    # A fresh copy: the cache is process-wide and keyed by path, so this read is a real one.
    folder = tmp_path_factory.mktemp("hostile")
    for path in HOSTILE.glob("*.py"):
        shutil.copy(path, folder / path.name)
    # The hostile files without a parser are plain programs now, never imported. The same files
    # with a parser are imported, and must still be caught: copies numbered 3x, with one added.
    for stem in ("20_hangs", "22_forks", "23_crashes"):
        source = (HOSTILE / f"{stem}.py").read_text()
        (folder / f"3{stem[1:]}.py").write_text(source + PARSER)
    started = time.monotonic()
    lessons = {lesson.id: lesson for lesson in Registry(folder).all()}
    return lessons, time.monotonic() - started, folder


def test_hostile_folder_is_read_quickly(hostile):
    lessons, elapsed, _ = hostile
    assert len(lessons) == 11
    # One file hangs for the whole 1.5 s timeout; the others are probed beside it. Generous bound:
    # the machine is shared.
    assert elapsed < 5


@pytest.mark.parametrize("lesson_id, reason", [
    ("30_hangs", "hung at import (no answer in 1.5 s)"),
    ("21_exits", "exited at import with SystemExit(3)"),
    ("32_forks", "forked a process at import"),
    ("33_crashes", "crashed at import: ZeroDivisionError: crashes on purpose"),
])
def test_hostile_files_are_listed_unavailable_with_the_reason(hostile, lesson_id, reason):
    lesson = hostile[0][lesson_id]
    assert not lesson.available and reason in lesson.error
    assert lesson.title == lesson_id and lesson.params == []
    assert lesson.to_json()["available"] is False


@pytest.mark.parametrize("lesson_id, title", [
    ("20_hangs", "A classic tutorial script: top-level code that starts a thread and joins every thread."),
    ("22_forks", "Forks at import; the child sleeps, holding every pipe it inherited."),
    ("23_crashes", "Raises at import."),
])
def test_hostile_files_without_a_parser_are_plain_programs_never_run(hostile, lesson_id, title):
    lesson = hostile[0][lesson_id]
    assert lesson.plain and lesson.available and lesson.title == title and lesson.params == []


def _describe(tmp_path, source: str) -> dict:
    path = tmp_path / "50_prog.py"
    path.write_text(source)
    return probe_module.probe(path, 10)


def test_a_plain_program_is_described_from_its_syntax_tree(tmp_path):
    marker = tmp_path / "ran"
    answer = _describe(tmp_path, f'''"""My program.\n\nIt does things."""
import pathlib, signal
pathlib.Path({str(marker)!r}).write_text("ran")
SIGNALS = ("SIGINT", "SIGUSR1")
REQUIRES: tuple = ("qt",)
raise SystemExit(3)
''')
    assert answer == {"doc": "My program.\n\nIt does things.", "signals": ["SIGINT", "SIGUSR1"],
                      "requires": ["qt"], "params": [], "exercises": {}, "plain": True}
    assert not marker.exists(), "none of it ran"


def test_non_literal_declarations_are_left_out_not_run(tmp_path):
    answer = _describe(tmp_path, "import signal\nSIGNALS = tuple(s.name for s in signal.Signals)\n"
                                 "REQUIRES = 'qt'\n")
    assert (answer["signals"], answer["requires"], answer["plain"]) == ([], ["qt"], True)


@pytest.mark.parametrize("source", [
    "def build_parser():\n    import argparse\n    return argparse.ArgumentParser()\n",
    "from argparse import ArgumentParser as build_parser\n",
    "try:\n    from common import build_parser\nexcept ImportError:\n    build_parser = None\n",
])
def test_a_file_binding_build_parser_is_imported_as_a_lesson(tmp_path, source):
    answer = _describe(tmp_path, source)
    assert answer["plain"] is False


def test_a_file_that_does_not_parse_is_unreadable_with_the_reason(tmp_path):
    with pytest.raises(probe_module.Unreadable, match="cannot be parsed: SyntaxError"):
        _describe(tmp_path, "def broken(:\n")


def test_load_program_names_the_run_by_file_name(tmp_path):
    from app.registry import load_lessons, load_program

    path = tmp_path / "my_prog.py"
    path.write_text('"""Mine."""\nprint(1)\n')
    program = load_program(path)
    assert (program.id, program.number, program.title) == ("program:my_prog.py", "", "Mine.")
    assert program.plain
    assert load_lessons([path])[0].id == "my_prog", "the cached lesson is not changed"


def test_no_probe_process_survives(hostile):
    _, _, folder = hostile

    def leftovers():
        return [p for p in psutil.process_iter(["cmdline"])
                if any(str(folder) in part for part in p.info["cmdline"] or ())]

    deadline = time.monotonic() + 3  # SIGKILL is asynchronous; init reaps the orphans
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []


def test_prints_at_import_do_not_corrupt_the_answer(hostile):
    lesson = hostile[0]["24_prints"]
    assert lesson.available and lesson.title == "Prints junk at import but has a valid parser."
    assert lesson.sections == {"Problem": "Top-level prints must not corrupt the metadata answer."}
    assert lesson.signals == ("SIGINT", "SIGUSR1")
    described = {p.name: (p.type, p.default, p.choices, p.min, p.max) for p in lesson.params}
    assert described == {
        "level": ("int", 2, None, None, None),
        "ratio": ("float", "inf", None, None, None),  # not JSON: sent as text
        "speed": ("str", "speed-object", None, None, None),
        "mode": ("choice", 1, [1, 2, 3], None, None),
    }
    assert validate(lesson, {"mode": "2"})["mode"] == 2


def test_a_good_file_beside_them_is_read_whole(hostile):
    lesson = hostile[0]["26_good"]
    assert lesson.available and lesson.signals == ("SIGINT",) and lesson.exercises == []
    assert [p.to_json() for p in lesson.params] == [
        {"name": "workers", "flag": "--workers", "type": "int", "default": 4, "help": "worker threads",
         "choices": None, "min": 1, "max": 16},
        {"name": "duration", "flag": "--duration", "type": "float", "default": 2.0, "help": "seconds",
         "choices": None, "min": 0.5, "max": 120},
        {"name": "name", "flag": "--name", "type": "str", "default": "x", "help": "a name",
         "choices": None, "min": None, "max": None},
        {"name": "loud", "flag": "--loud", "type": "bool", "default": False, "help": "shout",
         "choices": None, "min": None, "max": None},
    ]
    with pytest.raises(ParamError) as err:
        validate(lesson, {"workers": "0"})
    assert err.value.message == "expected a whole number from 1 to 16, got '0'"


def test_files_sharing_a_number_are_both_reachable(hostile):
    _, _, folder = hostile
    registry = Registry(folder)
    assert registry.get("25").id == "25_same_a"
    assert registry.get("25_same_b").title == "The second of two files numbered 25."


@pytest.fixture
def count_probes(monkeypatch):
    started = []
    real = probe_module.subprocess.Popen

    def popen(argv, *args, **kwargs):
        started.append(argv[-1])
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(probe_module.subprocess, "Popen", popen)
    return started


def test_a_second_registry_starts_no_subprocess(hostile, count_probes):
    _, _, folder = hostile
    assert len(Registry(folder).all()) == 11
    assert count_probes == []


def test_a_changed_file_is_read_again(tmp_path, count_probes):
    path = tmp_path / "30_edit.py"
    path.write_text('"""Before."""\n')
    registry = Registry(tmp_path)
    assert registry.get("30").title == "Before."
    path.write_text('"""After the edit."""\n')
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))  # a coarse clock's same tick
    assert Registry(tmp_path).get("30").title == "After the edit."
    assert registry.get("30").title == "After the edit."
    assert count_probes == [str(path), str(path)]


def test_concurrent_readers_share_one_probe_per_file(tmp_path, count_probes):
    for n in range(3):
        (tmp_path / f"3{n}_lesson.py").write_text(f'"""Lesson {n}."""\n')
    shared = Registry(tmp_path)

    def titles(i: int) -> list[str]:
        # Half share one Registry (its lock), half bring their own (the cache's in-flight probes).
        return [lesson.title for lesson in (shared if i % 2 else Registry(tmp_path)).all()]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(titles, range(16)))
    assert results == [["Lesson 0.", "Lesson 1.", "Lesson 2."]] * 16
    assert sorted(count_probes) == sorted(str(p) for p in tmp_path.glob("*.py"))
