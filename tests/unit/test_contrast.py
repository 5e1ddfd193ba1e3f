"""Thread names stay readable: every thread colour meets WCAG AA (4.5:1) on every row background
it is drawn on, running, finished or crashed (static/threadlab.css)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

CSS = (ROOT / "static" / "threadlab.css").read_text()
BACKGROUNDS = {"page": "#ffffff", "finished row": "#f3f4f6", "crashed row": "#fff1f2",
               "signal row": "#fffbeb", "log row at the chosen moment": "#fef9c3"}


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_backgrounds_named_here_are_the_ones_the_stylesheet_uses():
    assert "tr.done td { background: #f3f4f6" in CSS and "tr.crashed td { background: #fff1f2" in CSS
    assert "opacity" not in CSS.split("table.threads tr.done")[1].split("}")[0], "no fading names"


def test_every_thread_colour_meets_wcag_aa_on_every_row_background():
    rule = r"\.(tc\d+|tc-main) td\.thread, \.\1 td\.name[^{]*\{ color: (#[0-9a-f]{6}); \}"
    colours = dict(re.findall(rule, CSS))
    assert len(colours) == 13, colours
    for name, colour in colours.items():
        for where, background in BACKGROUNDS.items():
            assert contrast(colour, background) >= 4.5, (name, colour, where)
