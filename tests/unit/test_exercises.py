"""Checked exercises: the goal language (app/exercises.py), progress kept per browser, the edited copy
and its API, and runs started for an exercise or with a prediction (in process, real workers)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from app import create_app, exercises
from app.exercise_spec import parse, parse_levels
from app.exercises import Outcome, SpecError, apply_edits, judge, over_runs
from app.filters import inline, prose
from app.progress import Progress
from tests.conftest import ROOT

LESSONS = ROOT / "tests" / "fixtures" / "exercise_lessons"
PORT = 8765
GOOD = {"Host": f"127.0.0.1:{PORT}"}
FINAL = ("exited", "failed", "stopped", "killed", "timeout")
BROWSER = "ab" * 16


def spec(*checks, **extra) -> dict:
    return {"exercise": [{"n": 1, "goal": "g", "checks": list(checks), **extra}]}


def one(*checks, **extra) -> exercises.Exercise:
    return parse(spec(*checks, **extra), "1. Do it.")[0][0]


# -- the goal language ----------------------------------------------------------------------------

def test_prompts_come_from_the_docstrings_numbered_items():
    found, _ = parse({"exercise": [{"n": 2, "goal": "g", "checks": [{"status": "exited"}]}]},
                     "1. First\n   line two.\n2. Second ``code``,\n   wrapped.\n3. Third.")
    assert found[0].prompt == "Second ``code``, wrapped."


@pytest.mark.parametrize("raw, problem", [
    ({"exercise": [{"n": 1, "checks": [{"status": "exited"}]}]}, "goal"),
    ({"exercise": [{"goal": "g", "checks": [{"status": "exited"}]}]}, "number n"),
    (spec(), "non-empty list"),
    (spec({"value": "x"}), "one of equals"),
    (spec({"value": "x", "param": "y", "equals": 1}), "names one of"),
    (spec({"value": "x", "equals": 1, "below": 2}), "one of equals"),
    (spec({"value": "x", "equals": 1, "factor": "two"}), "factor"),
    (spec({"status": "exited"}, runs=0), "runs"),
    (spec({"status": "exited"}, runs=11), "runs"),
    (spec({"status": "exited"}, hints="one"), "hints"),
    ({"exercise": [{"n": 1, "goal": "g", "checks": [{"status": "exited"}]}] * 2}, "repeat"),
    ({"exercise": [], "prediction": {"question": "q"}}, "choices"),
    ([], "not a table"),
])
def test_a_spec_that_breaks_the_format_is_refused_with_where(raw, problem):
    with pytest.raises(SpecError, match=problem):
        parse(raw, "")


def test_each_subject_and_comparison():
    outcome = Outcome.of([
        {"kind": "result", "values": {"lost": 3, "expected": 10}},
        {"kind": "result", "values": {"lost": 0}},  # the last result wins
        {"kind": "thread", "op": "crash", "name": "W-1"},
        {"kind": "thread", "op": "end", "name": "W-2"},
        {"kind": "log", "msg": "worker timed out after 2 s"},
    ], {"threads": 4}, "exited")
    holds = {
        "equals": {"value": "lost", "equals": 0},
        "param": {"param": "threads", "at_least": 4},
        "named operand": {"value": "lost", "below": "expected"},
        "factor": {"value": "expected", "at_least": "expected", "factor": 0.5},
        "where": {"events": "thread", "where": {"op": "crash"}, "equals": 1},
        "contains": {"events": "log", "contains": {"msg": "timed out"}, "at_least": 1},
        "status list": {"status": ["failed", "exited"]},
    }
    fails = {
        "missing value": {"value": "nope", "equals": 0},
        "missing operand": {"value": "lost", "below": "nope"},
        "text is not a number": {"param": "threads", "below": "expected", "factor": 0},
        "status": {"status": "failed"},
        "no such event": {"events": "deadlock", "at_least": 1},
    }
    for name, raw in holds.items():
        assert outcome.holds(one(raw).checks[0]), name
    for name, raw in fails.items():
        assert not outcome.holds(one(raw).checks[0]), name


def test_a_verdict_names_the_failed_checks_and_the_evidence():
    exercise = one({"value": "lost", "equals": 0}, evidence="lost {lost} of {expected} ({nope})")
    verdict = judge(exercise, Outcome.of([{"kind": "result", "values": {"lost": 2, "expected": 9}}],
                                         {}, "exited"))
    assert verdict == {"exercise": 1, "passed": False, "evidence": "lost 2 of 9 (?)",
                       "message": "not yet: lost = 0"}
    plain = one({"value": "lost", "at_most": 0}, evidence="{lost:.1f}")  # a format the value refuses
    assert judge(plain, Outcome.of([], {}, "exited"))["evidence"] == "lost = none"


def test_event_checks_name_their_filters_in_the_verdict():
    """Two checks on log lines must read apart: "log events = 1; log events = 1" told nobody."""
    exercise = one({"events": "log", "where": {"thread": "MainThread"}, "contains": {"msg": "got SIGTERM"},
                    "at_least": 1},
                   {"events": "log", "where": {"level": "ERROR"}, "contains": {"exc": "TimeoutError"},
                    "at_least": 1},
                   {"events": "thread", "where": {"op": "crash", "exc": {"type": "IndexError"}}, "equals": 0},
                   {"events": "result", "equals": 0})
    outcome = Outcome.of([{"kind": "log", "thread": "MainThread", "msg": "got SIGTERM: stopping"},
                          {"kind": "result", "values": {}}], {}, "exited")
    verdict = judge(exercise, outcome)
    assert verdict["evidence"] == ('log lines (from MainThread, with "got SIGTERM") = 1; '
                                   'log lines (level ERROR, exc with "TimeoutError") = 0; '
                                   'thread events (op crash, exc type IndexError) = 0; result events = 1')
    assert verdict["message"] == ('not yet: log lines (level ERROR, exc with "TimeoutError") ≥ 1; '
                                  'result events = 0')


def test_a_check_over_several_runs_needs_that_many_in_a_row():
    exercise = one({"status": "exited"}, runs=3)
    good = {"exercise": 1, "passed": True, "evidence": "", "message": "goal reached"}
    bad = {**good, "passed": False, "message": "not yet"}
    assert over_runs(exercise, good, [])["passed"] is False
    assert over_runs(exercise, good, [True])["runs"] == {"needed": 3, "in_a_row": 2}
    assert over_runs(exercise, good, [True, True])["passed"] is True
    assert over_runs(exercise, good, [True, False, True])["passed"] is False
    missed = over_runs(exercise, bad, [True, True])
    assert missed["passed"] is False and missed["this_run"] is False and missed["message"] == "not yet"


def test_solution_edits_must_each_find_exactly_one_place():
    assert apply_edits("a = 1\nb = 1\n", [exercises.Edit("a = 1", "a = 2")]) == "a = 2\nb = 1\n"
    for find in ("= 1", "c = 3"):
        with pytest.raises(SpecError, match="not 1"):
            apply_edits("a = 1\nb = 1\n", [exercises.Edit(find, "x")])


def test_docstring_prose_is_markdown_and_never_raw_html():
    html = str(prose("Watch ``Locked-*`` and *this*.\n\n1. One <b>bold</b>\n   wrapped.\n2. Two."))
    assert "<code>Locked-*</code>" in html and "<em>this</em>" in html
    assert "<ol>" in html and html.count("<li>") == 2
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert str(inline("a ``b`` *c*")) == "a <code>b</code> <em>c</em>"


def test_every_lessons_docstring_renders_without_stray_emphasis_marks():
    from app.registry import Registry

    for lesson in Registry(ROOT / "lessons").all():
        for name, text in lesson.sections.items():
            html = re.sub(r"<code>.*?</code>", "", str(prose(text)), flags=re.S)
            assert "*" not in html and "``" not in html, (lesson.id, name)


# -- progress, kept per browser -------------------------------------------------------------------

def test_progress_counts_every_try_when_runs_end_at_once(tmp_path):
    progress = Progress(tmp_path)
    exercise = one({"status": "exited"}, runs=2)
    verdict = {"exercise": 1, "passed": True, "evidence": "", "message": ""}

    def tries():
        for _ in range(25):
            progress.add_try(BROWSER, "05", 1, lambda earlier: over_runs(exercise, verdict, earlier))

    threads = [threading.Thread(target=tries) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert progress.solved(BROWSER, "05")[1]["tries"] == 200
    assert progress.solved(BROWSER, "05")[1]["passed"] is True
    assert not list(tmp_path.glob("*.tmp"))


def test_a_good_run_of_a_streak_unlocks_no_hint_and_a_miss_does(tmp_path):
    """Hints come with runs that miss the goal; a run that reached it, in a streak still too short,
    is a try but no miss. The solution comes after passing, or after three tries that did not."""
    from app.practice import earned

    progress = Progress(tmp_path)
    exercise = one({"value": "lost", "equals": 0}, runs=3, hints=["h1", "h2", "h3"])
    outcomes = {True: Outcome({"lost": 0}, {}, "exited"), False: Outcome({"lost": 7}, {}, "exited")}

    def run(good: bool) -> dict:
        verdict = judge(exercise, outcomes[good])
        progress.add_try(BROWSER, "05", 1, lambda earlier: over_runs(exercise, verdict, earlier))
        return earned(exercise, progress.solved(BROWSER, "05")[1])

    card = run(True)
    assert (card["tries"], card["passed"], card["hints"], card["solution"]) == (1, False, [], False)
    assert run(True)["hints"] == []
    card = run(False)  # the streak breaks: a miss
    assert (card["hints"], card["solution"], card["tries_left"]) == (["h1"], True, 0)
    card = run(False)
    assert card["hints"] == ["h1", "h2"] and not card["passed"]
    for _ in range(3):
        card = run(True)
    assert card["passed"] and card["hints"] == ["h1", "h2", "h3"] and card["solution"]
    # A progress file kept before misses were counted: every try that did not pass is one.
    assert earned(exercise, {"tries": 2, "passed": False})["hints"] == ["h1", "h2"]


def test_progress_shrugs_off_a_broken_file_and_keeps_nothing_for_a_bad_id(tmp_path):
    progress = Progress(tmp_path)
    (tmp_path / f"{BROWSER}.json").write_text("{not json")
    assert progress.of(BROWSER) == {}
    progress.add_try("../../etc", "05", 1, lambda earlier: {"passed": True})
    assert list(tmp_path.iterdir()) == [tmp_path / f"{BROWSER}.json"]


# -- the API, with real runs ----------------------------------------------------------------------

def make_app(tmp_path, **config):
    return create_app({"DATA_DIR": str(tmp_path / "data"), "LESSONS_DIR": str(LESSONS), "PORT": PORT,
                       **config})


@pytest.fixture
def client(tmp_path):
    app = make_app(tmp_path)
    yield app.test_client()
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def finished(client, run_id: str, headers=GOOD) -> dict:
    deadline = time.monotonic() + 20
    while (run := client.get(f"/api/runs/{run_id}", headers=headers).get_json())["status"] not in FINAL:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


def start(client, **body) -> dict:
    answer = client.post("/runs", json={"lesson": "01", **body}, headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    return finished(client, answer.get_json()["id"])


def test_the_lesson_json_lists_its_exercises_without_hints_or_solutions(client):
    lesson = client.get("/api/lessons/01", headers=GOOD).get_json()
    assert [e["n"] for e in lesson["exercises"]] == [1, 2, 3]
    assert lesson["exercises"][0] == {"n": 1, "prompt": "Count to 7.", "params": {"count": 7},
                                      "edit": False, "goal": "The count is 7.", "runs": 1}
    assert lesson["exercises"][1]["edit"] is True
    assert lesson["prediction"] == {"question": "How far will it count?",
                                    "choices": ["less than 5", "5 or more"]}


def test_a_run_for_an_exercise_is_checked_with_its_evidence(client):
    solved = start(client, params={"count": 7}, exercise=1)
    assert solved["check"] == {"exercise": 1, "passed": True, "evidence": "counted to 7",
                               "message": "goal reached"}
    missed = start(client, params={}, exercise=1)
    assert missed["check"]["passed"] is False and missed["check"]["evidence"] == "counted to 5"
    assert (missed["status"], missed["why"]) == ("exited", None), "a missed goal is no failed run"
    plain = start(client, params={})
    assert plain["check"] is None and plain["exercise"] is None
    events = client.get(f"/api/runs/{solved['id']}/events", headers=GOOD).get_data(as_text=True)
    kinds = [re.search(r'"kind": ?"(\w+)"', line).group(1) for line in events.splitlines()]
    assert kinds[-2:] == ["check", "status"], "the verdict is logged just before the final status"


def test_a_nondeterministic_goal_is_checked_over_several_runs(client):
    verdicts = [start(client, params={"count": 3}, exercise=3)["check"] for _ in range(3)]
    assert [v["passed"] for v in verdicts] == [False, False, True]
    assert verdicts[1]["message"] == "2 of 3 runs in a row so far: run it again"
    assert start(client, params={"count": 4}, exercise=3)["check"]["runs"]["in_a_row"] == 0


def test_a_prediction_is_revealed_and_scored_and_kept_with_the_progress(client, tmp_path):
    run = start(client, params={"count": 2}, prediction="5 or more")
    assert run["prediction"] == {"question": "How far will it count?", "chosen": "5 or more",
                                 "actual": "less than 5", "correct": False}
    right = start(client, params={"count": 6}, prediction="5 or more")
    kept = [json.loads(path.read_text()) for path in (tmp_path / "data" / "progress").glob("*.json")]
    assert len(kept) == 1, "one browser, one progress file"
    assert [(p["run"], p["chosen"], p["correct"]) for p in kept[0]["01"]["predictions"]] == [
        (right["id"], "5 or more", True), (run["id"], "5 or more", False)], "newest first"


@pytest.mark.parametrize("body, field", [
    ({"exercise": 9}, "exercise"), ({"exercise": "one"}, "exercise"), ({"exercise": True}, "exercise"),
    ({"prediction": "maybe"}, "prediction"), ({"prediction": 3}, "prediction"),
    ({"scratch": True}, "scratch"), ({"scratch": "perhaps"}, "scratch"),
])
def test_a_bad_practice_field_gets_400_naming_it_and_starts_nothing(client, body, field):
    answer = client.post("/runs", json={"lesson": "01", **body}, headers=GOOD)
    assert answer.status_code == 400 and answer.get_json()["field"] == field, answer.get_json()
    assert client.get("/api/runs", headers=GOOD).get_json() == []


def test_the_edited_copy_runs_instead_of_the_lesson_which_never_changes(client):
    url = "/api/lessons/01/scratch"
    original = (LESSONS / "01_counter.py").read_text()
    assert client.get(url, headers=GOOD).get_json()["edited"] is False
    edited = original.replace("FACTOR = 1 ", "FACTOR = 2 ")
    saved = client.put(url, json={"source": edited}, headers=GOOD).get_json()
    assert saved["edited"] is True and "-FACTOR = 1" in saved["diff"] and "+FACTOR = 2" in saved["diff"]
    run = start(client, params={"count": 4}, exercise=2, scratch=True)
    assert run["scratch"] is True and run["check"]["passed"] is True
    assert (LESSONS / "01_counter.py").read_text() == original
    page = client.get(f"/runs/{run['id']}", headers=GOOD).get_data(as_text=True)
    assert "the edited copy this run ran" in page and ">2</span>" in page  # FACTOR = 2, highlighted
    assert start(client, params={"count": 4}, exercise=2)["check"]["passed"] is False  # the lesson
    reset = client.delete(url, headers={**GOOD, "Content-Type": "application/json"}).get_json()
    assert reset["edited"] is False and reset["source"] == original
    assert client.post("/runs", json={"lesson": "01", "scratch": True}, headers=GOOD).status_code == 400


@pytest.mark.parametrize("body", [{"source": 3}, {"source": "x" * 50_000}, {"code": "x"},
                                  {"source": "\ud800"}, []])
def test_a_bad_copy_gets_400_and_keeps_the_old_one(client, body):
    url = "/api/lessons/01/scratch"
    client.put(url, json={"source": "kept = 1\n"}, headers=GOOD)
    answer = client.put(url, json=body, headers=GOOD)
    assert answer.status_code in (400, 413), answer.get_data()
    assert client.get(url, headers=GOOD).get_json()["source"] == "kept = 1\n"


def test_a_copy_belongs_to_its_browser(tmp_path):
    app = make_app(tmp_path)
    teacher, student = app.test_client(), app.test_client()
    teacher.put("/api/lessons/01/scratch", json={"source": "mine = 1\n"}, headers=GOOD)
    assert student.get("/api/lessons/01/scratch", headers=GOOD).get_json()["edited"] is False
    assert teacher.get("/api/lessons/01/scratch", headers=GOOD).get_json()["source"] == "mine = 1\n"


TOKEN = "t" * 40


@pytest.mark.parametrize("allow", [False, True])
def test_remote_mode_refuses_edits_unless_allowed(tmp_path, allow):
    app = make_app(tmp_path, HOST="0.0.0.0", ACCESS_TOKEN=TOKEN, ALLOW_EDITS=allow)
    client = app.test_client()
    auth = {**GOOD, "Authorization": f"Bearer {TOKEN}"}
    put = client.put("/api/lessons/01/scratch", json={"source": "x = 1\n"}, headers=auth)
    run = client.post("/runs", json={"lesson": "01", "scratch": True}, headers=auth)
    page = client.get("/lessons/01", headers=auth).get_data(as_text=True)
    if allow:
        assert put.status_code == 200 and run.status_code == 201 and 'id="editor-pane"' in page
        assert "opens the editor" in page and "edits-off" not in page
        assert finished(client, run.get_json()["id"], auth)["scratch"] is True
    else:
        assert put.status_code == 403 and run.status_code == 403
        assert "--allow-edits" in put.get_json()["error"] and "--allow-edits" in page
        assert 'id="editor-pane"' not in page
        # The code-change exercise's card says why its editor will not open, instead of promising it.
        card = re.search(r'id="exercise-2".*?</article>', page, re.S).group(0)
        assert "editing is off on this shared server" in card and "--allow-edits" in card
        assert "opens the editor" not in page
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def test_the_cards_unlock_hints_then_the_solution(client):
    def card(n: int) -> str:
        html = client.get("/lessons/01/exercises", headers=GOOD).get_data(as_text=True)
        return re.search(rf'id="exercise-{n}".*?</article>', html, re.S).group(0)

    assert 'class="hints"' not in card(1) and "Solution" not in card(1)
    start(client, params={}, exercise=1)
    assert card(1).count("<li>") == 1 and "Look at" in card(1)
    start(client, params={}, exercise=1)
    assert card(1).count("<li>") == 2 and "Show the solution" not in card(1)
    start(client, params={}, exercise=1)
    assert "Show the solution" in card(1)
    start(client, params={"count": 7}, exercise=1)
    assert "solved" in card(1) and "<details class=\"solution\" open>" in card(1)
    assert "FACTOR = 2" not in card(2), "an unsolved exercise's solution stays hidden"
    index = client.get("/", headers=GOOD).get_data(as_text=True)
    assert "01 · 1/3" in index


@pytest.mark.parametrize("raw, problem", [
    ({"level": [{"n": 1, "goal": "g", "checks": [{"status": "exited"}], "shortest": -1}]}, "shortest"),
    ({"level": [{"n": 1, "goal": "g", "checks": [{"status": "exited"}],
                 "solution": {"schedule": ["A"]}}]}, "schedule"),
    ({"level": [{"n": 1, "checks": [{"status": "exited"}]}]}, "goal"),
    ({"level": [{"n": 1, "goal": "g", "checks": [{"status": "exited"}]}] * 2}, "repeat"),
])
def test_a_level_that_breaks_the_format_is_refused(raw, problem):
    with pytest.raises(SpecError, match=problem):
        parse_levels(raw)


def test_a_levels_verdict_counts_the_steps_but_not_the_final_free():
    level = parse_levels({"level": [{"n": 2, "goal": "g", "shortest": 3,
                                               "checks": [{"value": "lost", "above": 0}]}]})[0]
    events = [{"kind": "step", "thread": "A"}, {"kind": "step", "thread": "B"},
              {"kind": "step", "free": True}, {"kind": "result", "values": {"lost": 1}}]
    verdict = judge(level, Outcome.of(events, {}, "exited"))
    assert (verdict["passed"], verdict["steps"], verdict["shortest"], verdict["level"]) == (True, 2, 3, 2)
    assert verdict["message"] == "goal reached in 2 steps (the shortest known: 3)"


# -- a level is won by the learner's schedule, not by the operating system's ----------------------

LOSE = {"level": [{"n": 1, "goal": "g", "shortest": 10, "checks": [{"value": "lost", "above": 0}]}]}
DEADLOCK = {"level": [{"n": 1, "goal": "g", "shortest": 4, "checks": [
    {"events": "deadlock", "where": {"op": "formed"}, "at_least": 1}, {"value": "finished", "equals": 1}]}]}


def held(name: str, join: str | None = None, can_run: bool = True) -> dict:
    sync = {"op": "join", "obj": join, "kind": "thread"} if join else None
    return {"name": name, "ident": hash(name), "next": "l.py:1", "source": "x", "sync": sync,
            "can_run": can_run}


def paused(*threads: dict, blocked: tuple = (), running: tuple = ()) -> dict:
    return {"kind": "paused", "threads": list(threads), "blocked": list(blocked), "running": list(running)}


def stepped(k: int, *, last: list[dict], after: tuple = (), lost: int = 1,
            source: str = "command") -> list[dict]:
    """A level try: ``k`` steps, the held state ``last`` after them, the free, then ``after``."""
    steps = [{"kind": "step", "thread": "T", "until": "line"} for _ in range(k)]
    return [paused(held("MainThread")), *steps, *last, {"kind": "step", "free": True, "source": source},
            *after, {"kind": "result", "values": {"lost": lost}}]


def level_verdict(raw: dict, events: list[dict]) -> dict:
    from app.checking import judge_level

    return judge_level(parse_levels(raw)[0], Outcome.of(events, {}, "exited"))


def test_a_goal_reached_after_letting_two_threads_go_is_luck_and_does_not_count():
    # Lesson 05's level one step short: Unlocked-1 has read, Unlocked-2 has not; main waits to join.
    last = [paused(held("MainThread", join="Unlocked-1"), held("Unlocked-1"), held("Unlocked-2"))]
    verdict = level_verdict(LOSE, stepped(9, last=last))
    assert (verdict["passed"], verdict["counted"], verdict["steps"]) == (False, False, 9)
    assert verdict["message"].startswith("the goal showed, but not by your schedule: you let the "
                                         "threads run freely at step 9 while Unlocked-1 and "
                                         "Unlocked-2 had not finished")
    assert "This try does not count" in verdict["message"]
    missed = level_verdict(LOSE, stepped(9, last=last, lost=0))  # the same, and luck went against it
    assert missed["passed"] is False and "counted" not in missed
    assert missed["message"].startswith("not yet: lost > 0 (you let the threads run freely at step 9")


def test_letting_go_when_one_thread_is_left_to_move_counts():
    # One step more: Unlocked-2 ran to its end; only Unlocked-1 is left, main waits in join for it.
    last = [paused(held("MainThread", join="Unlocked-1"), held("Unlocked-1"))]
    verdict = level_verdict(LOSE, stepped(10, last=last))
    assert verdict == {"exercise": 1, "level": 1, "passed": True, "steps": 10, "shortest": 10,
                       "evidence": "lost = 1", "message": "goal reached in 10 steps (the shortest known: 10)"}
    # Waiting in join (blocked, or held before it) counts as waiting only while its thread lives.
    blocked_in_join = [paused(held("Unlocked-1"), blocked=({"name": "MainThread", "state": "waiting-join",
                                                            "waiting_for": "Unlocked-1"},))]
    assert level_verdict(LOSE, stepped(10, last=blocked_in_join))["passed"] is True
    joins_an_ended_one = [paused(held("MainThread", join="Unlocked-2"), held("Unlocked-1"))]
    assert "MainThread and Unlocked-1" in level_verdict(LOSE, stepped(10, last=joins_an_ended_one))["message"]


@pytest.mark.parametrize("last, names", [
    ([paused(held("A"), held("B", can_run=False))], "A and B"),  # B waits for A's lock: not for ever
    ([paused(held("A"), blocked=({"name": "B", "state": "waiting-lock", "waiting_for": "x"},))], "A and B"),
    ([paused(held("A"), running=("Sleeper",))], "A and Sleeper"),  # a sleep ends on the real clock
])
def test_every_thread_not_finished_nor_waiting_in_join_could_still_move(last, names):
    assert f"while {names} had not finished" in level_verdict(LOSE, stepped(3, last=last))["message"]


def test_a_thread_started_after_letting_go_is_the_operating_systems_too():
    # At step 0 only main can move, but it goes on to start the workers, which then race freely.
    after = [{"kind": "thread", "op": "start", "name": name} for name in ("W-1", "W-2")]
    verdict = level_verdict(LOSE, stepped(0, last=[], after=after))
    assert verdict["counted"] is False
    assert "at step 0, and then W-1 and W-2 started" in verdict["message"]


def test_a_goal_that_showed_before_letting_go_counts_whatever_runs_after():
    last = [paused(held("A"), held("B")), {"kind": "deadlock", "op": "formed"}]
    events = stepped(4, last=last)
    events[-1] = {"kind": "result", "values": {"finished": 1}}
    assert level_verdict(DEADLOCK, events)["passed"] is True
    # A deadlock that forms only after the threads ran freely is theirs (and the OS's), not the schedule's.
    late = stepped(4, last=[paused(held("A"), held("B"))], after=({"kind": "deadlock", "op": "formed"},))
    late[-1] = {"kind": "result", "values": {"finished": 1}}
    assert level_verdict(DEADLOCK, late)["counted"] is False
    # A check that something did not happen holds before anything happens: it shows no goal.
    calm = {"level": [{"n": 1, "goal": "g", "checks": [{"events": "deadlock", "equals": 0}]}]}
    assert level_verdict(calm, stepped(2, last=[paused(held("A"), held("B"))]))["counted"] is False


@pytest.mark.parametrize("source, words", [
    ("command", "you let the threads run freely at step 2"),
    ("schedule", "the schedule lets the threads run freely after step 2"),  # a replay: the learner's too
    ("interrupt", "Stop let the threads go at step 2"),
    ("stdin", "the threads went free at step 2, when nobody could step them any more"),
])
def test_the_check_says_who_let_the_threads_go(source, words):
    verdict = level_verdict(LOSE, stepped(2, last=[paused(held("A"), held("B"))], source=source))
    assert words in verdict["message"] and verdict["passed"] is False


def test_a_try_stepped_to_its_end_counts_and_one_never_held_does_not():
    whole = [paused(held("A")), {"kind": "step", "thread": "A", "until": "sync"},
             {"kind": "result", "values": {"lost": 1}}]
    assert level_verdict(LOSE, whole)["passed"] is True  # no free: every move was scheduled
    never = [{"kind": "result", "values": {"lost": 1}}]
    assert "step mode never held the threads" in level_verdict(LOSE, never)["message"]
    early = [{"kind": "step", "free": True, "source": "command"}, {"kind": "result", "values": {"lost": 1}}]
    assert "before they were first held" in level_verdict(LOSE, early)["message"]
    # Let go while a step was still under way (a sleep): where it was going is unknown.
    running = [paused(held("A")), {"kind": "step", "thread": "A", "until": "line"},
               {"kind": "step", "free": True, "source": "command"}, {"kind": "result", "values": {"lost": 1}}]
    assert "while A's step was still running" in level_verdict(LOSE, running)["message"]


def test_a_try_that_does_not_count_is_a_try_but_not_a_pass(tmp_path):
    progress = Progress(tmp_path)
    last = [paused(held("MainThread", join="A"), held("A"), held("B"))]
    luck = level_verdict(LOSE, stepped(9, last=last))
    progress.add_try(BROWSER, "05", 1, lambda earlier: luck, kind="levels")
    assert progress.solved(BROWSER, "05", "levels")[1] == {"tries": 1, "passed": False, "recent": [False]}


def test_a_level_run_reads_the_events_the_rule_needs(tmp_path):
    from app.checking import Practice

    level = parse_levels(LOSE)[0]
    practice = Practice(lesson="05", learner="", progress=Progress(tmp_path), exercise=level)
    assert {b"step", b"paused", b"thread", b"result"} <= practice.wanted_kinds()
    assert b"paused" not in Practice(lesson="05", learner="", progress=Progress(tmp_path),
                                     exercise=one({"status": "exited"})).wanted_kinds()
