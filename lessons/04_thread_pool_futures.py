"""Thread pools and futures: submit, map, errors, cancelling, timeouts, and what the GIL allows.

Problem:
    A ``ThreadPoolExecutor`` keeps a team of workers and hands back a ``Future`` per task: a receipt
    to wait on (with a timeout), to ask for the result or the exception, or to cancel while queued.
    The GIL lets one thread at a time run Python; waiting (sleep, sockets) releases it. So threads
    speed up I/O, not pure-Python crunching: that takes processes (``ProcessPoolExecutor``), C code
    that drops the GIL as it works (``hashlib``, ``zlib``, numpy) or a free-threaded build (3.13t).

What to watch:
    Tasks finish out of submit order; task 3's error shows only when its future is asked. In the CPU
    batch all ``Batch_N`` threads look "running", yet their ``cpu_s`` grows like one core's.

Expected output:
    ``io_thread_speedup`` near ``--workers``, ``cpu_thread_speedup`` near 1 (the GIL),
    ``cpu_process_speedup`` near the number of free cores (about ``cores`` - ``load_1m``: above 1
    only with 2 or more free); failed = 1, cancelled = ``--workers``.

Failure modes:
    Never asking a future: the task's exception vanishes; call ``result()`` or ``exception()``.
    ``fork`` with threads running can copy a held lock into the child, which hangs; use ``spawn``.
    Timeouts and ``cancel()`` never stop a running task: it must check a stop flag (lesson 07).

Exercises:
    1. Run ``--workload io --executor thread`` and raise ``--workers`` until the I/O batch runs at
       least 5x faster than one by one (``io_thread_speedup``). Why can't ``--workload cpu
       --executor process`` grow the same way past ``cores``?
    2. In ``tour``, replace the submit/as_completed loop with one over ``pool.map(fetch, ...)``
       that logs ``"returned %d"`` per value: where does task 3's ``ValueError`` surface now (the
       run fails), and what becomes of the results of tasks 4-6?
    3. Make processes lose to one-by-one on CPU work (``cpu_process_speedup`` below 1, with
       ``--cpu-loops`` at most 10,000): shrink the tasks, add more. What does each task cost them?
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait

from lessons import kit
from lessons.kit import traced

TOUR_TASKS = 6  # more tasks than the default 4 workers, so some wait in line
TOUR_STEP_S = 0.02  # task i sleeps (7 - i) steps: later tasks are shorter and finish first
PEEK_MS = 50  # how long we wait for a gated task: it cannot finish, so the wait times out
WARM_MS = 20  # a warm-up task: long enough that a ready worker cannot take them all alone
TIMEOUT = 30.0  # seconds before any wait gives up: reached only by a bug or a stalled machine


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--workload", choices=("both", "io", "cpu"), default="both",
                        help="io: tasks sleep (GIL released); cpu: Python loops (GIL needed)")
    parser.add_argument("--executor", choices=("both", "thread", "process"), default="both",
                        help="pool for the timed batches (the tour always uses threads)")
    parser.add_argument("--workers", type=kit.int_range(1, 8), default=4,
                        help="pool size: 4 is more than 2 cores yet quick to spawn as processes")
    parser.add_argument("--tasks", type=kit.int_range(1, 64), default=8, help="tasks per batch")
    parser.add_argument("--io-ms", type=kit.int_range(0, 1000), default=50, help="ms per I/O task")
    parser.add_argument("--cpu-loops", type=kit.int_range(1000, 50_000_000), default=1_500_000,
                        help="loop turns of one CPU task (1.5 million: about 60 ms)")
    parser.add_argument("--fail-task", type=kit.int_range(0, TOUR_TASKS), default=3,
                        help="which tour task raises an exception (0: none)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def fetch(task_id: int, fail_id: int, log) -> int:
    log.info("task %d started", task_id, extra={"task": task_id})
    time.sleep((TOUR_TASKS + 1 - task_id) * TOUR_STEP_S)  # waits like a web request: GIL released
    if task_id == fail_id:
        raise ValueError(f"task {task_id} failed on purpose")
    return task_id * 100


def gated(task_id: int, started: queue.Queue, gate, log) -> int:
    log.info("task %d started; waiting for the gate", task_id, extra={"task": task_id})
    started.put(task_id)  # tells the main thread "a worker is busy with me"
    gate.wait(timeout=TIMEOUT)
    return task_id * 100


# Top level: a process pool pickles them by name; a spawned child imports them (no work on import).
def io_task(ms: int):
    time.sleep(ms / 1000)
    return os.getpid(), threading.current_thread().name  # who ran it: same process or not?


def cpu_task(loops: int):
    sum(i * i for i in range(loops))  # needs the GIL: threads take ~5 ms turns (switch interval)
    return os.getpid(), threading.current_thread().name


def tour(pool: ThreadPoolExecutor, args, log) -> dict:
    """Submit, collect as completed, time out, cancel; count what became of every future."""
    futures = {pool.submit(fetch, i, args.fail_task, log): i for i in range(1, TOUR_TASKS + 1)}
    for future in as_completed(futures, timeout=TIMEOUT):  # in finishing order, not submit order
        try:
            log.info("task %d returned %d", futures[future], future.result())
        except Exception as exc:  # what the task raised, kept by its future, raised here
            log.warning("task %d raised %r; the pool kept it until we asked", futures[future], exc)

    started: queue.Queue = queue.Queue()  # gated tasks report here as they begin
    gate = traced.Event("gate")  # opened after our timeouts and cancel(), so every run ends alike
    lined_up = [pool.submit(gated, i, started, gate, log) for i in range(11, 11 + 2 * args.workers)]
    for _ in range(args.workers):
        started.get(timeout=TIMEOUT)  # now every worker is busy and the rest wait in the queue
    try:
        lined_up[0].result(timeout=PEEK_MS / 1000)
    except TimeoutError:  # only our waiting stopped: nothing can interrupt a running thread
        log.info("no result after %d ms; task still running: %s", PEEK_MS, lined_up[0].running())
    running = [f for f in lined_up if not f.cancel()]  # cancel() is False for a running task
    done, not_done = wait(running, timeout=PEEK_MS / 1000)  # returns at the timeout, does not raise
    log.info("cancel(): %d queued cancelled, %d running refused; wait(): %d done, %d not done",
             len(lined_up) - len(running), len(running), len(done), len(not_done))
    gate.set()
    fates = ["cancelled" if f.cancelled() else "failed" if f.exception(timeout=TIMEOUT)
             else "completed" for f in [*futures, *lined_up]]
    counts = {fate: fates.count(fate) for fate in ("completed", "failed", "cancelled")}
    return {"submitted": len(fates), **counts}


def timed(pool, func, arg, tasks: int):
    """Run func(arg) ``tasks`` times on ``pool`` (None: one by one, here); seconds, who ran it."""
    start = time.perf_counter()
    calls = (map(func, [arg] * tasks) if pool is None
             else pool.map(func, [arg] * tasks, timeout=TIMEOUT))
    ran_on = set(calls)  # pool.map, like map, yields results in input order, as each is ready
    return time.perf_counter() - start, ran_on


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    # Free cores decide a CPU speed-up: the load average (Unix) before our batches counts busy ones.
    machine = {"cores": os.cpu_count() or 1}
    if hasattr(os, "getloadavg"):
        machine["load_1m"] = round(os.getloadavg()[0], 2)
    stop = threading.Event()  # set by Ctrl-C / Stop: no new batch starts; pools shut down cleanly
    kit.cancel_on_interrupt(stop)
    with ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="Worker") as pool:
        counts = tour(pool, args, log)
    jobs = {"io": (io_task, args.io_ms), "cpu": (cpu_task, args.cpu_loops)}
    workloads = ("io", "cpu") if args.workload == "both" else (args.workload,)
    kinds = ("thread", "process") if args.executor == "both" else (args.executor,)
    serial = {w: timed(None, *jobs[w], args.tasks)[0] for w in workloads}  # one by one, in here
    timings = {f"{w}_serial_ms": round(seconds * 1000) for w, seconds in serial.items()}
    # spawn, not fork (Linux's default before 3.14): fork copies only this thread, so a lock held by
    # another (the kit's sampler, logging) stays locked in the child. A spawned (or forkserver)
    # child runs no kit, so writes nothing to our stdout; it ignores Ctrl-C: we end it, no orphans.
    spawn = multiprocessing.get_context("spawn")
    for kind in (k for k in kinds if not stop.is_set()):
        start, seen = time.perf_counter(), set()
        with (ThreadPoolExecutor(args.workers, thread_name_prefix="Batch") if kind == "thread"
              else ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=signal.signal,
                                       initargs=(signal.SIGINT, signal.SIG_IGN))) as pool:
            # Warm up until every worker has answered: start-up is a one-off cost, timed apart.
            while len(seen) < args.workers and time.perf_counter() - start < TIMEOUT:
                seen |= timed(pool, io_task, WARM_MS, args.workers)[1]
            timings[f"{kind}_startup_ms"] = round((time.perf_counter() - start) * 1000)
            for workload in (w for w in workloads if not stop.is_set()):
                seconds, ran_on = timed(pool, *jobs[workload], args.tasks)
                timings[f"{workload}_{kind}_ms"] = round(seconds * 1000)
                timings[f"{workload}_{kind}_speedup"] = speedup = round(
                    serial[workload] / seconds, 2)
                log.info("%s x%d on %d %s workers in %d process(es): %.2fx serial", workload,
                         args.tasks, len(ran_on), kind, len({pid for pid, _ in ran_on}), speedup)
    kit.emit_result(**counts, **timings, **machine)
    return 0 if (counts["failed"] == int(args.fail_task > 0)
                 and counts["cancelled"] == args.workers) else 1


if __name__ == "__main__":
    raise SystemExit(main())
