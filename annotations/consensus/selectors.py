"""Consensus results for admins and researchers: per-task agreement figures, the reader table, per-case consensus.

Selectors over the stored current consensus rows (nothing is recomputed from
reads here), shaped as plain dicts for the console, plots and exports. They must
never be called on behalf of a reader: consensus is hidden from readers while a
task is open, and the caller checks the role before calling.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from annotations.assignment.services import read_target
from annotations.core.agreement import (
    bland_altman,
    fleiss_kappa,
    icc_absolute_agreement,
    largest_complete_block,
)
from annotations.models import Case, CaseConsensus, ConsensusLesion, Reader, ReaderQuality, Task


def _current(task: Task):
    return CaseConsensus.objects.filter(case__task=task, is_current=True)


def task_agreement(*, task: Task) -> dict:
    """Return the task's agreement figures: ICC of long axes, Bland-Altman per reader, Dice, Fleiss' kappa, flags."""
    consensus_rows = list(_current(task).values("pk", "case_id", "summary", "low_agreement"))
    lesions = list(
        ConsensusLesion.objects.filter(consensus_id__in=[row["pk"] for row in consensus_rows]).values(
            "consensus_id", "lesion_index", "accepted", "long_axis_median_mm", "statistics"
        )
    )
    case_of = {row["pk"]: row["case_id"] for row in consensus_rows}
    accepted = [lesion for lesion in lesions if lesion["accepted"] and lesion["long_axis_median_mm"] is not None]
    # Lesions x readers matrix of long-axis lengths, NaN where a reader did not measure the lesion.
    reader_ids = sorted({int(r) for lesion in accepted for r in lesion["statistics"].get("reader_long_axis_mm", {})})
    column = {reader_id: j for j, reader_id in enumerate(reader_ids)}
    matrix = np.full((len(accepted), len(reader_ids)), np.nan)
    scatter = []
    per_reader: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for i, lesion in enumerate(accepted):
        for reader, length in lesion["statistics"].get("reader_long_axis_mm", {}).items():
            matrix[i, column[int(reader)]] = length
            per_reader[int(reader)][0].append(length)
            per_reader[int(reader)][1].append(lesion["long_axis_median_mm"])
            scatter.append(
                {
                    "case_id": case_of[lesion["consensus_id"]],
                    "lesion_index": lesion["lesion_index"],
                    "reader_id": int(reader),
                    "reader_mm": length,
                    "consensus_mm": lesion["long_axis_median_mm"],
                }
            )
    icc = None
    rows, cols = largest_complete_block(matrix) if matrix.size else (np.empty(0), np.empty(0))
    if rows.size >= 2 and cols.size >= 2:
        block = matrix[np.ix_(rows, cols)]
        icc = {**icc_absolute_agreement(block).as_json(), "reader_ids": [reader_ids[j] for j in cols]}
    pseudonyms = dict(Reader.objects.filter(pk__in=list(per_reader)).values_list("pk", "pseudonym"))
    agreement_per_reader = [
        {"reader_id": reader, "pseudonym": pseudonyms.get(reader), **bland_altman(measured, reference).as_json()}
        for reader, (measured, reference) in sorted(per_reader.items())
    ]
    pairwise = [lesion["statistics"]["mean_pairwise_dice"] for lesion in lesions if _has(lesion, "mean_pairwise_dice")]
    to_consensus = [
        value for lesion in lesions for value in (lesion["statistics"].get("dice_to_consensus") or {}).values()
    ]
    return {
        "task_id": task.pk,
        "cases_with_consensus": len(consensus_rows),
        "lesions": len(lesions),
        "accepted_lesions": len(accepted),
        "icc_long_axis": icc,
        "bland_altman": agreement_per_reader,
        "length_scatter": scatter,
        "dice": {
            "mean_pairwise": float(np.mean(pairwise)) if pairwise else None,
            "pairwise_per_lesion": pairwise,
            "to_consensus_mean": float(np.mean(to_consensus)) if to_consensus else None,
            "to_consensus": to_consensus,
        },
        "presence_kappa": _presence_kappa(consensus_rows),
        "flagged_case_ids": sorted(row["case_id"] for row in consensus_rows if row["low_agreement"]),
    }


def _has(lesion: dict, key: str) -> bool:
    return lesion["statistics"].get(key) is not None


def _presence_kappa(consensus_rows: list[dict]) -> dict | None:
    """Fleiss' kappa for lesion present / absent over the cases read by the most common number of readers."""
    tallies = [
        (
            row["summary"].get("n_no_lesion", 0),
            row["summary"].get("n_readers", 0) - row["summary"].get("n_no_lesion", 0),
        )
        for row in consensus_rows
        if row["summary"].get("n_readers", 0) >= 2
    ]
    if not tallies:
        return None
    # Fleiss' kappa needs the same number of ratings per subject.
    n, _ = Counter(absent + present for absent, present in tallies).most_common(1)[0]
    table = np.array([tally for tally in tallies if sum(tally) == n])
    if table.shape[0] < 2:
        return None
    result = fleiss_kappa(table)
    kappa = result.kappa if np.isfinite(result.kappa) else None
    return {**result.__dict__, "kappa": kappa}


def reader_table(*, task: Task) -> list[dict]:
    """Return one row per reader of the task: reads, time, gold accuracy, STAPLE figures, weight (by pseudonym)."""
    rows = []
    for quality in ReaderQuality.objects.filter(task=task).select_related("reader").order_by("reader__pseudonym"):
        rows.append(
            {
                "reader_id": quality.reader_id,
                "pseudonym": quality.reader.pseudonym,
                "display_name": quality.reader.display_name,
                "role": quality.reader.role,
                "n_reads": quality.n_reads,
                "mean_time_s": quality.mean_time_s,
                "gold_mean_abs_error_mm": quality.gold_mean_abs_error_mm,
                "sensitivity": quality.sensitivity,
                "specificity": quality.specificity,
                "weight": quality.weight,
                **{key: value for key, value in quality.figures.items()},
            }
        )
    return rows


def case_consensus(*, case: Case) -> dict | None:
    """Return a case's current consensus with its lesions (medoid lines and mask run lengths), or None."""
    row = case.consensus_results.filter(is_current=True).first()
    if row is None:
        return None
    return {
        "case_id": case.pk,
        "consensus_id": row.pk,
        "algorithm_version": row.algorithm_version,
        "params": row.params,
        "computed_at": row.computed_at.isoformat(),
        "n_reads": row.n_reads,
        "low_agreement": row.low_agreement,
        "summary": row.summary,
        "lesions": [
            {
                "lesion_index": lesion.lesion_index,
                "support": lesion.support,
                "support_fraction": lesion.support_fraction,
                "accepted": lesion.accepted,
                "long_axis": lesion.long_axis,
                "short_axis": lesion.short_axis,
                "long_axis_median_mm": lesion.long_axis_median_mm,
                "long_axis_iqr_mm": lesion.long_axis_iqr_mm,
                "long_axis_cv": lesion.long_axis_cv,
                "short_axis_median_mm": lesion.short_axis_median_mm,
                "mask_method": lesion.mask_method,
                "mask_slices": lesion.mask_slices,
                "members": lesion.members,
                "statistics": lesion.statistics,
            }
            for lesion in row.lesions.all()
        ],
    }


def task_cases(*, task: Task) -> list[dict]:
    """Return one summary row per case of the task with its current consensus figures."""
    current = {row.case_id: row for row in _current(task)}
    accepted = Counter(
        ConsensusLesion.objects.filter(consensus__in=list(current.values()), accepted=True).values_list(
            "consensus__case_id", flat=True
        )
    )
    rows = []
    for case in task.cases.order_by("pk"):
        row = current.get(case.pk)
        rows.append(
            {
                "case_id": case.pk,
                "label": case.label,
                "is_gold": case.is_gold,
                "reads_done": case.reads_done,
                "has_consensus": row is not None,
                "n_reads": row.n_reads if row else 0,
                "accepted_lesions": accepted.get(case.pk, 0),
                "low_agreement": bool(row and row.low_agreement),
                "flags": row.summary.get("flags", []) if row else [],
                "reads_target": read_target(case=case, task=task),
                # Adaptive reads: why the case needs more reads, or that it is settled (docs/consensus.md).
                "read_decision": (row.summary.get("adaptive") or {}).get("message", "") if row else "",
            }
        )
    return rows
