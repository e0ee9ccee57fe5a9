"""The pure core of the model review: lesions from documents, pairing, long axes, verdicts and pooled figures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from annotations.core import mask_rle
from annotations.core.geometry import FrameGeometry, series_geometry_from_frames
from annotations.core.model_review import (
    LesionPair,
    ReferenceComparison,
    component_labels,
    lesions_from_document,
    long_axis_mm,
    model_lesion_documents,
    review_suggestion,
    summarise_comparisons,
)

ROWS, COLUMNS, SLICES = 40, 48, 5
ROW_MM, COLUMN_MM, SLICE_MM = 0.7, 0.9, 2.5


def geometry():
    """An axial grid with anisotropic pixels (0.7 mm rows, 0.9 mm columns) and 2.5 mm slices."""
    frames = [
        FrameGeometry(
            sop_instance_uid=f"1.2.3.{k}",
            frame=1,
            rows=ROWS,
            columns=COLUMNS,
            position_mm=(0.0, 0.0, SLICE_MM * k),
            row_cosine=(1.0, 0.0, 0.0),
            column_cosine=(0.0, 1.0, 0.0),
            pixel_spacing_mm=(ROW_MM, COLUMN_MM),
        )
        for k in range(SLICES)
    ]
    return series_geometry_from_frames(frames)


def mask_lesion(number: int, planes: dict[int, np.ndarray]) -> dict:
    return {
        "lesion": number,
        "mask": {
            "slices": [
                {"sop_instance_uid": f"1.2.3.{k}", "frame": 1, "counts": mask_rle.encode(p)} for k, p in planes.items()
            ]
        },
    }


def line(k: int, start, end) -> dict:
    return {"sop_instance_uid": f"1.2.3.{k}", "frame": 1, "start": list(start), "end": list(end)}


def box(top: int, left: int, height: int, width: int) -> np.ndarray:
    plane = np.zeros((ROWS, COLUMNS), dtype=bool)
    plane[top : top + height, left : left + width] = True
    return plane


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, ROWS - 1), st.integers(0, COLUMNS - 1)), min_size=1, max_size=25))
def test_a_mask_only_lesion_measures_its_longest_diameter_on_its_largest_slice(pixels):
    largest = np.zeros((ROWS, COLUMNS), dtype=bool)
    for row, column in pixels:
        largest[row, column] = True
    smaller = np.zeros((ROWS, COLUMNS), dtype=bool)
    smaller[0, 0] = True  # one pixel on the slice above, far from the rest: never the largest slice
    (lesion,) = lesions_from_document([mask_lesion(1, {2: largest, 3: smaller})], geometry=geometry())

    rows, columns = np.nonzero(largest)
    brute_force = max(
        math.hypot((c1 - c2) * COLUMN_MM, (r1 - r2) * ROW_MM)
        for (r1, c1), (r2, c2) in itertools.product(zip(rows, columns, strict=True), repeat=2)
    )
    assert long_axis_mm(lesion, geometry=geometry()) == pytest.approx(brute_force)


def test_a_drawn_line_is_the_long_axis_even_with_a_mask():
    document = {**mask_lesion(1, {2: box(10, 10, 4, 4)}), "long_axis": line(2, (10, 10), (20, 10))}

    (lesion,) = lesions_from_document([document], geometry=geometry())

    assert long_axis_mm(lesion, geometry=geometry()) == pytest.approx(10 * COLUMN_MM)


def test_a_models_lines_join_the_mask_component_they_lie_on_or_stand_alone():
    voxels = np.flatnonzero(
        np.stack([box(5, 5, 6, 6) if k == 2 else np.zeros((ROWS, COLUMNS), bool) for k in range(5)])
    )
    lines = [
        {"lesion": 7, "long_axis": line(2, (5, 8), (10, 8))},  # across the box: same lesion
        {"lesion": 8, "long_axis": line(2, (30, 30), (40, 30))},  # nowhere near it: a lesion of its own
    ]

    documents = model_lesion_documents(voxels, lines, geometry=geometry())

    assert [(d["lesion"], "mask" in d, "long_axis" in d) for d in documents] == [(1, True, True), (2, False, True)]


def test_a_suggestion_reviewed_against_itself_is_all_accepted_and_an_empty_read_rejects_it_all():
    suggestion = [
        {**mask_lesion(1, {2: box(5, 5, 6, 6)}), "long_axis": line(2, (5, 8), (10, 8))},
        mask_lesion(2, {1: box(25, 30, 5, 5), 2: box(25, 30, 6, 6)}),
    ]
    lesions = lesions_from_document(suggestion, geometry=geometry())

    same = review_suggestion(lesions, lesions, slice_spacing_mm=SLICE_MM)
    empty = review_suggestion(lesions, [], slice_spacing_mm=SLICE_MM)

    assert [(v.suggested_lesion, v.read_lesion, v.verdict, v.mask_dice) for v in same] == [
        (1, 1, "accepted", 1.0),
        (2, 2, "accepted", 1.0),
    ]
    assert same[0].long_axis_change_mm == 0.0 and same[1].long_axis_change_mm is None
    assert [(v.suggested_lesion, v.read_lesion, v.verdict) for v in empty] == [
        (1, None, "rejected"),
        (2, None, "rejected"),
    ]


def test_a_kept_mask_whose_suggested_line_was_erased_is_edited():
    suggested = lesions_from_document(
        [{**mask_lesion(1, {2: box(5, 5, 6, 6)}), "long_axis": line(2, (5, 8), (10, 8))}], geometry=geometry()
    )
    drawn = lesions_from_document([mask_lesion(3, {2: box(5, 5, 6, 6)})], geometry=geometry())

    (verdict,) = review_suggestion(suggested, drawn, slice_spacing_mm=SLICE_MM)

    assert (verdict.read_lesion, verdict.verdict, verdict.mask_dice) == (3, "edited", 1.0)


def test_pooled_figures_divide_by_all_reference_lesions_and_all_cases():
    cases = [
        ReferenceComparison(reference_lesions=2, model_lesions=2, pairs=(LesionPair(1, 1, 0.8, -2.0),)),
        ReferenceComparison(reference_lesions=0, model_lesions=1, pairs=()),
        ReferenceComparison(
            reference_lesions=2, model_lesions=2, pairs=(LesionPair(1, 1, 0.6, 1.0), LesionPair(2, 2, None, 3.0))
        ),
    ]

    figures = summarise_comparisons(cases)

    assert (figures.sensitivity, figures.false_positives_per_case) == (3 / 4, 2 / 3)
    assert (figures.dice_median, figures.dice_mean) == (pytest.approx(0.7), pytest.approx(0.7))
    assert figures.long_axis_mean_abs_error_mm == pytest.approx(2.0)
    assert figures.long_axis_mean_error_mm == pytest.approx(2 / 3)
    assert summarise_comparisons([]).sensitivity is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.6))
def test_components_of_the_voxels_are_those_ndimage_labels_in_a_volume(seed, fill):
    volume = np.random.default_rng(seed).random((4, 6, 7)) < fill

    voxels, labels, count = component_labels(np.flatnonzero(volume), volume.shape)

    reference, reference_count = ndimage.label(volume)
    assert count == reference_count
    assert np.array_equal(labels, reference.ravel()[voxels])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.5), st.integers(1, 6))
def test_a_capped_models_lesions_are_its_largest_components_in_label_order(seed, fill, max_lesions):
    volume = np.random.default_rng(seed).random((SLICES, ROWS, COLUMNS)) < fill

    documents = model_lesion_documents(np.flatnonzero(volume), [], geometry=geometry(), max_lesions=max_lesions)

    reference, count = ndimage.label(volume)
    sizes = np.bincount(reference.ravel(), minlength=count + 1)[1:]
    kept = sorted(int(label) for label in np.argsort(-sizes, kind="stable")[:max_lesions] + 1)
    assert [d["lesion"] for d in documents] == list(range(1, len(kept) + 1))
    for document, label in zip(documents, kept, strict=True):
        painted = np.zeros_like(volume)
        for entry in document["mask"]["slices"]:
            k = int(entry["sop_instance_uid"].rsplit(".", 1)[1])
            painted[k] = mask_rle.decode(entry["counts"], rows=ROWS, columns=COLUMNS)
        assert np.array_equal(painted, reference == label)


def test_a_line_on_a_component_left_out_by_the_cap_is_left_out_and_the_next_line_still_joins():
    big, small = box(5, 5, 6, 6), box(30, 30, 2, 2)
    voxels = np.flatnonzero(np.stack([big | small if k == 2 else np.zeros((ROWS, COLUMNS), bool) for k in range(5)]))
    lines = [{"long_axis": line(2, (30, 30), (31, 31))}, {"long_axis": line(2, (5, 8), (10, 8))}]

    one = model_lesion_documents(voxels, lines, geometry=geometry(), max_lesions=1)
    two = model_lesion_documents(voxels, lines, geometry=geometry(), max_lesions=2)

    assert [(d["lesion"], "mask" in d, d.get("long_axis", {}).get("start")) for d in one] == [(1, True, [5, 8])]
    assert [(d["lesion"], "mask" in d, d["long_axis"]["start"]) for d in two] == [
        (1, True, [5, 8]),
        (2, True, [30, 30]),
    ]
