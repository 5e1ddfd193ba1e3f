"""Thread-local storage: per-thread context without passing it everywhere.

Problem:
    A web server handles each request in its own thread, and deep inside the code something needs
    to know "which request am I serving?" and "which database connection is mine?". Passing them
    through every call is tedious, so it is tempting to park them in a global. But a global is one
    box shared by every thread: while one handler waits for its database, another overwrites the
    box, and the first one reads back somebody else's request id. ``threading.local()`` gives every
    thread its own private set of attributes under the same name. Here the same handler code runs
    twice: once with a shared object (what a module global is), once with a ``threading.local``.

What to watch:
    In the ``global`` round the log fills with warnings: "handling Handler-1/req-1 but the context
    says Handler-4/req-1", and every handler uses the one connection the first of them opened. In
    the ``local`` round no warning appears and each handler opens its own connection, once, and
    reuses it for all its requests.

Expected output:
    ``Result: requests = 12``, ``mismatches_with_global`` well above 0 (around 10: in each wave
    of requests every handler but the last writer reads a foreign id),
    ``mismatches_with_local = 0``, ``connections_with_global`` usually 1 (one connection shared by
    all: unsafe) and ``connections_with_local = 4`` (one per handler). ``global_ms`` and
    ``local_ms`` about 300: the handlers wait for their databases at the same time, a quarter of
    ``serial_ms = 1200`` (all 12 requests' I/O one after another).

Failure modes:
    A module global (or a class attribute, or any object all threads reach) for per-request data
    looks fine in a one-thread test and mixes requests up under load; use ``threading.local()`` or
    pass the context explicitly. A ``threading.local`` is *not* a way to share data: another thread
    never sees your attributes. Thread pools reuse threads, so a local set by one task is still
    there for the next task on that thread: set it at the start of every task (or clear it at the
    end). In asyncio code, where many tasks share one thread, use ``contextvars`` instead.

Exercises:
    1. Run the smallest burst, ``--workers 2 --requests 1``: the global round mixes up exactly one
       request (``mismatches_with_global = 1``). Why one, and never two?
    2. Make the shared context safe without ``threading.local``: hold one module-level
       ``threading.Lock`` around each ``handle()`` call. ``mismatches_with_global`` drops to 0;
       compare ``global_ms`` with ``serial_ms``: what did the lock cost?
    3. A handler serves its requests one after another, as a pool thread serves task after task.
       Set ``context.request_id`` only if the context has none yet (as ``connection()`` opens the
       connection once) and make the local round read back stale ids (``mismatches_with_local``
       above 0). Which id does request 2 see?
"""

from __future__ import annotations

import itertools
import threading
import time
import types

from lessons import kit

ROUNDS = ("global", "local")
START_TIMEOUT = 5.0  # seconds a handler waits for the others at the start line; they start in ms


class Connection:
    """A stand-in for a database connection: like most, not safe to share between threads."""

    numbers = itertools.count(1)  # itertools.count is thread-safe in CPython: one C call per number

    def __init__(self) -> None:
        self.number = next(Connection.numbers)
        self.opened_by = threading.current_thread().name


def build_parser():
    parser = kit.lesson_parser(__doc__)
    # Four handlers, three requests each: a small burst, and each handler reuses its connection.
    parser.add_argument("--workers", type=kit.int_range(2, 32), default=4,
                        help="request handler threads (at least 2: one alone mixes nothing up)")
    parser.add_argument("--requests", type=kit.int_range(1, 100), default=3,
                        help="requests each handler serves in each round")
    # 100 ms: a slowish database query, long enough to see the handlers wait in the thread table.
    parser.add_argument("--io-ms", type=kit.int_range(1, 1000), default=100,
                        help="milliseconds each request waits for its (pretend) database")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def connection(context) -> Connection:
    """This thread's connection, opened on first use: the usual threading.local pattern."""
    conn = getattr(context, "conn", None)
    if conn is None:
        conn = context.conn = Connection()
    return conn


def handle(context, request_id: str, io_s: float, log) -> tuple[bool, Connection]:
    """Serve one request; True if the context still names our request when we read it back."""
    context.request_id = request_id  # "this thread now serves request_id"
    conn = connection(context)
    # The database query. While we wait, the other handlers run, and each sets the context too.
    time.sleep(io_s)
    seen = context.request_id
    if seen != request_id:
        log.warning("handling %s but the context says %s", request_id, seen)
    log.info("served %s on connection #%d (opened by %s)", request_id, conn.number, conn.opened_by)
    return seen == request_id, conn


def handler(context, start: threading.Barrier, args, outcome: dict, log):
    me = threading.current_thread().name
    # All handlers leave this line together, like a burst of requests: each writes the context
    # within microseconds of the others, long before any of them finishes its io_ms query. So in
    # the global round every handler but the last writer reads back a foreign id, on every run.
    start.wait(timeout=START_TIMEOUT)
    mismatches, connections = 0, set()
    for n in range(1, args.requests + 1):
        matched, conn = handle(context, f"{me}/req-{n}", args.io_ms / 1000, log)
        mismatches += not matched
        connections.add(conn.number)
    outcome[me] = (mismatches, connections)  # only this thread writes its own key


def run_round(name: str, args, log) -> tuple[int, int, int]:
    """Run every handler over one context; return (mismatches, connections used, milliseconds)."""
    # One object for everybody (exactly what a module-level global is), or one namespace per thread.
    context = types.SimpleNamespace() if name == "global" else threading.local()
    start = threading.Barrier(args.workers)  # the start line; only the handlers wait on it
    outcome: dict[str, tuple[int, set[int]]] = {}
    handlers = [threading.Thread(target=handler, name=f"Handler-{i}",
                                 args=(context, start, args, outcome, log))
                for i in range(1, args.workers + 1)]
    log.info("%s round: %d handlers, %d requests each", name, args.workers, args.requests)
    began = time.perf_counter()
    for thread in handlers:
        thread.start()
    for thread in handlers:  # generous: the start line, then each request's I/O plus 1 s of slack
        thread.join(timeout=START_TIMEOUT + args.requests * (args.io_ms / 1000 + 1))
    ms = round((time.perf_counter() - began) * 1000)
    mismatches = sum(m for m, _ in outcome.values())
    connections = set().union(*(c for _, c in outcome.values()))
    log.info("%s round: %d mismatched contexts, connections used: %d, %d ms",
             name, mismatches, len(connections), ms)
    return mismatches, len(connections), ms


def main(argv=None) -> int:
    args = parse_args(argv)
    log = kit.setup(args)
    mismatches, connections, ms = {}, {}, {}
    for name in ROUNDS:
        mismatches[name], connections[name], ms[name] = run_round(name, args, log)
    requests = args.workers * args.requests
    kit.emit_result(requests=requests, mismatches_with_global=mismatches["global"],
                    mismatches_with_local=mismatches["local"],
                    connections_with_global=connections["global"],
                    connections_with_local=connections["local"],
                    global_ms=ms["global"], local_ms=ms["local"],
                    serial_ms=requests * args.io_ms)  # what the rounds would take one at a time
    return 0 if mismatches["local"] == 0 and connections["local"] == args.workers else 1


if __name__ == "__main__":
    raise SystemExit(main())
