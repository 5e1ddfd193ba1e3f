"""Bench: CPU — worker threads doing a fixed amount of pure-Python arithmetic.

Not a lesson for learners: ``scripts/bench_stream.py`` runs it directly in JSON mode with the
thread sampler on (``THREADLAB_SAMPLE_INTERVAL=0.1``) and off (``=0``), alternating, and compares
whole-process times: the sampler's cost to a CPU-bound lesson. It uses ``kit.setup`` like a real
lesson, so the sampler, the watchdog and the command reader all run as they would.
"""

from __future__ import annotations

import threading

from lessons import kit


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--threads", type=kit.int_range(1, 8), default=2,
                        help="worker threads (they share the GIL: the work is the same in total)")
    parser.add_argument("--work", type=kit.int_range(1, 1_000_000_000), default=10_000_000,
                        help="loop iterations per thread")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def crunch(n: int, out: list[int], slot: int) -> None:
    total = 0
    for i in range(n):
        total += i * i % 7
    out[slot] = total


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    results = [0] * args.threads
    workers = [threading.Thread(target=crunch, args=(args.work, results, k), name=f"Worker-{k + 1}")
               for k in range(args.threads)]
    log.info("starting %d workers, %d iterations each", args.threads, args.work)
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    log.info("done")
    kit.emit_result(threads=args.threads, work=args.work, checksum=sum(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
