"""How much tracing a plain program's locks costs: ``python -m lessons.kit.run`` with and without
``--no-trace`` on a lock-heavy loop (4 threads x 50k ``with lock: counter += 1``).

Both runs go through the kit in JSON mode (stdout to /dev/null), so the ratio is the cost of the
traced primitives alone. Median of 5 runs each, interleaved so that a busy moment of the machine
hits both alike. The budget is 1.2x.

    .venv/bin/python scripts/bench_tracing.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1.2

PROGRAM = textwrap.dedent(
    """\
    import threading

    counter = 0
    lock = threading.Lock()


    def work():
        global counter
        for _ in range(50_000):
            with lock:
                counter += 1


    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter == 200_000, counter
    """
)


def once(program: str, *options: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lessons.kit.run", "--log-format", "json", *options, program]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        program = os.path.join(folder, "lock_loop.py")
        Path(program).write_text(PROGRAM)
        plain, traced = [], []
        for _ in range(args.runs):
            plain.append(once(program, "--no-trace"))
            traced.append(once(program))
    plain_s, traced_s = statistics.median(plain), statistics.median(traced)
    ratio = traced_s / plain_s
    print(f"--no-trace: {plain_s:.3f} s   traced: {traced_s:.3f} s   (median of {args.runs})")
    print(f"ratio: {ratio:.2f}x (budget {BUDGET}x) {'OK' if ratio <= BUDGET else 'OVER'}")
    return 0 if ratio <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
