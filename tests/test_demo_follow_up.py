"""The follow-up demo: every designed response is what RECIST computes, and the simulated study has a consensus."""

import pytest

from annotations.consensus.longitudinal_consensus import answer_key_measurements, follow_up_task_agreement
from annotations.core import recist
from annotations.demo.follow_up_demo import (
    COURSES,
    FOLLOW_UP_STUDY_TASK,
    FOLLOW_UP_TASK,
    make_follow_up_demo,
    truth_measurements,
)
from annotations.follow_up.time_points import baseline_lesions_for
from annotations.models import CaseConsensus, Task
from viewer.models import Instance


@pytest.mark.parametrize("course", COURSES, ids=[course.patient_id for course in COURSES])
def test_each_designed_response_is_what_recist_computes(course):
    baseline, follow_ups = truth_measurements(course)

    computed = [str(result.response) for result in recist.assess(baseline, follow_ups)]

    assert tuple(computed) == course.expected


def test_the_demo_covers_partial_response_stable_and_both_kinds_of_progression():
    by_course = {course.patient_id: course for course in COURSES}

    assert "PR" in by_course["RB-FU-PR"].expected
    assert by_course["RB-FU-SD"].expected == ("SD", "SD")
    assert by_course["RB-FU-PDG"].new_mm == (0, 0, 0) and "PD" in by_course["RB-FU-PDG"].expected
    assert by_course["RB-FU-PDN"].new_mm[2] > 0 and "PD" in by_course["RB-FU-PDN"].expected


@pytest.mark.django_db
def test_the_follow_up_demo_has_an_open_task_with_an_answer_key_and_a_simulated_study():
    make_follow_up_demo()

    task = Task.objects.get(name=FOLLOW_UP_TASK)
    assert task.is_open and task.is_follow_up
    cases = list(task.cases.all())
    assert len(cases) == len(COURSES)
    by_patient = {course.patient_id: course for course in COURSES}
    for case in cases:
        course = by_patient[case.series.study.patient_id]
        assert case.time_points.count() == 3
        # The stored answer key gives the designed responses, and its lines lie on the baseline series.
        lesions = baseline_lesions_for(case=case, reader=None)
        assert Instance.objects.filter(
            series=case.series, sop_instance_uid=lesions[0]["long_axis"]["sop_instance_uid"]
        ).exists()
        stored_truth = recist.assess(recist.baseline_sizes(lesions), answer_key_measurements(case))
        assert tuple(str(result.response) for result in stored_truth) == course.expected

    study = Task.objects.get(name=FOLLOW_UP_STUDY_TASK)
    assert not study.is_open
    current = CaseConsensus.objects.filter(case__task=study, is_current=True)
    assert current.count() == len(COURSES)
    for stored in current:
        course = by_patient[stored.case.series.study.patient_id]
        assert tuple(entry["response"] for entry in stored.summary["truth_recist"]) == course.expected
        assert len(stored.summary["reader_responses"]) == 5
    figures = follow_up_task_agreement(task=study)
    assert figures["subjects"] == 2 * len(COURSES)
    assert figures["agreement"]["fleiss"]["raters"] == 5

    make_follow_up_demo()
    assert Task.objects.filter(kind=Task.Kind.FOLLOW_UP).count() == 2
