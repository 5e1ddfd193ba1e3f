"""Lesson output is text wherever it is shown: log rows, thread table, result, stacks, run pages,
the timeline SVG. Fault lesson 07 logs, prints and names its threads with HTML and htmx payloads."""

from __future__ import annotations

import importlib.util
import re
import threading
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from tests.live_helpers import FAULT_LESSONS, Tags, raw_request, ws_page_messages

_spec = importlib.util.spec_from_file_location("xss_fixture", FAULT_LESSONS / "07_xss.py")
xss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(xss)
PAYLOADS = (xss.IMG, xss.HTMX, xss.BREAKOUT)
THREADS = (xss.THREAD_TAG, xss.THREAD_ATTR)
# What a payload would bring if it were parsed as HTML instead of shown as text.
INJECTED_TAGS = {"iframe", "object", "embed", "svg", "math", "base", "frame", "form"}
INJECTED_ATTRS = {"hx-trigger", "hx-vals", "hx-get", "hx-put", "hx-delete", "hx-patch", "srcdoc"}


def assert_inert(html: str, run_id: str) -> Tags:
    """Nothing in ``html`` came from the lesson as markup: no payload tag, handler or htmx verb."""
    page = Tags(html)
    for tag, attrs in page.tags:
        if tag == "img":  # the page's own timeline picture is the only image
            assert re.fullmatch(r"/runs/\w+/timeline", attrs.get("src") or ""), attrs
        elif tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
        elif tag == "form":  # the page's own forms post to our routes only
            action = attrs.get("action") or ""
            assert re.fullmatch(r"/runs(/\w*/(stop|dump|signal))?|/experiments", action), attrs
        else:
            assert tag not in INJECTED_TAGS, (tag, attrs)
        assert not [a for a in attrs if a in INJECTED_ATTRS or a.startswith(("on", "hx-on"))], (tag, attrs)
        if "hx-post" in attrs:  # only the run's own controls (and the run and experiment forms) post
            assert tag == "form" and re.fullmatch(rf"/runs(/({run_id})?/(stop|dump|signal))?|/experiments",
                                                  attrs["hx-post"]), attrs
    return page


@pytest.fixture(scope="module")
def xss_run(fault_server):
    """Run 07 with a page viewer attached from the start; dump stacks while its threads live."""
    run_id = fault_server.start("07", duration=2)
    messages: list[str] = []
    viewer = threading.Thread(target=lambda: messages.extend(ws_page_messages(fault_server, run_id)))
    viewer.start()
    fault_server.wait_for_event(
        run_id, lambda e: e["kind"] == "threads" and {t["name"] for t in e["threads"]} >= set(THREADS))
    assert fault_server.post_json(f"/runs/{run_id}/dump", {})[0] == 202
    fault_server.wait_for_event(run_id, lambda e: e["kind"] == "stacks")
    assert fault_server.wait_status(run_id, timeout=20)["status"] == "exited"
    viewer.join(20)
    return run_id, messages


def test_live_fragments_show_the_payloads_as_text(fault_server, xss_run):
    run_id, messages = xss_run
    html = "".join(messages)
    page = assert_inert(html, run_id)
    text = "".join(page.text)
    for payload in (*PAYLOADS, *THREADS, "{{ 7 * 7 }} {%% raw %%}", "ValueError: " + xss.IMG):
        assert payload in text, payload
    names = [attrs.get("data-thread") for tag, attrs in page.tags if tag == "tr" and "data-thread" in attrs]
    assert set(THREADS) <= set(names), "the thread table's rows carry the names as they are"
    assert "hx-post=\"/runs\"" not in html and "<img src=x" not in html


def test_a_late_viewer_gets_the_same_inert_history(fault_server, xss_run):
    run_id, _ = xss_run
    html = "".join(ws_page_messages(fault_server, run_id))
    text = "".join(assert_inert(html, run_id).text)
    for payload in (*PAYLOADS, xss.HTMX):
        assert payload in text


def test_pages_show_titles_sources_and_params_as_text(fault_server, xss_run):
    run_id, _ = xss_run
    port = fault_server.port
    label = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    sleeper = fault_server.start("01", duration=0, label=label)
    fault_server.wait_status(sleeper)
    for path, rid in (("/", run_id), ("/lessons/07", run_id), (f"/runs/{run_id}", run_id),
                      (f"/runs/{sleeper}", sleeper)):
        status, _, body = raw_request(port, "GET", path, {"Host": f"127.0.0.1:{port}"})
        assert status == 200, path
        page = assert_inert(body.decode(), rid)
        if path == "/lessons/07":
            assert xss.IMG in "".join(page.text), "the source and the title are shown, as text"
    status, _, body = raw_request(port, "GET", f"/runs/{sleeper}", {"Host": f"127.0.0.1:{port}"})
    values = [attrs.get("value") for tag, attrs in Tags(body.decode()).tags
              if tag == "input" and attrs.get("name") == "label"]
    assert values == [label], "the label is the input's value, exactly, and nothing more"


def test_error_pages_escape_what_the_url_said(fault_server):
    port = fault_server.port
    path = "/lessons/" + quote(xss.IMG, safe="")
    status, _, body = raw_request(port, "GET", path, {"Host": f"127.0.0.1:{port}", "Accept": "text/html"})
    assert status == 404
    page = assert_inert(body.decode(), "none")
    assert xss.IMG in "".join(page.text)


def test_the_timeline_svg_keeps_thread_names_inside_their_attribute(fault_server, xss_run):
    run_id, _ = xss_run
    port = fault_server.port
    status, headers, body = raw_request(port, "GET", f"/runs/{run_id}/timeline",
                                        {"Host": f"127.0.0.1:{port}"})
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert "script-src 'self'" in headers["Content-Security-Policy"], "an SVG opened directly is a page"
    root = ET.fromstring(body)  # well-formed: nothing the lesson wrote broke out of its place
    ns = "{http://www.w3.org/2000/svg}"
    for element in root.iter():
        assert element.tag.removeprefix(ns) in {"svg", "rect", "text", "g", "line", "title"}, element.tag
        assert not [a for a in element.attrib if a.startswith("on")], element.attrib
    lanes = {g.get("data-thread"): set(g.attrib) for g in root.iter(f"{ns}g")}
    for name in THREADS:
        assert lanes.get(name) == {"class", "data-thread", "data-lane", "data-ident"}, lanes


def test_machine_endpoints_are_not_sniffed_as_html(fault_server, xss_run):
    run_id, _ = xss_run
    port = fault_server.port
    for path, mime in ((f"/api/runs/{run_id}/events", "application/x-ndjson"),
                       (f"/api/runs/{run_id}", "application/json"), ("/api/lessons", "application/json")):
        _, headers, _ = raw_request(port, "GET", path, {"Host": f"127.0.0.1:{port}"})
        assert headers["Content-Type"].startswith(mime) and headers["X-Content-Type-Options"] == "nosniff"
