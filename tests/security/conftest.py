"""A live server on the fault lessons (tests/fixtures/fault_lessons), one per test module."""

from __future__ import annotations

import pytest

from tests.live_helpers import start_fault_server


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory):
    live = start_fault_server(tmp_path_factory.mktemp("faults"))
    yield live
    live.stop()
