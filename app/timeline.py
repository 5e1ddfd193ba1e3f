"""A run's timeline as SVG: one lane per thread life, coloured by state over time, with marks.

Drawn from the run's :class:`~app.viewmodel.ViewModel`, which folded its events once, so a poll every
2 s costs a drawing, not a re-read of the file. A lane is a thread's life (ident and start), so a name
used twice gets two lanes ("Handler-1 ·2"). Each segment carries ``data-t0``/``data-t1`` (run seconds)
for a page script to map a click to an instant, and a ``<title>`` that says thread, state and time.
``sync`` events, log lines, signals, deadlocks and crashes are ticks on the lane they belong to.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .output import safe_parse
from .viewmodel import ViewModel

# Red is kept for what is wrong: a lock wait (the stuff of deadlocks) and a crash. Joining a thread
# and an event loop waiting for work are normal, calm waits.
STATE_COLOURS = {
    "running": "#22c55e", "sleeping": "#818cf8", "waiting-lock": "#ef4444",
    "waiting-condition": "#f59e0b", "waiting-event": "#ec4899", "waiting-queue": "#06b6d4",
    "waiting-join": "#94a3b8", "waiting-event-loop": "#0f766e", "waiting-io": "#8b5cf6",
    "done": "#e5e7eb", "crashed": "#7f1d1d",
}
MARK_COLOURS = {"sync": "#111827", "log": "#9ca3af", "signal": "#b45309", "deadlock": "#b91c1c",
                "error": "#b91c1c", "crash": "#7f1d1d"}
LABEL_W, LANE_H, WIDTH, AXIS_H, LEGEND_H = 150, 22, 900, 22, 24
COLUMN = 2  # pixels: changes closer than this are drawn as one segment (a flood of lock hand-offs)
MAX_MARKS = 2000  # ticks drawn at most; a flood of log lines would otherwise bloat the drawing


def axis_ticks(span: float, start: float = 0.0) -> list[tuple[float, str]]:
    """Round tick positions (1, 2 or 5 times a power of ten, at most six) as offsets from ``start``,
    and their labels (the time since the run's first event)."""
    raw_step = max(span, 0.001) / 5
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    first = math.ceil(start / step - 1e-9)
    count = int((start + span) / step + 1e-9) - first
    unit, factor = ("ms", 1000) if step < 0.1 else ("s", 1)  # "20 ms" reads better than "0.020s"
    decimals = max(0, -math.floor(math.log10(step * factor) + 1e-9))
    return [((first + i) * step - start, f"{(first + i) * step * factor:.{decimals}f} {unit}")
            for i in range(count + 1)]


def render(lines) -> str:
    """The timeline of raw event lines (a whole ``events.jsonl``): for tests and one-off files."""
    model = ViewModel()
    for line in lines:
        event = safe_parse(line)
        if event is not None:
            model.fold(event)
    return render_model(model)


def render_model(model: ViewModel, t0: float | None = None, t1: float | None = None) -> str:
    """The model's timeline, or the part between ``t0`` and ``t1`` run seconds (clamped to the run)."""
    duration = model.duration
    a = min(max(t0 or 0.0, 0.0), duration)
    b = min(max(t1 if t1 is not None else duration, a), duration)
    span = max(b - a, 0.001)
    first = model.first_t or 0.0
    step = COLUMN * span / (WIDTH - LABEL_W - 10)
    lanes = [lane for lane in model.lanes_between(first + a, first + a + span, step)
             if not lane["name"].startswith("threadlab-")]
    lanes_h = LANE_H * max(len(lanes), 1)
    height = AXIS_H + lanes_h + LEGEND_H
    scale = (WIDTH - LABEL_W - 10) / span

    def x(t: float) -> float:
        return round(LABEL_W + (t - first - a) * scale, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
           f'height="{height}" font-family="system-ui, sans-serif" font-size="11" '
           f'data-from="{a:.3f}" data-to="{a + span:.3f}" data-x0="{LABEL_W}" data-x1="{WIDTH - 10}">',
           f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>']
    for offset, label in axis_ticks(span, a):
        at = round(LABEL_W + offset * scale, 1)
        anchor = "end" if at > WIDTH - 30 else "middle"  # the last label stays inside the picture
        out.append(f'<text x="{at}" y="13" text-anchor="{anchor}" fill="#6b7280">{label}</text>')
    if not lanes:
        out.append(f'<text x="{LABEL_W}" y="{AXIS_H + 15}" fill="#6b7280">no thread snapshot yet: '
                   "a lane per thread appears as they arrive (redrawn every 2 s)</text>")
    budget = [MAX_MARKS]
    for row, lane in enumerate(lanes):
        out.extend(lane_svg(lane, AXIS_H + row * LANE_H, x, first, budget))
    out.extend(legend_svg(lanes, AXIS_H + lanes_h + 4))
    out.append("</svg>")
    return "".join(out)


def lane_svg(lane: dict[str, Any], y: int, x, first: float, budget: list[int]) -> list[str]:
    # quoteattr, not escape: a thread name is the lesson's to choose, quotes included, and must
    # not close the attribute (an SVG opened on its own is a page that runs handlers).
    name, display = lane["name"], lane["display"]
    label = display if len(display) <= 22 else display[:21] + "…"  # the full name on hover
    out = [f'<g class="lane" data-thread={quoteattr(name)} data-lane={quoteattr(display)} '
           f'data-ident={quoteattr(str(lane["ident"]))}>'
           f'<text x="4" y="{y + 15}">{escape(label)}<title>{escape(display)}</title></text>']
    who = escape(display)
    for s0, s1, state, changes in lane["segments"]:
        r0, r1, x0 = s0 - first, s1 - first, x(s0)
        more = f" (mostly; {changes} changes)" if changes else ""  # the zoom shows them one by one
        out.append(f'<rect x="{x0}" y="{y + 3}" width="{max(x(s1) - x0, 1.5):.1f}" height="{LANE_H - 6}" '
                   f'fill="{STATE_COLOURS.get(state, "#d1d5db")}" data-t0="{r0:.3f}" data-t1="{r1:.3f}">'
                   f'<title>{who} · {escape(state)} · {r0:.2f}–{r1:.2f} s{more}</title></rect>')
    marks = list(lane["marks"])
    crash = lane.get("crash")
    if crash:
        marks.append((crash["t"], "crash", f"crashed: {crash['type']}: {crash['message']}"))
    drawn: set[tuple[int, str]] = set()
    for t, kind, title in marks:
        at = x(t)
        if (column := (int(at), kind)) in drawn:
            continue  # one mark per pixel and kind: a thousand lock hand-offs need not be a black bar
        if kind in ("sync", "log"):
            if budget[0] <= 0:
                continue
            budget[0] -= 1
        drawn.add(column)
        # Lock operations and log lines are short ticks on top, so the state below stays readable;
        # what must not be missed (deadlock, signal, error, crash) crosses the whole lane.
        bottom = y + 8 if kind in ("sync", "log") else y + LANE_H - 1
        width = 1 if kind == "log" else 3 if kind == "crash" else 2
        out.append(f'<line class="mark-{kind}" x1="{at}" x2="{at}" y1="{y + 1}" y2="{bottom}" '
                   f'stroke="{MARK_COLOURS.get(kind, "#111827")}" stroke-width="{width}" '
                   f'data-t0="{t - first:.3f}"><title>{escape(title)}</title></line>')
    out.append("</g>")
    return out


def legend_svg(lanes: list[dict[str, Any]], y: int) -> list[str]:
    """A key for the colours this drawing uses, so a learner need not guess what red means."""
    states = {segment[2] for lane in lanes for segment in lane["segments"]}
    kinds = {kind for lane in lanes for _, kind, _ in lane["marks"]}
    kinds |= {"crash"} if any(lane.get("crash") for lane in lanes) else set()
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
