"""Consensus and agreement of answers to task questions, the pure core: values in, dataclass-free JSON out.

Per question of one case (or one consensus lesion): plurality with its support fraction
for single choice and yes/no (ties reported as ties), per-option support for multiple
choice, median and IQR for numbers and Likert scales; text answers are only counted.
Across cases: Fleiss' kappa (categorical kinds) and Krippendorff's alpha (nominal for
choices and yes/no, ordinal for Likert, interval for numbers). Accuracy against an answer
key compares a reader's answer with the key's. Never imports Django; the answers are the
plain values of the read document (docs/read-format.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from annotations.core.agreement import fleiss_kappa
from annotations.core.answers import (
    LIKERT,
    MULTIPLE_CHOICE,
    NUMBER,
    SINGLE_CHOICE,
    TEXT,
    YES_NO,
    answer_is_valid,
)

NOMINAL = "nominal"
ORDINAL = "ordinal"
INTERVAL = "interval"
# The level of measurement Krippendorff's alpha uses for each kind (None: no alpha).
ALPHA_LEVEL = {SINGLE_CHOICE: NOMINAL, YES_NO: NOMINAL, LIKERT: ORDINAL, NUMBER: INTERVAL}

# Low-agreement flags of one case (docs/consensus.md).
MIN_PLURALITY_FRACTION = 0.5  # a choice whose plurality has at most half the votes is split
MAX_LIKERT_IQR = 1.0  # a Likert IQR above one point
MAX_NUMBER_IQR_FRACTION = 0.25  # a number's IQR above a quarter of its median's size
MIN_FLAG_RATERS = 3  # two readers disagreeing is no pattern yet


def valid_answers(question: dict, answers: Mapping[int, Any]) -> dict[int, Any]:
    """Return the answers (by reader id) that still fit the question; others (older versions) are left out."""
    return {reader: value for reader, value in answers.items() if answer_is_valid(question, value)}


def question_consensus(
    question: dict, answers: Mapping[int, Any], *, weights: Mapping[int, float] | None = None
) -> dict:
    """Return one question's consensus over the readers' answers (reader id -> value).

    Choice kinds: `counts` (votes, weighted when weights are given), `value` (the plurality,
    None when tied), `tied` (the values sharing the top when tied), `support_fraction`.
    Numbers and Likert: `median`, `q1`, `q3`, `iqr`, `min`, `max`. Always `n` (readers answering)
    and `by_reader` (reader id as text -> answer).
    """
    kind = question["kind"]
    answers = valid_answers(question, answers)
    # Who answered what, so agreement across cases and exports need not reload the reads.
    result: dict = {"kind": kind, "n": len(answers), "by_reader": {str(r): v for r, v in sorted(answers.items())}}
    if not answers:
        return result
    weight_of = {reader: float((weights or {}).get(reader, 1.0)) for reader in answers}
    total = sum(weight_of.values()) or 1.0
    if kind in (SINGLE_CHOICE, YES_NO):
        counts: dict = {}
        for reader, value in answers.items():
            counts[_label(value)] = counts.get(_label(value), 0.0) + weight_of[reader]
        top = max(counts.values())
        leaders = sorted(label for label, votes in counts.items() if math.isclose(votes, top))
        result["counts"] = {label: _round(votes) for label, votes in sorted(counts.items())}
        result["support_fraction"] = _round(top / total)
        result["tied"] = leaders if len(leaders) > 1 else []
        result["value"] = _unlabel(kind, leaders[0]) if len(leaders) == 1 else None
    elif kind == MULTIPLE_CHOICE:
        support: dict[str, float] = {option["value"]: 0.0 for option in question.get("options", [])}
        for reader, values in answers.items():
            for value in values:
                support[value] += weight_of[reader]
        fractions = {value: _round(votes / total) for value, votes in support.items()}
        result["support_fraction"] = fractions
        # An option belongs to the consensus when more than half the (weighted) readers chose it.
        result["value"] = [value for value, fraction in fractions.items() if fraction > 0.5]
    elif kind in (LIKERT, NUMBER):
        values = np.array([float(value) for value in answers.values()])
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        result.update(
            median=_round(median),
            q1=_round(q1),
            q3=_round(q3),
            iqr=_round(q3 - q1),
            min=_round(values.min()),
            max=_round(values.max()),
        )
    elif kind == TEXT:
        pass  # free text has no consensus value; exports list the answers themselves
    return result


def low_agreement(question: dict, consensus: dict) -> str | None:
    """Return why one question's consensus counts as low agreement (for the case's flags), or None."""
    if consensus.get("n", 0) < MIN_FLAG_RATERS:
        return None
    kind = question["kind"]
    if kind in (SINGLE_CHOICE, YES_NO):
        if consensus["tied"]:
            return f"answers tie between {', '.join(consensus['tied'])}"
        if consensus["support_fraction"] <= MIN_PLURALITY_FRACTION:
            return f"only {consensus['support_fraction']:.0%} answer {_label(consensus['value'])}"
    elif kind == LIKERT and consensus["iqr"] > MAX_LIKERT_IQR:
        return f"answers spread over an IQR of {consensus['iqr']:g} points"
    elif kind == NUMBER:
        scale = abs(consensus["median"]) or 1.0
        if consensus["iqr"] > MAX_NUMBER_IQR_FRACTION * scale:
            return f"answers spread over an IQR of {consensus['iqr']:g} around {consensus['median']:g}"
    return None


def answer_matches_key(question: dict, answer: Any, key: Any) -> dict | None:
    """Return how a reader's answer compares with the answer key's: {"correct": bool} (+ "error" for numbers).

    None when either is missing or no longer fits the question. Numbers are correct when within
    5 % of the key (or equal when the key is 0); multiple choice needs the same set.
    """
    if not (answer_is_valid(question, answer) and answer_is_valid(question, key)):
        return None
    kind = question["kind"]
    if kind == NUMBER:
        error = float(answer) - float(key)
        tolerance = 0.05 * abs(float(key))
        return {"correct": abs(error) <= tolerance, "error": _round(error)}
    if kind == LIKERT:
        return {"correct": answer == key, "error": int(answer) - int(key)}
    if kind == MULTIPLE_CHOICE:
        return {"correct": set(answer) == set(key)}
    if kind == TEXT:
        return {"correct": answer.strip().casefold() == key.strip().casefold()}
    return {"correct": answer == key}


def accuracy_by_reader(gold_blocks: Iterable[Mapping]) -> dict[int, dict[str, dict]]:
    """Return each reader's accuracy per question summed over cases' answer-key comparisons.

    `gold_blocks` are the "gold" parts of stored consensus answers ({"readers": {id: {key:
    {"n", "correct", "errors"}}}}). Each question gets n, correct, accuracy and, for numbers
    and Likert, the mean absolute error; "all" sums every question.
    """
    totals: dict[int, dict[str, dict]] = {}
    for block in gold_blocks:
        for reader_id, questions in (block.get("readers") or {}).items():
            mine = totals.setdefault(int(reader_id), {})
            for key, figures in questions.items():
                for name in (key, "all"):
                    into = mine.setdefault(name, {"n": 0, "correct": 0, "errors": []})
                    into["n"] += figures["n"]
                    into["correct"] += figures["correct"]
                    if name != "all":
                        into["errors"].extend(figures.get("errors") or [])
    for questions in totals.values():
        for figures in questions.values():
            errors = figures.pop("errors")
            figures["accuracy"] = _round(figures["correct"] / figures["n"]) if figures["n"] else None
            figures["mean_abs_error"] = _round(float(np.mean(np.abs(errors)))) if errors else None
    return totals


# Weights of answer votes: like the length weights, bounded so one lucky reader does not decide alone.
ANSWER_WEIGHT_RANGE = (0.2, 5.0)


def answer_weights(accuracy: Mapping[int, Mapping[str, dict]]) -> dict[int, float]:
    """Return a weight per reader from gold answer accuracy: smoothed odds of a right answer relative to the
    median reader's, clipped to ANSWER_WEIGHT_RANGE. Readers without answer-key comparisons get none."""
    smoothed = {
        reader: (figures["all"]["correct"] + 1.0) / (figures["all"]["n"] + 2.0)
        for reader, figures in accuracy.items()
        if figures.get("all", {}).get("n")
    }
    if not smoothed:
        return {}
    odds = {reader: p / (1.0 - p) for reader, p in smoothed.items()}
    typical = float(np.median(list(odds.values())))
    return {reader: _round(float(np.clip(value / typical, *ANSWER_WEIGHT_RANGE))) for reader, value in odds.items()}


# --------------------------------------------------------------------------------------------------------------
# Agreement across subjects (cases, or consensus lesions)


def ratings_matrix(question: dict, subjects: Sequence[Mapping[int, Any]]) -> tuple[np.ndarray, list]:
    """Return (subjects x readers matrix of category codes or numbers with NaN for missing, category values).

    Categorical kinds are coded 0..k-1 in the question's option order (yes_no: no=0, yes=1; Likert:
    the scale's points); numbers are kept as they are, with no categories.
    """
    kind = question["kind"]
    readers = sorted({reader for subject in subjects for reader in subject})
    column = {reader: index for index, reader in enumerate(readers)}
    matrix = np.full((len(subjects), len(readers)), np.nan)
    if kind == SINGLE_CHOICE:
        categories: list = [option["value"] for option in question.get("options", [])]
    elif kind == YES_NO:
        categories = [False, True]
    elif kind == LIKERT:
        scale = question.get("scale", {})
        categories = list(range(scale.get("min", 1), scale.get("max", 5) + 1))
    elif kind == NUMBER:
        categories = []
    else:
        raise ValueError(f"no agreement statistic for {kind} questions")
    code = {value: index for index, value in enumerate(categories)}
    for row, subject in enumerate(subjects):
        for reader, value in valid_answers(question, subject).items():
            matrix[row, column[reader]] = float(value) if kind == NUMBER else code[value]
    return matrix, categories


def question_agreement(question: dict, subjects: Sequence[Mapping[int, Any]]) -> dict:
    """Return agreement of one question over subjects (each a reader id -> answer mapping).

    `alpha` is Krippendorff's alpha at the kind's level (None when it cannot be computed);
    `fleiss_kappa` uses the subjects rated by the most common number of readers (categorical
    kinds only), `n_subjects_kappa` says how many that was.
    """
    kind = question["kind"]
    level = ALPHA_LEVEL.get(kind)
    result: dict = {"kind": kind, "level": level, "alpha": None, "fleiss_kappa": None, "n_subjects_kappa": 0}
    if level is None:
        return result
    matrix, categories = ratings_matrix(question, subjects)
    rated = (~np.isnan(matrix)).sum(axis=1)
    result["n_subjects"] = int((rated >= 2).sum())
    if result["n_subjects"]:
        result["alpha"] = _finite(krippendorff_alpha(matrix, level=level))
    if categories:
        counts = [int(n) for n in rated if n >= 2]
        if counts:
            common = max(set(counts), key=lambda n: (counts.count(n), n))
            rows = [row for row, n in zip(matrix, rated, strict=True) if n == common]
            table = np.array([np.bincount(row[~np.isnan(row)].astype(int), minlength=len(categories)) for row in rows])
            if len(categories) >= 2:
                result["fleiss_kappa"] = _finite(fleiss_kappa(table).kappa)
                result["n_subjects_kappa"] = len(rows)
    return result


def krippendorff_alpha(matrix: np.ndarray, *, level: str) -> float:
    """Return Krippendorff's alpha of a subjects x raters matrix (NaN = missing) at the given level.

    The coincidence-matrix form (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"):
    alpha = 1 - (n - 1) * sum(o_ck * d_ck) / sum(n_c * n_k * d_ck), over units with 2+ values.
    Nominal, ordinal (ranks of the values' frequencies) or interval (squared difference) distances.
    NaN when there is no variation to disagree about.
    """
    data = np.asarray(matrix, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"need a subjects x raters matrix, got shape {data.shape}")
    if level not in (NOMINAL, ORDINAL, INTERVAL):
        raise ValueError(f"level must be nominal, ordinal or interval, got {level!r}")
    values = np.unique(data[~np.isnan(data)])
    index = {value: position for position, value in enumerate(values)}
    coincidences = np.zeros((len(values), len(values)))
    for row in data:
        present = row[~np.isnan(row)]
        if present.size < 2:
            continue
        codes = np.array([index[value] for value in present])
        unit = np.zeros((len(values), len(values)))
        for a in range(codes.size):
            for b in range(codes.size):
                if a != b:
                    unit[codes[a], codes[b]] += 1.0
        coincidences += unit / (present.size - 1)
    totals = coincidences.sum(axis=1)
    n = totals.sum()
    if n <= 1 or len(values) < 2:
        return float("nan")
    if level == NOMINAL:
        distance = 1.0 - np.eye(len(values))
    elif level == INTERVAL:
        distance = np.subtract.outer(values, values) ** 2
    else:
        cumulative = np.cumsum(totals)
        distance = np.zeros((len(values), len(values)))
        for c in range(len(values)):
            for k in range(len(values)):
                low, high = min(c, k), max(c, k)
                between = cumulative[high] - (cumulative[low - 1] if low > 0 else 0.0)
                distance[c, k] = (between - (totals[c] + totals[k]) / 2.0) ** 2
    observed = float((coincidences * distance).sum())
    expected = float((np.outer(totals, totals) * distance).sum())
    if expected == 0:
        return float("nan")
    return 1.0 - (n - 1.0) * observed / expected


def _label(value: Any) -> str:
    """Return a JSON object key for an answer value (yes/no as "yes" and "no")."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _unlabel(kind: str, label: str) -> Any:
    return label == "yes" if kind == YES_NO else label


def _round(value: float) -> float:
    return round(float(value), 6)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
