"""Answers to task questions: every wrong answer is refused by path and nothing is stored; right ones are kept."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.core.answers import Questions, check_answers
from annotations.models import Read
from annotations.questions.presets import preset_question
from annotations.questions.services import save_questions
from tests.factories import CaseFactory, LeaseFactory, ReaderFactory, TaskFactory, read_document

SIZE = {
    "key": "size_cm",
    "kind": "number",
    "label": "Size",
    "required": False,
    "number": {"min": 0, "max": 10, "integer": False, "unit": {"value": "cm", "scheme": "UCUM", "meaning": "cm"}},
}
COUNT = {"key": "count", "kind": "number", "label": "Count", "number": {"min": 0, "max": 20, "integer": True}}
MALIGNANCY = {
    "key": "malignancy",
    "kind": "likert",
    "label": "Malignancy",
    "required": True,
    "scale": {"min": 1, "max": 5},
}
FOLLOW_UP = {"key": "follow_up", "kind": "yes_no", "label": "Needs follow-up", "required": False}
NOTE = {"key": "note", "kind": "text", "label": "Note", "max_length": 10}
FEATURES = {
    "key": "features",
    "kind": "multiple_choice",
    "label": "Features",
    "options": [{"value": "calcified", "label": "Calcified"}, {"value": "cystic", "label": "Cystic"}],
}
QUESTIONS = Questions(
    version=3,
    lesion=(preset_question("lesion_type"),),
    case=(MALIGNANCY, SIZE, COUNT, FOLLOW_UP, NOTE, FEATURES),
)


def document(**overrides) -> dict:
    base = {
        "question_version": 3,
        "answers": {"malignancy": 4},
        "flags": {"skip": False},
        "lesions": [{"lesion": 1, "answers": {"lesion_type": "liver"}}],
    }
    base.update(overrides)
    return base


def errors_of(doc: dict, questions: Questions | None = QUESTIONS) -> dict:
    return check_answers(doc, questions=questions, skip=bool(doc.get("flags", {}).get("skip")))[1]


def test_right_answers_are_returned_parsed_by_scope_and_lesion_number():
    doc = document(answers={"malignancy": 2, "size_cm": 3.5, "count": 4, "follow_up": False, "features": []})

    checked, errors = check_answers(doc, questions=QUESTIONS, skip=False)

    assert errors == {}
    assert checked.as_json() == {
        "case": {"malignancy": 2, "size_cm": 3.5, "count": 4, "follow_up": False, "features": []},
        "lesions": {"1": {"lesion_type": "liver"}},
    }


@pytest.mark.parametrize(
    ("answers", "path", "message"),
    [
        ({"malignancy": "4"}, "answers.malignancy", "whole number from 1 to 5"),
        ({"malignancy": 4.5}, "answers.malignancy", "whole number from 1 to 5"),
        ({"malignancy": 7}, "answers.malignancy", "7 is above the maximum 5"),
        ({"malignancy": 3, "size_cm": 12}, "answers.size_cm", "12 is above the maximum 10"),
        ({"malignancy": 3, "size_cm": -1}, "answers.size_cm", "-1 is below the minimum 0"),
        ({"malignancy": 3, "count": 2.5}, "answers.count", "must be a whole number"),
        ({"malignancy": 3, "follow_up": "yes"}, "answers.follow_up", "true or false"),
        ({"malignancy": 3, "note": "far too long a note"}, "answers.note", "at most 10 characters"),
        ({"malignancy": 3, "features": ["cystic", "cystic"]}, "answers.features", "twice"),
        ({"malignancy": 3, "features": "cystic"}, "answers.features", "list of option values"),
        ({"malignancy": 3, "colour": "red"}, "answers.colour", "unknown question"),
        ({}, "answers.malignancy", "required answer missing"),
        ({"malignancy": None}, "answers.malignancy", "required answer missing"),
    ],
)
def test_a_wrong_case_answer_is_named_by_its_path(answers, path, message):
    errors = errors_of(document(answers=answers))

    assert list(errors) == [path]
    assert message in errors[path][0]


def test_an_unknown_option_lists_the_choices():
    errors = errors_of(document(lesions=[{"lesion": 1, "answers": {"lesion_type": "lungg"}}]))

    assert errors["lesions[0].answers.lesion_type"][0].startswith("unknown option 'lungg' (choose one of: lung, liver")


def test_every_lesion_must_answer_its_required_questions():
    lesions = [{"lesion": 1, "answers": {"lesion_type": "lung"}}, {"lesion": 2}]

    assert errors_of(document(lesions=lesions)) == {"lesions[1].answers.lesion_type": ["required answer missing"]}


def test_a_skip_needs_no_case_answers():
    assert errors_of(document(answers={}, lesions=[], flags={"skip": True})) == {}


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, "question_version 2 is not the task's current version 3"),
        (None, "this field is required"),
        ("3", "must be the question set's version"),
    ],
)
def test_a_stale_or_missing_question_version_is_refused(version, message):
    doc = document()
    if version is None:
        del doc["question_version"]
    else:
        doc["question_version"] = version

    errors = errors_of(doc)

    assert list(errors) == ["question_version"]
    assert message in errors["question_version"][0]


def test_a_task_without_questions_takes_no_answers():
    assert errors_of({"lesions": [], "flags": {}}, questions=None) == {}
    assert "answers.colour" in errors_of({"answers": {"colour": "red"}, "lesions": []}, questions=None)
    assert "question_version" in errors_of({"question_version": 1, "lesions": []}, questions=None)


# --- through the API ------------------------------------------------------------------------------------------


@pytest.fixture
def reading(db, small_ct_series):
    task = TaskFactory(reads_per_case=2)
    case = CaseFactory(series=small_ct_series, task=task)
    question_set = save_questions(task=task, lesion=[preset_question("lesion_site")], case=[MALIGNANCY])
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)
    client = APIClient()
    client.force_login(reader.user)
    return client, case, question_set


def answered(case, question_set, **overrides) -> dict:
    doc = read_document(case, question_version=question_set.version, answers={"malignancy": 4})
    doc["lesions"][0]["answers"] = {"lesion_site": "liver"}
    doc.update(overrides)
    return doc


def test_the_next_case_carries_the_tasks_questions(db, small_ct_series):
    task = TaskFactory()
    CaseFactory(series=small_ct_series, task=task)
    save_questions(task=task, lesion=[preset_question("lesion_type")], case=[])
    client = APIClient()
    client.force_login(ReaderFactory().user)

    questions = client.post(f"/api/tasks/{task.pk}/next-case/").json()["task"]["questions"]

    assert questions["version"] == 1
    assert questions["lesion"][0]["key"] == "lesion_type"
    assert questions["lesion"][0]["options"][0]["code"]["scheme"] == "SCT"
    assert questions["case"] == []


def test_a_read_with_right_answers_is_stored_with_its_question_version(reading):
    client, case, question_set = reading

    response = client.post("/api/reads/", answered(case, question_set), format="json")

    assert response.status_code == 201, response.json()
    read = Read.objects.get()
    assert read.question_set_id == question_set.pk
    assert read.answers == {"case": {"malignancy": 4}, "lesions": {"1": {"lesion_site": "liver"}}}
    assert read.document["lesions"][0]["answers"] == {"lesion_site": "liver"}


def test_a_read_with_a_wrong_answer_gets_400_naming_the_field_and_nothing_is_stored(reading):
    client, case, question_set = reading
    doc = answered(case, question_set, answers={})
    doc["lesions"][0]["answers"] = {"lesion_site": "lungg"}

    response = client.post("/api/reads/", doc, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["answers.malignancy"] == ["required answer missing"]
    assert "unknown option 'lungg'" in errors["lesions[0].answers.lesion_site"][0]
    assert not Read.all_objects.exists()


def test_a_read_answering_an_older_question_version_is_refused(reading):
    client, case, question_set = reading
    newer = save_questions(task=case.task, lesion=[preset_question("lesion_type")], case=[MALIGNANCY])
    assert newer.pk == question_set.pk  # no read answered version 1 yet: edited in place
    doc = answered(case, question_set, question_version=question_set.version + 1)

    response = client.post("/api/reads/", doc, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["question_version"]
    assert not Read.all_objects.exists()


def test_answer_codes_give_the_options_codes_for_exports():
    from pydicom.sr.codedict import codes

    from annotations.core.answers import answer_codes

    site = preset_question("lesion_site")

    liver = codes.SCT.Liver
    assert answer_codes(site, "liver") == [{"value": liver.value, "scheme": "SCT", "meaning": liver.meaning}]
    assert answer_codes(FEATURES, ["cystic"]) == []  # options without a code
    assert answer_codes(MALIGNANCY, 4) == []
