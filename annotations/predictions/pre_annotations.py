"""Pre-annotations from NIfTI label maps: a dataset's segmentations shown to readers to check, not as the truth.

`import_label_map_pre_annotation` imports a NIfTI volume (as `manage.py import_dicom` does, so the same file
gives the same series), makes its series a case of the task when it is not one yet (never a gold case: a
pre-annotation is not a reference), stores the label map (all labels together) as the case's prediction by
`model_name`, and makes the task a "check the model" task showing that prediction, so readers start from it
and accept, edit or reject each lesion. The alternative for the same files is the answer key
(`annotations.reading.label_maps`). This module must never write reads or answer keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.db import transaction

from annotations.models import Case, ModelPrediction, Task
from annotations.predictions.services import PredictionError, show_to_readers, store_masks_by_instance
from annotations.reading.label_maps import import_labelled_image

DEFAULT_MODEL_NAME = "pre-annotation"


@dataclass(frozen=True)
class PreAnnotation:
    """What one label map became: the case (new or existing) and the stored prediction."""

    case: Case
    created_case: bool
    prediction: ModelPrediction


def import_label_map_pre_annotation(
    *,
    task: Task,
    image_path: Path,
    label_path: Path,
    model_name: str = DEFAULT_MODEL_NAME,
    modality: str = "MR",
    patient_id: str | None = None,
) -> PreAnnotation:
    """Import the NIfTI image (if not yet) and show its label map to the task's readers as a pre-annotation.

    Raises PredictionError (a follow-up task, a task whose tools cannot edit masks, another model already
    shown), NiftiError/ValueError (label map not on the image's grid) or LabelMapError (image refused).
    Checked before anything is imported, so a refusal leaves nothing behind.
    """
    if task.is_follow_up or "mask" not in (task.tools or []):
        raise PredictionError(f"task {task.pk} ({task.name}) has no mask tool: readers could not edit a pre-annotation")
    name = model_name.strip()
    if task.suggestion_model and task.suggestion_model != name:
        raise PredictionError(
            f"task {task.pk} already shows model {task.suggestion_model!r} to readers; use that name or another task"
        )
    series, masks, slice_uids = import_labelled_image(
        image_path=image_path, label_path=label_path, modality=modality, patient_id=patient_id
    )
    union: dict[str, np.ndarray] = {}
    for by_uid in masks.masks.values():
        for uid, plane in by_uid.items():
            union[uid] = union[uid] | plane if uid in union else plane.copy()
    with transaction.atomic():
        case, created = _case_of(task, series)
        prediction = store_masks_by_instance(case=case, model_name=name, source_name=Path(label_path).name, masks=union)
        show_to_readers(task=task, model_name=name)
    return PreAnnotation(case=case, created_case=created, prediction=prediction)


def _case_of(task: Task, series) -> tuple[Case, bool]:
    case = Case.objects.select_for_update().filter(task=task, series=series).first()
    if case is not None:
        return case, False
    number = Case.objects.filter(task=task).count() + 1
    return Case.objects.create(task=task, series=series, label=f"Case {number}"), True
