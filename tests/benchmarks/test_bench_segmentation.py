"""benchmarks/bench_segmentation.py's yardstick rows: the simulated readers' brush masks on the same phantoms."""

from __future__ import annotations

import pytest

from benchmarks import bench_segmentation as bench
from benchmarks import reader_study
from benchmarks.segmentation_phantoms import make_phantom


def test_brush_readers_are_scored_on_the_phantom_with_the_methods_metrics_but_no_tap_or_time():
    phantom = make_phantom(3, seed=26)

    row = bench.evaluate_brush(phantom, reader_study.reader_population(26), rng_seed=26003)

    assert len(row["dice_2d"]) == bench.LINES_PER_LESION
    assert all(0.5 < d <= 1.0 for d in row["dice_2d"])
    assert 0.5 < row["dice_3d"] <= 1.0
    assert row["hd95_mm"] >= 0 and row["volume_err_pct"] >= 0
    summary = bench.summarise([row, row])
    assert summary["dice_3d"]["median"] == pytest.approx(row["dice_3d"], abs=1e-4)
    assert summary["tap_dice_3d"] is None and summary["time_2d_512_ms"] is None and summary["cpu_3d_line_ms"] is None


def test_the_selection_rule_never_chooses_the_brush_readers():
    method = {"dice_2d": {"median": 0.9}, "dice_3d": {"median": 0.85}, "tap_dice_3d": {"median": 0.85}}
    method |= {"cpu_2d_512_ms": {"p95": 50.0}, "cpu_3d_line_ms": {"p95": 500.0}}
    brush = {"dice_2d": {"median": 0.99}, "dice_3d": {"median": 0.99}, "tap_dice_3d": None}

    assert bench.choose({"watershed": method, bench.BRUSH: brush}) == "watershed"


def test_a_held_out_summary_is_checked_against_the_issues_targets():
    summary = {
        "dice_2d": {"median": 0.91},
        "dice_3d": {"median": 0.84},
        "long_axis_err_mm": {"median": 1.2},
        "short_axis_err_mm": {"median": 1.6},
    }

    assert bench.targets_met(summary) == {
        "dice_2d_median >= 0.90": True,
        "dice_3d_median >= 0.85": False,
        "long_axis_err_median <= 1.5 mm": True,
        "short_axis_err_median <= 1.5 mm": False,
    }
