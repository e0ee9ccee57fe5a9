"""Medoid RECIST line and length statistics, with hypothesis properties for order and end-point swaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.services.line_consensus import DrawnLine, end_point_distance_mm, line_consensus, weighted_quantile


def line(reader_id, start, end, z=0.0):
    return DrawnLine(
        reader_id=reader_id,
        sop_instance_uid=f"1.{int(z)}",
        frame=1,
        start=tuple(start),
        end=tuple(end),
        start_mm=(start[0], start[1], z),
        end_mm=(end[0], end[1], z),
        length_mm=float(np.hypot(end[0] - start[0], end[1] - start[1])),
    )


def test_medoid_is_the_drawn_line_closest_to_the_others_and_ignores_an_outlier():
    lines = [
        line(1, (0, 0), (10, 0)),
        line(2, (0.5, 0), (10.5, 0)),
        line(3, (0, 1), (10, 1)),
        line(4, (30, 30), (60, 30)),
    ]

    result = line_consensus(lines)

    assert result.medoid.reader_id in {1, 2}
    assert result.median_mm == pytest.approx(10.0)
    assert result.n_lines == 4


def test_end_points_are_matched_in_the_orientation_that_minimises_distance():
    a = line(1, (0, 0), (10, 0))
    b = line(2, (10, 0), (0, 0))

    assert end_point_distance_mm(a, b) == 0.0


def test_iqr_and_cv_follow_numpy_definitions():
    lengths = [10.0, 12.0, 13.0, 20.0]
    lines = [line(i, (0, i), (length, i)) for i, length in enumerate(lengths)]

    result = line_consensus(lines)

    assert result.iqr_mm == pytest.approx(np.quantile(lengths, 0.75) - np.quantile(lengths, 0.25))
    assert result.cv == pytest.approx(np.std(lengths, ddof=1) / np.mean(lengths))


def test_weights_move_the_median_towards_heavily_weighted_readers():
    lines = [line(1, (0, 0), (10, 0)), line(2, (0, 0), (12, 0)), line(3, (0, 0), (20, 0))]

    weighted = line_consensus(lines, weights=[10.0, 1.0, 1.0])

    assert weighted.median_mm < line_consensus(lines).median_mm


def test_weighted_quantile_with_equal_weights_is_numpys():
    values = [3.0, 1.0, 7.0, 4.0]
    assert weighted_quantile(values, 0.5, [2.0, 2.0, 2.0, 2.0]) == np.quantile(values, 0.5)


coordinate = st.floats(-50, 50, allow_nan=False)
point = st.tuples(coordinate, coordinate)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(point, point), min_size=2, max_size=7), st.randoms(use_true_random=False), st.data())
def test_reader_order_and_end_point_swaps_do_not_change_the_consensus(segments, rng, data):
    lines = [line(i, s, e) for i, (s, e) in enumerate(segments)]
    swapped = [line(li.reader_id, li.end, li.start) if data.draw(st.booleans()) else li for li in lines]
    rng.shuffle(swapped)

    original, shuffled = line_consensus(lines), line_consensus(swapped)

    assert shuffled.medoid.reader_id == original.medoid.reader_id
    assert shuffled.median_mm == pytest.approx(original.median_mm)


@settings(max_examples=30, deadline=None)
@given(point, point, st.integers(1, 8))
def test_a_unanimous_vote_gives_that_line(start, end, n):
    lines = [line(i, start, end) for i in range(n)]

    result = line_consensus(lines)

    assert result.medoid.start_mm[:2] == start and result.medoid.end_mm[:2] == end
    assert result.iqr_mm == 0.0
