"""Helpers shared by the kit's unit tests: events captured in memory, and waiting on a condition."""

from __future__ import annotations

import io
import json
import time

import pytest

from lessons.kit import events


@pytest.fixture
def captured():
    """The kit's events written to memory; call the fixture's value for those written so far."""
    stream = io.BytesIO()
    events.enable(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    events.disable()


def wait_until(condition, timeout=5.0, what="the condition"):
    """Poll ``condition`` until it is true; fail after ``timeout`` s. Returns its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {timeout} s")
        time.sleep(0.002)
    return value
