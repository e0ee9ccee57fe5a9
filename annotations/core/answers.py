"""Task questions and answers, the pure rules: question definitions, and answers checked against them.

`validate_questions` checks and normalises the questions an admin defines (docs/read-format.md,
"Question"); `check_answers` checks a read document's `question_version` and `answers` against
the task's current question set and returns them parsed, or the errors keyed by JSON path
(`answers.<key>`, `lesions[0].answers.<key>`, `question_version`). `answer_is_valid` tells
consensus whether a stored answer still fits a question. No Django, no database: the read
submission service passes the current set in as a `Questions` value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from annotations.core.field_checks import is_finite_number, is_text, text_problem

SINGLE_CHOICE = "single_choice"
MULTIPLE_CHOICE = "multiple_choice"
LIKERT = "likert"
NUMBER = "number"
YES_NO = "yes_no"
TEXT = "text"
KINDS = (SINGLE_CHOICE, MULTIPLE_CHOICE, LIKERT, NUMBER, YES_NO, TEXT)
CHOICE_KINDS = (SINGLE_CHOICE, MULTIPLE_CHOICE)
SCOPES = ("lesion", "case")

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
OPTION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
MAX_QUESTIONS_PER_SCOPE = 30
MAX_OPTIONS = 100
MAX_LIKERT_POINTS = 11
DEFAULT_TEXT_LENGTH = 500
MAX_TEXT_LENGTH = 5000
MAX_LABEL_CHARS = 200
MAX_HELP_CHARS = 1000
COMMON_FIELDS = ("key", "kind", "label", "help", "required")
KIND_FIELDS = {
    SINGLE_CHOICE: ("options",),
    MULTIPLE_CHOICE: ("options",),
    LIKERT: ("scale",),
    NUMBER: ("number",),
    YES_NO: (),
    TEXT: ("max_length",),
}
ALL_FIELDS = set(COMMON_FIELDS) | {name for names in KIND_FIELDS.values() for name in names}


class QuestionDefinitionError(ValueError):
    """The question definitions break a rule; `errors` maps paths like `lesion[0].options` to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{path}: {', '.join(msgs)}" for path, msgs in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Questions:
    """One question set as the rules see it: its version and its normalised questions per scope."""

    version: int
    lesion: Sequence[dict] = field(default_factory=tuple)
    case: Sequence[dict] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not self.lesion and not self.case


@dataclass
class CheckedAnswers:
    """The answers of a read: case answers by key, lesion answers by lesion number then key."""

    case: dict[str, Any] = field(default_factory=dict)
    lesions: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"case": self.case, "lesions": {str(number): answers for number, answers in self.lesions.items()}}


# --------------------------------------------------------------------------------------------------------------
# Question definitions


def validate_questions(lesion: Any, case: Any) -> tuple[list[dict], list[dict]]:
    """Return the lesion and case questions normalised (only the fields of each kind, defaults filled in).

    Raises QuestionDefinitionError naming every broken rule by path (`lesion[0].options[2].value`).
    """
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    normalised = {}
    for scope, questions in (("lesion", lesion), ("case", case)):
        if questions is None:
            questions = []
        if not isinstance(questions, list):
            fail(scope, "must be a list of questions")
            normalised[scope] = []
            continue
        if len(questions) > MAX_QUESTIONS_PER_SCOPE:
            fail(scope, f"at most {MAX_QUESTIONS_PER_SCOPE} questions ({len(questions)} given)")
        seen: set[str] = set()
        out = []
        for index, question in enumerate(questions):
            parsed = _question(question, f"{scope}[{index}]", fail)
            if parsed is None:
                continue
            if parsed["key"] in seen:
                fail(f"{scope}[{index}].key", f"the key {parsed['key']!r} is used twice")
            seen.add(parsed["key"])
            out.append(parsed)
        normalised[scope] = out
    if errors:
        raise QuestionDefinitionError(errors)
    return normalised["lesion"], normalised["case"]


def _question(question: Any, path: str, fail) -> dict | None:
    if not isinstance(question, dict):
        fail(path, "must be an object")
        return None
    for name in sorted(set(question) - ALL_FIELDS):
        fail(f"{path}.{name}", "unknown field")
    key = question.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        fail(f"{path}.key", "must be a lower-case name: a letter, then letters, digits or _ (at most 40)")
    kind = question.get("kind")
    if kind not in KINDS:
        fail(f"{path}.kind", f"must be one of {', '.join(KINDS)}")
        return None
    label = question.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
        fail(f"{path}.label", f"must be text of 1 to {MAX_LABEL_CHARS} characters")
    elif problem := text_problem(label):
        fail(f"{path}.label", problem)
    help_text = question.get("help", "")
    if not isinstance(help_text, str) or len(help_text) > MAX_HELP_CHARS:
        fail(f"{path}.help", f"must be text of at most {MAX_HELP_CHARS} characters")
        help_text = ""
    elif problem := text_problem(help_text, multiline=True):
        fail(f"{path}.help", problem)
        help_text = ""
    required = question.get("required", False)
    if not isinstance(required, bool):
        fail(f"{path}.required", "must be true or false")
    parsed: dict = {
        "key": key,
        "kind": kind,
        "label": label.strip() if isinstance(label, str) else "",
        "help": help_text,
        "required": bool(required),
    }
    if kind in CHOICE_KINDS:
        parsed["options"] = _options(question.get("options"), f"{path}.options", fail)
    elif kind == LIKERT:
        parsed["scale"] = _scale(question.get("scale"), f"{path}.scale", fail)
    elif kind == NUMBER:
        parsed["number"] = _number_rule(question.get("number", {}), f"{path}.number", fail)
    elif kind == TEXT:
        max_length = question.get("max_length", DEFAULT_TEXT_LENGTH)
        if not _is_int(max_length) or not 1 <= max_length <= MAX_TEXT_LENGTH:
            fail(f"{path}.max_length", f"must be a whole number from 1 to {MAX_TEXT_LENGTH}")
        parsed["max_length"] = max_length
    return parsed


def _options(options: Any, path: str, fail) -> list[dict]:
    if not isinstance(options, list) or not options:
        fail(path, "a choice question needs a list of at least one option")
        return []
    if len(options) > MAX_OPTIONS:
        fail(path, f"at most {MAX_OPTIONS} options ({len(options)} given)")
    out = []
    seen: set[str] = set()
    for index, option in enumerate(options):
        option_path = f"{path}[{index}]"
        if not isinstance(option, dict):
            fail(option_path, "must be an object with value, label and code")
            continue
        for name in sorted(set(option) - {"value", "label", "code"}):
            fail(f"{option_path}.{name}", "unknown field")
        value = option.get("value")
        if not isinstance(value, str) or not OPTION_PATTERN.match(value):
            fail(f"{option_path}.value", "must be a lower-case name: letters, digits or _ (at most 64)")
        elif value in seen:
            fail(f"{option_path}.value", f"the value {value!r} is used twice")
        seen.add(value)
        label = option.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
            fail(f"{option_path}.label", f"must be text of 1 to {MAX_LABEL_CHARS} characters")
        elif problem := text_problem(label):
            fail(f"{option_path}.label", problem)
        out.append(
            {
                "value": value,
                "label": label.strip() if isinstance(label, str) else "",
                "code": _code(option.get("code"), f"{option_path}.code", fail),
            }
        )
    return out


def _code(code: Any, path: str, fail) -> dict | None:
    """Return a coded concept {value, scheme, meaning} or None (not coded)."""
    if code is None:
        return None
    if not isinstance(code, dict) or set(code) != {"value", "scheme", "meaning"}:
        fail(path, "must be null or an object of value, scheme and meaning")
        return None
    for name in ("value", "scheme", "meaning"):
        if not isinstance(code[name], str) or not code[name].strip() or len(code[name]) > 64:
            fail(f"{path}.{name}", "must be text of 1 to 64 characters")
            return None
        if problem := text_problem(code[name]):
            fail(f"{path}.{name}", problem)
            return None
    return {name: code[name].strip() for name in ("value", "scheme", "meaning")}


def _scale(scale: Any, path: str, fail) -> dict:
    if not isinstance(scale, dict):
        fail(path, "a Likert question needs a scale {min, max, min_label, max_label}")
        return {}
    for name in sorted(set(scale) - {"min", "max", "min_label", "max_label"}):
        fail(f"{path}.{name}", "unknown field")
    low, high = scale.get("min", 1), scale.get("max", 5)
    if not _is_int(low) or not _is_int(high) or not 2 <= high - low + 1 <= MAX_LIKERT_POINTS:
        fail(path, f"min and max must be whole numbers giving 2 to {MAX_LIKERT_POINTS} points")
    out = {"min": low, "max": high}
    for name in ("min_label", "max_label"):
        value = scale.get(name, "")
        if not is_text(value) or len(value) > MAX_LABEL_CHARS:
            fail(f"{path}.{name}", f"must be text of at most {MAX_LABEL_CHARS} characters")
            value = ""
        out[name] = value
    return out


def _number_rule(rule: Any, path: str, fail) -> dict:
    if not isinstance(rule, dict):
        fail(path, "must be an object of min, max, integer and unit")
        return {}
    for name in sorted(set(rule) - {"min", "max", "integer", "unit"}):
        fail(f"{path}.{name}", "unknown field")
    out: dict = {}
    for name in ("min", "max"):
        value = rule.get(name)
        if value is not None and not _is_finite(value):
            fail(f"{path}.{name}", "must be a finite number or null")
            value = None
        out[name] = value
    if out["min"] is not None and out["max"] is not None and out["min"] > out["max"]:
        fail(path, f"min {out['min']} is above max {out['max']}")
    integer = rule.get("integer", False)
    if not isinstance(integer, bool):
        fail(f"{path}.integer", "must be true or false")
    out["integer"] = bool(integer)
    out["unit"] = _code(rule.get("unit"), f"{path}.unit", fail)
    return out


# --------------------------------------------------------------------------------------------------------------
# Answers


def check_answers(document: dict, *, questions: Questions | None, skip: bool) -> tuple[CheckedAnswers, dict]:
    """Return the read's answers parsed and the errors by JSON path (empty when the answers are right).

    `questions` is the task's current set (None: the task never had questions). A read must
    name the current version when there are questions; case questions are required unless the
    read is a skip, lesion questions on every lesion.
    """
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    checked = CheckedAnswers()
    version = document.get("question_version")
    if questions is None:
        if version is not None:
            fail("question_version", "the task has no questions; leave question_version out")
    elif version is None:
        if not questions.is_empty:
            fail("question_version", f"this field is required (the task's questions are version {questions.version})")
    elif not _is_int(version):
        fail("question_version", "must be the question set's version (an integer)")
    elif version != questions.version:
        fail("question_version", f"question_version {version} is not the task's current version {questions.version}")
    if "question_version" in errors:
        # Answers to other questions cannot be checked meaningfully; the page must reload the task.
        return checked, errors

    case_questions = list(questions.case) if questions else []
    lesion_questions = list(questions.lesion) if questions else []
    checked.case = _check_scope(
        document.get("answers"), case_questions, "answers", fail, require=not skip, present="answers" in document
    )
    lesions = document.get("lesions")
    for index, lesion in enumerate(lesions if isinstance(lesions, list) else []):
        if not isinstance(lesion, dict):
            continue  # reported by the read's own validation
        answers = _check_scope(
            lesion.get("answers"),
            lesion_questions,
            f"lesions[{index}].answers",
            fail,
            require=True,
            present="answers" in lesion,
        )
        number = lesion.get("lesion")
        if _is_int(number) and answers:
            checked.lesions[number] = answers
    return checked, errors


def _check_scope(answers: Any, questions: list[dict], path: str, fail, *, require: bool, present: bool) -> dict:
    if present and answers is not None and not isinstance(answers, dict):
        fail(path, "must be an object of answers by question key")
        return {}
    answers = answers if isinstance(answers, dict) else {}
    by_key = {question["key"]: question for question in questions}
    for key in sorted(set(answers) - set(by_key)):
        fail(f"{path}.{key}", "unknown question")
    parsed = {}
    for question in questions:
        key = question["key"]
        value = answers.get(key)
        if value is None or (question["kind"] == TEXT and isinstance(value, str) and not value.strip()):
            if require and question.get("required"):
                fail(f"{path}.{key}", "required answer missing")
            continue
        problem = answer_problem(question, value)
        if problem:
            fail(f"{path}.{key}", problem)
        else:
            parsed[key] = value
    return parsed


def answer_problem(question: dict, value: Any) -> str | None:
    """Return why `value` is not an answer to `question`, or None when it is one."""
    kind = question["kind"]
    if kind == SINGLE_CHOICE:
        values = [option["value"] for option in question.get("options", [])]
        if not isinstance(value, str):
            return "must be one option value (a string)"
        if value not in values:
            return f"unknown option {value!r} (choose one of: {', '.join(values)})"
    elif kind == MULTIPLE_CHOICE:
        values = [option["value"] for option in question.get("options", [])]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return "must be a list of option values"
        unknown = [item for item in value if item not in values]
        if unknown:
            return f"unknown option {unknown[0]!r} (choose from: {', '.join(values)})"
        if len(set(value)) != len(value):
            return "lists an option twice"
    elif kind == LIKERT:
        scale = question.get("scale", {})
        low, high = scale.get("min", 1), scale.get("max", 5)
        if not _is_int(value):
            return f"must be a whole number from {low} to {high}"
        return _range_problem(value, low, high)
    elif kind == NUMBER:
        rule = question.get("number", {})
        if not _is_finite(value):
            return "must be a finite number"
        if rule.get("integer") and not (_is_int(value) or float(value).is_integer()):
            return f"must be a whole number ({value} sent)"
        return _range_problem(value, rule.get("min"), rule.get("max"))
    elif kind == YES_NO:
        if not isinstance(value, bool):
            return "must be true or false"
    elif kind == TEXT:
        max_length = question.get("max_length", DEFAULT_TEXT_LENGTH)
        if not isinstance(value, str):
            return "must be text"
        if len(value) > max_length:
            return f"at most {max_length} characters ({len(value)} sent)"
        return text_problem(value, multiline=True)
    return None


def answer_codes(question: dict, value: Any) -> list[dict]:
    """Return the codes ({"value", "scheme", "meaning"}) of a choice answer's options, in answer order.

    For SR and CSV exports: a single choice gives at most one code, a multiple choice one per chosen
    option; options without a code, other kinds and unknown values give none.
    """
    if question["kind"] not in CHOICE_KINDS or value is None:
        return []
    by_value = {option["value"]: option.get("code") for option in question.get("options", [])}
    chosen = value if isinstance(value, list) else [value]
    return [by_value[item] for item in chosen if isinstance(item, str) and by_value.get(item)]


def answer_is_valid(question: dict, value: Any) -> bool:
    """Return True when a stored answer still answers the question (consensus skips answers that do not)."""
    return value is not None and answer_problem(question, value) is None


def _range_problem(value: float, low: float | None, high: float | None) -> str | None:
    if low is not None and value < low:
        return f"{value} is below the minimum {low}"
    if high is not None and value > high:
        return f"{value} is above the maximum {high}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return is_finite_number(value)
