"""The adaptive-reads uncertainty rule on hand-made cases: stop when readers agree, ask while they do not, cap."""

from __future__ import annotations

import pytest

from annotations.core.adaptive_reads import (
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
    lesion = LesionEvidence(support=3, long_axes_mm=[40.0, 40.0, 46.0], mean_pairwise_dice=0.8)

    decision = read_decision(CaseEvidence(n_readers=3, lesions=[lesion]), RULE)

    # SD 3.464 mm, so the median's error is 1.2533 * 3.464 / sqrt(3) = 2.507 mm > max(5 % of 40, 2.0) = 2.0 mm;
    # 3 * (2.507 / 2.0)^2 = 4.7 reads would do, so 2 more. The message gives the range: 6 / 40 = 15 %.
    assert median_error_mm(lesion.long_axes_mm) == pytest.approx(2.5066, abs=1e-3)
    assert decision.message == "needs 2 more reads: long axes disagree by 15%"


def test_two_reads_that_agree_closely_stop_at_the_minimum_and_two_that_disagree_ask_for_more():
    rule = AdaptiveRule(min_reads=2, max_reads=7)
    close = LesionEvidence(support=2, long_axes_mm=[30.0, 32.5])
    apart = LesionEvidence(support=2, long_axes_mm=[30.0, 36.0])

    # Two reads: the error is 1.2533 * |a - b| / 2: 1.57 mm (settled) and 3.76 mm (> 2.0 mm: wants 2 * 1.88^2 = 8).
    assert read_decision(CaseEvidence(n_readers=2, lesions=[close]), rule).more_reads == 0
    decision = read_decision(CaseEvidence(n_readers=2, lesions=[apart]), rule)
    assert (decision.more_reads, decision.target_reads) == (2, 4)


def test_equal_weights_of_one_give_the_plain_median_error():
    lengths = [18.0, 21.0, 25.0, 19.5]

    assert median_error_mm(lengths, [1.0] * 4) == pytest.approx(median_error_mm(lengths))


def test_reliable_readers_count_for_more_reads():
    # Readers of weight 4 each: the weighted SD is the plain one, the effective n is 8 instead of 2, so the
    # error halves: 1.2533 * 2.828 / sqrt(8) = 1.25 mm instead of 2.51 mm.
    assert median_error_mm([30.0, 34.0], [4.0, 4.0]) == pytest.approx(1.2533, abs=1e-3)
    assert median_error_mm([30.0, 34.0]) == pytest.approx(2.5066, abs=1e-3)


def test_two_reliable_readers_who_agree_settle_a_lesion_that_two_unknown_readers_would_not():
    rule = AdaptiveRule(min_reads=2, max_reads=7)
    unknown = LesionEvidence(support=2, long_axes_mm=[30.0, 34.0])
    reliable = LesionEvidence(support=2, long_axes_mm=[30.0, 34.0], reader_weights=[4.0, 4.0])
    unreliable = LesionEvidence(support=2, long_axes_mm=[30.0, 32.5], reader_weights=[0.3, 0.3])

    assert read_decision(CaseEvidence(n_readers=2, lesions=[unknown]), rule).more_reads == 2
    assert read_decision(CaseEvidence(n_readers=2, lesions=[reliable]), rule).more_reads == 0
    # Close lengths from two readers who usually disagree with the others are not enough: 1.57 / sqrt(0.3) mm.
    assert read_decision(CaseEvidence(n_readers=2, lesions=[unreliable]), rule).more_reads > 0


def test_an_outlying_reader_with_a_small_weight_moves_the_error_less():
    lengths = [30.0, 30.5, 31.0, 45.0]

    assert median_error_mm(lengths, [1.0, 1.0, 1.0, 0.2]) < median_error_mm(lengths)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 0.0], [1.0, -1.0]])
def test_weights_must_be_one_positive_weight_per_length(weights):
    with pytest.raises(ValueError, match="weight"):
        median_error_mm([20.0, 22.0], weights)


def test_agreeing_reads_after_a_disagreement_settle_the_case_although_the_range_stays():
    lesion = LesionEvidence(support=5, long_axes_mm=[16.0, 22.0, 19.0, 19.0, 19.0])

    decision = read_decision(CaseEvidence(n_readers=5, lesions=[lesion]), RULE)

    # Range still 32 %, but the median's error is 1.2533 * 2.121 / sqrt(5) = 1.19 mm <= 1.5 mm.
    assert (decision.more_reads, decision.target_reads) == (0, 5)


def test_a_small_spread_in_millimetres_is_not_uncertain_even_when_the_lesion_is_tiny():
    lesion = LesionEvidence(support=3, long_axes_mm=[6.0, 7.0, 8.5])  # 36 % but only 2.5 mm

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
