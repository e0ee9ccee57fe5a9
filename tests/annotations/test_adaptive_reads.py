"""The adaptive-reads uncertainty rule on hand-made cases: stop when readers agree, ask while they do not, cap."""

from __future__ import annotations

import pytest

from annotations.services.adaptive_reads import (
    AdaptiveRule,
    CaseEvidence,
    LesionEvidence,
    long_axis_spread,
    median_error_mm,
    read_decision,
)

RULE = AdaptiveRule(min_reads=3, max_reads=7)


def agreeing_lesion(n: int, length_mm: float = 20.0) -> LesionEvidence:
    lengths = [length_mm * (1 + 0.01 * i) for i in range(n)]
    return LesionEvidence(support=n, long_axes_mm=lengths, mean_pairwise_dice=0.85)


def test_agreeing_readers_stop_at_the_minimum():
    decision = read_decision(CaseEvidence(n_readers=3, lesions=[agreeing_lesion(3), agreeing_lesion(3, 40.0)]), RULE)

    assert (decision.more_reads, decision.target_reads, decision.uncertain) == (0, 3, False)
    assert decision.message == "settled: readers agree"


def test_readers_who_all_saw_no_lesion_are_settled():
    assert read_decision(CaseEvidence(n_readers=3), RULE).more_reads == 0


def test_a_case_short_of_the_minimum_asks_for_the_missing_reads():
    decision = read_decision(CaseEvidence(n_readers=1, lesions=[agreeing_lesion(1)]), RULE)

    assert (decision.more_reads, decision.target_reads) == (2, 3)
    assert decision.message == "needs 2 more reads: 1 of the minimum 3 reads"


def test_long_axes_that_disagree_ask_for_the_reads_that_would_settle_the_median():
    lesion = LesionEvidence(support=3, long_axes_mm=[20.0, 20.0, 24.4], mean_pairwise_dice=0.8)

    decision = read_decision(CaseEvidence(n_readers=3, lesions=[lesion]), RULE)

    # SD 2.540 mm, so the median's error is 1.2533 * 2.540 / sqrt(3) = 1.84 mm > max(5 % of 20, 1.5) = 1.5 mm;
    # 3 * (1.84 / 1.5)^2 = 4.5 reads would do, so 2 more. The message gives the range: 4.4 / 20 = 22 %.
    assert median_error_mm(lesion.long_axes_mm) == pytest.approx(1.8381, abs=1e-3)
    assert decision.message == "needs 2 more reads: long axes disagree by 22%"


def test_agreeing_reads_after_a_disagreement_settle_the_case_although_the_range_stays():
    lesion = LesionEvidence(support=5, long_axes_mm=[16.0, 22.0, 19.0, 19.0, 19.0])

    decision = read_decision(CaseEvidence(n_readers=5, lesions=[lesion]), RULE)

    # Range still 32 %, but the median's error is 1.2533 * 2.121 / sqrt(5) = 1.19 mm <= 1.5 mm.
    assert (decision.more_reads, decision.target_reads) == (0, 5)


def test_a_small_spread_in_millimetres_is_not_uncertain_even_when_the_lesion_is_tiny():
    lesion = LesionEvidence(support=3, long_axes_mm=[6.0, 6.5, 7.5])  # 25 % but only 1.5 mm

    assert read_decision(CaseEvidence(n_readers=3, lesions=[lesion]), RULE).more_reads == 0


def test_a_lesion_marked_by_one_of_two_readers_needs_two_more_reads():
    rule = AdaptiveRule(min_reads=2, max_reads=7)
    lesion = LesionEvidence(support=1, long_axes_mm=[15.0])

    decision = read_decision(CaseEvidence(n_readers=2, lesions=[lesion]), rule)

    # Tied 1:1; two agreeing reads would make it 3:1, a margin of two votes.
    assert (decision.more_reads, decision.target_reads) == (2, 4)
    assert decision.message == "needs 2 more reads: the lesion marked by 1 of 2 readers"


def test_a_two_to_one_split_needs_one_more_read():
    lesions = [agreeing_lesion(3), LesionEvidence(support=1, long_axes_mm=[9.0])]

    decision = read_decision(CaseEvidence(n_readers=3, lesions=lesions), RULE)

    assert decision.more_reads == 1
    assert decision.reasons == ["lesion 2 marked by 1 of 3 readers"]


def test_masks_that_overlap_poorly_ask_for_one_more_read():
    lesion = LesionEvidence(support=3, long_axes_mm=[20.0, 20.5, 21.0], mean_pairwise_dice=0.42)

    decision = read_decision(CaseEvidence(n_readers=3, lesions=[lesion]), RULE)

    assert decision.message == "needs 1 more read: masks overlap by Dice 0.42"


def test_answers_that_disagree_ask_for_one_more_read():
    decision = read_decision(CaseEvidence(n_readers=3, lesions=[agreeing_lesion(3)], answer_agreement=0.5), RULE)

    assert decision.message == "needs 1 more read: answers agree 50%"


def test_a_disagreeing_case_never_gets_more_than_the_maximum():
    split = LesionEvidence(support=3, long_axes_mm=[10.0, 20.0, 30.0])

    at_max = read_decision(CaseEvidence(n_readers=7, lesions=[split]), RULE)
    one_short = read_decision(CaseEvidence(n_readers=6, lesions=[split]), RULE)

    assert (at_max.more_reads, at_max.target_reads, at_max.at_maximum) == (0, 7, True)
    assert at_max.message.startswith("stopped at the maximum of 7 reads, still uncertain: ")
    # Tied 3:3 wants two more reads; only one fits under the maximum.
    assert (one_short.more_reads, one_short.target_reads) == (1, 7)


@pytest.mark.parametrize("n", range(0, 12))
def test_the_target_always_lies_between_the_minimum_and_the_maximum(n):
    lesion = LesionEvidence(support=max(n // 2, 1), long_axes_mm=[10.0, 30.0][: max(min(n, 2), 1)])

    decision = read_decision(CaseEvidence(n_readers=n, lesions=[lesion]), RULE)

    assert RULE.min_reads <= decision.target_reads <= max(RULE.max_reads, n)
    assert decision.target_reads == max(n, RULE.min_reads) + (decision.more_reads if n >= RULE.min_reads else 0)


def test_the_spread_is_range_over_median():
    assert long_axis_spread([20.0, 22.0, 30.0]) == pytest.approx(10.0 / 22.0)
    assert long_axis_spread([12.0]) == 0.0


def test_a_rule_whose_maximum_is_below_its_minimum_is_refused():
    with pytest.raises(ValueError, match="max_reads"):
        AdaptiveRule(min_reads=5, max_reads=3)
