"""Consensus and agreement of answers: the pure core against hand-worked cases and reference implementations,
and the consensus service storing answers per case and per matched lesion, with gold accuracy from answer keys."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from annotations.consensus import answer_selectors as answer_results
from annotations.consensus import case_consensus as consensus
from annotations.core.answer_consensus import (
    accuracy_by_reader,
    answer_weights,
    krippendorff_alpha,
    low_agreement,
    question_agreement,
    question_consensus,
)
from annotations.models import CaseConsensus, ReaderQuality
from annotations.questions.presets import preset_question
from annotations.questions.services import save_questions
from tests.annotations.consensus_builders import add_read as add_marked_read
from tests.annotations.consensus_builders import horizontal_line
from tests.factories import CaseFactory, ReaderFactory, SeriesFactory, TaskFactory

SITE = preset_question("lesion_site")
YES_NO = {"key": "follow_up", "kind": "yes_no", "label": "Follow-up", "required": False}
LIKERT = {"key": "malignancy", "kind": "likert", "label": "Malignancy", "scale": {"min": 1, "max": 5}}
NUMBER = {"key": "size_cm", "kind": "number", "label": "Size", "number": {"min": 0, "max": 50, "integer": False}}
FEATURES = {
    "key": "features",
    "kind": "multiple_choice",
    "label": "Features",
    "options": [{"value": "calcified", "label": "Calcified"}, {"value": "cystic", "label": "Cystic"}],
}


def test_plurality_comes_with_its_support_fraction():
    result = question_consensus(SITE, {1: "liver", 2: "liver", 3: "kidney", 4: "liver"})

    assert result["value"] == "liver"
    assert result["support_fraction"] == 0.75
    assert result["counts"] == {"kidney": 1, "liver": 3}
    assert result["tied"] == [] and result["n"] == 4


def test_a_tie_is_reported_as_a_tie_without_a_value():
    result = question_consensus(SITE, {1: "liver", 2: "kidney", 3: "kidney", 4: "liver"})

    assert result["value"] is None
    assert result["tied"] == ["kidney", "liver"]
    assert low_agreement(SITE, result) == "answers tie between kidney, liver"


def test_weights_can_break_a_tie():
    result = question_consensus(SITE, {1: "liver", 2: "kidney"}, weights={1: 2.0, 2: 1.0})

    assert result["value"] == "liver" and result["support_fraction"] == pytest.approx(2 / 3, abs=1e-6)


def test_yes_no_is_a_choice_between_yes_and_no():
    result = question_consensus(YES_NO, {1: True, 2: True, 3: False})

    assert result["value"] is True and result["counts"] == {"no": 1, "yes": 2}


def test_likert_and_numbers_get_median_and_iqr():
    likert = question_consensus(LIKERT, {1: 1, 2: 2, 3: 4, 4: 5, 5: 5})
    number = question_consensus(NUMBER, {1: 2.0, 2: 3.0, 3: 4.0, 4: 10.0})

    assert (likert["median"], likert["q1"], likert["q3"], likert["iqr"]) == (4.0, 2.0, 5.0, 3.0)
    assert number["median"] == 3.5 and number["iqr"] == pytest.approx(
        np.subtract(*np.percentile([2, 3, 4, 10], [75, 25]))
    )
    assert low_agreement(LIKERT, likert) == "answers spread over an IQR of 3 points"


def test_multiple_choice_keeps_options_more_than_half_chose():
    result = question_consensus(FEATURES, {1: ["cystic"], 2: ["cystic", "calcified"], 3: []})

    assert result["value"] == ["cystic"]
    assert result["support_fraction"] == {
        "calcified": pytest.approx(1 / 3, abs=1e-6),
        "cystic": pytest.approx(2 / 3, abs=1e-6),
    }


def test_answers_that_no_longer_fit_the_question_are_left_out():
    result = question_consensus(SITE, {1: "liver", 2: "spleen_old_option", 3: 4})

    assert result["n"] == 1 and result["value"] == "liver"


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", range(4))
def test_krippendorff_alpha_equals_the_krippendorff_package(level, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, size=20)
    # Raters mostly agree with a truth, sometimes one category off, and skip some subjects.
    data = np.array([truth + rng.choice([-1, 0, 0, 0, 1], size=truth.size) for _ in range(4)]).T.astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan

    ours = krippendorff_alpha(data, level=level)

    assert ours == pytest.approx(krippendorff.alpha(reliability_data=data.T, level_of_measurement=level), abs=1e-9)


def test_krippendorffs_own_example_gives_his_published_nominal_alpha():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 coders x 12 units example.
    coders = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
            [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
        ]
    )

    assert krippendorff_alpha(coders.T, level="nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(coders.T, level="interval") == pytest.approx(0.849, abs=5e-4)


def test_fleiss_kappa_of_a_choice_question_equals_statsmodels():
    rng = np.random.default_rng(5)
    options = [option["value"] for option in SITE["options"]][:4]
    subjects = [{reader: options[(k + int(rng.random() < 0.3)) % 4] for reader in range(1, 5)} for k in range(12)]

    agreement = question_agreement(SITE, subjects)

    table = np.zeros((12, len(SITE["options"])))
    position = {option["value"]: index for index, option in enumerate(SITE["options"])}
    for row, subject in enumerate(subjects):
        for value in subject.values():
            table[row, position[value]] += 1
    assert agreement["fleiss_kappa"] == pytest.approx(statsmodels_fleiss_kappa(table, method="fleiss"), abs=1e-9)
    assert agreement["level"] == "nominal" and agreement["n_subjects"] == 12
    assert agreement["alpha"] == pytest.approx(
        krippendorff.alpha(
            reliability_data=np.array([[position[s[r]] for s in subjects] for r in range(1, 5)], float),
            level_of_measurement="nominal",
        ),
        abs=1e-9,
    )


def test_likert_agreement_is_ordinal_and_numbers_interval():
    subjects = [{1: 1, 2: 2}, {1: 4, 2: 4}, {1: 5, 2: 4, 3: 5}]

    assert question_agreement(LIKERT, subjects)["level"] == "ordinal"
    assert question_agreement(NUMBER, [{1: 1.0, 2: 1.5}, {1: 9.0, 2: 8.0}])["alpha"] > 0.9


def test_accuracy_and_weights_from_answer_key_comparisons():
    gold = [
        {
            "readers": {
                "1": {"lesion_site": {"n": 2, "correct": 2, "errors": []}},
                "2": {"lesion_site": {"n": 2, "correct": 0}},
            }
        },
        {"readers": {"1": {"lesion_site": {"n": 1, "correct": 1}}, "2": {"lesion_site": {"n": 1, "correct": 1}}}},
    ]

    accuracy = accuracy_by_reader(gold)
    weights = answer_weights(accuracy)

    assert accuracy[1]["lesion_site"]["accuracy"] == 1.0
    assert accuracy[2]["all"] == {
        "n": 3,
        "correct": 1,
        "accuracy": pytest.approx(1 / 3, abs=1e-6),
        "mean_abs_error": None,
    }
    assert weights[1] > 1.0 > weights[2]


# --- the consensus service --------------------------------------------------------------------------------------


@pytest.fixture
def questioned_case(db, small_ct_series):
    task = TaskFactory(reads_per_case=4)
    question_set = save_questions(task=task, lesion=[SITE], case=[LIKERT])
    return CaseFactory(task=task, series=small_ct_series, is_gold=True), question_set


def read_with(case, question_set, reader, site, malignancy, *, lesion=None):
    return add_marked_read(
        case,
        reader,
        lesions=[{"long": lesion or horizontal_line()}],
        answers={"case": {"malignancy": malignancy}, "lesions": {"1": {"lesion_site": site}}},
        question_set=question_set,
    )


@pytest.mark.django_db
def test_consensus_stores_answers_per_case_and_per_matched_lesion(questioned_case):
    case, question_set = questioned_case
    readers = [ReaderFactory() for _ in range(4)]
    for reader, site, malignancy in zip(readers, ["liver", "liver", "liver", "kidney"], [4, 4, 5, 3], strict=True):
        read_with(case, question_set, reader, site, malignancy, lesion=horizontal_line(shift=(0.5, 0.0)))

    stored = consensus.compute_case_consensus(case=case)

    assert stored.answers["version"] == question_set.version
    assert stored.answers["case"]["malignancy"]["median"] == 4.0
    site = stored.answers["lesions"]["1"]["lesion_site"]
    assert site["value"] == "liver" and site["support_fraction"] == 0.75
    assert stored.answers["flags"] == [] and not stored.low_agreement


@pytest.mark.django_db
def test_split_answers_flag_the_case_like_a_length_disagreement(questioned_case):
    case, question_set = questioned_case
    for reader, site in zip([ReaderFactory() for _ in range(4)], ["liver", "kidney", "liver", "kidney"], strict=True):
        read_with(case, question_set, reader, site, 4)

    stored = consensus.compute_case_consensus(case=case)

    assert stored.low_agreement
    assert "lesion 1 lesion_site: answers tie between kidney, liver" in stored.summary["flags"]
    assert answer_results.low_agreement_answer_cases(task=case.task)[0]["case_id"] == case.pk


@pytest.mark.django_db
def test_the_answer_key_scores_readers_per_question_and_feeds_their_answer_weight(questioned_case):
    case, question_set = questioned_case
    good, bad = ReaderFactory(), ReaderFactory()
    read_with(case, question_set, good, "liver", 4)
    read_with(case, question_set, bad, "kidney", 2)
    add_marked_read(
        case,
        None,
        lesions=[{"long": horizontal_line()}],
        answers={"case": {"malignancy": 4}, "lesions": {"1": {"lesion_site": "liver"}}},
        question_set=question_set,
    )

    stored = consensus.compute_case_consensus(case=case)

    assert sorted(stored.summary["reader_ids"]) == sorted([good.pk, bad.pk])  # the key is no crowd read
    readers = stored.answers["gold"]["readers"]
    assert readers[str(good.pk)]["lesion_site"]["correct"] == 1
    assert readers[str(bad.pk)]["lesion_site"]["correct"] == 0
    assert readers[str(bad.pk)]["malignancy"]["errors"] == [-2]
    # The consensus of a case Likert question is its median (3 of 4 and 2), compared with the key's 4.
    assert stored.answers["gold"]["consensus"]["malignancy"] == {
        "n": 1,
        "correct": 0,
        "errors": [-1],
        "pairs": [[3, 4]],
    }
    accuracy = answer_results.answer_accuracy(task=case.task)
    by_reader = {row["reader_id"]: row for row in accuracy["readers"]}
    assert by_reader[good.pk]["all"]["accuracy"] == 1.0 and by_reader[bad.pk]["all"]["accuracy"] == 0.0
    assert by_reader[good.pk]["answer_weight"] > by_reader[bad.pk]["answer_weight"]
    quality = ReaderQuality.objects.get(task=case.task, reader=bad)
    assert quality.figures["answers"]["lesion_site"]["accuracy"] == 0.0
    confusion = answer_results.gold_confusion(task=case.task, key="lesion_site")
    liver, kidney = confusion["labels"].index("liver"), confusion["labels"].index("kidney")
    assert confusion["matrix"][liver][liver] == 1 and confusion["matrix"][liver][kidney] == 1


@pytest.mark.django_db
def test_a_new_answer_key_makes_a_new_consensus(questioned_case):
    case, question_set = questioned_case
    read_with(case, question_set, ReaderFactory(), "liver", 4)
    first = consensus.compute_case_consensus(case=case)
    add_marked_read(
        case, None, lesions=[{"long": horizontal_line()}], answers={"lesions": {"1": {"lesion_site": "kidney"}}}
    )

    second = consensus.compute_case_consensus(case=case)

    assert second.pk != first.pk
    assert (
        CaseConsensus.objects.get(case=case, is_current=True).answers["gold"]["consensus"]["lesion_site"]["correct"]
        == 0
    )


@pytest.mark.django_db
def test_task_agreement_per_question_over_cases(db, small_ct_series):
    task = TaskFactory(reads_per_case=3)
    question_set = save_questions(task=task, lesion=[], case=[LIKERT])
    readers = [ReaderFactory() for _ in range(3)]
    for scores in ([1, 1, 2], [4, 5, 4], [3, 3, 3]):
        case = CaseFactory(task=task, series=SeriesFactory())
        for reader, score in zip(readers, scores, strict=True):
            add_marked_read(
                case, reader, no_lesion=True, answers={"case": {"malignancy": score}}, question_set=question_set
            )
        consensus.compute_case_consensus(case=case)

    (agreement,) = answer_results.question_agreement_of_task(task=task)

    data = np.array([[1, 4, 3], [1, 5, 3], [2, 4, 3]], float)
    assert agreement["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    )
    distribution = {row["key"]: row for row in answer_results.answer_distribution(task=task)}
    assert distribution["malignancy"]["counts"] == {"1": 2, "2": 1, "4": 2, "5": 1, "3": 3}


@pytest.mark.django_db
def test_the_answer_keys_drawn_lines_are_the_gold_reference_for_lengths(questioned_case):
    case, question_set = questioned_case
    reader = ReaderFactory()
    read_with(case, question_set, reader, "liver", 4, lesion=horizontal_line(length_px=18.0))
    add_marked_read(
        case,
        None,
        lesions=[{"long": horizontal_line(length_px=16.0)}],
        answers={"case": {"malignancy": 4}, "lesions": {"1": {"lesion_site": "liver"}}},
        question_set=question_set,
    )

    stored = consensus.compute_case_consensus(case=case)

    gold = stored.summary["gold"]
    assert [ref["label"] for ref in gold["references"]] == ["Answer key lesion 1"]
    (match,) = gold["readers"][str(reader.pk)]["matched"]
    assert match["reference_mm"] == pytest.approx(16.0, abs=0.01)
    assert match["error_mm"] == pytest.approx(2.0, abs=0.01)
    assert ReaderQuality.objects.get(task=case.task, reader=reader).gold_mean_abs_error_mm == pytest.approx(
        2.0, abs=0.01
    )


@pytest.mark.django_db
def test_a_new_answer_key_makes_the_case_stale_but_a_lone_answer_key_does_not(questioned_case, small_ct_series):
    case, question_set = questioned_case
    lone = CaseFactory(task=case.task, series=SeriesFactory(), is_gold=True)
    add_marked_read(lone, None, no_lesion=True)
    read_with(case, question_set, ReaderFactory(), "liver", 4)
    consensus.compute_case_consensus(case=case)
    assert consensus.stale_case_ids(task=case.task) == []

    add_marked_read(case, None, lesions=[{"long": horizontal_line()}])

    assert consensus.stale_case_ids(task=case.task) == [case.pk]
