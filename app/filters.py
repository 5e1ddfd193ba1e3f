"""Small helpers the templates use: thread colours, times, highlighted source."""

from __future__ import annotations

import datetime
import math
import time
import zlib
from functools import lru_cache

import markdown
from flask import Flask
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from . import defaults

THREAD_COLOURS = 12  # distinct hues in static/threadlab.css (.tc0 … .tc11)


def thread_colour(name: str) -> str:
    """A stable colour class per thread name, the same on every page and every run."""
    if name == "MainThread":
        return "tc-main"
    # "replace": a name with a lone surrogate (from a file older than ingest's cleaning) still gets one
    return f"tc{zlib.crc32(str(name).encode('utf-8', 'replace')) % THREAD_COLOURS}"


_clock_cache: tuple[int, str] = (-1, "")


def clock(epoch: float | None) -> str:
    """``HH:MM:SS.mmm``; the seconds part is formatted once per second, not once per log row."""
    global _clock_cache
    if not epoch:
        return ""
    try:
        whole = int(epoch)
        cache = _clock_cache  # once: page sockets of other runs replace it from their threads
        if cache[0] != whole:
            cache = _clock_cache = (whole, datetime.datetime.fromtimestamp(whole).strftime("%H:%M:%S"))
        return f"{cache[1]}.{int((epoch - whole) * 1000):03d}"
    except (TypeError, ValueError, OverflowError, OSError):
        # ``t`` is the lesson's to write: NaN, 1e999, "soon" or a year past 9999 must not break the page.
        return ""


def when(epoch: float | None) -> str:
    if not epoch:
        return ""
    try:
        return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):  # as in clock(): a time no calendar has
        return ""


@lru_cache(maxsize=512)
def _markdown(text: str) -> str:
    """Docstring prose as HTML, by Python-Markdown: ``code``, *emphasis*, numbered lists and
    paragraphs as a reader expects them. Raw HTML in a teacher's docstring is shown as text, never
    as markup: the two HTML readers are taken out, so ``<b>`` is escaped like any other text."""
    md = markdown.Markdown()  # one per call: a Markdown object keeps state and is not thread-safe
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


def inline(text: str) -> Markup:
    """One line of docstring text with its ``code`` and *emphasis* shown as such (no paragraph)."""
    html = _markdown(" ".join(str(text).split()))
    return Markup(html.removeprefix("<p>").removesuffix("</p>"))


def prose(text: str) -> Markup:
    """A docstring section as paragraphs and numbered lists."""
    return Markup(_markdown(str(text).strip()))


@lru_cache(maxsize=64)
def _highlighted(source: str) -> str:
    formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=False, cssclass="code")
    return highlight(source, PythonLexer(), formatter)


def source_html(source: str) -> Markup:
    """The lesson's code, highlighted by Pygments, each line anchored as ``#L-<n>``."""
    return Markup(_highlighted(source))


def diff_html(diff: str) -> Markup:
    """A unified diff, highlighted (added lines green, removed red) by Pygments."""
    return Markup(highlight(diff, DiffLexer(), HtmlFormatter(cssclass="code diff")))


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(thread_colour=thread_colour, clock=clock, when=when,
                                 source_html=source_html, prose=prose, inline=inline,
                                 diff_html=diff_html)
    from .stream import MAX_LOG_ROWS  # here, not at the top: stream imports this module

    # max_log_rows: the page trims its log to what the server keeps (no constant copied into JS);
    # now: the server's clock, so a page on another machine can tell how long a run has been going.
    app.jinja_env.globals.update(cos=math.cos, sin=math.sin, now=time.time, max_log_rows=MAX_LOG_ROWS,
                                 run_summary=run_summary, interrupt_grace=defaults.INTERRUPT_GRACE,
                                 terminate_grace=defaults.TERMINATE_GRACE)


def run_summary(run) -> dict:
    """What the status line must say beyond the status word: ``text`` ("exited 0 · 2 threads
    crashed") and ``warning`` (the exit code alone would claim a success that did not happen)."""
    from . import models

    return models.status_text(run, models.model_for(run))
