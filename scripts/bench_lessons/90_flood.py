"""Bench: flood — write --count log events as fast as one thread can.

Not a lesson for learners: ``scripts/bench_stream.py`` streams it through the dashboard and
through websocketd to compare the two (lines per second, memory, fan-out). Each event is one
JSON line of the schema's ``log`` kind, built from a bytes template (no ``json.dumps`` on the hot
path) and written with ``sys.stdout.buffer.write`` + ``flush`` per ``--batch`` lines, so the
program behaves the same whatever ``PYTHONUNBUFFERED`` says. The last line is a ``result`` event.
No sampler: nothing else writes to stdout while the flood runs.
"""

from __future__ import annotations

import sys
import threading
import time

from lessons import kit
from lessons.kit import control

LINE = (b'{"v": 1, "t": %.6f, "kind": "log", "level": "INFO", "logger": "bench", '
        b'"thread": "MainThread", "thread_id": %d, "msg": "flood line %d"}\n')


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--count", type=kit.int_range(1, 5_000_000), default=200_000,
                        help="log events to write")
    parser.add_argument("--batch", type=kit.int_range(1, 10_000), default=1,
                        help="lines per write call (1: one write per line, as the kit does)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    control.watch_parent()  # die with the server, like every lesson
    out = sys.stdout.buffer
    tid = threading.get_ident()
    now = time.time
    pending: list[bytes] = []
    for i in range(args.count):
        pending.append(LINE % (now(), tid, i))
        if len(pending) >= args.batch:
            out.write(b"".join(pending))
            out.flush()
            pending.clear()
    out.write(b"".join(pending))
    out.write(b'{"v": 1, "t": %.6f, "kind": "result", "values": {"written": %d}}\n'
              % (now(), args.count))
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
