"""Agreement statistics against published examples and independent implementations (pingouin, statsmodels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from annotations.core.agreement import (
    bland_altman,
    dice,
    fleiss_kappa,
    icc_absolute_agreement,
    largest_complete_block,
    leave_one_out_deviations,
    mean_pairwise_dice,
)

# Shrout and Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(2,1) = 0.29.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)

# Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories; kappa = 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def pingouin_icc_a1(ratings):
    n, k = ratings.shape
    frame = pd.DataFrame([(i, j, ratings[i, j]) for i in range(n) for j in range(k)], columns=["t", "r", "s"])
    table = pingouin.intraclass_corr(frame, targets="t", raters="r", ratings="s").set_index("Type")
    return table.loc["ICC(A,1)"] if "ICC(A,1)" in table.index else table.loc["ICC2"]


def test_icc_reproduces_shrout_and_fleiss_published_value():
    assert icc_absolute_agreement(SHROUT_FLEISS).icc == pytest.approx(0.29, abs=0.005)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icc_and_its_confidence_interval_match_pingouin(seed):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(10, 50, size=12)
    ratings = truth[:, None] + rng.normal(0, 3, size=(12, 4)) + rng.normal(0, 2, size=4)[None, :]
    ratings = np.vstack([SHROUT_FLEISS * 3, ratings[:6]]) if seed == 2 else ratings

    ours = icc_absolute_agreement(ratings)
    reference = pingouin_icc_a1(ratings)

    assert ours.icc == pytest.approx(reference["ICC"], abs=1e-9)
    assert ours.f_value == pytest.approx(reference["F"], rel=1e-9)
    # pingouin rounds its interval to two decimals.
    assert ours.ci95_low == pytest.approx(reference["CI95%" if "CI95%" in reference else "CI95"][0], abs=0.0051)
    assert ours.ci95_high == pytest.approx(reference["CI95%" if "CI95%" in reference else "CI95"][1], abs=0.0051)


def test_perfect_agreement_gives_icc_one():
    ratings = np.repeat(np.arange(1.0, 6.0)[:, None], 3, axis=1)
    assert icc_absolute_agreement(ratings).icc == pytest.approx(1.0)


def test_largest_complete_block_drops_the_reader_with_most_gaps():
    ratings = np.array([[1, 2, np.nan], [3, 4, np.nan], [5, 6, 7], [8, 9, np.nan]])

    rows, cols = largest_complete_block(ratings)

    assert rows.tolist() == [0, 1, 2, 3] and cols.tolist() == [0, 1]


def test_fleiss_kappa_reproduces_the_published_example_and_statsmodels():
    result = fleiss_kappa(FLEISS_EXAMPLE)

    assert result.kappa == pytest.approx(0.210, abs=0.0005)
    assert result.kappa == pytest.approx(statsmodels_fleiss_kappa(FLEISS_EXAMPLE, method="fleiss"), abs=1e-12)


def test_fleiss_kappa_for_present_absent_votes_matches_statsmodels():
    rng = np.random.default_rng(4)
    present = rng.binomial(5, rng.uniform(0.1, 0.9, size=40))
    table = np.column_stack([5 - present, present])

    assert fleiss_kappa(table).kappa == pytest.approx(statsmodels_fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_rejects_subjects_with_different_rater_counts():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 2], [2, 2]]))


def test_bland_altman_bias_and_limits():
    measured = [10.0, 12.0, 15.0, 20.0]
    reference = [9.0, 12.5, 14.0, 18.0]

    result = bland_altman(measured, reference)

    diffs = np.subtract(measured, reference)
    assert result.bias == pytest.approx(diffs.mean())
    assert result.upper_limit == pytest.approx(diffs.mean() + 1.96 * diffs.std(ddof=1))
    assert result.lower_limit == pytest.approx(diffs.mean() - 1.96 * diffs.std(ddof=1))


def test_dice_on_indices_equals_dice_on_bitmaps():
    a = np.zeros(50, dtype=bool)
    b = np.zeros(50, dtype=bool)
    a[5:25], b[15:40] = True, True

    assert dice(np.flatnonzero(a), np.flatnonzero(b)) == pytest.approx(dice(a, b)) == pytest.approx(20 / 45)
    assert mean_pairwise_dice([np.flatnonzero(a)] * 3) == 1.0


def test_leave_one_out_deviation_compares_each_reader_with_the_others_median_only():
    lesions = [{1: 20.0, 2: 21.0, 3: 26.0}, {1: 10.0, 2: 10.0}, {1: 30.0, 2: 31.0, 3: 29.0, 4: 40.0}]

    deviations = leave_one_out_deviations(lesions)

    # Lesion 1: reader 1 vs median(21, 26) = 23.5, reader 2 vs median(20, 26) = 23, reader 3 vs 20.5.
    # Lesion 2 has only one other reader each: left out. Lesion 3: reader 1 vs median(31, 29, 40) = 31,
    # reader 2 vs median(30, 29, 40) = 30, reader 3 vs median(30, 31, 40) = 31, reader 4 vs 30.
    assert deviations == {
        1: pytest.approx([-3.5, -1.0]),
        2: pytest.approx([-2.0, 1.0]),
        3: pytest.approx([5.5, -2.0]),
        4: pytest.approx([10.0]),
    }
