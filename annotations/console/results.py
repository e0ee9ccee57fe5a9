"""Results of a task for researchers: agreement figures, plots, the reader table and case views.

Computed from stored rows only: current CaseConsensus / ConsensusLesion results,
ReaderQuality figures and the reads' Mark rows. Readers appear by pseudonym,
never by name. Plots are drawn server-side with matplotlib's object API (no
pyplot global state, so concurrent requests cannot draw into each other's figure).
This module must never be reachable by a reader: it shows everyone's marks.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db.models import Avg, Count
from matplotlib.figure import Figure

from annotations.models import Case, CaseConsensus, ConsensusLesion, Mark, Read, Reader, ReaderQuality, Task
from annotations.models.reads import MarkKind
from viewer.models import Instance

PLOTS = ("bland-altman", "cv-histogram", "reader-accuracy")
_READER_COLOURS = ["#3fa7ff", "#f2b134", "#35c28b", "#c77dff", "#ff7eb6", "#7ee0ff", "#ffa26b", "#b4e05a"]


@dataclass(frozen=True)
class AgreementPoint:
    """One reader's long axis of a consensus lesion next to the lesion's median."""

    case_id: int
    lesion_index: int
    reader_id: int
    reader_mm: float
    median_mm: float


def current_lesions(task: Task):
    return ConsensusLesion.objects.filter(consensus__case__task=task, consensus__is_current=True, accepted=True)


def agreement_points(*, task: Task) -> list[AgreementPoint]:
    """Return every member reader's long axis (mm) for every accepted consensus lesion of the task."""
    lesions = list(current_lesions(task).select_related("consensus"))
    read_ids = {member["read_id"] for lesion in lesions for member in lesion.members}
    lengths = {
        (mark.read_id, mark.lesion_index): mark.length_mm
        for mark in Mark.objects.filter(read_id__in=read_ids, kind=MarkKind.LONG_AXIS)
    }
    points = []
    for lesion in lesions:
        member_lengths = [
            (member["reader_id"], lengths.get((member["read_id"], member["lesion_index"]))) for member in lesion.members
        ]
        member_lengths = [(reader, length) for reader, length in member_lengths if length is not None]
        if not member_lengths:
            continue
        median = lesion.long_axis_median_mm or statistics.median(length for _, length in member_lengths)
        points.extend(
            AgreementPoint(lesion.consensus.case_id, lesion.lesion_index, reader, length, median)
            for reader, length in member_lengths
        )
    return points


def agreement_summary(*, task: Task) -> dict:
    """Return the task's headline agreement figures (None where nothing is computed yet)."""
    results = CaseConsensus.objects.filter(case__task=task, is_current=True)
    lesions = list(current_lesions(task).values("long_axis_cv", "long_axis_iqr_mm", "support_fraction"))
    points = agreement_points(task=task)
    differences = np.array([p.reader_mm - p.median_mm for p in points]) if points else np.array([])
    cvs = [row["long_axis_cv"] for row in lesions if row["long_axis_cv"] is not None]
    iqrs = [row["long_axis_iqr_mm"] for row in lesions if row["long_axis_iqr_mm"] is not None]
    return {
        "cases_with_consensus": results.count(),
        "cases_total": Case.objects.filter(task=task).count(),
        "low_agreement_cases": results.filter(low_agreement=True).count(),
        "consensus_lesions": len(lesions),
        "median_cv_percent": round(100 * statistics.median(cvs), 1) if cvs else None,
        "median_iqr_mm": round(statistics.median(iqrs), 2) if iqrs else None,
        "mean_support_fraction": (
            round(statistics.fmean(r["support_fraction"] for r in lesions), 2) if lesions else None
        ),
        "bias_mm": round(float(differences.mean()), 2) if differences.size else None,
        "limits_of_agreement_mm": (
            [round(float(differences.mean() - 1.96 * differences.std(ddof=1)), 2),
             round(float(differences.mean() + 1.96 * differences.std(ddof=1)), 2)]
            if differences.size > 1 else None
        ),
    }  # fmt: skip


def reader_table(*, task: Task) -> list[dict]:
    """Return one row per reader of the task: reads, time per case, gold accuracy and STAPLE figures."""
    reads = (
        Read.objects.filter(case__task=task)
        .values("reader_id")
        .annotate(reads=Count("id"), cases=Count("case_id", distinct=True), mean_time_s=Avg("duration_s"))
    )
    by_reader = {row["reader_id"]: dict(row) for row in reads}
    for quality in ReaderQuality.objects.filter(task=task):
        row = by_reader.setdefault(quality.reader_id, {"reader_id": quality.reader_id, "reads": quality.n_reads})
        row.update(
            gold_mean_abs_error_mm=quality.gold_mean_abs_error_mm,
            sensitivity=quality.sensitivity,
            specificity=quality.specificity,
            weight=quality.weight,
        )
        if row.get("mean_time_s") is None:
            row["mean_time_s"] = quality.mean_time_s
    pseudonyms = dict(Reader.objects.filter(id__in=by_reader).values_list("id", "pseudonym"))
    rows = [{**row, "pseudonym": pseudonyms.get(reader_id, "?")} for reader_id, row in by_reader.items()]
    return sorted(rows, key=lambda row: (-row.get("reads", 0), row["pseudonym"]))


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=(6.4, 3.8), dpi=100)
    axes = figure.subplots()
    axes.grid(True, alpha=0.3)
    return figure, axes


def _empty(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="#666")
    axes.set_xticks([])
    axes.set_yticks([])


def plot_svg(*, task: Task, name: str) -> bytes:
    """Return the named results plot of the task as SVG bytes; raise KeyError for an unknown plot."""
    if name not in PLOTS:
        raise KeyError(name)
    figure, axes = _figure()
    if name == "bland-altman":
        points = agreement_points(task=task)
        if not points:
            _empty(axes, "No consensus lesions yet")
        else:
            means = np.array([(p.reader_mm + p.median_mm) / 2 for p in points])
            diffs = np.array([p.reader_mm - p.median_mm for p in points])
            axes.scatter(means, diffs, s=18, alpha=0.7, color="#1f77b4")
            bias = diffs.mean()
            axes.axhline(bias, color="#d62728", label=f"bias {bias:+.2f} mm")
            if len(diffs) > 1:
                spread = 1.96 * diffs.std(ddof=1)
                axes.axhline(bias + spread, color="#d62728", ls="--", label=f"±1.96 SD ({spread:.2f} mm)")
                axes.axhline(bias - spread, color="#d62728", ls="--")
            axes.legend(loc="upper right", fontsize=8)
            axes.set_xlabel("mean of reader and consensus long axis (mm)")
            axes.set_ylabel("reader − consensus (mm)")
        axes.set_title("Long-axis agreement (Bland–Altman)")
    elif name == "cv-histogram":
        cvs = [100 * v for v in current_lesions(task).values_list("long_axis_cv", flat=True) if v is not None]
        if not cvs:
            _empty(axes, "No consensus lesions yet")
        else:
            axes.hist(cvs, bins=min(20, max(5, len(cvs))), color="#2ca02c", edgecolor="white")
            axes.set_xlabel("coefficient of variation of the long axis (%)")
            axes.set_ylabel("lesions")
        axes.set_title("Between-reader variation per lesion")
    else:
        rows = [row for row in reader_table(task=task) if row.get("gold_mean_abs_error_mm") is not None]
        if not rows:
            _empty(axes, "No gold-standard reads yet")
        else:
            labels = [row["pseudonym"] for row in rows]
            axes.bar(labels, [row["gold_mean_abs_error_mm"] for row in rows], color="#9467bd")
            axes.set_ylabel("mean |error| on gold cases (mm)")
            axes.tick_params(axis="x", rotation=45)
        axes.set_title("Reader accuracy on gold-standard cases")
    return _svg(figure)


def case_detail(*, case: Case) -> dict:
    """Return each read of the case with its lines, the current consensus, and the slices to draw them on."""
    reads = list(
        Read.objects.filter(case=case).select_related("reader").prefetch_related("marks__instance").order_by("id")
    )
    colours = {}
    for read in reads:
        colours.setdefault(read.reader_id, _READER_COLOURS[len(colours) % len(_READER_COLOURS)])
    consensus = CaseConsensus.objects.filter(case=case, is_current=True).order_by("-computed_at").first()
    lesions = list(consensus.lesions.all()) if consensus else []
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
        lesion_rows = defaultdict(dict)
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
            line = getattr(lesion, kind)
            if line and line.get("sop_instance_uid"):
                (x1, y1), (x2, y2) = line["start"], line["end"]
                lines_by_sop[line["sop_instance_uid"]].append(
                    {
                        "x1": x1, "y1": y1, "x2": x2, "y2": y2, "colour": "#ffffff", "kind": kind, "consensus": True,
                        "title": f"consensus lesion {lesion.lesion_index} {kind}: {line.get('length_mm', 0):.1f} mm",
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
