"""Bench: first line — start, import what a lesson imports, write one log event, exit.

Not a lesson for learners: ``scripts/bench_stream.py`` times Run → first ``log`` event at a
client (dashboard) against connect → first line (websocketd) with it, and runs it 100 times in a
row to check that every JSON stream ends with a normal close frame. The imports (logging, json,
threading, argparse, and the kit) are what any lesson pays before its first line.
"""

from __future__ import annotations

import argparse  # noqa: F401 - the import cost is the point
import json
import logging  # noqa: F401
import sys
import threading
import time

from lessons import kit
from lessons.kit import control


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--lines", type=kit.int_range(1, 1000), default=1,
                        help="log events to write before exiting")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    control.watch_parent()
    out = sys.stdout.buffer
    for i in range(args.lines):
        event = {"v": 1, "t": time.time(), "kind": "log", "level": "INFO", "logger": "bench",
                 "thread": threading.current_thread().name, "thread_id": threading.get_ident(),
                 "msg": f"first line {i}"}
        out.write(json.dumps(event).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
