"""Bench: steady — write log events at a fixed --rate for --seconds.

Not a lesson for learners: ``scripts/bench_stream.py`` measures delivery latency with it (receive
time minus the event's ``t``, stamped just before the write) and ``scripts/bench_page.py`` measures
the run page's frame gaps while it streams. Each event is written and flushed on its own, as the
kit does; a late tick writes every line that is due, so the average rate holds.
"""

from __future__ import annotations

import sys
import threading
import time

from lessons import kit
from lessons.kit import control

LINE = (b'{"v": 1, "t": %.6f, "kind": "log", "level": "INFO", "logger": "bench", '
        b'"thread": "MainThread", "thread_id": %d, "msg": "steady line %d of %d"}\n')


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--rate", type=kit.int_range(1, 100_000), default=1000,
                        help="log events per second")
    parser.add_argument("--seconds", type=kit.int_range(1, 300), default=5,
                        help="how long to keep writing")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    control.watch_parent()
    out = sys.stdout.buffer
    tid = threading.get_ident()
    total = args.rate * args.seconds
    start = time.perf_counter()
    written = 0
    while written < total:
        due = min(total, int((time.perf_counter() - start) * args.rate) + 1)
        while written < due:
            out.write(LINE % (time.time(), tid, written, total))
            out.flush()
            written += 1
        # Sleep until the next line is due; time.sleep's overshoot is caught up on the next tick.
        delay = start + written / args.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    out.write(b'{"v": 1, "t": %.6f, "kind": "result", "values": {"written": %d}}\n'
              % (time.time(), written))
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
