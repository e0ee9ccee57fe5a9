"""Answers to task questions as DICOM SR content: a lesion's Finding and Finding Sites, and evaluations.

A lesion's answer to the `lesion_type` question, when its option is coded, is the lesion's Finding
(TID 1501 "Finding"); coded answers to `lesion_site` (or any lesion question whose key ends in
`_site`) are its Finding Sites. Every other answer is an evaluation: a coded concept where the
answer is coded (a coded option; yes/no as SNOMED CT Yes/No), text otherwise (an uncoded option's
label, a Likert point with its scale, a number with its unit, free text). The question itself is
named by a code in Readerboard's private scheme (its key, meaning its label). Pure: no Django,
no database, no file; codes come from the question definitions or pydicom's dictionary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from annotations.core.answers import CHOICE_KINDS, LIKERT, MULTIPLE_CHOICE, NUMBER, SINGLE_CHOICE, TEXT, YES_NO
from annotations.exports import sanitise

# Readerboard's private coding scheme (also the finding codes' fallback in sr_export).
LOCAL_SCHEME = "99RDBD"
FINDING_KEY = "lesion_type"
SITE_KEY = "lesion_site"
# LO, the VR of Code Meaning, holds 64 characters.
MAX_MEANING = 64


@dataclass(frozen=True)
class Evaluation:
    """One answer as an SR item: the question's concept and a coded value or a text."""

    name: Code
    value: Code | str

    @property
    def is_coded(self) -> bool:
        return isinstance(self.value, Code)


@dataclass(frozen=True)
class SRAnswers:
    """What one lesion's (or one case's) answers add to an SR."""

    finding: Code | None = None
    finding_sites: tuple[Code, ...] = ()
    evaluations: tuple[Evaluation, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.finding is None and not self.finding_sites and not self.evaluations


def question_concept(question: dict) -> Code:
    """The coded name of a question: its key in Readerboard's private scheme, meaning its label."""
    return coded(question["key"], LOCAL_SCHEME, question.get("label") or question["key"])


def coded(value: Any, scheme: Any, meaning: Any) -> Code:
    """A Code whose value (SH, or UC past 16 characters), scheme (SH) and meaning (LO) DICOM can hold."""
    return Code(
        sanitise.dicom_text(value, "UC", fallback="?"),
        sanitise.dicom_text(scheme, "SH", fallback=LOCAL_SCHEME),
        sanitise.dicom_text(meaning, "LO", fallback="?"),
    )


def is_site_question(question: dict) -> bool:
    return question["key"] == SITE_KEY or question["key"].endswith("_site")


def sr_answers(questions: Sequence[dict], answers: dict | None, *, lesion: bool) -> SRAnswers:
    """Return the SR form of one set of answers (keyed by question key) to `questions`.

    With `lesion=True` the coded lesion type becomes the Finding and coded sites the Finding Sites;
    case answers are all evaluations. Questions without an answer give nothing.
    """
    answers = sanitise.mapping(answers)
    finding = None
    sites: list[Code] = []
    evaluations: list[Evaluation] = []
    for question in questions:
        value = answers.get(question["key"])
        if value is None:
            continue
        coded = _option_codes(question, value) if question["kind"] in CHOICE_KINDS else []
        if lesion and coded and question["key"] == FINDING_KEY and question["kind"] == SINGLE_CHOICE:
            finding = coded[0]
            continue
        if lesion and coded and is_site_question(question):
            sites += coded
            continue
        name = question_concept(question)
        evaluations += [Evaluation(name=name, value=item) for item in _values(question, value)]
    return SRAnswers(finding=finding, finding_sites=tuple(sites), evaluations=tuple(evaluations))


def consensus_values(questions: Sequence[dict], blocks: dict | None) -> dict:
    """Return the consensus answer of each question from its consensus block (answer_consensus), by key.

    Choices and yes/no: the plurality (nothing on a tie); multiple choice: the options most readers chose;
    numbers and Likert: the median. Text has no consensus answer.
    """
    values = {}
    blocks = sanitise.mapping(blocks)
    for question in questions:
        block = sanitise.mapping(blocks.get(question["key"]))
        if question["kind"] in (LIKERT, NUMBER):
            value = block.get("median")
        elif question["kind"] == MULTIPLE_CHOICE:
            value = block.get("value") or None
        else:
            value = block.get("value")
        if value is not None and question["kind"] != TEXT:
            values[question["key"]] = value
    return values


def _as_list(value: Any) -> list:
    """The chosen options of an answer; what cannot name an option (a stored dict or list) as its text."""
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, (str, int, float, bool, type(None))) else sanitise.text(item) for item in items]


def _option_codes(question: dict, value: Any) -> list[Code]:
    """The codes of the chosen options, only when every chosen option has one."""
    options = {option["value"]: option for option in question.get("options", [])}
    chosen = [options.get(item) for item in _as_list(value)]
    if not chosen or any(option is None or not option.get("code") for option in chosen):
        return []
    return [coded(option["code"]["value"], option["code"]["scheme"], option["code"]["meaning"]) for option in chosen]


def _values(question: dict, value: Any) -> list[Code | str]:
    """One evaluation value per answer (a multiple choice gives one per chosen option)."""
    kind = question["kind"]
    if kind in CHOICE_KINDS:
        options = {option["value"]: option for option in question.get("options", [])}
        values: list[Code | str] = []
        for item in _as_list(value):
            option = options.get(item) or {"value": item, "label": str(item)}
            code = option.get("code")
            if code:
                values.append(coded(code["value"], code["scheme"], code["meaning"]))
            else:
                values.append(sanitise.dicom_text(option.get("label") or option["value"], "UT"))
        return values
    if kind == YES_NO:
        return [codes.SCT.Yes if value else codes.SCT.No]
    if kind == LIKERT:
        scale = question.get("scale", {})
        value = f"{value:g}" if isinstance(value, float) else value  # a consensus median may be 3.5
        ends = []
        for end in ("min", "max"):
            label = scale.get(f"{end}_label")
            ends.append(f"{scale.get(end)}{f' = {label}' if label else ''}")
        return [sanitise.dicom_text(f"{value} (scale {ends[0]} to {ends[1]})", "UT")]
    if kind == NUMBER:
        unit = (question.get("number") or {}).get("unit")
        return [sanitise.dicom_text(f"{value} {unit['value']}" if unit else value, "UT")]
    return [sanitise.dicom_text(value, "UT")]
