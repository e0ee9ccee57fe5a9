"""RECIST 1.1 rules (Eisenhauer et al. 2009), table-driven, including the edge cases the paper spells out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.core.recist import (
    BaselineLesionSize,
    LesionAtTimePoint,
    Response,
    Status,
    TimePointMeasurements,
    assess,
    best_overall_response,
    select_targets,
)

M, GONE, NE = Status.MEASURED, Status.DISAPPEARED, Status.NOT_EVALUABLE


def lesion(key, long_mm, short_mm=None, *, node=False, site=None):
    return BaselineLesionSize(key=key, long_axis_mm=long_mm, short_axis_mm=short_mm, is_node=node, site=site)


def at(status, long_mm=None, short_mm=None):
    return LesionAtTimePoint(status=status, long_axis_mm=long_mm, short_axis_mm=short_mm)


# Baseline: two liver lesions of 30 and 20 mm: sum 50 mm.
TWO_LIVER = [lesion("B1", 30.0), lesion("B2", 20.0)]

RESPONSE_TABLE = [
    # (why, what the read recorded for B1 and B2, new lesions, expected response)
    ("both gone: complete response", {"B1": at(GONE), "B2": at(GONE)}, 0, Response.CR),
    ("measured at 0 mm counts as gone", {"B1": at(M, 0.0), "B2": at(GONE)}, 0, Response.CR),
    ("exactly 30 % decrease (50 -> 35) is PR", {"B1": at(M, 21.0), "B2": at(M, 14.0)}, 0, Response.PR),
    ("29.8 % decrease (50 -> 35.1) is SD", {"B1": at(M, 21.1), "B2": at(M, 14.0)}, 0, Response.SD),
    ("exactly 20 % and 10 mm increase (50 -> 60) is PD", {"B1": at(M, 36.0), "B2": at(M, 24.0)}, 0, Response.PD),
    ("19.8 % increase (50 -> 59.9) is SD", {"B1": at(M, 35.9), "B2": at(M, 24.0)}, 0, Response.SD),
    ("a new lesion is PD whatever the sum", {"B1": at(M, 10.0), "B2": at(M, 5.0)}, 1, Response.PD),
    ("a new lesion is PD even when targets vanished", {"B1": at(GONE), "B2": at(GONE)}, 1, Response.PD),
    ("a target not evaluable, no progression: NE", {"B1": at(M, 29.0), "B2": at(NE)}, 0, Response.NE),
    ("a target missing from the read: NE", {"B1": at(M, 29.0)}, 0, Response.NE),
    ("progression of the evaluable targets alone stands: PD", {"B1": at(M, 61.0), "B2": at(NE)}, 0, Response.PD),
    ("unchanged: SD", {"B1": at(M, 30.0), "B2": at(M, 20.0)}, 0, Response.SD),
]


@pytest.mark.parametrize(("why", "sizes", "new", "expected"), RESPONSE_TABLE, ids=[row[0] for row in RESPONSE_TABLE])
def test_response_at_the_first_follow_up(why, sizes, new, expected):
    (result,) = assess(TWO_LIVER, [TimePointMeasurements(index=1, lesions=sizes, new_lesions=new)])

    assert result.response == expected, why


def test_the_5_mm_floor_keeps_a_20_percent_increase_of_a_small_sum_stable():
    # Baseline 20 mm; 24 mm is +20 % but only +4 mm: SD. 25 mm is +25 % and +5 mm: PD.
    baseline = [lesion("B1", 20.0)]

    results = assess(
        baseline,
        [
            TimePointMeasurements(index=1, lesions={"B1": at(M, 24.0)}),
            TimePointMeasurements(index=2, lesions={"B1": at(M, 25.0)}),
        ],
    )

    assert [r.response for r in results] == [Response.SD, Response.PD]
    assert results[0].change_from_nadir_pct == pytest.approx(20.0)


def test_progression_is_measured_from_the_nadir_not_the_baseline():
    # 50 -> 30 (PR, new nadir 30) -> 37 (+23 % and +7 mm over the nadir, still -26 % from baseline): PD.
    results = assess(
        TWO_LIVER,
        [
            TimePointMeasurements(index=1, lesions={"B1": at(M, 18.0), "B2": at(M, 12.0)}),
            TimePointMeasurements(index=2, lesions={"B1": at(M, 22.0), "B2": at(M, 15.0)}),
        ],
    )

    assert [r.response for r in results] == [Response.PR, Response.PD]
    assert results[1].nadir_sum_mm == pytest.approx(30.0)
    assert results[1].change_from_baseline_pct == pytest.approx(-26.0)
    assert results[1].change_from_nadir_pct == pytest.approx(23.333, abs=1e-3)


def test_the_nadir_is_the_baseline_until_a_smaller_sum_is_seen():
    (first,) = assess(TWO_LIVER, [TimePointMeasurements(index=1, lesions={"B1": at(M, 33.0), "B2": at(M, 22.0)})])

    assert first.nadir_sum_mm == first.baseline_sum_mm == pytest.approx(50.0)
    assert first.change_from_nadir_pct == first.change_from_baseline_pct == pytest.approx(10.0)


def test_a_not_evaluable_time_point_does_not_become_the_nadir():
    results = assess(
        TWO_LIVER,
        [
            TimePointMeasurements(index=1, lesions={"B1": at(M, 10.0), "B2": at(NE)}),
            TimePointMeasurements(index=2, lesions={"B1": at(M, 30.0), "B2": at(M, 21.0)}),
        ],
    )

    assert results[0].sum_mm is None and results[0].response == Response.NE
    assert results[1].nadir_sum_mm == pytest.approx(50.0)
    assert results[1].response == Response.SD


def test_nodes_are_summed_by_short_axis_and_under_10_mm_count_as_normal_for_cr():
    baseline = [lesion("N1", 25.0, 18.0, node=True, site="node"), lesion("B1", 22.0, site="liver")]

    results = assess(
        baseline,
        [
            TimePointMeasurements(index=1, lesions={"N1": at(M, 14.0, 9.0), "B1": at(GONE)}),
            TimePointMeasurements(index=2, lesions={"N1": at(M, 15.0, 10.0), "B1": at(GONE)}),
        ],
    )

    assert results[0].baseline_sum_mm == pytest.approx(40.0)  # 18 (node short axis) + 22
    assert results[0].sum_mm == pytest.approx(9.0)  # the normal node's short axis is still recorded
    assert results[0].response == Response.CR
    assert results[1].response == Response.PR  # a 10 mm node is not normal: no CR, 75 % below baseline


def test_targets_are_measurable_largest_first_at_most_five_and_two_per_organ():
    baseline = [
        lesion("L1", 40.0, site="liver"),
        lesion("L2", 35.0, site="liver"),
        lesion("L3", 50.0, site="liver"),  # the third liver lesion in size order is left out: L2
        lesion("P1", 9.5, site="lung"),  # under 10 mm: not measurable
        lesion("N1", 30.0, 14.0, node=True, site="node"),  # node under 15 mm short axis: not a target
        lesion("N2", 30.0, 16.0, node=True, site="node"),
        lesion("X1", 12.0),
        lesion("X2", 11.0),
        lesion("X3", 10.0),  # exactly 10 mm is measurable, but five targets are already chosen
    ]

    selection = select_targets(baseline)

    assert selection.targets == ("L1", "L3", "N2", "X1", "X2")
    assert set(selection.non_targets) == {"L2", "P1", "N1", "X3"}


def test_lesions_without_a_site_are_not_limited_per_organ():
    baseline = [lesion(f"B{n}", 20.0 + n) for n in range(1, 5)]

    assert select_targets(baseline).targets == ("B1", "B2", "B3", "B4")


def test_non_targets_do_not_enter_the_sum():
    baseline = [lesion("B1", 30.0), lesion("B2", 8.0)]  # B2 is not measurable

    (result,) = assess(baseline, [TimePointMeasurements(index=1, lesions={"B1": at(M, 30.0), "B2": at(M, 40.0)})])

    assert result.baseline_sum_mm == pytest.approx(30.0)
    assert result.response == Response.SD


def test_no_target_at_baseline_is_not_evaluable_unless_a_new_lesion_appears():
    baseline = [lesion("B1", 6.0)]

    results = assess(
        baseline,
        [
            TimePointMeasurements(index=1, lesions={"B1": at(M, 6.0)}),
            TimePointMeasurements(index=2, lesions={"B1": at(M, 6.0)}, new_lesions=2),
        ],
    )

    assert [r.response for r in results] == [Response.NE, Response.PD]


def test_the_answer_shape_rounds_sums_and_percentages():
    (result,) = assess(TWO_LIVER, [TimePointMeasurements(index=1, lesions={"B1": at(M, 21.11), "B2": at(M, 14.0)})])

    assert result.as_dict() == {
        "index": 1,
        "sum_mm": 35.1,
        "baseline_sum_mm": 50.0,
        "nadir_sum_mm": 50.0,
        "change_from_baseline_pct": -29.8,
        "change_from_nadir_pct": -29.8,
        "new_lesions": 0,
        "response": "SD",
    }


def test_best_overall_response_orders_cr_pr_sd_pd_ne():
    assert best_overall_response([Response.SD, Response.PR, Response.PD]) == Response.PR
    assert best_overall_response([Response.NE]) == Response.NE
    assert best_overall_response([]) is None


def test_bad_input_is_refused_with_the_value_named():
    with pytest.raises(ValueError, match="needs a long or short axis"):
        LesionAtTimePoint(status=M)
    with pytest.raises(ValueError, match="not baseline lesions"):
        assess(TWO_LIVER, [], targets=["B9"])
    with pytest.raises(ValueError, match="unique"):
        select_targets([lesion("B1", 20.0), lesion("B1", 30.0)])


sizes = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)


@given(
    st.lists(st.floats(min_value=10.0, max_value=100.0), min_size=1, max_size=5),
    st.lists(sizes, min_size=5, max_size=5),
)
def test_the_response_does_not_depend_on_the_order_of_the_lesions(baseline_sizes, follow_up_sizes):
    baseline = [lesion(f"B{n}", size) for n, size in enumerate(baseline_sizes)]
    measured = {f"B{n}": at(M, follow_up_sizes[n]) for n in range(len(baseline))}

    forward = assess(baseline, [TimePointMeasurements(index=1, lesions=measured)])
    backward = assess(
        list(reversed(baseline)), [TimePointMeasurements(index=1, lesions=dict(reversed(measured.items())))]
    )

    assert forward[0].response == backward[0].response
    assert forward[0].sum_mm == pytest.approx(backward[0].sum_mm)


@given(st.lists(st.floats(min_value=10.0, max_value=100.0), min_size=1, max_size=5), st.floats(0.0, 3.0))
def test_growing_every_target_never_improves_the_response(baseline_sizes, factor):
    order = [Response.CR, Response.PR, Response.SD, Response.PD]
    baseline = [lesion(f"B{n}", size) for n, size in enumerate(baseline_sizes)]

    def response(scale: float) -> Response:
        lesions = {f"B{n}": at(M, size * scale) for n, size in enumerate(baseline_sizes)}
        return assess(baseline, [TimePointMeasurements(index=1, lesions=lesions)])[0].response

    assert order.index(response(factor * 1.1)) >= order.index(response(factor))
