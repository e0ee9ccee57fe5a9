"""The reader-study simulator behind benchmarks/bench_label_quality.py: reproducible from its seed, valid reads."""

from __future__ import annotations

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
