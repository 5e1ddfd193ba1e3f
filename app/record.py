"""A run's record: the facts about it that outlive the server, kept in ``<run folder>/run.json``.

The record is plain data. It is changed by one thread only, the run's supervisor (app/supervisor.py);
request threads read it through :class:`app.run.Run`, under the run's lock. This module knows how to
write it so that no reader ever sees half a file, and how to read back what an older server, a full
disk or a person's editor left behind without trusting any of it.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LIVE = ("starting", "running", "stopping")
ENDINGS = ("exited", "failed", "stopped", "killed", "timeout")
FINAL = (*ENDINGS, "interrupted")  # interrupted: live when the server died (set at the next start)

# Every status change a run may make, and no other. The supervisor checks each change against this
# table, so a late Stop cannot turn an ended run back into a live one (it once could: `exited` was
# overwritten by `stopping`, and the run counted as live for ever).
TRANSITIONS: dict[str, frozenset[str]] = {
    "starting": frozenset({"running", "failed"}),
    "running": frozenset({"stopping", *ENDINGS}),
    "stopping": frozenset(ENDINGS),
    **{status: frozenset() for status in FINAL},
}


def new_run_id() -> str:
    """Unique across restarts, and sortable by start time (a millisecond clock, then randomness)."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:12]}"


@dataclass
class RunRecord:
    id: str
    lesson: str
    params: dict[str, Any]
    argv: list[str]
    title: str = ""
    signals: list[str] = field(default_factory=list)
    status: str = "starting"
    exit_code: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    pid: int | None = None
    # Who may stop it from a page: a hash of the starting browser's id ("" = started by a script).
    owner: str = ""
    exercise: int | None = None  # the exercise the run was started for, checked when it ends
    level: int | None = None  # or the step-mode level it plays (its check says in how many steps)
    check: dict[str, Any] | None = None  # that check's verdict (app/checking.py)
    prediction: dict[str, Any] | None = None  # the prediction made before it, revealed at the end
    scratch: bool = False  # it ran the browser's edited copy (kept as the run folder's source)
    step: bool = False  # step mode: its threads move only when a learner (or a schedule) says

    PUBLIC = ("id", "lesson", "title", "params", "status", "exit_code", "started", "ended", "pid",
              "signals", "exercise", "level", "check", "prediction", "scratch", "step")

    def to_json(self) -> dict[str, Any]:
        """What ``GET /api/runs/<id>`` shows (the argv stays on disk: it is the server's business)."""
        return {name: getattr(self, name) for name in self.PUBLIC}

    def save(self, folder: Path) -> None:
        """Write ``run.json`` atomically: a reader sees the old file or the new one, never half.

        Each write has a temp file of its own: two writers sharing one temp name once replaced each
        other's file away (FileNotFoundError in 885 of 4,000 stressed saves). Only the supervisor
        writes now, but the name costs nothing and keeps the guarantee local to this function.
        """
        tmp = folder / f"run.json.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f, indent=1)
            os.replace(tmp, folder / "run.json")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# The type each field must have in run.json; anything else means the file is not one of ours.
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "lesson": (str,), "params": (dict,), "argv": (list,), "title": (str,),
    "signals": (list,), "status": (str,), "exit_code": (int, type(None)),
    "started": (int, float), "ended": (int, float, type(None)), "pid": (int, type(None)),
    "owner": (str,), "exercise": (int, type(None)), "level": (int, type(None)), "check": (dict, type(None)),
    "prediction": (dict, type(None)), "scratch": (bool,), "step": (bool,),
}
_REQUIRED = ("id", "lesson", "params", "argv", "status", "started")


class BadRecord(ValueError):
    """run.json is unreadable or not a run; the folder is skipped and left for a person."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """JSON from disk with every lone surrogate replaced: ``"\\udcff"`` in a stored parameter once
    made the index and the run page fail on every load, even after a restart."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _no_constant(name: str) -> Any:
    """NaN and ±Infinity are not JSON: Python reads them, but a browser's JSON.parse of the run's
    API answer would fail. Our writer never produces them (parameters are finite), so a file that
    holds one was written by someone else."""
    raise ValueError(f"{name} is not a JSON number")


def load_record(folder: Path) -> RunRecord:
    """The record in ``folder/run.json``, checked field by field; raises :class:`BadRecord`."""
    try:
        data = json.loads((folder / "run.json").read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, ValueError) as exc:
        raise BadRecord(f"{folder.name}: {exc}") from None
    if not isinstance(data, dict):
        raise BadRecord(f"{folder.name}: run.json holds {type(data).__name__}, not an object")
    fields = {k: _clean(v) for k, v in data.items() if k in _TYPES}
    for name in _REQUIRED:
        if name not in fields:
            raise BadRecord(f"{folder.name}: run.json has no {name!r}")
    for name, value in fields.items():
        if (isinstance(value, bool) and bool not in _TYPES[name]) or not isinstance(value, _TYPES[name]):
            raise BadRecord(f"{folder.name}: {name!r} is {type(value).__name__}")
    if fields["id"] != folder.name or fields["status"] not in TRANSITIONS:
        raise BadRecord(f"{folder.name}: not this folder's run, or an unknown status")
    if not all(isinstance(s, str) for s in (*fields["argv"], *fields.get("signals", []))):
        raise BadRecord(f"{folder.name}: argv and signals must be lists of text")
    return RunRecord(**fields)
