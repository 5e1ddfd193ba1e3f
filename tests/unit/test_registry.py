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


def test_broken_teacher_lesson_is_listed_unavailable(teachers):
    broken = teachers.get("43")
    assert not broken.available and "broken on purpose" in broken.error


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


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    # A fresh copy: the cache is process-wide and keyed by path, so this read is a real one.
    folder = tmp_path_factory.mktemp("hostile")
    for path in HOSTILE.glob("*.py"):
        shutil.copy(path, folder / path.name)
    started = time.monotonic()
    lessons = {lesson.id: lesson for lesson in Registry(folder).all()}
    return lessons, time.monotonic() - started, folder


def test_hostile_folder_is_read_quickly(hostile):
    lessons, elapsed, _ = hostile
    assert len(lessons) == 8
    # One file hangs for the whole 1.5 s timeout; the others are probed beside it. Generous bound:
    # the machine is shared.
    assert elapsed < 5


@pytest.mark.parametrize("lesson_id, reason", [
    ("20_hangs", "hung at import (no answer in 1.5 s)"),
    ("21_exits", "exited at import with SystemExit(3)"),
    ("22_forks", "forked a process at import"),
    ("23_crashes", "crashed at import: ZeroDivisionError: crashes on purpose"),
])
def test_hostile_files_are_listed_unavailable_with_the_reason(hostile, lesson_id, reason):
    lesson = hostile[0][lesson_id]
    assert not lesson.available and reason in lesson.error
    assert lesson.title == lesson_id and lesson.params == []
    assert lesson.to_json()["available"] is False


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
    assert len(Registry(folder).all()) == 8
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
