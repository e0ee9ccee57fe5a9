"""Task questions: coded presets from pydicom's dictionary, versions that reads keep, the page's JSON."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from annotations.core.answers import QuestionDefinitionError
from annotations.models import QuestionSet, Read
from annotations.questions.presets import LESION_SITES, LESION_TYPES, preset_question
from annotations.questions.services import questions_payload, save_questions, task_questions_payload
from tests.factories import ReadFactory, TaskFactory, bare_cases

LIKERT = {
    "key": "malignancy",
    "kind": "likert",
    "label": "Malignancy",
    "required": False,
    "scale": {"min": 1, "max": 5, "min_label": "Benign", "max_label": "Malignant"},
}


def test_lesion_type_preset_has_deeplesions_eight_types_coded_from_pydicom():
    question = preset_question("lesion_type")

    values = [option["value"] for option in question["options"]]
    assert values == ["lung", "liver", "kidney", "bone", "abdomen", "pelvis", "mediastinum", "soft_tissue"]
    liver = question["options"][1]["code"]
    assert (liver["value"], liver["scheme"], liver["meaning"]) == (
        codes.SCT.Liver.value,
        "SCT",
        codes.SCT.Liver.meaning,
    )


@pytest.mark.parametrize("entries", [LESION_TYPES, LESION_SITES])
def test_every_preset_option_code_is_pydicoms_snomed_code(entries):
    for _, _, name in entries:
        code = getattr(codes.SCT, name)
        assert code.scheme_designator == "SCT"
    site = preset_question("lesion_site")
    for option, (_, _, name) in zip(site["options"], LESION_SITES, strict=True):
        assert option["code"]["value"] == getattr(codes.SCT, name).value


def test_unknown_preset_is_refused_by_name():
    with pytest.raises(ValueError, match="lesion_size"):
        preset_question("lesion_size")


@pytest.mark.django_db
def test_a_task_without_questions_serves_version_null():
    assert task_questions_payload(TaskFactory()) == {"version": None, "lesion": [], "case": []}


@pytest.mark.django_db
def test_editing_questions_before_any_read_keeps_the_version():
    task = TaskFactory()
    first = save_questions(task=task, lesion=[preset_question("lesion_type")], case=[])

    second = save_questions(task=task, lesion=[preset_question("lesion_type")], case=[LIKERT])

    assert first.pk == second.pk and second.version == 1
    assert questions_payload(second)["case"][0]["scale"]["max_label"] == "Malignant"


@pytest.mark.django_db
def test_editing_questions_a_read_answered_makes_a_new_version_and_the_read_keeps_its_own():
    task = TaskFactory()
    (case,) = bare_cases(task, 1)
    first = save_questions(task=task, lesion=[preset_question("lesion_type")], case=[])
    read = ReadFactory(case=case, question_set=first)

    second = save_questions(task=task, lesion=[preset_question("lesion_site")], case=[])

    assert second.version == 2
    assert task_questions_payload(task)["version"] == 2
    assert Read.objects.get(pk=read.pk).question_set_id == first.pk
    assert QuestionSet.objects.get(pk=first.pk).lesion_questions[0]["key"] == "lesion_type"


@pytest.mark.django_db
def test_saving_the_same_questions_again_makes_no_new_version():
    task = TaskFactory()
    (case,) = bare_cases(task, 1)
    first = save_questions(task=task, lesion=[], case=[LIKERT])
    ReadFactory(case=case, question_set=first)

    assert save_questions(task=task, lesion=[], case=[dict(LIKERT)]).pk == first.pk


@pytest.mark.django_db
def test_broken_question_definitions_are_refused_by_path():
    task = TaskFactory()
    bad_choice = {"key": "size", "kind": "single_choice", "label": "Size", "options": []}
    bad_key = {**LIKERT, "key": "Malignancy!"}

    with pytest.raises(QuestionDefinitionError) as caught:
        save_questions(task=task, lesion=[bad_choice], case=[bad_key, bad_key])

    assert {"lesion[0].options", "case[0].key", "case[1].key"} <= set(caught.value.errors)
    assert not QuestionSet.objects.filter(task=task).exists()
