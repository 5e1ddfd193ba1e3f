"""The server's defaults, defined once: the app config, the CLI, the templates and the tests import
them from here, so a changed default cannot leave one of them behind."""

from __future__ import annotations

HOST = "127.0.0.1"  # loopback: the dashboard is for this machine unless opened with a token
PORT = 8765
RUN_TIME_LIMIT = 300.0  # seconds a run may take before it is stopped (status timeout)
MAX_LIVE_RUNS = 8  # a 2-core machine runs 8 small lessons well; more just queue for the CPU
KEEP_RUNS = 200  # ended runs kept on disk, those that ended last; older ones go (0: keep all)
MAX_SOCKETS = 48  # each open websocket holds a server thread (gthread); see app/serve.py
SAMPLE_INTERVAL = 0.1  # seconds between thread snapshots in each lesson
INTERRUPT_GRACE = 3.0  # seconds after SIGINT before SIGTERM (DESIGN.md "Stop is graceful first")
TERMINATE_GRACE = 2.0  # seconds after SIGTERM before SIGKILL
SHUTDOWN_S = 4.0  # DESIGN.md: stopping the server stops every run within 5 s
# Seconds the registry waits for a lesson file's metadata subprocess: short enough that the index still
# answers within 2 s when a teacher's file hangs at import (probes run side by side).
METADATA_TIMEOUT = 1.5
BROWSER_DAYS = 180  # a browser's id (its progress, its scratch copies) lasts this long unused
