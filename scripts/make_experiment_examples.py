#!/usr/bin/env python3
"""Run the experiments EXAMPLES.md shows, save their plots and write its "Experiments" section.

    .venv/bin/python scripts/make_experiment_examples.py

Each experiment goes through a real server (``threadlab serve`` in a temp data dir, as a learner's
would), so the pictures are the page's own SVGs (``/experiments/<id>/plots/<value>.svg``) and the
numbers are its ``GET /api/experiments/<id>`` stats. Writes docs/examples/experiments/*.svg (and
removes SVGs there that no experiment below makes any more), then writes the section twice: as
docs/examples/experiments/section.md, where scripts/make_examples.py (which rebuilds EXAMPLES.md from
docs/examples/) can take it, and into EXAMPLES.md itself, replacing its ``## Experiments`` section
(appended at the end when missing) and nothing else. Takes 1-3 minutes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer  # noqa: E402 - after the path is set

OUT = ROOT / "docs" / "examples" / "experiments"
HEADING = "## Experiments"
PICTURES = 3  # at most this many values of one experiment get a picture; the rest a table row
WAIT_S = 600  # the longest an experiment below may take on a busy 2-core machine

# slug, request body, values drawn (the first is the lesson's key figure), then what it shows and
# how to start it from the lesson's page.
EXPERIMENTS = [
    ("05-switch-interval",
     {"lesson": "05", "params": {}, "repeat": 8,
      "sweep": {"name": "switch_interval", "values": [0, 0.00001, 0.0001, 0.001, 0.01]}},
     ["lost_updates", "locked"],
     "Lesson 05, swept over `--switch-interval` (how long a thread may run before the interpreter "
     "asks it to let another have the GIL; 0 means the unlocked read-modify-write gives the GIL away "
     "every time). With 0 every run loses most of its updates; at 10 to 100 microseconds, about the "
     "length of the unlocked gap, the race shows in some runs and not in others, by very different "
     "amounts; by 1 to 10 ms it is rare and then gone. It never goes away for good: a longer "
     "interval only makes the bad moment less likely. The locked counter of the same runs is exact "
     "every time, whatever the interval: the lock, not the timing, is what makes it right.",
     "Open lesson 05, leave its parameters as they are, and under **Experiment** set *runs (per value)* "
     "to 8, *sweep* to `--switch-interval`, *values* to `0, 0.00001, 0.0001, 0.001, 0.01`; press "
     "**Sweep**."),
    ("09-strategies",
     {"lesson": "09", "params": {"strategy": "all"}, "repeat": 10},
     ["livelock_attempts", "random_backoff_attempts", "backoff_attempts", "deadlock_finished",
      "ordered_finished", "backoff_finished", "livelock_finished", "random_backoff_finished"],
     "Lesson 09 with every strategy in each run, ten runs. The two transfers that take the locks in "
     "opposite orders deadlock and give up; ordered locking finishes. Of the back-off strategies, "
     "the lock-step one (livelock: both back off alike and retry in step) mostly uses up its attempt "
     "cap without finishing, while a fixed back-off and a random one finish after a few attempts: "
     "the distribution of attempts is the lesson. Timing decides it, so on a busy machine the "
     "lock-step pair now and then falls out of step and finishes; such a run did not go as taught, "
     "exits 1 and counts as failed (listed under the plots, with its link).",
     "Open lesson 09, set *strategy* to `all`, and under **Experiment** set *runs (per value)* to 10, "
     "*sweep* to nothing; press **Run ×N**."),
    ("04-workers",
     {"lesson": "04", "params": {"executor": "thread", "workload": "io"}, "repeat": 5,
      "sweep": {"name": "workers", "values": [1, 2, 4, 8]}},
     ["io_thread_speedup"],
     "Lesson 04's thread pool on its I/O batch (8 tasks that each sleep 50 ms), swept over "
     "`--workers`. A sleeping thread lets go of the GIL, so the batch runs about as many times "
     "faster than one by one as there are workers, on 2 cores as well as on 8, and tightly so from "
     "run to run. The CPU batch is left out on purpose: an experiment runs up to 7 runs at once on "
     "this machine and each run times its serial and its threaded batch at different moments, so "
     "CPU speedups measured this way stray both ways; run the lesson alone for those (near 1 with "
     "threads: the GIL).",
     "Open lesson 04, set *executor* to `thread` and *workload* to `io`, and under **Experiment** "
     "set *runs (per value)* to 5, *sweep* to `--workers`, *values* to `1, 2, 4, 8`; press **Sweep**."),
]


def run_one(server: LiveServer, body: dict) -> dict:
    status, answer = server.post_json("/experiments", body)
    if status != 201:
        raise SystemExit(f"POST /experiments {json.dumps(body)} -> {status} {answer}")
    deadline = time.monotonic() + WAIT_S
    while (data := server.get_json(f"/api/experiments/{answer['id']}"))["status"] == "running":
        if time.monotonic() > deadline:
            raise SystemExit(f"experiment {answer['id']} still running after {WAIT_S} s")
        time.sleep(0.5)
    return data


def figure(value: float) -> str:
    """Whole numbers as they are, others to 3 significant figures, never in e-notation."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def prose(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)


def row(label: str, entry: dict) -> str:
    point = entry.get("point")
    shown = f"`{point['rule']}` in {point['hits']} of {point['of']}" if point else ""
    cells = [figure(entry[k]) if entry["n"] else "–" for k in ("min", "median", "max")]
    return f"| {label} | {entry['n']} | {' | '.join(cells)} | {shown} |"


def numbers(data: dict, names: list[str]) -> list[str]:
    """Markdown tables of the stats: one per value with a row per sweep group, or, with no sweep,
    one table with a row per value; the lesson's point where it has one."""
    head = "| n | min | median | max | point |\n|---|---|---|---|---|---|"
    sweep = (data["sweep"] or {}).get("name")
    if not sweep:
        return [f"| value {head}", *(row(f"`{n}`", data["stats"][n]["all"]) for n in names), ""]
    lines = []
    for name in names:
        lines += [f"| `{name}` by {sweep} {head}",
                  *(row(group, entry) for group, entry in data["stats"][name].items()), ""]
    return lines


def section(results: list[tuple[tuple, dict, list[str]]], load: tuple[float, ...]) -> str:
    out = [HEADING, "", prose(
           "An experiment runs one lesson many times, perhaps sweeping one parameter over a list of "
           "values, and draws the distribution of every number in the lesson's result: one row per "
           "value, a dot per run (linked to its run page) over a histogram, a tick at the median. "
           "Failed or timed-out runs are listed under the plots with links, never dropped. From a "
           "lesson's page use **Run ×N** or **Sweep** under its run form; from a script, "
           "`POST /experiments` and then `GET /api/experiments/<id>` (stats per value and sweep value) "
           "or `GET /api/experiments/<id>.csv` (a row per run)."), "", prose(
           f"The figures and pictures below are from `scripts/make_experiment_examples.py` "
           f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
           f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} before it started); run it again to redraw "
           f"them. Timings vary with the machine; the shape does not."), ""]
    for (slug, body, names, shows, steps), data, files in results:
        out += [f"### {body['lesson']}: {slug.split('-', 1)[1].replace('-', ' ')}", "", prose(shows),
                "", prose(f"On the page: {steps}"), "", "By the API:", "", "```sh",
                "curl -s -X POST localhost:8765/experiments -H 'Content-Type: application/json' \\",
                f"     -d '{json.dumps(body)}'",
                "curl -s localhost:8765/api/experiments/<id>       # status, runs, stats, progress",
                "```", "",
                prose(f"What came out ({len(data['runs'])} runs, experiment {data['status']}, "
                      f"run statuses: {summary(data)}):"), ""]
        out += numbers(data, names)
        out += [f"![{name} per run](docs/examples/experiments/{slug}-{name}.svg)" for name in files]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def summary(data: dict) -> str:
    statuses: dict[str, int] = {}
    for slot in data["runs"]:
        statuses[slot["status"]] = statuses.get(slot["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in statuses.items())


def write_section(text: str) -> None:
    """Replace the section from its heading to the next ``## `` heading (or the end), only that."""
    path = ROOT / "EXAMPLES.md"
    old = path.read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", old, flags=re.M | re.S)
    if found:
        new = old[:found.start()] + text + ("\n" if found.end() < len(old) else "") + old[found.end():]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new, encoding="utf-8")


def main() -> int:
    load = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    results, made = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp))
        try:
            for spec in EXPERIMENTS:
                slug, body, names = spec[0], spec[1], spec[2][:PICTURES]
                began = time.monotonic()
                data = run_one(server, body)
                print(f"{slug}: {data['status']}, {summary(data)}, {time.monotonic() - began:.0f} s")
                for slot in data["runs"]:
                    if slot["status"] != "exited":  # to check the prose against: what went otherwise
                        print(f"  run {slot['id']}: {slot['status']} {slot.get('values')}")
                for name in names:
                    status, svg, _ = server.request("GET", f"/experiments/{data['id']}/plots/{name}.svg")
                    if status != 200:
                        raise SystemExit(f"{slug}: no plot for {name} ({status})")
                    (OUT / f"{slug}-{name}.svg").write_bytes(svg)
                    made.add(f"{slug}-{name}.svg")
                results.append((spec, data, names))
        finally:
            server.stop()
    for stale in OUT.glob("*.svg"):
        if stale.name not in made:
            stale.unlink()
            print(f"removed stale {stale.relative_to(ROOT)}")
    text = section(results, load)
    (OUT / "section.md").write_text(text, encoding="utf-8")
    write_section(text)
    print(f"wrote {len(made)} SVGs and the {HEADING!r} section of EXAMPLES.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
