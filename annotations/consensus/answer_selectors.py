"""Results of task questions for admins and researchers: accuracy against answer keys, agreement, distributions.

Selectors over the stored current consensus rows (CaseConsensus.answers) and the
current crowd reads, shaped as plain dicts for the console's results pages and the
exports. Like annotations.consensus.selectors, they must never be called on behalf of
a reader, and nothing here is recomputed from marks.
"""

from __future__ import annotations

from collections import Counter

from annotations.core.answer_consensus import ALPHA_LEVEL, accuracy_by_reader, question_agreement
from annotations.models import CaseConsensus, Reader, ReaderQuality, Task
from annotations.questions.services import current_question_set


def task_questions(*, task: Task) -> list[dict]:
    """Return the current questions of the task, each with its scope ("lesion" or "case")."""
    question_set = current_question_set(task)
    if question_set is None:
        return []
    return [{**q, "scope": "lesion"} for q in question_set.lesion_questions] + [
        {**q, "scope": "case"} for q in question_set.case_questions
    ]


def _current_answers(task: Task) -> list[dict]:
    return list(
        CaseConsensus.objects.filter(case__task=task, is_current=True)
        .exclude(answers={})
        .order_by("case_id")
        .values("case_id", "answers", "low_agreement")
    )


def answer_accuracy(*, task: Task) -> dict:
    """Return each reader's accuracy per question against the answer keys of the task's gold cases.

    {"questions": [...], "readers": [{"reader_id", "pseudonym", "questions": {key: {"n", "correct",
    "accuracy", "mean_abs_error"}}, "all": {...}, "answer_weight"}], "consensus": {key: {...}},
    "gold_cases": n}. Readers without a comparison are left out.
    """
    rows = _current_answers(task)
    gold = [row["answers"]["gold"] for row in rows if row["answers"].get("gold")]
    per_reader = accuracy_by_reader(gold)
    consensus = accuracy_by_reader({"readers": {"0": block.get("consensus", {})}} for block in gold).get(0, {})
    pseudonyms = dict(Reader.objects.filter(pk__in=list(per_reader)).values_list("pk", "pseudonym"))
    weights = {
        reader_id: (figures or {}).get("answer_weight")
        for reader_id, figures in ReaderQuality.objects.filter(task=task).values_list("reader_id", "figures")
    }
    readers = [
        {
            "reader_id": reader_id,
            "pseudonym": pseudonyms.get(reader_id, ""),
            "questions": {key: value for key, value in figures.items() if key != "all"},
            "all": figures.get("all"),
            "answer_weight": weights.get(reader_id),
        }
        for reader_id, figures in sorted(per_reader.items())
    ]
    return {
        "questions": task_questions(task=task),
        "readers": readers,
        "consensus": {key: value for key, value in consensus.items() if key != "all"},
        "gold_cases": len(gold),
    }


def gold_confusion(*, task: Task, key: str) -> dict:
    """Return the confusion of readers' answers against the answer key for one choice, yes/no or Likert question.

    {"labels": [...], "matrix": [[count of key=row, reader=column]]}; the labels are the options
    (or no/yes, or the scale's points) in order.
    """
    question = next((q for q in task_questions(task=task) if q["key"] == key), None)
    if question is None:
        raise ValueError(f"the task has no question {key!r}")
    if question["kind"] == "single_choice":
        labels: list = [option["value"] for option in question["options"]]
    elif question["kind"] == "yes_no":
        labels = [False, True]
    elif question["kind"] == "likert":
        labels = list(range(question["scale"]["min"], question["scale"]["max"] + 1))
    else:
        raise ValueError(f"no confusion matrix for {question['kind']} questions")
    position = {label: index for index, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for row in _current_answers(task):
        for figures in (row["answers"].get("gold") or {}).get("readers", {}).values():
            for answer, expected in (figures.get(key) or {}).get("pairs", []):
                if answer in position and expected in position:
                    matrix[position[expected]][position[answer]] += 1
    return {"key": key, "labels": labels, "matrix": matrix}


def question_agreement_of_task(*, task: Task) -> list[dict]:
    """Return Krippendorff's alpha and Fleiss' kappa of every question over the task's cases (case
    questions) or consensus lesions (lesion questions), from the stored consensus answers."""
    rows = _current_answers(task)
    result = []
    for question in task_questions(task=task):
        if question["kind"] not in ALPHA_LEVEL:
            result.append({"key": question["key"], "scope": question["scope"], "kind": question["kind"]})
            continue
        subjects = [
            {int(reader): value for reader, value in block.get("by_reader", {}).items()}
            for row in rows
            for block in _answer_blocks(row["answers"], question)
            if block
        ]
        agreement = question_agreement(question, subjects)
        result.append({"key": question["key"], "scope": question["scope"], "label": question["label"], **agreement})
    return result


def answer_distribution(*, task: Task) -> list[dict]:
    """Return, per question, how often each answer was given in the task's current crowd reads.

    Choices, yes/no and Likert: {"counts": {answer: n}}; multiple choice counts each chosen option;
    numbers: {"values": [...]}; text: {"n": answered}.
    """
    rows = _current_answers(task)
    result = []
    for question in task_questions(task=task):
        counts: Counter = Counter()
        values: list = []
        for row in rows:
            for block in _answer_blocks(row["answers"], question):
                for value in (block or {}).get("by_reader", {}).values():
                    if question["kind"] == "number":
                        values.append(value)
                    elif question["kind"] == "multiple_choice":
                        counts.update(value)
                    elif question["kind"] == "yes_no":
                        counts["yes" if value else "no"] += 1
                    elif question["kind"] != "text":
                        counts[str(value)] += 1
                    else:
                        counts["answered"] += 1
        entry = {"key": question["key"], "scope": question["scope"], "kind": question["kind"]}
        entry.update({"values": values} if question["kind"] == "number" else {"counts": dict(counts)})
        result.append(entry)
    return result


def low_agreement_answer_cases(*, task: Task) -> list[dict]:
    """Return the cases whose consensus flags a question for low agreement: [{"case_id", "flags"}]."""
    return [
        {"case_id": row["case_id"], "flags": row["answers"]["flags"]}
        for row in _current_answers(task)
        if row["answers"].get("flags")
    ]


def _answer_blocks(answers: dict, question: dict) -> list[dict | None]:
    """The stored consensus blocks of one question in a case's answers: the case's, or each lesion's."""
    if question["scope"] == "case":
        return [answers.get("case", {}).get(question["key"])]
    return [lesion.get(question["key"]) for lesion in answers.get("lesions", {}).values()]
