"""Model versus crowd: how a model's predicted masks agree with the crowd's consensus and the answer keys.

Per case with a prediction: Dice with the union of the current consensus lesions' masks, and on gold cases
with the answer key's masks; per model: the mean Dice over cases. In a "check the model" task (the task's
suggestion model), also what readers did with the suggestion: kept it (their masks within Dice
`KEPT_DICE` of it), edited it, or rejected it (no mask left where the model drew). Reads only; never stores
anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotations.core import mask_rle
from annotations.exports import bundle, csv_export
from annotations.models import Case, CaseConsensus, MaskSlice, ModelPrediction, Task
from annotations.reading.answer_keys import answer_keys_of_task

Planes = dict[tuple[str, int], np.ndarray]
# A reader who submits the suggestion untouched gets Dice 1; a stray brush stroke should still count as kept.
KEPT_DICE = 0.98


@dataclass(frozen=True)
class ModelCaseRow:
    case_id: int
    case_label: str
    is_gold: bool
    model_name: str
    voxels: int
    crowd_voxels: int | None
    dice_crowd: float | None
    answer_key_voxels: int | None
    dice_answer_key: float | None
    # Check-the-model tasks only (None elsewhere): readers' latest reads that kept, edited or rejected it.
    reads_kept: int | None = None
    reads_edited: int | None = None
    reads_rejected: int | None = None


@dataclass(frozen=True)
class ModelSummary:
    model_name: str
    cases: int
    mean_dice_crowd: float | None
    mean_dice_answer_key: float | None


def _planes(entries, *, shapes: dict[str, tuple[int, int]]) -> Planes:
    planes: Planes = {}
    for uid, frame, counts in entries:
        key = (uid, int(frame))
        plane = mask_rle.decode(counts, rows=shapes[uid][0], columns=shapes[uid][1])
        planes[key] = planes[key] | plane if key in planes else plane
    return planes


def dice(first: Planes, second: Planes) -> float | None:
    """Dice of two masks given by (slice, frame) planes; None when both are empty."""
    size = sum(int(p.sum()) for p in first.values()) + sum(int(p.sum()) for p in second.values())
    if size == 0:
        return None
    overlap = sum(int((first[key] & second[key]).sum()) for key in first.keys() & second.keys())
    return 2 * overlap / size


def _voxels(planes: Planes) -> int:
    return sum(int(p.sum()) for p in planes.values())


def _shapes(case: Case) -> dict[str, tuple[int, int]]:
    return {
        uid: (rows, columns)
        for uid, rows, columns in case.series.instances.values_list("sop_instance_uid", "rows", "columns")
    }


def model_vs_crowd(*, task: Task) -> list[ModelCaseRow]:
    """Return one row per (case, model) prediction of the task, in case order."""
    predictions = list(ModelPrediction.objects.filter(case__task=task).select_related("case__series"))
    if not predictions:
        return []
    consensus: dict[int, CaseConsensus] = {}
    for row in csv_export.current_consensus(task).prefetch_related("lesions"):
        consensus.setdefault(row.case_id, row)
    keys = answer_keys_of_task(task_id=task.pk)
    rows = []
    shapes_by_case: dict[int, dict] = {}
    for prediction in predictions:
        case = prediction.case
        shapes = shapes_by_case.setdefault(case.pk, _shapes(case))
        predicted = _planes(
            ((e["sop_instance_uid"], e.get("frame", 1), e["counts"]) for e in prediction.mask_slices), shapes=shapes
        )
        crowd = key_planes = None
        if case.pk in consensus:
            crowd = _planes(
                (
                    (e["sop_instance_uid"], e.get("frame", 1), e["counts"])
                    for lesion in consensus[case.pk].lesions.all()
                    if lesion.accepted and lesion.mask_slices
                    for e in lesion.mask_slices
                ),
                shapes=shapes,
            )
        if case.pk in keys:
            key_planes = _planes(
                (
                    (m.instance.sop_instance_uid, m.frame, m.counts)
                    for m in keys[case.pk].mask_slices.select_related("instance")
                ),
                shapes=shapes,
            )
        verdicts = _verdicts(case, predicted, shapes=shapes) if task.suggestion_model == prediction.model_name else {}
        rows.append(
            ModelCaseRow(
                case_id=case.pk,
                case_label=str(case),
                is_gold=case.is_gold,
                model_name=prediction.model_name,
                voxels=_voxels(predicted),
                crowd_voxels=_voxels(crowd) if crowd is not None else None,
                dice_crowd=dice(predicted, crowd) if crowd is not None else None,
                answer_key_voxels=_voxels(key_planes) if key_planes is not None else None,
                dice_answer_key=dice(predicted, key_planes) if key_planes is not None else None,
                reads_kept=verdicts.get("kept"),
                reads_edited=verdicts.get("edited"),
                reads_rejected=verdicts.get("rejected"),
            )
        )
    return rows


def read_verdict(read_planes: Planes, predicted: Planes) -> str:
    """'kept', 'edited' or 'rejected': what a read made of the suggestion it started from."""
    if not _voxels(read_planes) or not any(
        (read_planes[k] & predicted[k]).any() for k in read_planes.keys() & predicted.keys()
    ):
        return "rejected"
    score = dice(read_planes, predicted)
    return "kept" if score is not None and score >= KEPT_DICE else "edited"


def _verdicts(case: Case, predicted: Planes, *, shapes: dict) -> dict[str, int]:
    counts = {"kept": 0, "edited": 0, "rejected": 0}
    for read in bundle.latest_reads(case.task).filter(case=case):
        masks = MaskSlice.objects.filter(read=read).select_related("instance")
        planes = _planes(((m.instance.sop_instance_uid, m.frame, m.counts) for m in masks), shapes=shapes)
        counts[read_verdict(planes, predicted)] += 1
    return counts


def model_summaries(rows: list[ModelCaseRow]) -> list[ModelSummary]:
    """Per model: cases predicted and mean Dice against the crowd and against answer keys (None without any)."""

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    summaries = []
    for name in sorted({row.model_name for row in rows}):
        mine = [row for row in rows if row.model_name == name]
        summaries.append(
            ModelSummary(
                model_name=name,
                cases=len(mine),
                mean_dice_crowd=mean([r.dice_crowd for r in mine if r.dice_crowd is not None]),
                mean_dice_answer_key=mean([r.dice_answer_key for r in mine if r.dice_answer_key is not None]),
            )
        )
    return summaries
