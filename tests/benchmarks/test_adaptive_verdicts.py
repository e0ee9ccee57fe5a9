"""The reader-study benchmark's verdicts (like for like) and the tuning replay, on hand-made figures."""

from __future__ import annotations

import pytest

from annotations.core.adaptive_reads import AdaptiveRule
from benchmarks.bench_label_quality import verdicts
from benchmarks.tune_adaptive_rule import replay


def method(reads: int, error: float, sensitivity: float = 0.99) -> dict:
    return {
        "reads_total": reads,
        "long_axis_line": {"mean": error},
        "long_axis_median": {"mean": error},
        "long_axis_medoid": {"mean": error + 0.2},
        "sensitivity": sensitivity,
        "false_positives_per_case": 0.0,
    }


def test_adaptive_rows_are_compared_with_fixed_rows_of_the_same_kind():
    results = {
        "methods": {
            "fixed_4": method(400, 1.05, 0.95),
            "fixed_5": method(500, 0.88),
            "fixed_5_weighted": method(500, 0.76),
            "adaptive_2_to_7": method(340, 0.87, 0.995),
            "adaptive_2_to_7_weighted": method(340, 0.80, 0.995),
        }
    }

    found = verdicts(results)["adaptive_vs_fixed"]

    plain, weighted = found["adaptive_2_to_7"], found["adaptive_2_to_7_weighted"]
    assert set(plain["against"]) == {"fixed_4", "fixed_5"}
    assert set(weighted["against"]) == {"fixed_5_weighted"}
    # 32 % fewer reads than fixed 5, a lower error and a higher sensitivity: the target.
    assert plain["against"]["fixed_5"]["reads_saved"] == pytest.approx(0.32)
    assert plain["fixed_5_error_and_sensitivity_with_30pct_fewer_reads"] is True
    assert plain["lower_error_than_fixed_with_as_many_reads"] == ["fixed_4", "fixed_5"]
    # Weighted: 0.80 mm is worse than the weighted fixed 5 (0.76 mm), whatever the unweighted fixed 5 says.
    assert weighted["fixed_5_error_and_sensitivity_with_30pct_fewer_reads"] is False
    assert weighted["lower_error_than_fixed_with_as_many_reads"] == []


def test_the_target_needs_the_sensitivity_too():
    results = {"methods": {"fixed_5": method(500, 0.88, 0.99), "adaptive_2_to_7": method(300, 0.80, 0.98)}}

    assert (
        verdicts(results)["adaptive_vs_fixed"]["adaptive_2_to_7"][
            "fixed_5_error_and_sensitivity_with_30pct_fewer_reads"
        ]
        is False
    )


def prefix(lengths: dict[int, float], truth: float) -> dict:
    return {
        "lesions": [(len(lengths), lengths, None)],
        "matched": [(lengths, truth)],
        "found": 1,
        "false_positives": 0,
        "total": 1,
    }


def test_the_replay_stops_agreeing_cases_at_the_minimum_and_reads_on_where_readers_disagree():
    agreeing = [{1: 30.0, 2: 30.5}, {1: 30.0, 2: 30.5, 3: 31.0}]
    apart = [{1: 30.0, 4: 38.0}, {1: 30.0, 4: 38.0, 5: 31.0}, {1: 30.0, 4: 38.0, 5: 31.0, 6: 30.5}]
    study = {"cases": [1, 2], "weights": {}, "prefixes": {}}
    for k, lengths in enumerate(agreeing, start=2):
        study["prefixes"][(1, k)] = prefix(lengths, 30.0)
    for k, lengths in enumerate(apart, start=2):
        study["prefixes"][(2, k)] = prefix(lengths, 30.0)

    result = replay(study, AdaptiveRule(min_reads=2, max_reads=4), reliability=False)

    # Case 1 stops at 2 reads; case 2 (error 1.2533 * 8 / 2 = 5 mm at 2 reads) takes 2 more: 4 reads.
    assert result["reads_per_case"] == pytest.approx(3.0)
    # Errors: case 1's median 30.25 (0.25 mm), case 2's median of 30, 38, 31, 30.5 = 30.75 (0.75 mm).
    assert result["error_mm"] == pytest.approx(0.5)
    assert result["sensitivity"] == 1.0
