"""Medoid RECIST line and length statistics, with hypothesis properties for order and end-point swaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.core.geometry import FrameGeometry
from annotations.core.line_consensus import DrawnLine, end_point_distance_mm, line_consensus, weighted_quantile


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


# The exported consensus line (median_length_line), against hand-worked examples.

FRAME = FrameGeometry(
    sop_instance_uid="1.0",
    frame=1,
    rows=64,
    columns=64,
    position_mm=(-10.0, -10.0, 0.0),
    row_cosine=(1.0, 0.0, 0.0),
    column_cosine=(0.0, 1.0, 0.0),
    pixel_spacing_mm=(0.5, 0.5),
)


def test_consensus_line_has_the_median_length_centred_on_the_median_midpoint():
    # Lengths 8, 10, 12 mm; midpoints (4, 0), (5, 2), (6, -1); reader 2 drew right to left.
    lines = [line(1, (0, 0), (8, 0)), line(2, (10, 2), (0, 2)), line(3, (0, -1), (12, -1))]

    result = line_consensus(lines, frames={("1.0", 1): FRAME})

    # Medoid: reader 1 (summed end-point distances 4.83 + 5.12 against 4.83 + 6.61 and 5.12 + 6.61).
    assert result.medoid.reader_id == 1
    # Centre (median 5, median 0), direction +x, length median 10 mm: (0, 0) to (10, 0) mm,
    # i.e. columns (0 + 10) / 0.5 = 20 and (10 + 10) / 0.5 = 40 on row (0 + 10) / 0.5 = 20.
    assert result.line.start == pytest.approx((20.0, 20.0))
    assert result.line.end == pytest.approx((40.0, 20.0))
    assert result.line.length_mm == pytest.approx(10.0) == pytest.approx(result.median_mm)
    assert result.line.sop_instance_uid == "1.0"
    assert result.line.as_json()["construction"] == "median_length_line"


def test_consensus_line_follows_the_mean_direction_of_the_readers():
    # Three 10 mm lines through the origin at -10, 0 and +10 degrees.
    lines = []
    for reader_id, degrees in ((1, -10.0), (2, 0.0), (3, 10.0)):
        dx, dy = 5 * np.cos(np.radians(degrees)), 5 * np.sin(np.radians(degrees))
        lines.append(line(reader_id, (-dx, -dy), (dx, dy)))

    result = line_consensus(lines, frames={("1.0", 1): FRAME})

    # Mean direction is 0 degrees; centre (0, 0) mm = column/row 20: ends at columns 10 and 30.
    assert result.line.start == pytest.approx((10.0, 20.0))
    assert result.line.end == pytest.approx((30.0, 20.0))


def test_a_reader_on_a_neighbouring_slice_moves_the_centre_only_in_plane():
    lines = [line(1, (0, 0), (10, 0)), line(2, (0, 0), (10, 0)), line(3, (0, 4), (10, 4), z=2.5)]

    result = line_consensus(lines, frames={("1.0", 1): FRAME})

    assert result.line.sop_instance_uid == "1.0"
    assert result.line.start_mm[2] == result.line.end_mm[2] == 0.0
    assert result.line.start_mm[:2] == pytest.approx((0.0, 0.0))


def test_consensus_line_is_clipped_to_the_image():
    lines = [line(1, (-12, 0), (20, 0)), line(2, (-12, 0.5), (20, 0.5))]

    result = line_consensus(lines, frames={("1.0", 1): FRAME})

    # Wanted -12..20 mm = columns -4..60; column 0 (x = -10 mm) is the image edge.
    assert result.line.start[0] == pytest.approx(0.0)
    assert result.line.length_mm == pytest.approx(30.0)


def test_without_the_frame_or_with_one_line_the_consensus_line_is_the_medoid():
    lines = [line(1, (0, 0), (8, 0)), line(2, (10, 2), (0, 2)), line(3, (0, -1), (12, -1))]

    assert line_consensus(lines).line == line_consensus(lines).medoid
    assert line_consensus(lines[:1], frames={("1.0", 1): FRAME}).line == lines[0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        # Centres from 1 to 11 mm keep every line inside FRAME (x and y from -10 to 21.5 mm), as readers' lines
        # are: a line that crossed the image edge would be clipped and come out shorter.
        st.tuples(st.floats(1, 11), st.floats(1, 11), st.floats(4, 20), st.floats(-0.3, 0.3), st.booleans()),
        min_size=2,
        max_size=7,
    )
)
def test_the_consensus_line_is_exactly_as_long_as_the_median_length(specs):
    lines = []
    for reader_id, (cx, cy, length, angle, reverse) in enumerate(specs, start=1):
        dx, dy = length / 2 * np.cos(angle), length / 2 * np.sin(angle)
        start, end = (cx - dx, cy - dy), (cx + dx, cy + dy)
        lines.append(line(reader_id, end if reverse else start, start if reverse else end))

    result = line_consensus(lines, frames={("1.0", 1): FRAME})

    assert result.line.length_mm == pytest.approx(result.median_mm, abs=1e-9)
