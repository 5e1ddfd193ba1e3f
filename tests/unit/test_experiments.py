"""Experiment statistics: medians, shared histogram bins, the lesson's point, and progress."""

from __future__ import annotations

from app import experiment_stats as ex


def slot(sweep, status="exited", **values):
    return {"sweep": sweep, "id": "x", "status": status, "values": values}


def test_median_min_max_and_counts_per_group():
    runs = [slot(0, lost_updates=v) for v in (0, 10, 20, 30)] + [slot(1, lost_updates=v) for v in (0, 0, 5)]
    stats = ex.stats("05_locks", runs, [0, 1])["lost_updates"]
    assert (stats["0"]["n"], stats["0"]["min"], stats["0"]["median"], stats["0"]["max"]) == (4, 0, 15, 30)
    assert stats["1"]["median"] == 0
    assert stats["0"]["edges"] == stats["1"]["edges"] == [3.0 * i for i in range(11)]
    assert stats["0"]["counts"] == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1], "the top edge falls in the last bin"
    assert stats["1"]["counts"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert stats["0"]["point"] == {"rule": "lost_updates > 0", "hits": 3, "of": 4}
    assert stats["1"]["point"] == {"rule": "lost_updates > 0", "hits": 1, "of": 3}


def test_equal_values_make_one_bin_and_missing_groups_stay_empty():
    stats = ex.stats("01_simple", [slot(None, done=4), slot(None, done=4)], None)["done"]
    assert stats["all"]["counts"] == [2] and stats["all"]["median"] == 4
    assert stats["all"]["point"]["rule"] == "done > 0", "the generic point"
    empty = ex.stats("05", [slot(2, lost_updates=1)], [2, 3])["lost_updates"]["3"]
    assert empty["n"] == 0 and "median" not in empty and sum(empty["counts"]) == 0


def test_only_matching_values_get_a_lessons_point():
    stats = ex.stats("09_deadlock", [slot("ordered", ordered_finished=1, ordered_ms=30)], ["ordered"])
    assert stats["ordered_finished"]["ordered"]["point"]["hits"] == 1
    assert "point" not in stats["ordered_ms"]["ordered"]


def test_progress_counts_and_estimate():
    record = {"status": "running", "started": 100.0, "ended": None,
              "runs": [slot(None), slot(None, status="running"), slot(None, status="queued"),
                       slot(None, status="queued")]}
    got = ex.progress(record, now=110.0)
    assert got == {"total": 4, "done": 1, "running": 1, "queued": 2, "elapsed": 10.0, "estimate": 30.0}
