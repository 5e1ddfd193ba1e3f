"""Threads and join: start a few threads, wait for them, collect what they made.

Problem:
    A ``threading.Thread`` runs a function (``target``) with its own ``args`` next to the main
    thread. ``start()`` only launches it and comes back at once; ``join()`` is how the main thread
    waits until the work is finished. A thread's function cannot hand back a return value (the
    Thread object throws it away), so workers put their results on a ``queue.Queue``, which does
    its own locking. Every thread gets a name that says what it does, so the log, the thread
    table and the timeline read like a story instead of ``Thread-1``, ``Thread-2``.

What to watch:
    The log shows each ``start()`` returning after some microseconds, then the main thread sitting
    in ``join()`` for about ``--work-ms`` while the workers sleep side by side (thread table:
    workers ``sleeping``, ``MainThread`` ``waiting-join``). The workers finish in any order; the
    results are all there anyway. The table's Daemon column shows each thread's flag: ``False``
    for ``MainThread``, and so for the workers, which inherit it; ``True`` for them with
    ``--daemon``.

Expected output:
    One "started" and one "done" line per worker, ``start()`` taking well under a millisecond,
    ``join()`` waiting about ``--work-ms``, and ``Result: threads_started = N,
    threads_joined = N, results_collected = N, worker_errors = 0`` with N = ``--workers``.

Failure modes:
    Calling ``thread.run()`` instead of ``start()`` runs the work in the main thread, one after
    the other: no error, just no concurrency; use ``start()``. Reading results without ``join()``
    finds some of them missing; join first. Returning a value from the target loses it; use a
    ``queue.Queue`` (or a lock-guarded list, or lesson 04's futures). Marking threads
    ``daemon=True`` so that "the program does not hang at exit" silently kills unfinished work
    (lesson 02 shows it); join them with a timeout instead.

Exercises:
    1. Replace ``thread.start()`` with ``thread.run()`` in ``main``: no thread is started, the
       workers' "working" lines come from ``MainThread`` one after another (each "start" now
       takes ``--work-ms``), and ``join()`` raises ``RuntimeError``, failing the run. Why?
    2. Delete the ``join`` loop and run ``--work-ms 500``: ``results_collected`` drops below
       ``threads_started``, yet every worker's "done" line still appears after the result. Why?
    3. Make ``worker`` raise ``ValueError`` when ``worker_id == 2`` (Worker-2 crashes, its result
       is missing). Then catch it in ``worker`` and put the exception on the queue instead of the
       answer, so ``main`` counts it: ``worker_errors = 1``, every result collected, no crash.
"""

from __future__ import annotations

import queue
import threading
import time

from lessons import kit

# join() waits this long beyond the planned work, so a stuck worker cannot hang us.
JOIN_SLACK_S = 5.0


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--workers", type=kit.int_range(1, 32), default=4,
                        help="worker threads to start")
    parser.add_argument("--work-ms", type=kit.int_range(0, 5000), default=300,
                        help="milliseconds of simulated work (a sleep, like waiting for I/O) "
                             "per worker")
    parser.add_argument("--daemon", action="store_true",
                        help="start the workers as daemon threads "
                             "(changes nothing here: we join them)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def worker(worker_id: int, work_s: float, results: queue.Queue, log) -> None:
    """Simulate one job, then hand its result to the main thread through ``results``."""
    log.info("working for %.0f ms", work_s * 1000, extra={"worker_id": worker_id})
    time.sleep(work_s)  # stands for waiting on a disk or a socket: the GIL is free meanwhile
    answer = worker_id * worker_id  # a tiny "result" main can check: every id comes back once
    results.put((worker_id, answer))  # Queue.put locks for us; a bare `return answer` would be lost
    log.info("done: %d squared is %d", worker_id, answer, extra={"worker_id": worker_id})


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    # Workers put (worker_id, answer) here; only main reads it, and only after joining everyone.
    results: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=worker, name=f"Worker-{i}", daemon=args.daemon,
                                args=(i, args.work_ms / 1000, results, log))
               for i in range(1, args.workers + 1)]
    # A new thread copies `daemon` from the thread that creates it unless told otherwise: the main
    # thread is not a daemon, so workers are not either. Non-daemon threads are waited for when the
    # program exits; daemon threads are killed mid-work at exit. We join ours anyway, so the flag
    # changes nothing in this lesson; lesson 02 shows what it changes at exit.
    log.info("created %d threads; daemon=%s (main thread daemon=%s)", len(threads),
             threads[0].daemon, threading.main_thread().daemon)

    started, start_s = 0, 0.0
    for thread in threads:
        before = time.perf_counter()
        # start() waits only until the new thread is running, never for its work.
        thread.start()
        took = time.perf_counter() - before
        started += 1
        start_s += took
        log.info("start() of %s returned after %.0f µs", thread.name, took * 1e6)
    log.info("all %d started in %.2f ms; the workers run while main goes on to join()",
             started, start_s * 1000)

    t1 = time.perf_counter()
    deadline = t1 + args.work_ms / 1000 + JOIN_SLACK_S
    joined = 0
    for thread in threads:
        # join() blocks until that thread's function has returned (or the timeout passes).
        thread.join(timeout=max(0.0, deadline - time.perf_counter()))
        if thread.is_alive():
            log.warning("%s is still running after the join timeout", thread.name)
        else:
            joined += 1
    join_s = time.perf_counter() - t1
    log.info("joined %d threads after waiting %.0f ms in join()", joined, join_s * 1000)

    # Every worker has been joined, so everything it put is in the queue: draining is now safe.
    collected = {}
    while True:
        try:
            worker_id, answer = results.get_nowait()
        except queue.Empty:
            break
        collected[worker_id] = answer
    log.info("collected results from workers %s", sorted(collected))
    # A worker may hand over an exception instead of an answer (exercise 3): report it here.
    errors = {i: answer for i, answer in collected.items() if isinstance(answer, Exception)}
    for worker_id, exc in errors.items():
        log.warning("worker %d failed: %r", worker_id, exc)

    kit.emit_result(threads_started=started, threads_joined=joined,
                    results_collected=len(collected), worker_errors=len(errors),
                    start_ms=round(start_s * 1000, 2), join_ms=round(join_s * 1000))
    return 0 if started == joined == len(collected) == args.workers else 1


if __name__ == "__main__":
    raise SystemExit(main())
