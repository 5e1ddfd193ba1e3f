"""Step mode's schedules: the steps a run took, read back to be replayed (``THREADLAB_SCHEDULE``).

A schedule is a JSON list of ``{"thread": name, "until": "line" | "sync"}`` or ``{"free": true}``;
the stepper grants its entries itself, in order (see :mod:`.step`).
"""

from __future__ import annotations

import json
from typing import Any

UNTILS = ("line", "sync")  # where a step ends: the thread's next line, or its next sync point


def parse_schedule(raw: str) -> list[dict[str, Any]]:
    """A schedule from JSON, checked: ``{"thread": name, "until": ...}`` or ``{"free": true}``."""
    try:
        steps = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(steps, list):
        raise ValueError("not a JSON list")
    plan = []
    for n, entry in enumerate(steps, 1):
        if isinstance(entry, dict) and entry.get("free") is True:
            plan.append({"free": True})
        elif isinstance(entry, dict) and isinstance(entry.get("thread"), str):
            until = entry.get("until", "line")
            if until not in UNTILS:
                raise ValueError(f"step {n}: until must be 'line' or 'sync', not {until!r}")
            plan.append({"thread": entry["thread"], "until": until})
        else:
            raise ValueError(f"step {n} is neither {{'thread': ...}} nor {{'free': true}}")
    return plan
