"""Results of a task for researchers, as the console shows them: figures, plots, the reader table, case views.

Every agreement figure comes from annotations.consensus.selectors (stored consensus
rows, statistics from annotations.core.agreement); this module joins those
results for the page, draws them with matplotlib's object API (no pyplot global
state, so concurrent requests cannot draw into each other's figure) and lays a
case's reads out over its slices. It must never compute an agreement figure of
its own, and must never be reachable by a reader: it shows everyone's marks.
Readers appear by pseudonym only.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from datetime import datetime

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from annotations.consensus import answer_selectors as answer_results
from annotations.consensus import selectors as consensus_results
from annotations.models import Case, Read, Task
from annotations.segmentation import selectors as segmentation_results
from viewer.models import Instance

# Plot slug -> caption; the slugs are part of the plot URLs.
PLOTS = {
    "bland-altman": "Bland–Altman of each reader against the consensus long axis",
    "length-scatter": "Reader long axes against the consensus, with each lesion's spread",
    "dice": "Dice distribution of the readers' masks",
    "gold-accuracy": "Reader accuracy on gold-standard cases",
}
MAX_BLAND_ALTMAN_PANELS = 12
_READER_COLOURS = ["#3fa7ff", "#f2b134", "#35c28b", "#c77dff", "#ff7eb6", "#7ee0ff", "#ffa26b", "#b4e05a"]


def task_results(*, task: Task) -> dict:
    """Return what the results page shows: the task's agreement figures, reader table and cases, joined."""
    agreement = consensus_results.task_agreement(task=task)
    cases = consensus_results.task_cases(task=task)
    limits = {row["reader_id"]: row for row in agreement["bland_altman"]}
    readers = [
        {**row, "bland_altman": limits.get(row["reader_id"])} for row in consensus_results.reader_table(task=task)
    ]
    return {
        "agreement": agreement,
        "readers": readers,
        "cases": cases,
        "cases_total": len(cases),
        "low_agreement_cases": [case for case in cases if case["low_agreement"]],
        "mask_proposals": segmentation_results.proposal_use(task=task),
    }


# --- questions ---------------------------------------------------------------------------

# Plot names of questions' answer distributions: question-<scope>-<key>.
QUESTION_PLOT_PREFIX = "question-"
# Question kinds with a confusion matrix against the answer key.
CONFUSION_KINDS = ("single_choice", "yes_no", "likert")


def question_results(*, task: Task) -> dict:
    """Return the results of the task's questions: per question its agreement, answer distribution,
    confusion against the answer key and each reader's accuracy; and the cases flagged for an answer.

    Every figure comes from annotations.consensus.answer_selectors (stored consensus answers).
    """
    questions = answer_results.task_questions(task=task)
    if not questions:
        return {"questions": [], "low_agreement_answer_cases": [], "gold_cases": 0}
    agreement = {(row["scope"], row["key"]): row for row in answer_results.question_agreement_of_task(task=task)}
    distribution = {(row["scope"], row["key"]): row for row in answer_results.answer_distribution(task=task)}
    accuracy = answer_results.answer_accuracy(task=task)
    labels = dict(Case.objects.filter(task=task).values_list("pk", "label"))
    rows = []
    for question in questions:
        place = (question["scope"], question["key"])
        readers = [
            {"pseudonym": reader["pseudonym"], **reader["questions"][question["key"]]}
            for reader in accuracy["readers"]
            if question["key"] in reader["questions"]
        ]
        confusion = None
        if question["kind"] in CONFUSION_KINDS and accuracy["gold_cases"]:
            confusion = _confusion_table(question, answer_results.gold_confusion(task=task, key=question["key"]))
        rows.append(
            {
                **question,
                "slug": _question_slug(question),
                "plot_name": QUESTION_PLOT_PREFIX + _question_slug(question),
                "agreement": agreement.get(place, {}),
                "distribution": distribution.get(place, {}),
                "readers": readers,
                "consensus_accuracy": accuracy["consensus"].get(question["key"]),
                "confusion": confusion,
            }
        )
    flagged = [
        {
            "case_id": row["case_id"],
            "label": labels.get(row["case_id"]) or f"Case {row['case_id']}",
            "flags": row["flags"],
        }
        for row in answer_results.low_agreement_answer_cases(task=task)
    ]
    return {"questions": rows, "low_agreement_answer_cases": flagged, "gold_cases": accuracy["gold_cases"]}


# A confusion table over more answers than this keeps only the answers that occur (a 13-site list
# would otherwise be a mostly empty 13 x 13 grid).
MAX_FULL_CONFUSION = 6


def _confusion_table(question: dict, confusion: dict) -> dict:
    """The service's confusion matrix as table rows (answer-key answers) and columns (readers' answers)."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    keep = list(range(len(labels)))
    if len(labels) > MAX_FULL_CONFUSION:
        keep = [i for i in keep if any(matrix[i]) or any(row[i] for row in matrix)]
    return {
        "columns": [_answer_label(question, labels[i]) for i in keep],
        "rows": [
            {"label": _answer_label(question, labels[i]), "counts": [matrix[i][j] for j in keep], "index": n}
            for n, i in enumerate(keep)
        ],
        "total": sum(map(sum, matrix)),
        "trimmed": len(keep) < len(labels),
    }


def question_plot_svg(*, task: Task, slug: str) -> bytes:
    """Return the answer distribution of one question (`<scope>-<key>`) as SVG; raise KeyError for none such."""
    question = next((q for q in answer_results.task_questions(task=task) if _question_slug(q) == slug), None)
    if question is None:
        raise KeyError(slug)
    distribution = next(
        row
        for row in answer_results.answer_distribution(task=task)
        if (row["scope"], row["key"]) == (question["scope"], question["key"])
    )
    return _svg(draw_answer_distribution(question, distribution))


def draw_answer_distribution(question: dict, distribution: dict) -> Figure:
    """Bars of how often each answer was given (every option, in its order), or a histogram of numbers."""
    figure, axes = _figure()
    axes.set_title(f"{question['label']} ({question['scope']})")
    if question["kind"] == "number":
        values = distribution.get("values") or []
        if not values:
            _empty(axes, "No answers yet")
            return figure
        axes.hist(values, bins=min(20, max(5, len(values) // 3)), color="#3fa7ff", edgecolor="white")
        unit = ((question.get("number") or {}).get("unit") or {}).get("value")
        axes.set_xlabel(unit or "answer")
        axes.set_ylabel("answers")
        return figure
    counts = distribution.get("counts") or {}
    if not counts:
        _empty(axes, "No answers yet")
        return figure
    labels = _answer_order(question, counts)
    axes.bar(
        [_answer_label(question, label) for label in labels],
        [counts.get(label, 0) for label in labels],
        color="#3fa7ff",
    )
    axes.set_ylabel("answers")
    axes.tick_params(axis="x", rotation=45 if len(labels) > 4 else 0, labelsize=8)
    return figure


def _question_slug(question: dict) -> str:
    return f"{question['scope']}-{question['key']}"


def _answer_order(question: dict, counts: dict) -> list:
    """The answers to show, in the question's own order (options, no/yes, the scale), then any others."""
    kind = question["kind"]
    if kind in ("single_choice", "multiple_choice"):
        order = [option["value"] for option in question.get("options", [])]
    elif kind == "yes_no":
        order = ["no", "yes"]
    elif kind == "likert":
        scale = question.get("scale", {})
        order = [str(point) for point in range(scale.get("min", 1), scale.get("max", 5) + 1)]
    else:
        order = []
    return order + sorted(label for label in counts if label not in order)


def _answer_label(question: dict, value) -> str:
    """How an answer reads on the page: an option's label, yes/no, or the value itself."""
    if isinstance(value, bool) or value in ("yes", "no"):
        return "yes" if value in (True, "yes") else "no"
    for option in question.get("options", []):
        if option["value"] == value:
            return option["label"]
    return str(value)


# --- plots -------------------------------------------------------------------------------


def plot_svg(*, task: Task, name: str) -> bytes:
    """Return the named results plot of the task as SVG bytes; raise KeyError for an unknown plot.

    `question-<scope>-<key>` names a question's answer distribution.
    """
    if name.startswith(QUESTION_PLOT_PREFIX):
        return question_plot_svg(task=task, slug=name.removeprefix(QUESTION_PLOT_PREFIX))
    if name not in PLOTS:
        raise KeyError(name)
    if name == "gold-accuracy":
        return _svg(draw_gold_accuracy(consensus_results.reader_table(task=task)))
    agreement = consensus_results.task_agreement(task=task)
    if name == "bland-altman":
        return _svg(draw_bland_altman(agreement))
    if name == "length-scatter":
        return _svg(draw_length_scatter(agreement))
    return _svg(draw_dice(agreement))


def draw_bland_altman(agreement: dict) -> Figure:
    """One panel per reader: difference from the consensus against the mean, with the reader's bias and limits."""
    limits = sorted(agreement["bland_altman"], key=lambda row: (-row["n"], row["pseudonym"] or ""))
    limits = limits[:MAX_BLAND_ALTMAN_PANELS]
    if not limits:
        figure, axes = _figure()
        _empty(axes, "No consensus lesions yet")
        axes.set_title("Long-axis agreement (Bland–Altman)")
        return figure
    points: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for point in agreement["length_scatter"]:
        points[point["reader_id"]].append((point["reader_mm"], point["consensus_mm"]))
    columns = min(3, len(limits))
    rows = math.ceil(len(limits) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows + 0.4), dpi=100, layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns, sharey=True, squeeze=False).ravel())
    for axes, row, colour in zip(grid, limits, _colours(len(limits)), strict=False):
        pairs = np.array(points[row["reader_id"]], dtype=float).reshape(-1, 2)
        axes.grid(True, alpha=0.3)
        axes.scatter(pairs.mean(axis=1), pairs[:, 0] - pairs[:, 1], s=14, alpha=0.75, color=colour)
        axes.axhline(row["bias"], color="#d62728", lw=1.2)
        if row["lower_limit"] is not None:
            axes.axhline(row["lower_limit"], color="#d62728", ls="--", lw=1)
            axes.axhline(row["upper_limit"], color="#d62728", ls="--", lw=1)
            note = f"bias {row['bias']:+.1f}, LoA {row['lower_limit']:+.1f} to {row['upper_limit']:+.1f} mm"
        else:
            note = f"bias {row['bias']:+.1f} mm (one lesion)"
        axes.axhline(0.0, color="#888", lw=0.8)
        axes.set_title(f"{row['pseudonym']} · n={row['n']}\n{note}", fontsize=8)
        axes.tick_params(labelsize=7)
    for axes in grid[len(limits) :]:
        axes.set_visible(False)
    figure.supxlabel("mean of reader and consensus long axis (mm)", fontsize=8)
    figure.supylabel("reader − consensus (mm)", fontsize=8)
    figure.suptitle("Long-axis agreement per reader (Bland–Altman)", fontsize=10)
    return figure


def draw_length_scatter(agreement: dict) -> Figure:
    """Reader against consensus long axis, the identity line, and each lesion's range of reader lengths."""
    figure, axes = _figure()
    axes.set_title("Reader and consensus long axes")
    scatter = agreement["length_scatter"]
    if not scatter:
        _empty(axes, "No consensus lesions yet")
        return figure
    by_lesion: dict[tuple[int, int], list[float]] = defaultdict(list)
    for point in scatter:
        by_lesion[(point["case_id"], point["lesion_index"])].append(point["reader_mm"])
    consensus_of = {(p["case_id"], p["lesion_index"]): p["consensus_mm"] for p in scatter}
    keys = list(by_lesion)
    axes.vlines(
        [consensus_of[key] for key in keys],
        [min(by_lesion[key]) for key in keys],
        [max(by_lesion[key]) for key in keys],
        color="#bbbbbb",
        lw=2,
        zorder=1,
        label="spread of each lesion",
    )
    axes.scatter(
        [p["consensus_mm"] for p in scatter], [p["reader_mm"] for p in scatter], s=14, alpha=0.7, color="#1f77b4"
    )
    everything = [p["consensus_mm"] for p in scatter] + [p["reader_mm"] for p in scatter]
    low, high = min(everything), max(everything)
    axes.plot([low, high], [low, high], color="#d62728", lw=1, label="reader = consensus")
    axes.legend(loc="upper left", fontsize=8)
    axes.set_xlabel("consensus (median) long axis (mm)")
    axes.set_ylabel("reader long axis (mm)")
    return figure


def draw_dice(agreement: dict) -> Figure:
    """Histograms of the mean pairwise Dice per lesion and of each reader's Dice to the consensus mask."""
    figure, axes = _figure()
    axes.set_title("Mask agreement (Dice)")
    dice = agreement["dice"]
    series = [
        (dice["pairwise_per_lesion"], "mean pairwise per lesion", "#2ca02c"),
        (dice["to_consensus"], "reader to consensus", "#9467bd"),
    ]
    if not any(values for values, _, _ in series):
        _empty(axes, "No masks painted yet")
        return figure
    bins = np.linspace(0.0, 1.0, 21)
    for values, label, colour in series:
        if values:
            axes.hist(values, bins=bins, alpha=0.6, color=colour, edgecolor="white", label=f"{label} (n={len(values)})")
    axes.set_xlim(0, 1)
    axes.legend(loc="upper left", fontsize=8)
    axes.set_xlabel("Dice coefficient")
    axes.set_ylabel("count")
    return figure


def draw_gold_accuracy(readers: list[dict]) -> Figure:
    """Each reader's mean absolute long-axis error on gold cases, labelled with the references found."""
    figure, axes = _figure()
    axes.set_title("Reader accuracy on gold-standard cases")
    rows = [row for row in readers if row.get("gold_mean_abs_error_mm") is not None]
    if not rows:
        _empty(axes, "No gold-standard reads yet")
        return figure
    rows.sort(key=lambda row: row["gold_mean_abs_error_mm"])
    labels = [row["pseudonym"] for row in rows]
    bars = axes.bar(labels, [row["gold_mean_abs_error_mm"] for row in rows], color="#9467bd")
    for bar, row in zip(bars, rows, strict=True):
        gold = row.get("gold") or {}
        found = f"{gold.get('matched', 0)}/{gold.get('matched', 0) + gold.get('missed', 0)}"
        axes.annotate(
            found, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7
        )
    axes.set_ylabel("mean |error| on gold cases (mm)")
    axes.tick_params(axis="x", rotation=45, labelsize=8)
    return figure


def _colours(n: int) -> list[str]:
    return [_READER_COLOURS[i % len(_READER_COLOURS)] for i in range(n)]


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.4, 3.8), dpi=100)
    axes = figure.subplots()
    axes.grid(True, alpha=0.3)
    return figure, axes


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="#666")
    axes.set_xticks([])
    axes.set_yticks([])


# --- one case ----------------------------------------------------------------------------


def case_detail(*, case: Case) -> dict:
    """Return each read of the case with its lines, the current consensus (from the service), and slices to draw."""
    reads = list(
        Read.objects.filter(case=case).select_related("reader").prefetch_related("marks__instance").order_by("id")
    )
    colours: dict[int, str] = {}
    for read in reads:
        colours.setdefault(read.reader_id, _READER_COLOURS[len(colours) % len(_READER_COLOURS)])
    consensus = consensus_results.case_consensus(case=case)
    if consensus is not None:
        consensus = {**consensus, "computed_at": datetime.fromisoformat(consensus["computed_at"])}
    lesions = consensus["lesions"] if consensus else []
    lines_by_sop: dict[str, list[dict]] = defaultdict(list)
    read_rows = []
    for read in reads:
        marks = list(read.marks.all())
        for mark in marks:
            lines_by_sop[mark.instance.sop_instance_uid].append(
                {
                    "x1": mark.start_col, "y1": mark.start_row, "x2": mark.end_col, "y2": mark.end_row,
                    "colour": colours[read.reader_id], "kind": mark.kind, "consensus": False,
                    "title": f"{read.reader.pseudonym} lesion {mark.lesion_index} {mark.kind}: {mark.length_mm:.1f} mm",
                }
            )  # fmt: skip
        lesion_rows: dict[int, dict] = defaultdict(dict)
        for mark in marks:
            lesion_rows[mark.lesion_index][mark.kind] = mark.length_mm
        read_rows.append(
            {
                "read": read,
                "pseudonym": read.reader.pseudonym,
                "colour": colours[read.reader_id],
                "lesions": [{"index": index, **lengths} for index, lengths in sorted(lesion_rows.items())],
                "mask_slices": read.mask_slices.count(),
            }
        )
    for lesion in lesions:
        for kind in ("long_axis", "short_axis"):
            line = lesion[kind]
            if line and line.get("sop_instance_uid"):
                (x1, y1), (x2, y2) = line["start"], line["end"]
                lines_by_sop[line["sop_instance_uid"]].append(
                    {
                        "x1": x1, "y1": y1, "x2": x2, "y2": y2, "colour": "#ffffff", "kind": kind, "consensus": True,
                        "title": f"consensus lesion {lesion['lesion_index']} {kind}: {line.get('length_mm', 0):.1f} mm",
                    }
                )  # fmt: skip
    instances = {
        instance.sop_instance_uid: instance
        for instance in Instance.objects.filter(series=case.series, sop_instance_uid__in=list(lines_by_sop))
    }
    slices = [
        {"instance": instances[sop], "lines": lines}
        for sop, lines in sorted(lines_by_sop.items(), key=lambda item: -sum(line["consensus"] for line in item[1]))
        if sop in instances
    ]
    return {"case": case, "reads": read_rows, "consensus": consensus, "lesions": lesions, "slices": slices[:6]}
