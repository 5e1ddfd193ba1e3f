#!/usr/bin/env python3
"""Assemble EXAMPLES.md from one section per lesson under docs/examples/NN.md (kept beside each other
so a lesson's author edits one small file)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = """# Examples: every lesson, how to run it and what to expect

Run any lesson on its own once `scripts/serve` or `scripts/test` has made `.venv`
(`.venv/bin/python lessons/NN_name.py --help` lists its options), through the headless launcher
(`scripts/cli.py --run NN ...`), or from the dashboard at http://127.0.0.1:8765/. Numbers vary a
little from run to run; the shape of the result does not. Every lesson ends with a `Result:` block
(a `result` event in JSON mode) that the tests assert. To write a lesson of your own, see
[docs/writing-lessons.md](docs/writing-lessons.md).

"""


def main() -> None:
    sections = sorted((ROOT / "docs" / "examples").glob("[0-9][0-9].md"))
    sections.append(ROOT / "docs" / "examples" / "exercises.md")  # after the lessons: all of them
    sections.append(ROOT / "docs" / "examples" / "experiments" / "section.md")  # Experiments: last
    body = "\n\n".join(path.read_text().strip() for path in sections)
    (ROOT / "EXAMPLES.md").write_text(HEADER + body + "\n")


if __name__ == "__main__":
    main()
