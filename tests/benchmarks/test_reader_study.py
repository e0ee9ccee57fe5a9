"""The reader-study simulator behind benchmarks/bench_label_quality.py: reproducible from its seed, valid reads."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from annotations.core import mask_rle
from benchmarks import reader_study as study


def test_the_same_seed_gives_the_same_cases_readers_and_reads():
    first = study.make_cases(7, min_lesions=40)
    second = study.make_cases(7, min_lesions=40)
    readers = study.reader_population(7)

    assert [case.as_json() for case in first] == [case.as_json() for case in second]
    assert readers == study.reader_population(7)
    for case in first[:6]:
        for index in (0, 9, 19):
            assert study.read_document(case, index, readers[index], seed=7, case_pk=case.index + 1) == (
                study.read_document(second[case.index], index, readers[index], seed=7, case_pk=case.index + 1)
            )


def test_another_seed_gives_another_study():
    assert [c.as_json() for c in study.make_cases(7, min_lesions=40)] != [
        c.as_json() for c in study.make_cases(8, min_lesions=40)
    ]


def test_cases_hold_at_least_the_asked_lesions_of_every_organ_and_size():
    cases = study.make_cases(19, min_lesions=500)
    lesions = [lesion for case in cases for lesion in case.lesions]

    assert len(lesions) >= 500
    assert {lesion.organ for lesion in lesions} == {organ.name for organ in study.ORGANS}
    sizes = [lesion.long_axis_mm for lesion in lesions]
    assert min(sizes) >= 10.0
    assert max(sizes) <= 60.0
    assert any(not case.lesions for case in cases)


def test_a_read_document_lies_on_the_case_series_with_valid_masks():
    case = next(c for c in study.make_cases(3, min_lesions=20) if c.lesions)
    reader = study.reader_population(3)[0]

    document = study.read_document(case, 0, reader, seed=3, case_pk=42)

    uids = {case.slice_uid(k) for k in range(case.n_slices)}
    assert document["case"] == 42
    for lesion in document["lesions"]:
        assert lesion["long_axis"]["sop_instance_uid"] in uids
        assert lesion["long_axis"]["length_mm"] >= lesion["short_axis"]["length_mm"]
        for mask_slice in lesion.get("mask", {}).get("slices", []):
            mask_rle.validate_counts(mask_slice["counts"], rows=study.ROWS, columns=study.COLUMNS)


def test_true_mask_volume_is_close_to_the_ellipsoid_volume():
    case = next(c for c in study.make_cases(5, min_lesions=20) if c.lesions and c.lesions[0].long_axis_mm > 30)
    lesion = case.lesions[0]
    a, b, c = lesion.semi_axes_mm

    voxels = study.true_mask_voxels(case, lesion)

    expected = 4 / 3 * 3.141592653589793 * a * b * c
    assert voxels.size * study.PIXEL_MM**2 * study.SLICE_MM == pytest.approx(expected, rel=0.1)


def _voxels(mask: dict) -> np.ndarray:
    parts = [
        mask_rle.foreground_indices(one["counts"], rows=study.ROWS, columns=study.COLUMNS)
        + (int(one["sop_instance_uid"].rsplit(".", 1)[1]) - 1) * study.ROWS * study.COLUMNS
        for one in mask["slices"]
    ]
    return np.unique(np.concatenate(parts))


def _best_dice(voxels: np.ndarray, truths: list[np.ndarray]) -> float:
    return max(2.0 * np.intersect1d(voxels, t).size / (voxels.size + t.size) for t in truths)


def test_proposed_masks_come_from_the_core_on_the_readers_lines_and_overlap_the_truth():
    case = next(c for c in study.make_cases(11, min_lesions=12) if c.lesions)
    readers = study.reader_population(11)
    volume = study.render_case(case, 11)
    truths = [study.true_mask_voxels(case, lesion) for lesion in case.lesions]
    stats: dict = defaultdict(int)

    brush = study.read_document(case, 0, readers[0], seed=11, case_pk=1)
    proposed = study.read_document(
        case, 0, readers[0], seed=11, case_pk=1, mask_source="proposed", volume=volume, stats=stats
    )

    assert volume.shape == (case.n_slices, study.ROWS, study.COLUMNS)
    # The same lines whatever the mask source; only the masks differ.
    assert [(one["long_axis"], one["short_axis"]) for one in brush["lesions"]] == [
        (one["long_axis"], one["short_axis"]) for one in proposed["lesions"]
    ]
    assert stats["attempted"] == len(proposed["lesions"]) >= 1
    assert stats["proposed"] + stats["refused"] == stats["attempted"]
    assert stats["proposed"] >= 1
    dice = [_best_dice(_voxels(one["mask"]), truths) for one in proposed["lesions"] if "mask" in one]
    assert dice
    assert min(dice) > 0.6
    assert float(np.median(dice)) > 0.8
    for one in proposed["lesions"]:
        for mask_slice in one.get("mask", {}).get("slices", []):
            mask_rle.validate_counts(mask_slice["counts"], rows=study.ROWS, columns=study.COLUMNS)


def test_the_rendered_lesion_stands_out_where_the_truth_is():
    case = next(c for c in study.make_cases(11, min_lesions=12) if c.lesions)
    lesion = case.lesions[0]
    volume = study.render_case(case, 11)

    inside = volume.ravel()[study.true_mask_voxels(case, lesion)]
    level = study.BACKGROUND_HU[lesion.organ]

    assert abs(float(np.median(inside)) - level) > 15
    assert np.array_equal(volume, study.render_case(case, 11))


def test_an_edit_replaces_only_the_worst_disagreeing_slices():
    disc = np.zeros((8, 8), dtype=bool)
    disc[2:6, 2:6] = True
    other = np.zeros((8, 8), dtype=bool)
    other[0:2, 0:2] = True
    proposed = {0: disc, 1: other, 2: other, 3: other}
    painted = {0: disc, 1: disc, 2: disc}

    edited, changed = study._edit_proposal(proposed, painted)

    assert changed == study.EDIT_MAX_SLICES == 2
    assert edited[0] is disc
    # Slices 1, 2 (Dice 0 against the painting) and 3 (not painted, Dice 0) are the candidates; two change.
    assert sum(1 for k in (1, 2) if k in edited and edited[k] is disc) + (3 not in edited) == 2


def test_an_unknown_mask_source_is_refused():
    case = study.make_cases(3, min_lesions=5)[0]
    reader = study.reader_population(3)[0]

    with pytest.raises(ValueError, match="mask_source"):
        study.read_document(case, 0, reader, seed=3, case_pk=1, mask_source="crayon")


def _ellipsoid(shape=(21, 64, 64), semi_px=(6.0, 20.0, 12.0)) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = [(n - 1) / 2 for n in shape]
    return ((z - centre[0]) / semi_px[0]) ** 2 + ((y - centre[1]) / semi_px[1]) ** 2 + (
        (x - centre[2]) / semi_px[2]
    ) ** 2 <= 1.0


def test_a_brush_painting_of_any_truth_is_the_truth_scaled_about_its_centre_and_shifted():
    truth = _ellipsoid()
    spacing = (2.0, 0.5, 0.5)

    exact = study.paint_truth(truth, spacing, study.BrushHabit(scale=1.0, offset_mm=(0.0, 0.0)))
    spilled = study.paint_truth(truth, spacing, study.BrushHabit(scale=1.2, offset_mm=(0.0, 0.0)))
    shifted = study.paint_truth(truth, spacing, study.BrushHabit(scale=1.0, offset_mm=(3.0, -1.0)))

    assert np.array_equal(exact, truth)
    assert spilled.sum() / truth.sum() == pytest.approx(1.2**3, rel=0.08)
    assert (spilled & truth).sum() == truth.sum()
    # offset (x, y) in mm: 3 mm = 6 columns right, -1 mm = 2 rows up, no change through the slices
    assert np.array_equal(shifted, np.roll(np.roll(truth, 6, axis=2), -2, axis=1))


def test_a_brush_habit_comes_from_the_readers_spill_and_their_hands_noise():
    reader = study.reader_population(4)[0]
    habits = [study.brush_habit(reader, np.random.default_rng(k), endpoint_noise_mm=2.0) for k in range(400)]

    assert np.mean([h.scale for h in habits]) == pytest.approx(reader.mask_scale, rel=0.02)
    assert np.std([h.offset_mm[0] for h in habits]) == pytest.approx(1.0, rel=0.15)
    with pytest.raises(ValueError, match="scale must be positive"):
        study.paint_truth(_ellipsoid(), (1.0, 1.0, 1.0), study.BrushHabit(scale=0.0, offset_mm=(0.0, 0.0)))
