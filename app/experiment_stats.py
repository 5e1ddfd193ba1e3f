"""What an experiment's runs came out as: statistics per result value and sweep value, the share of
runs where the lesson's point showed, and the progress so far. Pure functions over the records that
app/experiments.py keeps, so the page, the JSON API and the CSV all say the same.
"""

from __future__ import annotations

import fnmatch
import json
import statistics
import time
from typing import Any

from .record import FINAL

BINS = 10  # histogram bins per value: enough to see a shape, few enough to read
NOT_STARTED = "cancelled"  # a planned run that never started (the experiment was cancelled)

# Each lesson's point, as value-name patterns and predicates: the share of runs where it showed is
# the experiment's headline ("lost_updates > 0 in 20 of 20 runs"). Other lessons get "value > 0".
POINTS: dict[str, list[tuple[str, str, float]]] = {
    "04": [("*_thread_speedup", ">", 1.5)],  # threads pay off for I/O, not for pure-Python CPU work
    "05": [("lost_updates", ">", 0)],  # the race showed
    "09": [("*_finished", "==", 1)],  # both transfers got both locks: no deadlock, no livelock
}
GENERIC_POINT = [("*", ">", 0)]
_TESTS = {">": lambda v, t: v > t, "==": lambda v, t: v == t, ">=": lambda v, t: v >= t,
          "<": lambda v, t: v < t}


def point_rule(lesson_id: str, name: str) -> tuple[str, str, float] | None:
    for pattern, op, threshold in POINTS.get(lesson_id[:2], GENERIC_POINT):
        if fnmatch.fnmatchcase(name, pattern):
            return pattern, op, threshold
    return None


def key_first(lesson_id: str, names: list[str]) -> list[str]:
    """The values the lesson's own point is about first (in POINTS order), then the rest in the
    lesson's order: lesson 05 emits ``lost_updates`` fifth, yet it is what the page is for."""
    rules = POINTS.get(lesson_id[:2], [])
    keys = [n for pattern, _, _ in rules for n in names if fnmatch.fnmatchcase(n, pattern)]
    keys = list(dict.fromkeys(keys))
    return keys + [n for n in names if n not in keys]


def group_key(value: Any) -> str:
    """A sweep value as a JSON key (and a label): "all" when nothing is swept."""
    return "all" if value is None else json.dumps(value) if not isinstance(value, str) else value


def edges(values: list[float], bins: int = BINS) -> list[float]:
    """Bin edges shared by every group of one value, so their histograms line up."""
    lo, hi = min(values), max(values)
    if lo == hi:
        return [lo, hi]
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)]


def counts(values: list[float], bin_edges: list[float]) -> list[int]:
    """How many values fall in each bin; the last bin includes its upper edge."""
    bins = len(bin_edges) - 1
    out = [0] * bins
    lo, hi = bin_edges[0], bin_edges[-1]
    for v in values:
        out[0 if hi == lo else min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    return out


def stats(lesson_id: str, runs: list[dict[str, Any]], sweep_values: list[Any] | None) -> dict[str, Any]:
    """Per value name, per sweep group: n, min, median, max, histogram counts (over shared edges)
    and the lesson's point. Only runs that reported a ``result`` count; the page lists the rest."""
    groups = [group_key(v) for v in (sweep_values or [None])]
    names: dict[str, None] = {}  # in first-seen order: the lesson's own order of its values
    for slot in runs:
        names.update(dict.fromkeys(slot.get("values") or {}))
    out: dict[str, Any] = {}
    for name in names:
        seen = {g: [s["values"][name] for s in runs
                    if group_key(s["sweep"]) == g and name in (s.get("values") or {})] for g in groups}
        every = [v for vs in seen.values() for v in vs]
        bin_edges, rule = edges(every), point_rule(lesson_id, name)
        out[name] = {}
        for group, vs in seen.items():
            entry: dict[str, Any] = {"n": len(vs), "edges": bin_edges, "counts": counts(vs, bin_edges)}
            if vs:
                entry.update(min=min(vs), median=statistics.median(vs), max=max(vs))
            if rule:
                entry["point"] = {"rule": f"{name} {rule[1]} {rule[2]:g}", "of": len(vs),
                                  "hits": sum(1 for v in vs if _TESTS[rule[1]](v, rule[2]))}
            out[name][group] = entry
    return out


def progress(record: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Done / running / queued, elapsed, and an estimate of the rest from the pace so far."""
    statuses = [slot["status"] for slot in record["runs"]]
    done = sum(1 for s in statuses if s in (*FINAL, "failed", NOT_STARTED))
    queued = statuses.count("queued")
    running = len(statuses) - done - queued
    end = record["ended"] or (now or time.time())
    elapsed = max(0.0, end - record["started"])
    left = len(statuses) - done
    estimate = elapsed / done * left if done and left and record["status"] == "running" else None
    return {"total": len(statuses), "done": done, "running": running, "queued": queued,
            "elapsed": round(elapsed, 1), "estimate": None if estimate is None else round(estimate, 1)}
