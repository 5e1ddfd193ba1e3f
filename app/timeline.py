"""A run's timeline as SVG: one lane per thread, coloured by state over time, with marks.

Built from the run's events: ``threads`` snapshots give each lane its segments (a state lasts until
the next snapshot says otherwise); ``sync`` events (acquired, set, notify, timeout), log lines,
signals and ``deadlock`` events are drawn as ticks on the lane of the thread they belong to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .output import kind_of, safe_parse

STATE_COLOURS = {
    "running": "#22c55e", "sleeping": "#818cf8", "waiting-lock": "#ef4444",
    "waiting-condition": "#f59e0b", "waiting-event": "#ec4899", "waiting-queue": "#06b6d4",
    "waiting-io": "#8b5cf6", "done": "#e5e7eb",
}
MARK_COLOURS = {"sync": "#111827", "log": "#9ca3af", "signal": "#b45309", "deadlock": "#b91c1c",
                "error": "#b91c1c"}
LABEL_W, LANE_H, WIDTH, AXIS_H, LEGEND_H = 150, 22, 900, 22, 24
MAX_MARKS = 2000  # ticks drawn at most; a flood of log lines would otherwise bloat the drawing
MAX_EPOCH = 1e11  # seconds (year 5138): a larger ``t`` is a lesson's mistake and would void the axis


@dataclass
class Lane:
    name: str
    segments: list[list] = field(default_factory=list)  # [start, end, state]
    marks: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, title)


def _text(value: Any, default: str = "?") -> str:
    """A thread name or state as text: the lesson may have written a number, a list or null."""
    if isinstance(value, str):
        return value
    return default if value is None else str(value)


def _entries(value: Any) -> list[dict[str, Any]]:
    """The objects of a list field (``threads``, ``cycle``); anything else there is skipped."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def build(lines) -> tuple[dict[str, Lane], float, float]:
    """Lanes by thread name, and the time span, from an iterable of raw event lines.

    Every line of the file is read, so any may be odd: one that is not a JSON object (a torn write,
    a hand edit) is skipped, and fields of the wrong type are drawn as text or left out, never raise.
    """
    lanes: dict[str, Lane] = {}
    start = end = None
    marks = 0
    for line in lines:
        if marks >= MAX_MARKS and kind_of(line) == b"log":
            continue  # no mark left to draw it with: not worth a parse
        event = safe_parse(line)
        if event is None:
            continue
        t = event.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not abs(t) < MAX_EPOCH:
            continue  # also NaN and infinity, which `not abs(t) < MAX_EPOCH` catches
        start = t if start is None else min(start, t)
        end = t if end is None else max(end, t)
        kind = event.get("kind")
        if kind == "threads":
            for row in _entries(event.get("threads")):
                name = _text(row.get("name"))
                lane = lanes.setdefault(name, Lane(name))
                state = _text(row.get("state"), "running")
                if lane.segments and lane.segments[-1][2] == state:
                    lane.segments[-1][1] = t
                else:
                    if lane.segments:
                        lane.segments[-1][1] = t
                    lane.segments.append([t, t, state])
        elif kind in ("sync", "log") and marks < MAX_MARKS:
            name = _text(event.get("thread"))
            title = f"{event.get('op')} {event.get('obj')}" if kind == "sync" else event.get("msg", "")
            colour = "error" if event.get("level") in ("ERROR", "CRITICAL") or event.get("exc") else kind
            lanes.setdefault(name, Lane(name)).marks.append((t, colour, str(title)[:120]))
            marks += 1
        elif kind == "deadlock":
            for entry in _entries(event.get("cycle")):
                name = _text(entry.get("thread"))
                title = f"deadlock: waits for {entry.get('waits_for')}"
                lanes.setdefault(name, Lane(name)).marks.append((t, "deadlock", title))
        elif kind == "signal":
            title = f"{event.get('signal')} sent"
            lanes.setdefault("MainThread", Lane("MainThread")).marks.append((t, "signal", title))
    return lanes, start or 0.0, end or 0.0


def axis_ticks(span: float) -> list[tuple[float, str]]:
    """Round tick positions (1, 2 or 5 times a power of ten, at most six) and their labels."""
    raw_step = max(span, 0.001) / 5
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    count = int(span / step + 1e-9)
    unit, factor = ("ms", 1000) if step < 0.1 else ("s", 1)  # "20 ms" reads better than "0.020s"
    decimals = max(0, -math.floor(math.log10(step * factor) + 1e-9))
    return [(i * step, f"{i * step * factor:.{decimals}f} {unit}") for i in range(count + 1)]


def render(lines) -> str:
    lanes, start, end = build(lines)
    names = [n for n in lanes if not n.startswith("threadlab-")]
    span = max(end - start, 0.001)
    lanes_h = LANE_H * max(len(names), 1)
    height = AXIS_H + lanes_h + LEGEND_H
    scale = (WIDTH - LABEL_W - 10) / span

    def x(t: float) -> float:
        return round(LABEL_W + (t - start) * scale, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
           f'height="{height}" font-family="system-ui, sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>']
    for offset, label in axis_ticks(span):
        at = x(start + offset)
        anchor = "end" if at > WIDTH - 30 else "middle"  # the last label stays inside the picture
        out.append(f'<text x="{at}" y="13" text-anchor="{anchor}" fill="#6b7280">{label}</text>')
    if not names:
        out.append(f'<text x="{LABEL_W}" y="{AXIS_H + 15}" fill="#6b7280">no thread snapshot yet: '
                   "a lane per thread appears as they arrive (redrawn every 2 s)</text>")
    for row, name in enumerate(names):
        out.extend(lane_svg(lanes[name], AXIS_H + row * LANE_H, x))
    out.extend(legend_svg([lanes[n] for n in names], AXIS_H + lanes_h + 4))
    out.append("</svg>")
    return "".join(out)


def lane_svg(lane: Lane, y: int, x) -> list[str]:
    # quoteattr, not escape: a thread name is the lesson's to choose, quotes included, and must
    # not close the attribute (an SVG opened on its own is a page that runs handlers).
    label = lane.name if len(lane.name) <= 22 else lane.name[:21] + "…"  # the full name on hover
    out = [f'<g class="lane" data-thread={quoteattr(lane.name)}>'
           f'<text x="4" y="{y + 15}">{escape(label)}<title>{escape(lane.name)}</title></text>']
    for seg_start, seg_end, state in lane.segments:
        w = max(x(seg_end) - x(seg_start), 1.5)
        out.append(f'<rect x="{x(seg_start)}" y="{y + 3}" width="{w:.1f}" height="{LANE_H - 6}" '
                   f'fill="{STATE_COLOURS.get(state, "#d1d5db")}"><title>{escape(state)}</title></rect>')
    drawn: set[tuple[int, str]] = set()
    for t, kind, title in lane.marks:
        if (column := (int(x(t)), kind)) in drawn:
            continue  # one mark per pixel and kind: a thousand lock hand-offs need not be a black bar
        drawn.add(column)
        # Lock operations and log lines are short ticks on top, so the state below stays readable;
        # what must not be missed (deadlock, signal, error) crosses the whole lane.
        bottom = y + 8 if kind in ("sync", "log") else y + LANE_H - 1
        out.append(f'<line x1="{x(t)}" x2="{x(t)}" y1="{y + 1}" y2="{bottom}" '
                   f'stroke="{MARK_COLOURS.get(kind, "#111827")}" stroke-width="{1 if kind == "log" else 2}">'
                   f'<title>{escape(title)}</title></line>')
    out.append("</g>")
    return out


def legend_svg(lanes: list[Lane], y: int) -> list[str]:
    """A key for the colours this drawing uses, so a learner need not guess what red means."""
    states = {state for lane in lanes for _, _, state in lane.segments}
    kinds = {kind for lane in lanes for _, kind, _ in lane.marks}
    out, left = ['<g class="legend">'], 4
    for state in (s for s in STATE_COLOURS if s in states):
        out.append(f'<rect x="{left}" y="{y + 4}" width="10" height="10" fill="{STATE_COLOURS[state]}"/>'
                   f'<text x="{left + 14}" y="{y + 13}">{state}</text>')
        left += 22 + 6 * len(state)
    for kind in (k for k in MARK_COLOURS if k in kinds):
        out.append(f'<line x1="{left + 4}" x2="{left + 4}" y1="{y + 2}" y2="{y + 16}" '
                   f'stroke="{MARK_COLOURS[kind]}" stroke-width="2"/>'
                   f'<text x="{left + 10}" y="{y + 13}">{kind}</text>')
        left += 18 + 6 * len(kind)
    out.append("</g>")
    return out
