"""A run shared with a class: the presenter view, and a Stop that only its starter can press."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_only_the_browser_that_started_a_run_can_stop_it(browser, server, console_errors):
    teacher = browser.new_context()
    student = browser.new_context()
    try:
        page = teacher.new_page()
        page.goto(server.url + "/lessons/03")
        page.fill("#p-duration", "30")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#run-status")).to_contain_text("running")
        run_url = page.url
        assert "/runs/" in run_url
        viewer = student.new_page()
        viewer.goto(run_url)
        expect(viewer.locator("#run-status")).to_contain_text("running")
        expect(viewer.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
        expect(viewer.locator("#controls")).to_contain_text("started in another browser")
        # Even a hand-made form post from the student's session is refused.
        token = viewer.locator("#controls input[name=csrf_token]").first.get_attribute("value")
        answer = viewer.request.post(run_url + "/stop", form={"csrf_token": token})
        assert answer.status == 403
        expect(viewer.locator("#run-status")).to_contain_text("running")
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(viewer.locator("#run-status")).to_contain_text(re.compile("stopped|exited"), timeout=10_000)
    finally:
        teacher.close()
        student.close()


def test_the_presenter_view_has_large_type_and_nothing_to_press(page, server, console_errors):
    run_id = server.start("01")
    server.wait_status(run_id)
    page.goto(f"{server.url}/runs/{run_id}?present=1")
    expect(page.locator("body.present")).to_have_count(1)
    expect(page.locator("#controls")).to_be_hidden()
    expect(page.locator("form#run-form")).to_be_hidden()
    expect(page.locator("table#threads")).to_be_visible()
    size = page.locator("body").evaluate("b => parseFloat(getComputedStyle(b).fontSize)")
    assert size >= 20
    assert console_errors == []
