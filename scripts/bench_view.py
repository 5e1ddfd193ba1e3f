"""How fast a run's view answers: build its model from disk, draw its timeline, show an instant.

Writes a synthetic 200k-event run (``events.jsonl`` in a temp data dir: a snapshot of 8 threads every
100 ms, with ``state``, ``sync``, ``thread`` and ``log`` events between) and times, median of several
rounds: the one-off fold of the file into a model, saving that model beside the run and loading it
back (what a finished run's first look costs instead of the fold, app/model_store.py), the
timeline drawing (whole run and a 10 s zoom), and ``state_at`` at 50 random instants. Targets:
timeline <= 50 ms, state <= 20 ms once the model is built; the load is reported beside the fold it
replaces (the baseline, measured in the same run).

    .venv/bin/python scripts/bench_view.py [--events 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import model_store, timeline  # noqa: E402
from app.eventlog import EventLog  # noqa: E402
from app.viewmodel import ViewModel  # noqa: E402

THREADS = 8
STATES = ("waiting-lock", "waiting-queue", "waiting-condition", "running")


class BenchRun:
    """What a model needs of a run: its id, its log, whether it is live."""

    def __init__(self, path: Path) -> None:
        self.id, self.live = "bench", False
        self.log = EventLog(path, live=False)


def write_run(path: Path, count: int, seed: int = 1) -> float:
    """A run of ``count`` events; returns its length in seconds."""
    rng = random.Random(seed)
    t0 = 1_700_000_000.0
    names = [f"Worker-{i}" for i in range(1, THREADS)] + ["MainThread"]
    state = dict.fromkeys(names, "running")
    seq, tick = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        def emit(**event) -> None:
            nonlocal seq
            f.write(json.dumps({"seq": seq, "v": 1, **event}) + "\n")
            seq += 1

        emit(kind="status", t=t0, status="running", pid=1)
        for i, name in enumerate(names):
            emit(kind="thread", t=t0 + 0.001 * i, op="start", name=name, ident=100 + i, daemon=False)
        while seq < count:
            now = t0 + tick * 0.1
            for _ in range(3):  # between two snapshots: a wait begins or ends, a lock changes hands, a log
                name = rng.choice(names)
                t = now + rng.random() * 0.1
                state[name] = rng.choice(STATES)
                ident = 100 + names.index(name)
                emit(kind="state", t=t, thread=name, ident=ident, state=state[name], obj="lock")
                emit(kind="sync", t=t, op="acquired", obj="lock", thread=name)
                emit(kind="log", t=t, level="INFO", logger="lesson", thread=name,
                     thread_id=ident, msg=f"item {seq} handled")
            rows = [{"name": n, "ident": 100 + i, "native_id": 1000 + i, "daemon": False, "alive": True,
                     "state": state[n] if state[n] != "running" else rng.choice(("running", "sleeping")),
                     "where": f"lesson.py:{40 + i} work", "line": 40 + i, "func": "work",
                     "holds": ["lock"] if i == tick % THREADS else [], "waiting_for": None,
                     "cpu_s": tick * 0.01} for i, n in enumerate(names)]
            emit(kind="threads", t=now + 0.1, threads=rows)
            tick += 1
    return tick * 0.1


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        folder = Path(data_dir) / "runs" / "bench"
        folder.mkdir(parents=True)
        path = folder / "events.jsonl"
        span = write_run(path, args.events)
        size = path.stat().st_size / 1e6
        build = median_ms(lambda: ViewModel(BenchRun(path)).refresh(), max(1, args.rounds // 2))
        built = ViewModel(BenchRun(path)).refresh()
        save = median_ms(lambda: model_store.save(built, built.run.log, model_store.stamp(path)), args.rounds)
        saved_mb = (folder / model_store.FILE).stat().st_size / 1e6

        def load_saved() -> None:
            fresh = ViewModel(BenchRun(path))
            if not model_store.load_into(fresh, fresh.run.log):
                raise RuntimeError("the saved model did not load")

        restore = median_ms(load_saved, args.rounds)
        tracemalloc.start()
        model = ViewModel(BenchRun(path)).refresh()
        kept = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        rng = random.Random(2)
        instants = [rng.uniform(0, model.duration) for _ in range(50)]
        whole = median_ms(lambda: timeline.render_model(model), args.rounds)
        zoom = median_ms(lambda: timeline.render_model(model, span / 2, span / 2 + 10), args.rounds)
        states = [median_ms(lambda t=t: model.state_at(t), 3) for t in instants]
        svg_kb = len(timeline.render_model(model)) / 1000
    print(f"synthetic run: {model.count} events, {size:.0f} MB, {span:.0f} s, {THREADS} threads")
    print(f"{'measure':<44}{'median ms':>12}{'target':>10}")
    rows = [("build model from disk (one-off)", build, "-"),
            ("save the finished model beside the run", save, "-"),
            (f"load the saved model ({saved_mb:.0f} MB), {build / max(restore, 1e-9):.0f}x the fold", restore,
             "-"),
            ("timeline, whole run", whole, "50"), ("timeline, 10 s zoom", zoom, "50"),
            ("state_at, median of 50 instants", statistics.median(states), "20"),
            ("state_at, worst of 50 instants", max(states), "20")]
    for label, value, target in rows:
        print(f"{label:<44}{value:>12.2f}{target:>10}")
    print(f"model memory: {kept:.1f} MB; whole-run SVG: {svg_kb:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
