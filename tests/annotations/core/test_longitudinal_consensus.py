"""Consensus over time, pure core: lesion identity across time, median sizes, consensus RECIST, kappa, accuracy."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import cohen_kappa_score

from annotations.core import recist
from annotations.core.lesion_matching import ReaderLesion
from annotations.core.line_consensus import DrawnLine
from annotations.core.longitudinal_consensus import (
    FollowUpReadInput,
    LesionReading,
    LongitudinalInputs,
    cohen_kappa,
    compute_longitudinal,
    majority_status,
    reader_accuracy,
    response_agreement,
)

M, GONE, NE = recist.Status.MEASURED, recist.Status.DISAPPEARED, recist.Status.NOT_EVALUABLE
BASELINE = [recist.BaselineLesionSize("B1", 30.0, site="liver"), recist.BaselineLesionSize("B2", 20.0, site="lung")]


def line(reader_id: int, x_mm: float, y_mm: float, length_mm: float, read_id: int | None = None) -> DrawnLine:
    return DrawnLine(
        reader_id=reader_id,
        read_id=read_id or reader_id,
        sop_instance_uid="1.2.3",
        frame=1,
        start=(0.0, 0.0),
        end=(length_mm, 0.0),
        start_mm=(x_mm - length_mm / 2, y_mm, 0.0),
        end_mm=(x_mm + length_mm / 2, y_mm, 0.0),
        length_mm=length_mm,
    )


def read(reader_id: int, b1: LesionReading, b2: LesionReading, *, new_at: tuple[float, float] | None = None):
    new = []
    if new_at is not None:
        drawn = line(reader_id, *new_at, 12.0)
        new = [ReaderLesion(reader_id, reader_id, 9, tuple(drawn.midpoint_mm), 12.0, long_axis=drawn)]
    return FollowUpReadInput(
        read_id=reader_id, reader_id=reader_id, lesions={1: {"B1": b1, "B2": b2}}, new_lesions={1: new}
    )


def inputs(reads, truth=None) -> LongitudinalInputs:
    return LongitudinalInputs(baseline=BASELINE, reads=reads, time_points=[1], slice_spacing_mm={1: 2.5}, truth=truth)


def test_each_lesion_gets_the_median_of_the_readers_who_measured_it():
    reads = [
        read(1, LesionReading(M, line(1, -30, 20, 18.0)), LesionReading(M, line(1, 40, 0, 14.0))),
        read(2, LesionReading(M, line(2, -30, 21, 21.0)), LesionReading(M, line(2, 40, 1, 13.0))),
        read(3, LesionReading(M, line(3, -31, 20, 30.0)), LesionReading(NE)),
    ]

    outcome = compute_longitudinal(inputs(reads))

    b1 = next(lesion for lesion in outcome.lesions if lesion.key == "B1")
    b2 = next(lesion for lesion in outcome.lesions if lesion.key == "B2")
    assert b1.long_axis_median_mm == pytest.approx(21.0)
    assert b1.support == 3
    assert b2.status == "measured" and b2.long_axis_median_mm == pytest.approx(13.5)
    # Consensus sum 21 + 13.5 = 34.5 of 50: -31 %: PR; reader 3 could not evaluate B2: NE.
    assert outcome.consensus[0].response == recist.Response.PR
    assert outcome.reader_responses == {1: {1: "PR"}, 2: {1: "PR"}, 3: {1: "NE"}}


def test_a_lesion_most_readers_call_gone_is_gone_in_the_consensus():
    reads = [
        read(1, LesionReading(GONE), LesionReading(GONE)),
        read(2, LesionReading(GONE), LesionReading(GONE)),
        read(3, LesionReading(M, line(3, -30, 20, 6.0)), LesionReading(GONE)),
    ]

    outcome = compute_longitudinal(inputs(reads))

    assert outcome.consensus[0].response == recist.Response.CR


def test_a_new_lesion_counts_only_when_a_majority_of_readers_found_it_at_the_same_place():
    b1, b2 = LesionReading(M, line(1, -30, 20, 30.0)), LesionReading(M, line(1, 40, 0, 20.0))
    majority = [read(1, b1, b2, new_at=(0, 50)), read(2, b1, b2, new_at=(1, 51)), read(3, b1, b2)]
    scattered = [read(1, b1, b2, new_at=(0, 50)), read(2, b1, b2, new_at=(-60, -40)), read(3, b1, b2)]

    with_new = compute_longitudinal(inputs(majority))
    without = compute_longitudinal(inputs(scattered))

    assert with_new.consensus[0].response == recist.Response.PD
    assert [lesion.support for lesion in with_new.lesions if lesion.is_new] == [2]
    assert without.consensus[0].response == recist.Response.SD
    assert not any(lesion.accepted for lesion in without.lesions if lesion.is_new)


def test_the_answer_key_gives_the_truth_response():
    truth = [
        recist.TimePointMeasurements(
            1, {"B1": recist.LesionAtTimePoint(M, 40.0), "B2": recist.LesionAtTimePoint(M, 20.0)}
        )
    ]
    reads = [read(1, LesionReading(M, line(1, -30, 20, 40.0)), LesionReading(M, line(1, 40, 0, 20.0)))]

    outcome = compute_longitudinal(inputs(reads, truth=truth))

    assert [str(r.response) for r in outcome.truth] == ["PD"]
    assert outcome.summary()["truth_recist"][0]["change_from_baseline_pct"] == pytest.approx(20.0)


def test_majority_status_breaks_ties_towards_measured():
    assert majority_status(["disappeared", "measured"]) == "measured"
    assert majority_status(["not_evaluable", "disappeared"]) == "disappeared"
    assert majority_status(["not_evaluable", "not_evaluable", "measured"]) == "not_evaluable"
    assert majority_status([]) is None


def test_cohen_kappa_equals_scikit_learn():
    rng = random.Random(5)
    categories = ["CR", "PR", "SD", "PD"]
    a = [rng.choice(categories) for _ in range(40)]
    b = [x if rng.random() < 0.7 else rng.choice(categories) for x in a]

    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_response_agreement_gives_fleiss_and_pairwise_cohen():
    subjects = [
        {1: "PR", 2: "PR", 3: "SD"},
        {1: "PD", 2: "PD", 3: "PD"},
        {1: "SD", 2: "SD", 3: "SD"},
        {1: "PR", 2: "SD"},
    ]

    figures = response_agreement(subjects)

    assert figures["fleiss"]["subjects"] == 3 and figures["fleiss"]["raters"] == 3
    assert figures["cohen_pairs"]["1-2"] == pytest.approx(
        cohen_kappa_score(["PR", "PD", "SD", "PR"], ["PR", "PD", "SD", "SD"]), abs=1e-4
    )
    assert set(figures["cohen_pairs"]) == {"1-2", "1-3", "2-3"}


def test_reader_accuracy_skips_subjects_without_a_reference():
    subjects = [{1: "PR", 2: "SD"}, {1: "PD", 2: "PD"}, {1: "SD", 2: "SD"}]

    accuracy = reader_accuracy(subjects, ["PR", "PD", None])

    assert accuracy == {1: {"agree": 2, "n": 2, "accuracy": 1.0}, 2: {"agree": 1, "n": 2, "accuracy": 0.5}}
