"""The CSV columns of a task's questions, and answers (and consensus answers) written as CSV cells.

Reads CSV: every question a task ever asked (any version) gets one column, `case_answer_<key>` or
`lesion_answer_<key>`, after the fixed columns; a choice question whose options carry codes
gets a second column `..._code` with `SCHEME:value` (e.g. `SCT:10200004`). A question asked in
several versions keeps one column, described by its newest version.
Consensus CSV: `<scope>_consensus_<key>` (the consensus answer), its `_code`, and how strongly
the readers agree: `_support` (choices), `_tied` (single choice, yes/no), `_iqr` (numbers, Likert)
and `_n` (readers answering). Pure: no Django, no database; callers pass the question sets'
lesion and case question lists in version order, and the consensus blocks of answer_consensus.
Answers of an unexpected shape (stored before answers were checked) are left blank and counted (sanitise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from annotations.core.answers import (
    CHOICE_KINDS,
    LIKERT,
    MULTIPLE_CHOICE,
    NUMBER,
    SINGLE_CHOICE,
    TEXT,
    YES_NO,
    answer_codes,
)
from annotations.exports import sanitise

CASE = "case"
LESION = "lesion"
# Several options of a multiple choice answer in one cell: ";" as supporting_readers does.
LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class AnswerColumn:
    scope: str  # CASE or LESION
    key: str
    question: dict  # the newest definition of the question
    name: str
    code_name: str | None  # None when the question's options carry no codes

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, self.code_name) if self.code_name else (self.name,)


def answer_columns(question_sets: Iterable[tuple[Sequence[dict], Sequence[dict]]]) -> list[AnswerColumn]:
    """Return one column per (scope, key) over all the sets `(lesion questions, case questions)`, oldest first.

    Columns come lesion questions first, then case questions, each in the order they were first asked.
    """
    newest: dict[tuple[str, str], dict] = {}
    for lesion_questions, case_questions in question_sets:
        for scope, questions in ((LESION, lesion_questions), (CASE, case_questions)):
            for question in questions or ():
                newest[(scope, question["key"])] = question  # dicts keep first-insertion order
    columns = []
    for scope in (LESION, CASE):
        for (column_scope, key), question in newest.items():
            if column_scope != scope:
                continue
            name = f"{scope}_answer_{key}"
            coded = question["kind"] in CHOICE_KINDS and any(o.get("code") for o in question.get("options", []))
            columns.append(
                AnswerColumn(
                    scope=scope, key=key, question=question, name=name, code_name=f"{name}_code" if coded else None
                )
            )
    return columns


def column_names(columns: Iterable[AnswerColumn]) -> list[str]:
    """Return the CSV header names of the answer columns, in order."""
    return [name for column in columns for name in column.names]


def answer_cell(question: dict, value: Any) -> str | int | float | bool:
    """Return an answer as a CSV cell: the option value(s), the number, True/False, or the text; "" when unanswered."""
    if value is None:
        return ""
    if question["kind"] == MULTIPLE_CHOICE and isinstance(value, list):
        return LIST_SEPARATOR.join(str(item) for item in value)
    if question["kind"] == YES_NO:
        return bool(value)
    return value


def code_cell(question: dict, value: Any) -> str:
    """Return the codes of the chosen option(s) as `SCHEME:value` (";" between several); "" without codes."""
    return LIST_SEPARATOR.join(f"{code['scheme']}:{code['value']}" for code in answer_codes(question, value))


def answer_fields(columns: Iterable[AnswerColumn], *, scope: str, answers: dict | None) -> dict:
    """Return the cells of one scope's answer columns for one set of answers by key (absent keys stay blank)."""
    answers = sanitise.mapping(answers)
    fields: dict[str, Any] = {}
    for column in columns:
        if column.scope != scope:
            continue
        value = answers.get(column.key)
        fields[column.name] = answer_cell(column.question, value)
        if column.code_name:
            fields[column.code_name] = code_cell(column.question, value)
    return fields


def consensus_column_names(columns: Iterable[AnswerColumn]) -> list[str]:
    """Return the consensus CSV's header names of the answer columns, in order."""
    names = []
    for column in columns:
        base = f"{column.scope}_consensus_{column.key}"
        kind = column.question["kind"]
        names.append(base)
        if column.code_name:
            names.append(f"{base}_code")
        if kind in CHOICE_KINDS or kind == YES_NO:
            names.append(f"{base}_support")
        if kind in (SINGLE_CHOICE, YES_NO):
            names.append(f"{base}_tied")
        if kind in (LIKERT, NUMBER):
            names.append(f"{base}_iqr")
        names.append(f"{base}_n")
    return names


def consensus_fields(columns: Iterable[AnswerColumn], *, scope: str, blocks: dict | None) -> dict:
    """Return the consensus cells of one scope for the consensus blocks by question key (answer_consensus).

    A tie leaves the answer blank and lists the tied answers; a median stands for numbers and Likert.
    """
    blocks = sanitise.mapping(blocks)
    fields: dict[str, Any] = {}
    for column in columns:
        if column.scope != scope:
            continue
        block = sanitise.mapping(blocks.get(column.key))
        if not block:
            continue
        base = f"{column.scope}_consensus_{column.key}"
        kind = column.question["kind"]
        fields[f"{base}_n"] = block.get("n", 0)
        if kind in (LIKERT, NUMBER):
            fields[base] = _blank(block.get("median"))
            fields[f"{base}_iqr"] = _blank(block.get("iqr"))
            continue
        if kind == TEXT:
            continue
        value = block.get("value")
        fields[base] = answer_cell(column.question, value)
        if column.code_name:
            fields[f"{base}_code"] = code_cell(column.question, value)
        if kind == MULTIPLE_CHOICE:
            # Each option's share of readers choosing it, e.g. "motion=0.67;noise=0.33".
            fractions = block.get("support_fraction") or {}
            fields[f"{base}_support"] = LIST_SEPARATOR.join(
                f"{option}={share:g}" for option, share in fractions.items()
            )
        else:
            fields[f"{base}_support"] = _blank(block.get("support_fraction"))
            fields[f"{base}_tied"] = LIST_SEPARATOR.join(block.get("tied") or [])
    return fields


def _blank(value: Any) -> Any:
    return "" if value is None else value
