"""A learner's edited copy of a lesson: one file per browser and lesson, in the data dir.

The lesson files are never modified: on a classroom server an edit would change the lesson for
everyone. Each browser edits its own copy, ``<data dir>/scratch/<browser>/<lesson id>.py``, and a run
started with ``scratch`` runs that copy (the run keeps its own copy of what ran).

No state is kept in memory, so there is nothing to lock: each write goes to a temp file of its own
and replaces the copy in one step, so a reader sees the old copy or the new one, never half.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

MAX_SOURCE = 48 * 1024  # characters; the longest lesson is about 9 KB
_BROWSER = re.compile(r"^[0-9a-f]{8,64}$")  # security.browser_id(): a hex hash, never a path
_LESSON = re.compile(r"^[0-9A-Za-z_]{1,80}$")  # a lesson id is its file's stem


class ScratchError(ValueError):
    """A copy that cannot be kept (too long, not text); the message says why."""


class ScratchStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, browser: str, lesson_id: str) -> Path:
        if not (_BROWSER.match(browser or "") and _LESSON.match(lesson_id)):
            raise ScratchError("no browser to keep a copy for (cookies off?)")
        return self.folder / browser / f"{lesson_id}.py"

    def get(self, browser: str, lesson_id: str) -> str | None:
        """The browser's copy, or None when it has none (it runs the lesson as it is)."""
        try:
            return self._path(browser, lesson_id).read_text(encoding="utf-8", errors="replace")
        except (OSError, ScratchError):
            return None

    def put(self, browser: str, lesson_id: str, source: object) -> None:
        if not isinstance(source, str):
            raise ScratchError("source must be text")
        if len(source) > MAX_SOURCE:
            raise ScratchError(f"source is longer than {MAX_SOURCE} characters")
        try:
            data = source.encode("utf-8")
        except UnicodeEncodeError:
            raise ScratchError("source holds a character UTF-8 cannot store") from None
        path = self._path(browser, lesson_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, browser: str, lesson_id: str) -> bool:
        """Reset: forget the copy; True if there was one."""
        try:
            self._path(browser, lesson_id).unlink()
            return True
        except (OSError, ScratchError):
            return False
