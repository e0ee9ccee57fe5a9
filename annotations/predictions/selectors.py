"""Model versus crowd: a model's lesions against the crowd's consensus lesions and the answer keys, per lesion.

Per case with a prediction: the model's lesions (its mask's 3-D components, its RECIST lines joined to
them) are paired with the current consensus's accepted lesions, and on gold cases with the answer key's,
by the consensus matching rule (core.model_review): which reference lesions the model found, its false
positives, the Dice of each pair's masks and the error of the model's long axis (its line, or its mask's
longest diameter on its largest slice) against the reference's. Also the whole-case Dice of the masks. Per
model: per-lesion sensitivity, false positives per case, median and mean Dice, long-axis error, pooled over
cases. In a "check the model" task also what readers' latest reads made of the suggestion (SuggestionReview
rows counted: accepted, edited, rejected, added). Reads only; never stores anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from annotations.core.agreement import dice
from annotations.core.lesion_matching import ReaderLesion
from annotations.core.model_review import (
    ComparisonSummary,
    ReferenceComparison,
    compare_with_reference,
    summarise_comparisons,
)
from annotations.exports import bundle, csv_export
from annotations.models import CaseConsensus, ModelPrediction, SuggestionReview, SuggestionVerdict, Task
from annotations.predictions.lesions import (
    answer_key_lesions,
    case_geometry,
    consensus_lesions,
    prediction_lesions,
)
from annotations.reading.answer_keys import answer_keys_of_task

VERDICTS = tuple(SuggestionVerdict.values)


@dataclass(frozen=True)
class ModelCaseRow:
    case_id: int
    case_label: str
    is_gold: bool
    model_name: str
    model_lesions: int
    voxels: int
    crowd_voxels: int | None
    dice_crowd: float | None
    answer_key_voxels: int | None
    dice_answer_key: float | None
    # Lesion by lesion (None without a current consensus / without an answer key).
    vs_consensus: ReferenceComparison | None = None
    vs_answer_key: ReferenceComparison | None = None
    # Check-the-model tasks only (None elsewhere): verdicts of the readers' latest reads, per SuggestionVerdict.
    verdicts: dict[str, int] | None = None


@dataclass(frozen=True)
class ModelSummary:
    model_name: str
    cases: int
    mean_dice_crowd: float | None
    mean_dice_answer_key: float | None
    vs_consensus: ComparisonSummary | None = None
    vs_answer_key: ComparisonSummary | None = None
    verdicts: dict[str, int] | None = None

    @property
    def references(self) -> list[tuple[str, ComparisonSummary | None, float | None]]:
        """(what it is compared with, per-lesion figures, mean case Dice): the consensus, then any answer keys."""
        against = [("consensus", self.vs_consensus, self.mean_dice_crowd)]
        if self.vs_answer_key is not None or self.mean_dice_answer_key is not None:
            against.append(("answer keys", self.vs_answer_key, self.mean_dice_answer_key))
        return against


def _mask_voxels(lesions: list[ReaderLesion]) -> np.ndarray:
    masks = [lesion.mask_voxels for lesion in lesions if lesion.mask_voxels is not None]
    return np.unique(np.concatenate(masks)) if masks else np.empty(0, dtype=np.int64)


def _whole_case_dice(first: np.ndarray, second: np.ndarray) -> float | None:
    """Dice of two whole-case masks (voxel indices); None when both are empty (nothing to agree on)."""
    return float(dice(first, second)) if first.size + second.size else None


def _latest_verdicts(task: Task) -> dict[tuple[int, str], dict[str, int]]:
    """Per (case, model): SuggestionReview verdicts of each reader's latest read, counted."""
    counts: dict[tuple[int, str], Counter] = {}
    rows = SuggestionReview.objects.filter(read__in=bundle.latest_reads(task)).values_list(
        "read__case_id", "model_name", "verdict"
    )
    for case_id, model_name, verdict in rows:
        counts.setdefault((case_id, model_name), Counter())[verdict] += 1
    return {key: {verdict: counter[verdict] for verdict in VERDICTS} for key, counter in counts.items()}


def model_vs_crowd(*, task: Task) -> list[ModelCaseRow]:
    """Return one row per (case, model) prediction of the task, in case order."""
    predictions = list(
        ModelPrediction.objects.filter(case__task=task).select_related("case__series").order_by("case_id", "model_name")
    )
    if not predictions:
        return []
    consensus: dict[int, CaseConsensus] = {}
    for row in csv_export.current_consensus(task).prefetch_related("lesions"):
        consensus.setdefault(row.case_id, row)
    keys = answer_keys_of_task(task_id=task.pk)
    verdicts = _latest_verdicts(task) if task.suggestion_model else {}
    rows = []
    geometries = {}
    for prediction in predictions:
        case = prediction.case
        geometry = geometries.setdefault(case.pk, case_geometry(case))
        model = prediction_lesions(prediction, geometry=geometry)
        predicted = _mask_voxels(model)
        crowd = key = None
        vs_consensus = vs_key = None
        if case.pk in consensus:
            crowd = consensus_lesions(consensus[case.pk], geometry=geometry)
            vs_consensus = compare_with_reference(model, crowd, geometry=geometry)
        if case.pk in keys:
            key = answer_key_lesions(keys[case.pk], geometry=geometry)
            vs_key = compare_with_reference(model, key, geometry=geometry)
        rows.append(
            ModelCaseRow(
                case_id=case.pk,
                case_label=str(case),
                is_gold=case.is_gold,
                model_name=prediction.model_name,
                model_lesions=len(model),
                voxels=int(predicted.size),
                crowd_voxels=int(_mask_voxels(crowd).size) if crowd is not None else None,
                dice_crowd=_whole_case_dice(predicted, _mask_voxels(crowd)) if crowd is not None else None,
                answer_key_voxels=int(_mask_voxels(key).size) if key is not None else None,
                dice_answer_key=_whole_case_dice(predicted, _mask_voxels(key)) if key is not None else None,
                vs_consensus=vs_consensus,
                vs_answer_key=vs_key,
                verdicts=(
                    verdicts.get((case.pk, prediction.model_name), dict.fromkeys(VERDICTS, 0))
                    if task.suggestion_model == prediction.model_name
                    else None
                ),
            )
        )
    return rows


def model_summaries(rows: list[ModelCaseRow]) -> list[ModelSummary]:
    """Per model: cases predicted, mean whole-case Dice, and the per-lesion figures pooled over its cases."""

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    summaries = []
    for name in sorted({row.model_name for row in rows}):
        mine = [row for row in rows if row.model_name == name]
        against_crowd = [row.vs_consensus for row in mine if row.vs_consensus is not None]
        against_keys = [row.vs_answer_key for row in mine if row.vs_answer_key is not None]
        reviewed = [row.verdicts for row in mine if row.verdicts is not None]
        summaries.append(
            ModelSummary(
                model_name=name,
                cases=len(mine),
                mean_dice_crowd=mean([r.dice_crowd for r in mine if r.dice_crowd is not None]),
                mean_dice_answer_key=mean([r.dice_answer_key for r in mine if r.dice_answer_key is not None]),
                vs_consensus=summarise_comparisons(against_crowd) if against_crowd else None,
                vs_answer_key=summarise_comparisons(against_keys) if against_keys else None,
                verdicts={v: sum(counts[v] for counts in reviewed) for v in VERDICTS} if reviewed else None,
            )
        )
    return summaries
