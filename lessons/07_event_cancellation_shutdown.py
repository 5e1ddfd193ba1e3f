"""Cancellation with an Event: workers that stop the moment they are asked.

Problem:
    A program that wants to shut down (Ctrl-C, a Stop button, the end of a test) must ask its
    threads to finish; Python cannot kill a thread from outside. The usual way is a *cancellation
    token*: one ``threading.Event`` that every worker checks. How a worker pauses decides how fast
    it answers. ``time.sleep(pause)`` is deaf: the token is only looked at when the pause is over.
    ``stop.wait(pause)`` pauses just as long when nothing happens, but returns the moment the token
    is set. Here two groups of workers run the very same loop, one pausing with ``stop.wait``, the
    other with ``time.sleep``; the main thread sets the token and times how long each group takes to
    end (from ``set()`` until every thread of the group has joined).

What to watch:
    In the thread table the ``Responsive-*`` workers sit in ``waiting-event`` and the ``Sleepy-*``
    ones in ``sleeping``. When the main thread logs "cancelling", the responsive lanes of the
    timeline end at once; the sleepy ones carry on until their current ``sleep`` runs out.

Expected output:
    Each worker logs a step every ``--pause-s`` seconds; after ``--duration`` seconds the main
    thread cancels. ``Result: responsive_ms`` is a few milliseconds, ``sleepy_ms`` about half a
    pause (~500 of ``pause_ms = 1000`` with the defaults), ``workers = 6``, ``all_joined = 1``.

Failure modes:
    ``time.sleep`` in a worker loop looks harmless but makes shutdown as slow as the longest sleep;
    wait on the token instead (``stop.wait(timeout)``). A plain ``bool`` flag cannot be waited on
    at all, so it forces the same sleep-and-poll loop; use a ``threading.Event``. Daemon threads
    "stop fast" only because they are killed mid-step at exit, with files and transactions half
    done. And ``join()`` without a timeout hangs the whole shutdown on one stuck worker: give it a
    timeout and report the threads still alive.

Exercises:
    1. Run with ``--pause-s 5``: ``sleepy_ms`` passes 2,000 while ``responsive_ms`` stays under
       100. Only the sleepers' latency follows the pause.
    2. Choose a ``--duration`` that makes the sleepers answer as late as they ever can:
       ``sleepy_ms`` at least 90% of ``pause_ms``, because the cancel lands just after their pause
       began. (Why is ``--duration 2``, a whole number of pauses, a coin toss?)
    3. Change one line so the sleepy workers become responsive too: ``sleepy_ms`` drops below a
       tenth of a pause.
"""

from __future__ import annotations

import threading
import time

from lessons import kit
from lessons.kit import traced

STYLES = ("responsive", "sleepy")
JOIN_SLACK = 1.0  # seconds a join waits beyond the longest pause before we call the worker stuck


def build_parser():
    parser = kit.lesson_parser(__doc__)
    # Three of each: enough timeline lanes to see the two groups end apart, few enough to read.
    parser.add_argument("--workers", type=kit.int_range(1, 16), default=3,
                        help="workers of each style (responsive and sleepy)")
    # 1.5 s with a 1 s pause: the cancel lands half-way through the sleepers' second pause, so
    # they answer about half a pause late: the average case, not the worst (exercise 2).
    parser.add_argument("--duration", type=kit.float_range(0.1, 600), default=1.5,
                        help="seconds the workers run before the main thread cancels them")
    # 1 s: a typical polling period (a heartbeat, a look at a folder), and long enough to be felt.
    parser.add_argument("--pause-s", type=kit.float_range(0.05, 10), default=1.0,
                        help="seconds every worker pauses between two steps of work")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def worker(style: str, stop: traced.Event, pause_s: float, log):
    steps = 0
    while not stop.is_set():
        steps += 1
        log.info("step %d done", steps, extra={"style": style})
        if style == "responsive":
            # Pauses like sleep, but returns True the instant the token is set.
            stop.wait(pause_s)
        else:
            # Deaf for the whole pause: the loop only looks at the token when the pause is over.
            time.sleep(pause_s)
    log.info("saw the stop token after step %d; leaving", steps, extra={"style": style})


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    # The cancellation token: set once, by the main thread or by Ctrl-C / Stop (through the kit).
    # Waited on by the responsive workers and the main thread's countdown; the sleepy workers only
    # peek at it with is_set(). traced.Event is a drop-in twin of threading.Event that the
    # dashboard can see.
    stop = traced.Event("stop")
    kit.cancel_on_interrupt(stop)

    groups = {style: [threading.Thread(target=worker, name=f"{style.capitalize()}-{i}",
                                       args=(style, stop, args.pause_s, log))
                      for i in range(1, args.workers + 1)]
              for style in STYLES}
    for group in groups.values():
        for thread in group:
            thread.start()
    log.info("started %d responsive and %d sleepy workers; cancelling in %.1fs",
             args.workers, args.workers, args.duration)

    stop.wait(args.duration)  # the main thread's own pause ends early on Ctrl-C, too
    log.info("cancelling: setting the stop token")
    cancelled = time.perf_counter()  # a monotonic, high-resolution clock made for intervals
    stop.set()

    latency_ms, still_alive = {}, []
    # Responsive first, so their time is not inflated by waiting for the sleepers.
    for style, group in groups.items():
        for thread in group:
            thread.join(timeout=args.pause_s + JOIN_SLACK)
            if thread.is_alive():
                still_alive.append(thread.name)
        latency_ms[style] = round((time.perf_counter() - cancelled) * 1000)
        log.info("all %s workers ended %d ms after the cancel", style, latency_ms[style])
    if still_alive:
        log.error("still running after their join timeout: %s", ", ".join(still_alive))

    kit.emit_result(responsive_ms=latency_ms["responsive"], sleepy_ms=latency_ms["sleepy"],
                    pause_ms=round(args.pause_s * 1000),
                    workers=sum(len(group) for group in groups.values()),
                    all_joined=int(not still_alive))
    return 0 if not still_alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
