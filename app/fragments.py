"""Log rows as HTML, built in Python rather than Jinja.

They are the one fragment drawn thousands of times a second: profiled under eight page viewers,
rendering them through a template was three quarters of the server's time. Each row is built once
per event (cached on the event, which the run's in-memory tail shares between viewers) and every
value goes through ``escape``: lesson output is text, never markup.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape

from .filters import clock, thread_colour

# The key a row's HTML is cached under. Not a string: every key of a parsed event is one, so a
# lesson printing {"kind": "log", "_html": "<img onerror=...>"} cannot hand us its own "cached" row
# (with the old "_html" key it did, live and on replay). Events are serialised once, at ingest,
# before any viewer renders them, so the odd key never reaches JSON.
_HTML = object()


def log_row(event: dict[Any, Any]) -> str:
    cached = event.get(_HTML)
    if cached is None:
        cached = event[_HTML] = _build(event)
    return cached


def _build(event: dict[str, Any]) -> str:
    kind = event.get("kind")
    when = clock(event["t"]) if isinstance(event.get("t"), (int, float)) else ""
    # The row's seq lets the time bar find the log line of a chosen instant.
    seq = f' data-seq="{event["seq"]}"' if isinstance(event.get("seq"), int) else ""
    if kind == "log":
        level = str(event.get("level", ""))
        thread = str(event.get("thread", ""))
        exc = f"<pre>{escape(event['exc'])}</pre>" if event.get("exc") else ""
        return (f'<tr class="{thread_colour(thread)} level-{escape(level.lower())}"{seq}>'
                f'<td class="time">{when}</td>'
                f'<td class="thread" title="{escape(thread)}">{escape(thread)}</td><td>{escape(level)}</td>'
                f'<td class="msg">{escape(event.get("msg", ""))}{exc}</td></tr>')
    if kind == "signal":
        return (f'<tr class="signal-row"{seq}><td class="time">{when}</td><td class="thread">dashboard</td>'
                f'<td>SIGNAL</td><td class="msg">sent {escape(event.get("signal", ""))} to the run\'s '
                f'process group</td></tr>')
    level = "ERROR" if kind == "stderr" else ""
    return (f'<tr class="{escape(kind)}-row"{seq}><td class="time">{when}</td>'
            f'<td class="thread">{escape(kind)}</td>'
            f'<td>{level}</td><td class="msg"><pre>{escape(event.get("text", ""))}</pre></td></tr>')
