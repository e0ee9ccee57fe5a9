"""The results page of a follow-up task: consensus RECIST per patient and time point, agreement, plots.

Reads stored longitudinal consensus rows (services.longitudinal_consensus) and draws inline SVG
(console.svg_plots): a spider plot of % change from baseline, a waterfall of best response, one patient's
lesion trajectories with every reader's and the consensus values, and each patient's timeline.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from annotations.consensus.longitudinal_consensus import follow_up_task_agreement
from annotations.console.svg_plots import (
    TimelinePoint,
    spider_svg,
    timeline_svg,
    trajectories_svg,
    waterfall_svg,
)
from annotations.core import recist
from annotations.core.longitudinal_consensus import ALGORITHM_VERSION
from annotations.follow_up.time_points import baseline_lesions_for, time_points_of
from annotations.models import Case, CaseConsensus, ConsensusLesion, Reader, Task


def parse_da(value: str) -> dt.date | None:
    """Return a DICOM DA (YYYYMMDD) as a date, or None."""
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def case_timeline_svg(case: Case) -> str:
    """Return the case's time points on a date axis."""
    return timeline_svg(
        [
            TimelinePoint(parse_da(point.study_date), point.label, point.series.series_description or "")
            for point in time_points_of(case)
        ],
        title=f"Time points of {case.label}",
    )


def follow_up_results(*, task: Task, case_id: int | None = None) -> dict:
    """Return the follow-up results page's figures, tables and SVG plots."""
    cases = list(Case.objects.filter(task=task).order_by("pk"))
    current = {
        stored.case_id: stored
        for stored in CaseConsensus.objects.filter(
            case__task=task, is_current=True, algorithm_version=ALGORITHM_VERSION
        )
    }
    rows, spider, bars = [], {}, []
    for case in cases:
        stored = current.get(case.pk)
        consensus = stored.summary.get("consensus_recist", []) if stored else []
        truth = (
            {entry["index"]: entry["response"] for entry in (stored.summary.get("truth_recist") or [])}
            if stored
            else {}
        )
        rows.append({"case": case, "consensus": consensus, "truth": truth, "n_reads": stored.n_reads if stored else 0})
        if consensus:
            spider[case.label] = [(entry["index"], entry["change_from_baseline_pct"]) for entry in consensus]
            changes = [
                entry["change_from_baseline_pct"]
                for entry in consensus
                if entry["change_from_baseline_pct"] is not None
            ]
            best = recist.best_overall_response([recist.Response(entry["response"]) for entry in consensus])
            if changes:
                bars.append((case.label, min(changes), str(best)))
    chosen = next((case for case in cases if case.pk == case_id), None) or next(
        (case for case in cases if case.pk in current), None
    )
    return {
        "follow_up_rows": rows,
        "follow_up_agreement": follow_up_task_agreement(task=task),
        "spider_svg": spider_svg(spider) if spider else "",
        "waterfall_svg": waterfall_svg(bars) if bars else "",
        "trajectory_case": chosen,
        "trajectories_svg": trajectories_svg(lesion_trajectories(chosen, current.get(chosen.pk)))
        if chosen is not None and chosen.pk in current
        else "",
        "timeline_svg": case_timeline_svg(chosen) if chosen is not None else "",
    }


def lesion_trajectories(case: Case, stored: CaseConsensus) -> dict[str, list[tuple[int, float | None]]]:
    """Return per lesion the consensus diameter and each reader's at every time point (baseline from the key)."""
    lines: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    baseline = {lesion["id"]: lesion for lesion in baseline_lesions_for(case=case, reader=None)}
    names = {}
    rows = ConsensusLesion.objects.filter(consensus=stored, statistics__is_new=False).order_by("lesion_index")
    reader_ids = {member["reader_id"] for row in rows for member in row.members}
    names = dict(Reader.objects.filter(pk__in=reader_ids).values_list("pk", "pseudonym"))
    for key, lesion in baseline.items():
        length = (lesion.get("long_axis") or {}).get("length_mm")
        lines[f"consensus {key}"].append((0, length))
    for row in rows:
        key, index = row.statistics.get("key"), row.statistics.get("time_point")
        size = row.long_axis_median_mm if row.statistics.get("status") == "measured" else 0.0
        lines[f"consensus {key}"].append((index, size))
        for member in row.members:
            name = f"{names.get(member['reader_id'], member['reader_id'])} {key}"
            if not lines[name]:
                lines[name].append((0, (baseline.get(key, {}).get("long_axis") or {}).get("length_mm")))
            lines[name].append((index, member["length_mm"]))
    return dict(lines)
