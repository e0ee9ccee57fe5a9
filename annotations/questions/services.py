"""Task questions, the service: the current version of a task's questions, saving edits, the page's JSON.

Saving questions of a task whose current version already has reads makes a new version (old
reads keep the version they answered); without reads the current version is edited in place.
The rules of question definitions and answers live in the pure `annotations.core.answers`.
This module never changes a Read.
"""

from __future__ import annotations

from django.db import transaction

from annotations.core.answers import Questions, validate_questions
from annotations.models import QuestionSet, Read, Task


def current_question_set(task: Task) -> QuestionSet | None:
    """Return the task's newest question set, or None when it never had questions."""
    return QuestionSet.objects.filter(task=task).order_by("-version").first()


def current_question_set_of(task_id: int) -> QuestionSet | None:
    """Return the newest question set of the task with this id, or None."""
    return QuestionSet.objects.filter(task_id=task_id).order_by("-version").first()


def questions_of(question_set: QuestionSet | None) -> Questions | None:
    """Return the pure rules' view of a question set (None stays None)."""
    if question_set is None:
        return None
    return Questions(
        version=question_set.version,
        lesion=tuple(question_set.lesion_questions or []),
        case=tuple(question_set.case_questions or []),
    )


def questions_payload(question_set: QuestionSet | None) -> dict:
    """Return CaseForReading's `task.questions`: {"version", "lesion": [...], "case": [...]} (docs/read-format.md).

    A task that never had questions gives version null and empty lists.
    """
    if question_set is None:
        return {"version": None, "lesion": [], "case": []}
    return {
        "version": question_set.version,
        "lesion": list(question_set.lesion_questions or []),
        "case": list(question_set.case_questions or []),
    }


def task_questions_payload(task: Task) -> dict:
    """Return the `questions` object of the task's current version."""
    return questions_payload(current_question_set(task))


@transaction.atomic
def save_questions(*, task: Task, lesion: list, case: list, user=None) -> QuestionSet | None:
    """Store the task's questions; return the version that now holds them (None: no questions, none before).

    Raises answers.QuestionDefinitionError naming every broken rule. Unchanged questions keep
    their version; changed ones go into the current version when no read (crowd or answer key)
    answered it yet, otherwise into a new version.
    """
    lesion_questions, case_questions = validate_questions(lesion, case)
    # Serialise concurrent edits of the same task's questions.
    Task.objects.select_for_update().filter(pk=task.pk).first()
    current = current_question_set(task)
    if current is None:
        if not lesion_questions and not case_questions:
            return None
        return QuestionSet.objects.create(
            task=task, version=1, lesion_questions=lesion_questions, case_questions=case_questions, created_by=user
        )
    if current.lesion_questions == lesion_questions and current.case_questions == case_questions:
        return current
    if Read.all_objects.filter(question_set=current).exists():
        return QuestionSet.objects.create(
            task=task,
            version=current.version + 1,
            lesion_questions=lesion_questions,
            case_questions=case_questions,
            created_by=user,
        )
    current.lesion_questions = lesion_questions
    current.case_questions = case_questions
    current.save(update_fields=["lesion_questions", "case_questions"])
    return current
