"""Step mode in the page: the learner schedules two real threads into a lost update, then replays
the schedule and gets the same result."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.registry import Registry
from tests.conftest import ROOT, LiveServer

LESSONS = ROOT / "tests" / "fixtures" / "step_lessons"


@pytest.fixture(scope="module")
def step_server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("steps"), "--lessons-dir", str(LESSONS))
    yield live
    live.stop()


def press(page, label: str, then_source: dict[str, str] | None = None):
    page.get_by_role("button", name=label, exact=True).click()
    for thread, source in (then_source or {}).items():
        expect(page.locator(f'#stepper tr[data-thread="{thread}"] code')).to_have_text(source)


def step_through(page, labels, taken: int = 0) -> None:
    """Press each button in turn, each once the panel shows the step before it was answered
    (``taken``: the steps taken before the first). A press before that clicks the old panel's
    button while its request is out, and the step can be lost."""
    for number, label in enumerate(labels, taken + 1):
        press(page, label)
        expect(page.locator(f'#stepper[data-steps="{number}"]')).to_have_count(1)


def test_alternating_steps_lose_an_update_and_the_replay_loses_it_again(page, step_server,
                                                                        console_errors):
    page.goto(step_server.url + "/lessons/01")
    page.get_by_label("step mode: I am the scheduler").check()
    page.get_by_role("button", name="Run", exact=True).click()
    stepper = page.locator("#stepper")
    expect(stepper.locator('tr[data-thread="MainThread"] code')).to_have_text("thread.start()")
    step_through(page, ("To next sync MainThread", "To next sync MainThread"))
    expect(stepper.locator('tr[data-thread="MainThread"] code')).to_have_text("thread.join(timeout=30)")
    step_through(page, ("Step A", "Step B"), taken=2)
    for thread in ("A", "B"):
        expect(stepper.locator(f'tr[data-thread="{thread}"] code')).to_have_text("seen = counter.value")
    step_through(page, ("Step A", "Step B"), taken=4)
    for thread in ("A", "B"):
        expect(stepper.locator(f'tr[data-thread="{thread}"] code')).to_have_text("counter.value = seen + 1")
    step_through(page, ("Step A", "Step B"), taken=6)
    expect(stepper.locator("h2")).to_contain_text("8 steps so far")
    press(page, "Run freely")
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=10_000)
    expect(page.locator("#result")).to_contain_text("counter")
    expect(page.locator("#result dd").first).to_have_text("1")  # one update lost, by the learner
    expect(stepper).to_contain_text("The run has ended")
    page.get_by_role("button", name="Replay this schedule").click()
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=10_000)
    expect(page.locator("#result dd").first).to_have_text("1")
    assert console_errors == []


def test_a_level_played_in_the_page_shows_its_steps_and_the_shortest_solution(page, step_server,
                                                                              console_errors):
    page.goto(step_server.url + "/lessons/01")
    card = page.locator("#level-1")
    expect(card).to_contain_text("Level 1: Lose an update")
    card.get_by_role("button", name="Play").click()
    expect(page.locator("#run-step")).to_be_checked()
    expect(page.locator("#run-level")).to_have_value("1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator('#stepper tr[data-thread="MainThread"] code')).to_have_text("thread.start()")
    expect(page.locator("#stepper")).to_contain_text("A level counts only what you schedule")
    # Both write, but both are still running when let go: the OS finishes them, so it does not count.
    step_through(page, ("To next sync MainThread", "To next sync MainThread", "Step A", "Step B",
                        "Step A", "Step B"))
    press(page, "Run freely")
    expect(page.locator("#check h2")).to_have_text("Level 1: does not count")
    expect(page.locator("#check")).to_contain_text("the goal showed, but not by your schedule: you let "
                                                   "the threads run freely at step 6 while A and B had "
                                                   "not finished")
    expect(card.locator(".badge")).to_have_text("1 try")
    expect(card.locator("ol.hints li")).to_have_count(1)  # a try all the same: the first hint shows
    # Again: A reads and is stopped before its write, B runs its whole increment ("to next sync":
    # to its end). Only A is left to move when let go: the lost update is the schedule's.
    card.get_by_role("button", name="Play").click()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator('#stepper tr[data-thread="MainThread"] code')).to_have_text("thread.start()")
    step_through(page, ("To next sync MainThread", "To next sync MainThread", "Step A", "Step A",
                        "To next sync B"))
    expect(page.locator("#stepper h2")).to_contain_text("5 steps so far")
    press(page, "Run freely")
    expect(page.locator("#check")).to_contain_text("Level 1: goal reached")
    level = Registry(LESSONS).get("01").levels[0]  # the fixture's claims, whatever they are now
    expect(page.locator("#check")).to_contain_text(f"goal reached in 5 steps (the shortest known: "
                                                   f"{level.shortest})")
    expect(card.locator(".badge.ok")).to_have_text("solved in 5 steps")
    expect(card.locator("details.solution ol.schedule li")).to_have_count(len(level.schedule))
    assert console_errors == []


def test_a_viewer_in_another_browser_follows_the_steps_but_cannot_take_them(browser, step_server):
    learner, viewer = browser.new_context(), browser.new_context()
    try:
        page = learner.new_page()
        page.goto(step_server.url + "/lessons/01")
        page.get_by_label("step mode: I am the scheduler").check()
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator('#stepper tr[data-thread="MainThread"] code')).to_have_text("thread.start()")
        watching = viewer.new_page()
        watching.goto(page.url)
        expect(watching.locator("#stepper h2")).to_contain_text("0 steps so far")
        expect(watching.get_by_role("button", name="Step MainThread", exact=True)).to_be_disabled()
        press(page, "To next sync MainThread")
        expect(watching.locator("#stepper h2")).to_contain_text("1 step so far")
        expect(watching.locator('#stepper tr[data-thread="A"]')).to_have_count(1)
        press(page, "Run freely")
        expect(watching.locator("#stepper")).to_contain_text("The run has ended", timeout=10_000)
    finally:
        learner.close()
        viewer.close()


def play(page, schedule: list[dict]) -> None:
    """Press, in the page, the buttons a learner would for each step of ``schedule``."""
    for number, one in enumerate(schedule, 1):
        if one.get("free"):
            press(page, "Run freely")
            continue
        label = f"{'To next sync' if one['until'] == 'sync' else 'Step'} {one['thread']}"
        press(page, label)
        expect(page.locator("#stepper h2")).to_contain_text(f"{number} step")


@pytest.mark.parametrize("number", ["05", "09"])
def test_the_first_level_of_a_real_lesson_played_in_the_page(page, server, console_errors, number):
    lesson = Registry(ROOT / "lessons").get(number)
    if not lesson.levels:
        pytest.skip(f"lesson {number} has no level yet")
    level = lesson.levels[0]
    page.goto(f"{server.url}/lessons/{number}")
    page.locator(f"#level-{level.n}").get_by_role("button", name="Play").click()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#stepper table.held")).to_be_visible()
    play(page, level.schedule)
    expect(page.locator("#check")).to_contain_text(f"Level {level.n}: goal reached", timeout=20_000)
    expect(page.locator("#check")).to_contain_text(f"in {level.shortest} steps")
    if number == "09":
        expect(page.locator("#deadlock")).to_contain_text("The cycle formed")
    assert console_errors == []


def test_the_panel_follows_a_sleeper_that_comes_back_by_itself(page, step_server, console_errors):
    page.goto(step_server.url + "/lessons/02")
    page.get_by_label("step mode: I am the scheduler").check()
    page.get_by_role("button", name="Run", exact=True).click()
    press(page, "To next sync MainThread", {"Napper": "time.sleep(nap)"})
    press(page, "Step Napper")  # into its 1.5 s sleep: not held, nobody's to step
    expect(page.locator("#stepper tr.running")).to_contain_text("Napper")
    # No button pressed: the panel shows Napper held at its next line once it wakes.
    expect(page.locator('#stepper tr[data-thread="Napper"] code')).to_have_text("flag.up = True",
                                                                                 timeout=10_000)
    press(page, "Run freely")
    expect(page.locator("#run-status")).to_contain_text("exited", timeout=10_000)
    assert console_errors == []
