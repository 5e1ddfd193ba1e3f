"""What tracing a plain program's locks costs: each program below runs through
``python -m lessons.kit.run`` (JSON mode, stdout to /dev/null) with and without ``--no-trace``.

Rows (each a loop of ``with lock: ...``, timed by the program itself, plus the whole process):

- ``1 thread``: 200k ``counter += 1``: the pure cost of the traced ``with`` (no contention).
- ``4 threads``: 4 x 50k ``counter += 1``: the issue's lock-heavy loop (the budget applies here).
  The threads contend only when the GIL switches one out while it holds the lock.
- ``4 threads, call``: 4 x 50k ``counter = bump(counter)``: a call under the lock, where a plain
  lock convoys too (its holder can be switched out inside the call).
- ``4 threads, 10 us``: 4 x 5k with about 10 microseconds of Python work under the lock: what a
  program that does real work while holding the lock pays.
- ``4 threads, print``: 4 x 2.5k ``print`` under the lock (a tutorial's favourite): each print is
  an event written to stdout, which lets the GIL go while the lock is held, so the others really
  wait for it: these waits sleep on the lock and are written, four events each.

Then the floor, in this process: nanoseconds per ``with lock: counter += 1`` on one thread for the
C lock, for the least a Python-level lock can do (``__enter__`` and ``__exit__`` that only call the
C lock's acquire and release), and for ``traced.Lock``. A traced ``with`` cannot cost less than
that call pair, whatever it records.

For each row: the median of ``--runs`` runs (interleaved, so a busy moment of the machine hits both
alike) of the loop's wall time and CPU time and of the process time, their traced / ``--no-trace``
ratios, the plain loop's microseconds per ``with`` and what tracing added to each (ns), and how
many ``state`` events the traced run wrote (a contended wait is written once it sleeps on the
lock or a snapshot shows it, see ``traced.Lock._wait``; the main thread's join makes 2). The load
average is printed before and after: other work on the machine moves these figures (the CPU
ratio least), so compare runs made at a similar load.

    .venv/bin/python scripts/bench_tracing.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1.2  # traced / --no-trace on the headline row's loop time

# The program's own loop time (wall and CPU) goes to the file named by its first argument (stdout
# is the event stream in JSON mode). {threads}, {count}, {body} are filled in per row.
PROGRAM = """\
import sys
import threading
import time

counter = 0
lock = threading.Lock()


def bump(value):
    return value + 1


def work_10us():
    total = 0
    for i in range(400):  # about 10 us where this was tuned (the row prints "us/with")
        total += i
    return total


def work():
    global counter
    for _ in range({count}):
        with lock:
            {body}


threads = [threading.Thread(target=work) for _ in range({threads})]
start, cpu = time.perf_counter(), time.process_time()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
assert counter == {threads} * {count}, counter
with open(sys.argv[1], "w") as out:
    out.write(f"{{elapsed!r}} {{cpu!r}}")
"""


class Row(NamedTuple):
    label: str
    threads: int
    count: int
    body: str


ROWS = [
    Row("1 thread", 1, 200_000, "counter += 1"),
    Row("4 threads", 4, 50_000, "counter += 1"),
    Row("4 threads, call", 4, 50_000, "counter = bump(counter)"),
    Row("4 threads, 10 us", 4, 5_000, "work_10us(); counter += 1"),
    Row("4 threads, print", 4, 2_500, "counter += 1; print(counter)"),
]
HEADLINE = "4 threads"


class Run(NamedTuple):
    loop_s: float
    loop_cpu_s: float  # less moved than wall time by other work on the machine
    process_s: float
    states: int


def once(program: str, *options: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as result:
        command = [sys.executable, "-m", "lessons.kit.run", "--log-format", "json", *options,
                   program, result.name]
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=True)
        process_s = time.perf_counter() - start
        loop_s, loop_cpu_s = map(float, Path(result.name).read_text().split())
    return Run(loop_s, loop_cpu_s, process_s, proc.stdout.count(b'"kind": "state"'))


def measure(folder: str, row: Row, runs: int) -> tuple[list[Run], list[Run]]:
    body = PROGRAM.format(threads=row.threads, count=row.count, body=row.body)
    program = os.path.join(folder, "lock_loop.py")
    Path(program).write_text(body)
    plain, traced = [], []
    for _ in range(runs):
        plain.append(once(program, "--no-trace"))
        traced.append(once(program))
    return plain, traced


class CallPair:
    """The least a lock written in Python can do: a call around each of the C lock's halves."""

    def __init__(self) -> None:
        inner = threading.Lock()
        self._try, self._release = inner.acquire, inner.release

    def __enter__(self) -> bool:
        return self._try(False)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._release()


def floor(rounds: int) -> list[tuple[str, float, float]]:
    """``(lock, ns per with lock: counter += 1, ratio to the C lock)`` on one thread: medians of
    ``rounds`` rounds, each timing every lock once, in turn (so a busy moment hits all alike)."""
    sys.path.insert(0, str(ROOT))
    from lessons.kit import traced

    locks = [("C lock", threading.Lock()), ("Python call pair", CallPair()),
             ("traced.Lock", traced.Lock("bench"))]
    code = "for _ in range(50_000):\n    with lock:\n        box[0] += 1"
    timers = [timeit.Timer(code, globals={"lock": lock, "box": [0]}) for _, lock in locks]
    times: list[list[float]] = [[] for _ in locks]
    for _ in range(rounds):
        for timer, mine in zip(timers, times, strict=True):
            mine.append(timer.timeit(1) / 50_000 * 1e9)
    return [(label, statistics.median(mine), statistics.median(m / c for m, c in zip(mine, times[0],
                                                                                     strict=True)))
            for (label, _), mine in zip(locks, times, strict=True)]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {load()}   (median of {args.runs} runs per figure)")
    print(f"{'':17} {'loop: plain':>11} {'traced':>7} {'ratio':>6} {'cpu ratio':>9} "
          f"{'us/with':>7} {'+ns/with':>8} | {'process: plain':>14} {'traced':>7} {'ratio':>6} | "
          f"{'states':>6}")
    verdict = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for row in ROWS:
            plain, traced = measure(folder, row, args.runs)
            loop = [statistics.median(r.loop_s for r in runs) for runs in (plain, traced)]
            cpu = [statistics.median(r.loop_cpu_s for r in runs) for runs in (plain, traced)]
            proc = [statistics.median(r.process_s for r in runs) for runs in (plain, traced)]
            states = statistics.median(r.states for r in traced)
            withs = row.threads * row.count
            print(f"{row.label:17} {loop[0] * 1000:9.1f}ms {loop[1] * 1000:5.1f}ms "
                  f"{loop[1] / loop[0]:5.2f}x {cpu[1] / cpu[0]:8.2f}x "
                  f"{loop[0] / withs * 1e6:7.2f} {(loop[1] - loop[0]) / withs * 1e9:8.0f} | "
                  f"{proc[0] * 1000:12.1f}ms {proc[1] * 1000:5.1f}ms {proc[1] / proc[0]:5.2f}x | "
                  f"{states:6g}")
            if row.label == HEADLINE:
                verdict = loop[1] / loop[0]
    print("floor, one thread in this process, ns per with (ratio to the C lock): " + ", ".join(
        f"{label} {ns:.0f} ({ratio:.2f}x)" for label, ns, ratio in floor(max(4 * args.runs, 15))))
    print(f"load average after: {load()}")
    print(f"{HEADLINE}, loop time: {verdict:.2f}x (budget {BUDGET}x) "
          f"{'OK' if verdict <= BUDGET else 'OVER'}")
    return 0 if verdict <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
