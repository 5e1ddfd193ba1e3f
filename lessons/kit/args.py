"""argparse helpers whose bounds the dashboard can read back to build and validate its form.

``int_range(1, 16)`` is an argparse ``type=`` that rejects values outside [1, 16] with a clear
message *and* carries ``kind``, ``min`` and ``max`` attributes, so the server renders
``<input type=number min=1 max=16>`` and validates a web form with the very same rule.
"""

from __future__ import annotations

import argparse
import math

KIT_OPTIONS = ("log_format", "verbose")  # the kit's own options; the dashboard does not list them


class Bounded:
    """A number type for argparse with inclusive bounds (``None`` means unbounded)."""

    def __init__(self, kind: type, low: float | None, high: float | None) -> None:
        self.kind = kind
        self.min = low
        self.max = high
        # argparse names the type in its error messages ("invalid int value: 'x'").
        self.__name__ = kind.__name__

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return value

    def describe(self) -> str:
        noun = "a whole number" if self.kind is int else "a number"
        if self.min is not None and self.max is not None:
            return f"{noun} from {self.min} to {self.max}"
        if self.min is not None:
            return f"{noun} of at least {self.min}"
        if self.max is not None:
            return f"{noun} of at most {self.max}"
        return noun

    def __repr__(self) -> str:
        return f"{self.kind.__name__}_range({self.min}, {self.max})"


def int_range(low: int | None = None, high: int | None = None) -> Bounded:
    """An int argparse type limited to [low, high]."""
    return Bounded(int, low, high)


def float_range(low: float | None = None, high: float | None = None) -> Bounded:
    """A float argparse type limited to [low, high]."""
    return Bounded(float, low, high)


def lesson_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the kit's own options; the lesson adds its parameters.

    The description is the docstring's first line (its title), so ``--help`` starts with it.
    """
    title = (doc or "").strip().splitlines()[0] if doc and doc.strip() else None
    parser = argparse.ArgumentParser(
        description=title, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text for people; json (one event per line) for the dashboard and scripts",
    )
    parser.add_argument("--verbose", action="store_true", help="also show DEBUG log lines")
    return parser
