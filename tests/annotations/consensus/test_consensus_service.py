"""Consensus of synthetic reader studies with known truth, stored idempotently and refreshed by Celery tasks."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from annotations.consensus import case_consensus as consensus
from annotations.consensus import selectors as results
from annotations.consensus.tasks import compute_case_consensus, recompute_task_consensus, sweep_stale_consensus
from annotations.core.mask_rle import decode
from annotations.models import CaseConsensus, ConsensusLesion, ReaderQuality, ReferenceLesion, Task
from tests.annotations.consensus_builders import (
    LESION_LONG_MM,
    LESION_SLICE,
    add_read,
    ellipse_mask,
    horizontal_line,
    instances,
)
from tests.factories import CaseFactory, ReaderFactory, SeriesFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(small_ct_series):
    task = TaskFactory(reads_per_case=5)
    return CaseFactory(task=task, series=small_ct_series)


def noisy_study(case, *, seed=3):
    """Five readers: two noisy, one a slice off, one outlier, one measuring another spot; returns readers."""
    rng = np.random.default_rng(seed)
    readers = [ReaderFactory() for _ in range(5)]
    noisy = [LESION_LONG_MM + rng.normal(0, 0.8) for _ in range(2)]
    add_read(case, readers[0], lesions=[{"long": horizontal_line(length_px=noisy[0], shift=(0.4, -0.3))}])
    add_read(case, readers[1], lesions=[{"long": horizontal_line(length_px=noisy[1], shift=(-0.5, 0.6))}])
    add_read(case, readers[2], lesions=[{"long": horizontal_line(slice_index=LESION_SLICE + 1, length_px=15.2)}])
    add_read(case, readers[3], lesions=[{"long": horizontal_line(length_px=24.0, shift=(1.0, 0.0))}])
    add_read(case, readers[4], lesions=[{"long": horizontal_line(center=(50.0, 12.0), length_px=9.0)}])
    return readers


def test_lesion_matching_groups_the_same_lesion_across_slices_and_leaves_the_other_spot_alone(case):
    readers = noisy_study(case)

    stored = consensus.compute_case_consensus(case=case)

    lesions = list(stored.lesions.all())
    assert [lesion.support for lesion in lesions] == [4, 1]
    assert lesions[0].accepted and not lesions[1].accepted
    assert {m["reader_id"] for m in lesions[0].members} == {r.pk for r in readers[:4]}
    assert lesions[1].members[0]["reader_id"] == readers[4].pk
    assert lesions[0].support_fraction == pytest.approx(0.8)


def test_consensus_length_is_closer_to_truth_than_a_typical_reader(case):
    noisy_study(case)

    lesion = consensus.compute_case_consensus(case=case).lesions.get(lesion_index=1)

    reader_errors = [abs(v - LESION_LONG_MM) for v in lesion.statistics["reader_long_axis_mm"].values()]
    assert abs(lesion.long_axis_median_mm - LESION_LONG_MM) < np.median(reader_errors)
    # The medoid is a real drawn line on the lesion's slice, not the outlier.
    assert lesion.long_axis["length_mm"] < 20
    assert lesion.long_axis_iqr_mm > 0 and lesion.long_axis_cv > 0


def test_rerun_with_the_same_reads_finds_the_stored_rows(case):
    noisy_study(case)
    first = consensus.compute_case_consensus(case=case)

    second = consensus.compute_case_consensus(case=case)

    assert second.pk == first.pk
    assert CaseConsensus.objects.filter(case=case).count() == 1
    assert ConsensusLesion.objects.filter(consensus__case=case).count() == 2
    assert second.algorithm_version == consensus.ALGORITHM_VERSION
    assert second.params["method"] == "staple"


def test_a_new_read_makes_a_new_current_result_and_retires_the_old(case):
    noisy_study(case)
    first = consensus.compute_case_consensus(case=case)
    add_read(case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=16.2)}])

    second = consensus.compute_case_consensus(case=case)

    first.refresh_from_db()
    assert second.pk != first.pk and second.is_current and not first.is_current
    assert second.n_reads == 6


def test_only_each_readers_latest_version_counts_and_skips_do_not(case):
    reader, other, skipper = ReaderFactory(), ReaderFactory(), ReaderFactory()
    old = add_read(case, reader, lesions=[{"long": horizontal_line(center=(50.0, 12.0), length_px=9)}])
    add_read(case, reader, version=2, supersedes=old, lesions=[{"long": horizontal_line()}])
    add_read(case, other, lesions=[{"long": horizontal_line(length_px=15)}])
    add_read(case, skipper, skip=True)

    stored = consensus.compute_case_consensus(case=case)

    assert stored.n_reads == 2
    (lesion,) = stored.lesions.all()
    assert lesion.support == 2 and lesion.accepted


def test_no_lesion_votes_count_against_support(case):
    readers = [ReaderFactory() for _ in range(3)]
    add_read(case, readers[0], lesions=[{"long": horizontal_line()}])
    add_read(case, readers[1], no_lesion=True)
    add_read(case, readers[2], no_lesion=True)

    stored = consensus.compute_case_consensus(case=case)

    (lesion,) = stored.lesions.all()
    assert lesion.support == 1 and lesion.support_fraction == pytest.approx(1 / 3) and not lesion.accepted
    assert stored.summary["n_no_lesion"] == 2
    assert stored.low_agreement
    assert any("marked by 1 of 3 readers" in flag for flag in stored.summary["flags"])


def test_a_task_min_support_overrides_the_majority(case):
    case.task.min_support = 1
    case.task.save()
    readers = [ReaderFactory() for _ in range(3)]
    add_read(case, readers[0], lesions=[{"long": horizontal_line()}])
    add_read(case, readers[1], no_lesion=True)
    add_read(case, readers[2], no_lesion=True)

    (lesion,) = consensus.compute_case_consensus(case=case).lesions.all()

    assert lesion.accepted


def test_unanimous_readers_are_not_flagged(case):
    for _ in range(3):
        add_read(case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=16.1)}])

    stored = consensus.compute_case_consensus(case=case)

    assert not stored.low_agreement and stored.summary["flags"] == []


def test_wildly_different_lengths_flag_the_case_for_review(case):
    for length in (8.0, 16.0, 30.0):
        add_read(case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=length)}])

    stored = consensus.compute_case_consensus(case=case)

    assert stored.low_agreement
    assert any("CV" in flag for flag in stored.summary["flags"])


def simulated_masks(rng, sensitivity, false_positive_rate, *, truth, slices=(3, 4, 5)):
    """A reader's mask: each true pixel kept with `sensitivity`, background near the lesion added at a rate."""
    masks = {}
    near = np.zeros_like(truth)
    near[20:56, 8:40] = True
    for k in slices:
        keep = truth & (rng.random(truth.shape) < sensitivity)
        extra = near & ~truth & (rng.random(truth.shape) < false_positive_rate)
        masks[k] = keep | extra
    return masks


def test_staple_masks_recover_the_simulated_reader_quality(case):
    rng = np.random.default_rng(11)
    truth = ellipse_mask()
    settings = [(0.95, 0.01), (0.9, 0.02), (0.7, 0.0), (0.98, 0.1), (0.85, 0.03)]
    readers = []
    for sensitivity, fpr in settings:
        reader = ReaderFactory()
        readers.append(reader)
        add_read(
            case,
            reader,
            lesions=[{"long": horizontal_line(), "mask": simulated_masks(rng, sensitivity, fpr, truth=truth)}],
        )

    stored = consensus.compute_case_consensus(case=case)

    (lesion,) = stored.lesions.all()
    staple_readers = lesion.statistics["staple"]["readers"]
    for reader, (sensitivity, _) in zip(readers, settings, strict=True):
        assert staple_readers[str(reader.pk)]["sensitivity"] == pytest.approx(sensitivity, abs=0.05)
    # The reader who paints the most background has the lowest specificity.
    specificities = [staple_readers[str(r.pk)]["specificity"] for r in readers]
    assert int(np.argmin(specificities)) == 3
    label = np.stack([decode(s["counts"], rows=64, columns=64) for s in lesion.mask_slices])
    assert label.shape[0] == 3
    dice_truth = 2 * (label & truth).sum() / (label.sum() + 3 * truth.sum())
    assert dice_truth > 0.97
    assert lesion.mask_method == "staple"
    assert lesion.statistics["mean_pairwise_dice"] < min(lesion.statistics["dice_to_consensus"].values()) + 0.2


def test_majority_method_labels_pixels_most_readers_painted(case):
    case.task.consensus_method = Task.ConsensusMethod.MAJORITY
    case.task.save()
    shifts = [(-2.0, 0.0), (0.0, 0.0), (2.0, 0.0)]
    for shift in shifts:
        add_read(case, ReaderFactory(), lesions=[{"mask": {LESION_SLICE: ellipse_mask(shift=shift)}}])

    (lesion,) = consensus.compute_case_consensus(case=case).lesions.all()

    votes = sum(ellipse_mask(shift=s).astype(int) for s in shifts)
    (mask_slice,) = lesion.mask_slices
    np.testing.assert_array_equal(decode(mask_slice["counts"], rows=64, columns=64), votes >= 2)
    assert lesion.mask_method == "majority" and lesion.support == 3


def test_a_mask_only_reader_joins_the_lesion_whose_line_their_mask_holds(case):
    line_reader, mask_reader = ReaderFactory(), ReaderFactory()
    add_read(case, line_reader, lesions=[{"long": horizontal_line(length_px=6.0, shift=(-4.0, 0.0))}])
    add_read(case, mask_reader, lesions=[{"mask": {LESION_SLICE: ellipse_mask(radii=(14.0, 6.0), shift=(10, 0))}}])

    (lesion,) = consensus.compute_case_consensus(case=case).lesions.all()

    assert lesion.support == 2


def test_gold_case_gives_reader_errors_weights_and_quality_rows(case):
    case.is_gold = True
    case.save()
    ReferenceLesion.objects.create(
        series=case.series,
        source="synthetic",
        center_patient_mm=[-8.0, 6.0, 0.0],
        long_axis_mm=16.0,
        short_axis_mm=10.0,
        diameters_mm=[16.0, 10.0, 12.0],
    )
    good, poor = ReaderFactory(), ReaderFactory()
    add_read(case, good, lesions=[{"long": horizontal_line(length_px=16.2)}])
    add_read(case, poor, lesions=[{"long": horizontal_line(length_px=21.0)}])

    stored = consensus.compute_case_consensus(case=case)

    gold = stored.summary["gold"]
    assert gold["readers"][str(good.pk)]["matched"][0]["error_mm"] == pytest.approx(0.2, abs=1e-6)
    assert gold["readers"][str(poor.pk)]["matched"][0]["error_mm"] == pytest.approx(5.0, abs=1e-6)
    quality = {q.reader_id: q for q in ReaderQuality.objects.filter(task=case.task)}
    assert quality[good.pk].gold_mean_abs_error_mm == pytest.approx(0.2, abs=1e-6)
    assert quality[good.pk].weight > 1.0 > quality[poor.pk].weight
    assert quality[good.pk].figures["gold"]["detection_rate"] == 1.0


def test_reader_weights_pull_the_weighted_consensus_towards_accurate_readers(case):
    readers = [ReaderFactory() for _ in range(4)]
    lengths = [16.0, 16.4, 22.0, 23.0]
    for reader, length in zip(readers, lengths, strict=True):
        add_read(case, reader, lesions=[{"long": horizontal_line(length_px=length)}])
    for reader, weight in zip(readers, [4.0, 4.0, 0.25, 0.25], strict=True):
        ReaderQuality.objects.create(task=case.task, reader=reader, weight=weight)

    plain = consensus.compute_case_consensus(case=case).lesions.get()
    weighted = consensus.compute_case_consensus(case=case, use_reader_weights=True).lesions.get()

    assert abs(weighted.long_axis_median_mm - 16.2) < abs(plain.long_axis_median_mm - 16.2)


def test_celery_task_computes_the_case_and_a_rerun_is_harmless(case):
    noisy_study(case)

    first = compute_case_consensus.delay(case.pk).get()
    second = compute_case_consensus.delay(case.pk).get()

    assert first == second
    assert CaseConsensus.objects.get(pk=first).is_current


def test_task_recompute_and_sweep_bring_every_case_up_to_date(case, small_ct_series):
    noisy_study(case)
    report = recompute_task_consensus.delay(case.task_id).get()
    assert report["computed"] == 1
    assert consensus.stale_case_ids(task=case.task) == []
    add_read(case, ReaderFactory(), no_lesion=True)
    assert consensus.stale_case_ids(task=case.task) == [case.pk]

    swept = sweep_stale_consensus.delay().get()

    assert swept["stale"] == 1
    assert consensus.stale_case_ids(task=case.task) == []
    assert CaseConsensus.objects.filter(case=case, is_current=True).get().n_reads == 6


def test_management_command_recomputes_and_reports(case, capsys):
    noisy_study(case)

    call_command("recompute_consensus", "--task", str(case.task_id))

    assert "1 computed" in capsys.readouterr().out
    call_command("recompute_consensus", "--task", str(case.task_id))
    assert "0 computed, 1 unchanged" in capsys.readouterr().out


def test_results_give_researchers_agreement_figures_and_the_case_consensus(case):
    readers = noisy_study(case)
    recompute_task_consensus.delay(case.task_id).get()

    figures = results.task_agreement(task=case.task)
    table = results.reader_table(task=case.task)
    shown = results.case_consensus(case=case)

    assert figures["accepted_lesions"] == 1
    assert {row["reader_id"] for row in figures["bland_altman"]} == {r.pk for r in readers[:4]}
    assert len(figures["length_scatter"]) == 4
    assert {row["reader_id"] for row in table} == {r.pk for r in readers}
    assert shown["lesions"][0]["long_axis"]["sop_instance_uid"]
    assert results.task_cases(task=case.task)[0]["accepted_lesions"] == 1


def typed_in_answer(case, *, long_axis_mm=16.0, slice_index=LESION_SLICE):
    """A gold answer as the console stores it: lengths and a slice, the slice's centre standing in for a position."""
    sop = instances(case.series)[slice_index].sop_instance_uid if slice_index is not None else ""
    case.is_gold = True
    case.save()
    # Far from the lesion on purpose: a typed-in answer's centre says nothing about where the lesion is.
    return ReferenceLesion.objects.create(
        series=case.series, source="admin", center_patient_mm=[40.0, -40.0, 0.0], long_axis_mm=long_axis_mm,
        sop_instance_uid=sop,
    )  # fmt: skip


def test_a_typed_in_gold_answer_is_matched_by_its_slice_and_the_nearest_length(case):
    reference = typed_in_answer(case)
    two_lines, next_slice, far_off = ReaderFactory(), ReaderFactory(), ReaderFactory()
    add_read(
        case,
        two_lines,
        lesions=[{"long": horizontal_line(length_px=16.5)}, {"long": horizontal_line(center=(50, 12), length_px=6)}],
    )
    add_read(case, next_slice, lesions=[{"long": horizontal_line(slice_index=LESION_SLICE + 1, length_px=16.0)}])
    add_read(case, far_off, lesions=[{"long": horizontal_line(length_px=30.0)}])

    gold = consensus.compute_case_consensus(case=case).summary["gold"]["readers"]

    (match,) = gold[str(two_lines.pk)]["matched"]
    assert (match["reference_id"], match["matched_by"]) == (reference.pk, "slice_and_length")
    assert match["error_mm"] == pytest.approx(0.5, abs=1e-6)
    assert gold[str(two_lines.pk)]["false_positives"] == 1
    assert (gold[str(next_slice.pk)]["matched"], gold[str(next_slice.pk)]["missed"]) == ([], 1)
    assert (gold[str(far_off.pk)]["matched"], gold[str(far_off.pk)]["missed"]) == ([], 1)


def test_a_typed_in_gold_answer_without_a_slice_accepts_a_line_on_any_slice(case):
    typed_in_answer(case, slice_index=None)
    reader = ReaderFactory()
    add_read(case, reader, lesions=[{"long": horizontal_line(slice_index=LESION_SLICE + 1, length_px=15.0)}])

    consensus.compute_case_consensus(case=case)

    quality = ReaderQuality.objects.get(task=case.task, reader=reader)
    assert quality.gold_mean_abs_error_mm == pytest.approx(1.0, abs=1e-6)


def test_changing_the_slice_of_a_typed_in_answer_recomputes_the_case(case):
    reference = typed_in_answer(case)
    add_read(case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=16.0)}])
    first = consensus.compute_case_consensus(case=case)

    reference.sop_instance_uid = instances(case.series)[LESION_SLICE + 2].sop_instance_uid
    reference.save()
    second = consensus.compute_case_consensus(case=case)

    assert second.pk != first.pk
    assert second.summary["gold"]["consensus"]["missed"] == 1


def test_slice_and_length_matching_pairs_each_line_with_its_nearest_length_one_to_one():
    pairs = consensus.match_by_slice_and_length([10.0, 20.0, 12.0], ["a", "a", "b"], [19.0, 11.0], ["a", "a"])

    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert consensus.match_by_slice_and_length([10.0], ["b"], [10.0], [""]) == [(0, 0)]
    assert consensus.match_by_slice_and_length([30.0], ["a"], [10.0], ["a"]) == []


def test_the_stored_consensus_line_is_as_long_as_the_median_and_lies_on_the_medoid_slice(case):
    noisy_study(case)

    stored = consensus.compute_case_consensus(case=case)

    lesion = stored.lesions.get(lesion_index=1)
    assert lesion.long_axis["length_mm"] == pytest.approx(lesion.long_axis_median_mm, abs=1e-3)
    assert lesion.long_axis["construction"] == "median_length_line"
    medoid = lesion.statistics["reader_long_axis_mm"][str(lesion.statistics["medoid_reader_id"])]
    assert medoid != pytest.approx(lesion.long_axis_median_mm)
    assert stored.algorithm_version == "2.0.0"


@pytest.fixture
def adaptive_case(small_ct_series):
    task = TaskFactory(reads_per_case=5, adaptive_reads=True, min_reads=2)
    return CaseFactory(task=task, series=small_ct_series)


def test_adaptive_readers_who_agree_settle_the_case_at_the_minimum(adaptive_case):
    for shift in (0.0, 0.3):
        add_read(adaptive_case, ReaderFactory(), lesions=[{"long": horizontal_line(shift=(shift, 0.0))}])

    stored = consensus.compute_case_consensus(case=adaptive_case)

    adaptive_case.refresh_from_db()
    assert adaptive_case.reads_target == 2
    assert stored.summary["adaptive"]["message"] == "settled: readers agree"


def test_adaptive_readers_who_disagree_raise_the_case_target_and_say_why(adaptive_case):
    add_read(adaptive_case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=16.0)}])
    add_read(adaptive_case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=22.0)}])

    stored = consensus.compute_case_consensus(case=adaptive_case)

    adaptive_case.refresh_from_db()
    # The median's error 1.2533 * 4.24 / sqrt(2) = 3.8 mm is over 2.0 mm: two more reads (at most two at a time);
    # the range is (22 - 16) / median 19 = 32 %.
    assert adaptive_case.reads_target == 4
    assert stored.summary["adaptive"]["message"] == "needs 2 more reads: long axes disagree by 32%"


@pytest.mark.parametrize(("weight", "target"), [(1.0, 4), (4.0, 2)])
def test_the_adaptive_rule_trusts_readers_the_task_found_reliable(adaptive_case, weight, target):
    first, second = ReaderFactory(), ReaderFactory()
    for reader, length in ((first, 30.0), (second, 34.0)):
        add_read(adaptive_case, reader, lesions=[{"long": horizontal_line(length_px=length)}])
        ReaderQuality.objects.create(task=adaptive_case.task, reader=reader, n_reads=1, weight=weight)

    stored = consensus.compute_case_consensus(case=adaptive_case)

    adaptive_case.refresh_from_db()
    # Error 1.2533 * 2.83 / sqrt(2) = 2.5 mm > 2.0 mm with typical readers; with two of weight 4 it is 1.25 mm.
    assert adaptive_case.reads_target == target
    # The consensus itself stays unweighted unless asked: the median of 30 and 34.
    assert stored.lesions.get().long_axis_median_mm == pytest.approx(32.0, abs=0.05)


def test_an_adaptive_task_refreshes_reader_reliability_as_its_reads_grow(adaptive_case, monkeypatch):
    monkeypatch.setattr(consensus, "RELIABILITY_REFRESH_MIN_READS", 2)
    task = adaptive_case.task
    add_read(adaptive_case, ReaderFactory(), lesions=[{"long": horizontal_line()}])
    type(adaptive_case).objects.filter(pk=adaptive_case.pk).update(reads_done=1)

    assert consensus.refresh_reader_quality_if_grown(task=task) is False
    assert not ReaderQuality.objects.filter(task=task).exists()

    add_read(adaptive_case, ReaderFactory(), lesions=[{"long": horizontal_line(shift=(0.5, 0.0))}])
    type(adaptive_case).objects.filter(pk=adaptive_case.pk).update(reads_done=2)

    assert consensus.refresh_reader_quality_if_grown(task=task) is True
    assert ReaderQuality.objects.filter(task=task).count() == 2
    # Nothing new since: no second refresh until the reads grow by a quarter.
    assert consensus.refresh_reader_quality_if_grown(task=task) is False


def test_readers_without_gold_are_weighted_by_their_agreement_with_the_other_readers(small_ct_series):
    task = TaskFactory(reads_per_case=3)
    steady, also_steady, erratic = ReaderFactory(), ReaderFactory(), ReaderFactory()
    rng = np.random.default_rng(5)
    for index in range(6):
        series = small_ct_series if index == 0 else SeriesFactory()
        if index:
            for number, instance in enumerate(instances(small_ct_series)):
                instance.pk = None
                instance.series = series
                instance.sop_instance_uid = f"2.25.19.{index}.{number}"
                instance.save()
        case = CaseFactory(task=task, series=series)
        for reader, noise in ((steady, 0.2), (also_steady, 0.2), (erratic, 4.0)):
            length = LESION_LONG_MM + rng.normal(0, noise)
            add_read(case, reader, lesions=[{"long": horizontal_line(length_px=length)}])

    consensus.recompute_task_consensus(task=task)

    quality = {row.reader_id: row for row in ReaderQuality.objects.filter(task=task)}
    # With three readers the others' median is the mean of two, so the steady readers sit near weight 1.
    assert quality[steady.pk].weight > 0.9 > 0.5 > quality[erratic.pk].weight
    assert quality[erratic.pk].figures["weight_from"] == "agreement"
