"""Exercises in the page: a parameter exercise missed (a hint appears), then solved (the solution
shows); a code-edit exercise solved in the editor, run as the browser's own copy; a prediction."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, LiveServer

LESSONS = ROOT / "tests" / "fixtures" / "exercise_lessons"


@pytest.fixture(scope="module")
def exercise_server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("exercises"), "--lessons-dir", str(LESSONS))
    yield live
    live.stop()


def run_and_wait(page, status="exited"):
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_contain_text(status, timeout=15_000)


def test_a_parameter_exercise_missed_then_solved(page, exercise_server, console_errors):
    page.goto(exercise_server.url + "/lessons/01")
    card = page.locator("#exercise-1")
    expect(card.locator(".goal")).to_contain_text("The count is 7.")
    card.get_by_role("button", name="Try it").click()
    expect(page.locator("#p-count")).to_have_value("7")
    expect(page.locator("#run-exercise")).to_have_value("1")
    page.fill("#p-count", "6")  # a learner's slip
    run_and_wait(page)
    expect(page.locator("#check")).to_contain_text("Exercise 1: not yet")
    expect(page.locator("#check")).to_contain_text("counted to 6")
    expect(card.locator(".hints li")).to_have_count(1)  # the cards came back with one hint
    expect(card.locator(".hints")).to_contain_text("Look at --count.")
    expect(card.locator("details.solution")).to_have_count(0)
    page.fill("#p-count", "7")
    run_and_wait(page)
    expect(page.locator("#check")).to_contain_text("Exercise 1: goal reached")
    expect(card.locator(".badge.ok")).to_have_text("solved")
    expect(card.locator("details.solution[open]")).to_contain_text("The parameter sets how far")
    expect(page.locator(".exercise-score")).to_have_text("1/3 solved")
    page.goto(exercise_server.url + "/")
    expect(page.locator(".badge.progress")).to_have_text("01 · 1/3")
    assert console_errors == []


def test_a_code_edit_exercise_solved_in_the_editor(page, exercise_server, console_errors):
    page.goto(exercise_server.url + "/lessons/01")
    page.locator("#exercise-2").get_by_role("button", name="Try it").click()
    expect(page.locator("#editor-pane")).to_be_visible()
    expect(page.locator("#editor .ace_line").first).to_be_visible()
    expect(page.locator("#source")).to_be_hidden()
    # An editor a learner expects: line numbers, Python highlighting, and undo that really undoes.
    expect(page.locator("#editor .ace_gutter-cell").first).to_have_text("1")
    expect(page.locator("#editor .ace_keyword", has_text="def").first).to_be_visible()
    page.evaluate("ace.edit('editor').find('FACTOR = 1 ')")
    page.keyboard.type("oops")  # one word: Ace undoes a word at a time (a space starts a new one)
    expect(page.locator("#editor-state")).to_have_text("your copy: edited and saved")
    page.keyboard.press("Control+z")
    expect(page.locator("#editor-state")).to_have_text("your copy: the lesson as it is")
    assert page.evaluate("ace.edit('editor').getValue()") == (LESSONS / "01_counter.py").read_text()
    # Select the line as a learner would find it, then type over it with real key presses.
    page.evaluate("ace.edit('editor').find('FACTOR = 1 ')")
    page.keyboard.type("FACTOR = 2 ")
    expect(page.locator("#editor-state")).to_have_text("your copy: edited and saved")
    expect(page.locator("#run-scratch")).to_be_checked()
    # Try it again (or another card, and back): a parameter exercise runs the lesson as it is, a
    # code-change one keeps running the edited copy (the form's reset must not untick it).
    page.locator("#exercise-1").get_by_role("button", name="Try it").click()
    expect(page.locator("#run-scratch")).not_to_be_checked()
    page.locator("#exercise-2").get_by_role("button", name="Try it").click()
    expect(page.locator("#run-scratch")).to_be_checked()
    expect(page.locator("#run-exercise")).to_have_value("2")
    expect(page.locator("#editor-state")).to_contain_text("Reset starts again from the lesson")
    page.get_by_role("button", name="Diff").click()
    expect(page.locator("#editor-diff-out")).to_contain_text("+FACTOR = 2")
    run_and_wait(page)
    expect(page.locator("#check")).to_contain_text("Exercise 2: goal reached")
    expect(page.locator("#exercise-2 .badge.ok")).to_have_text("solved")
    # The run's own page shows the code that ran; the lesson file was never touched.
    page.reload()
    expect(page.locator(".source-pane h2")).to_contain_text("the edited copy this run ran")
    expect(page.locator("#source")).to_contain_text("FACTOR = 2")
    assert "FACTOR = 1 " in (LESSONS / "01_counter.py").read_text()
    page.get_by_role("button", name="Edit a copy").click()
    page.get_by_role("button", name="Reset").click()
    expect(page.locator("#editor-state")).to_have_text("your copy: the lesson as it is")
    expect(page.locator("#run-scratch")).not_to_be_checked()
    assert console_errors == []


def test_a_prediction_is_revealed_when_the_run_ends(page, exercise_server, console_errors):
    page.goto(exercise_server.url + "/lessons/01")
    expect(page.locator("#prediction legend")).to_contain_text("How far will it count?")
    page.get_by_label("less than 5").check()
    run_and_wait(page)  # the default count is 5
    expect(page.locator("#prediction-reveal")).to_contain_text("not this time")
    expect(page.locator("#prediction-reveal")).to_contain_text("it was 5 or more")
    assert console_errors == []


def test_lesson_05s_lock_exercise_solved_in_the_editor(page, server, console_errors):
    """The real lesson: lock only the write, and see the locked counter lose updates."""
    page.goto(server.url + "/lessons/05")
    page.locator("#exercise-1").get_by_role("button", name="Try it").click()
    expect(page.locator("#p-threads")).to_have_value("4")
    expect(page.locator("#editor .ace_line").first).to_be_visible()
    # The edit a learner makes (Ace's own find and insert, so the editor saves it as typing would).
    page.evaluate("""(() => {
        const editor = ace.edit('editor'), lines = editor.session.getDocument().getAllLines();
        const at = lines.findIndex((line, i) => line === '        with lock:'
                                   && lines[i + 1] === '            unsafe_increment(counter)');
        const Range = ace.require('ace/range').Range;
        editor.session.replace(new Range(at, 0, at + 2, 0),
            '        value = counter.value\\n        counter.gap()\\n'
            + '        with lock:\\n            counter.value = value + 1\\n');
    })()""")
    expect(page.locator("#editor-state")).to_have_text("your copy: edited and saved")
    run_and_wait(page, "failed")  # the lesson's own check: the locked counter lost updates
    expect(page.locator("#check")).to_contain_text("Exercise 1: goal reached")
    expect(page.locator("#check")).to_contain_text("of 4000")
    expect(page.locator("#exercise-1 details.solution[open]")).to_contain_text("the read *and* the write"
                                                                                .replace("*", ""))
    assert console_errors == []


def test_saves_land_in_the_order_typed_and_run_waits_for_the_last(page, exercise_server, console_errors):
    """A slow save still in flight when the learner types on and presses Run: the newer save goes
    only after it lands, and the run starts only after that, so what runs is what was typed last."""
    held = []

    def hold_first_put(route):
        if route.request.method == "PUT" and not held:
            held.append(route)  # answered below, once the learner has typed on
        else:
            route.continue_()

    page.goto(exercise_server.url + "/lessons/01")
    page.locator("#exercise-2").get_by_role("button", name="Try it").click()
    expect(page.locator("#editor .ace_line").first).to_be_visible()
    page.route("**/api/lessons/*/scratch", hold_first_put)
    page.evaluate("ace.edit('editor').find('FACTOR = 1 ')")
    page.keyboard.type("FACTOR = 3 ")
    page.wait_for_timeout(800)  # the first save went (and hangs)
    assert len(held) == 1
    page.evaluate("ace.edit('editor').find('FACTOR = 3 ')")
    page.keyboard.type("FACTOR = 2 ")
    page.wait_for_timeout(800)  # the second save is due, but waits for the first
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#editor-state")).to_have_text("your copy: saving…")
    held[0].continue_()
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=15_000)
    expect(page.locator("#check")).to_contain_text("Exercise 2: goal reached")  # FACTOR = 2 ran
    copy = page.request.get(exercise_server.url + "/api/lessons/01/scratch").json()
    assert "FACTOR = 2 " in copy["source"] and "FACTOR = 3" not in copy["source"]
    page.request.delete(exercise_server.url + "/api/lessons/01/scratch",
                        headers={"Content-Type": "application/json"})
    assert console_errors == []


def test_a_copy_that_cannot_be_saved_is_not_run(page, exercise_server):
    """Run pressed while the copy's save is refused: nothing starts (it would run the older copy)
    and the editor says why."""
    runs_before = len(page.request.get(exercise_server.url + "/api/runs").json())
    page.goto(exercise_server.url + "/lessons/01")
    page.locator("#exercise-2").get_by_role("button", name="Try it").click()
    expect(page.locator("#editor .ace_line").first).to_be_visible()
    page.route("**/api/lessons/*/scratch", lambda route: route.fulfill(
        status=400, content_type="application/json",
        body='{"error": "source: source is longer than 49152 characters", "field": "source"}')
        if route.request.method == "PUT" else route.continue_())
    page.evaluate("ace.edit('editor').find('FACTOR = 1 ')")
    page.keyboard.type("FACTOR = 2 ")
    page.get_by_role("button", name="Run", exact=True).click()  # before the save: Run waits for it
    expect(page.locator("#editor-state")).to_contain_text("not saved: source: source is longer")
    page.wait_for_timeout(500)
    assert "/runs/" not in page.url
    assert len(page.request.get(exercise_server.url + "/api/runs").json()) == runs_before
