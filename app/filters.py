"""Small helpers the templates use: thread colours, times, highlighted source."""

from __future__ import annotations

import datetime
import math
import zlib
from functools import lru_cache

from flask import Flask
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

THREAD_COLOURS = 12  # distinct hues in static/threadlab.css (.tc0 … .tc11)


def thread_colour(name: str) -> str:
    """A stable colour class per thread name, the same on every page and every run."""
    if name == "MainThread":
        return "tc-main"
    return f"tc{zlib.crc32(str(name).encode()) % THREAD_COLOURS}"


def clock(epoch: float | None) -> str:
    if not epoch:
        return ""
    return datetime.datetime.fromtimestamp(epoch).strftime("%H:%M:%S.%f")[:-3]


def when(epoch: float | None) -> str:
    if not epoch:
        return ""
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


@lru_cache(maxsize=64)
def _highlighted(source: str) -> str:
    formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=False, cssclass="code")
    return highlight(source, PythonLexer(), formatter)


def source_html(source: str) -> Markup:
    """The lesson's code, highlighted by Pygments, each line anchored as ``#L-<n>``."""
    return Markup(_highlighted(source))


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(thread_colour=thread_colour, clock=clock, when=when,
                                 source_html=source_html)
    app.jinja_env.globals.update(cos=math.cos, sin=math.sin)
