"""The run manager's disk side: the data dir's run folders, found at start, made for each new run,
written for a run that never started, deleted when pruned.

No tables and no lock here. app/runs.py decides, under its lock, which runs exist, hold a slot and
may go; these functions do the file work, which it never does while holding that lock.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from . import output
from .record import FINAL, BadRecord, RunRecord, load_record
from .run import Run

_log = logging.getLogger("threadlab.runs")


def load_all(runs_dir: Path) -> dict[str, Run]:
    """Every readable run of the data dir, by id. A run that was live when the server died is
    marked ``interrupted``: its process died with the server (the kit's watchdog)."""
    found = {}
    for meta in sorted(runs_dir.glob("*/run.json")):
        try:
            record = load_record(meta.parent)
        except BadRecord as exc:
            _log.warning("skipped a run folder: %s", exc)  # left for a person to look at
            continue
        if record.status not in FINAL:
            # Marked before the log is opened, which a live status would open for appending.
            record.status, record.ended = "interrupted", record.ended or time.time()
            try:
                record.save(meta.parent)
            except OSError as exc:
                _log.warning("cannot mark run %s interrupted: %s", record.id, exc)
        found[record.id] = Run(record, meta.parent, live=False)
    return found


def create(runs_dir: Path, record: RunRecord, source: tuple[Path, str] | None) -> Run:
    """A new run's folder with its record (and ``source``: a file to write there first, the code
    the run will execute). Raises OSError having removed whatever it made."""
    folder = runs_dir / record.id
    try:
        folder.mkdir()
        if source is not None:
            source[0].write_text(source[1], encoding="utf-8")
        record.save(folder)
        return Run(record, folder, live=True)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def end_unstarted(run: Run, why: str) -> None:
    """Write the end of a run whose supervisor never ran: the request thread that made it is the
    only one that ever held it, so it may write the log's last lines and the record itself."""
    try:
        run.log.append(output.numbered_all([(output.text_event("stderr", f"threadlab: {why}"), None),
                                            (output.server_event("status", status="failed",
                                                                 reason=why), None)], 0))
        run.transition("failed", ended=time.time())
        run.record.save(run.folder)
    except Exception:  # the caller gives the slot back whatever failed here
        _log.exception("ending run %s that never started", run.id)
    finally:
        run.log.close()


def delete(runs: Iterable[Run]) -> None:
    """Remove pruned runs' folders (the manager has already forgotten them: nobody can view them)."""
    for run in runs:
        shutil.rmtree(run.folder, ignore_errors=True)
