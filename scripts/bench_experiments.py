"""Bench: an experiment of N runs of lesson 05 against the same N runs back to back in a shell loop.

    .venv/bin/python scripts/bench_experiments.py [--runs 100] [--rounds 1]

Both are measured in this one invocation, on this machine, alternating (experiment, then loop,
per round); with --rounds > 1 it prints the median of each, else one of each (say which when you
quote it). The experiment goes through a real server (gunicorn, a temp data dir) and its run
manager, so it pays for what the page pays: a supervisor per run, events stored, results read
back. The shell loop is the floor: ``python -m lessons.05... --log-format json`` with no server.
The issue's bar: ratio (experiment / loop) under 2.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer  # noqa: E402 - after the path is set


def experiment_seconds(runs: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp))
        try:
            began = time.perf_counter()
            status, answer = server.post_json("/experiments", {"lesson": "05", "repeat": runs})
            assert status == 201, answer
            while (data := server.get_json(f"/api/experiments/{answer['id']}"))["status"] == "running":
                time.sleep(0.2)  # the bench's own poll, a fifth of a run: not the server's cost
            return time.perf_counter() - began, data
        finally:
            server.stop()


def loop_seconds(runs: int) -> float:
    # A shell loop, as a person would type it; the same interpreter the server spawns lessons with.
    script = (f'for i in $(seq {runs}); do "{sys.executable}" -m lessons.05_locks_and_race_conditions '
              "--log-format json > /dev/null || exit 1; done")
    began = time.perf_counter()
    subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return time.perf_counter() - began


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs in each (the issue asks 100)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the median is reported")
    args = parser.parse_args(argv)
    experiments, loops = [], []
    for _ in range(args.rounds):
        seconds, data = experiment_seconds(args.runs)
        experiments.append(seconds)
        statuses = {r["status"] for r in data["runs"]}
        print(f"experiment: {seconds:.1f} s, {data['status']}, run statuses {sorted(statuses)}")
        loops.append(loop_seconds(args.runs))
        print(f"shell loop: {loops[-1]:.1f} s")
    how = f"median of {args.rounds}" if args.rounds > 1 else "one of each"
    exp, loop = statistics.median(experiments), statistics.median(loops)
    print(f"{args.runs} runs of lesson 05 ({how}): experiment {exp:.1f} s, shell loop {loop:.1f} s, "
          f"ratio {exp / loop:.2f} (the bar: < 2)")
    return 0 if exp / loop < 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
