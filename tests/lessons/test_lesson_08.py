"""Lesson 08: a shared global mixes request contexts up on every run; threading.local never does."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_global_context_mixes_requests_up_and_local_does_not(lesson, attempt):
    run = lesson("08")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["requests"] == 12
    assert result["mismatches_with_global"] > 0, "the race must show on every run"
    assert result["mismatches_with_local"] == 0
    assert result["connections_with_local"] == 4, "one connection per handler thread"
    warnings = [e for e in run.of_kind("log") if e["level"] == "WARNING"]
    assert len(warnings) == result["mismatches_with_global"]
    # The handlers' 100 ms waits overlap: each round takes about 3 waves, a quarter of serial_ms
    # (300-400 ms on an idle machine). Asserted only as "less than serial" (it was "under half", which
    # a machine loaded to 11 on 2 cores broke at 772 ms): what the lesson claims, with room for load.
    assert result["serial_ms"] == 1200
    for name in ("global_ms", "local_ms"):
        assert 300 <= result[name] < result["serial_ms"], name


def test_two_handlers_one_request_each_mix_up_exactly_once(lesson):
    # Both write before either reads back, so the first writer always reads the second one's id.
    result = lesson("08", "--workers", "2", "--requests", "1").result
    assert result["mismatches_with_global"] == 1
    assert result["mismatches_with_local"] == 0
    assert result["connections_with_local"] == 2
