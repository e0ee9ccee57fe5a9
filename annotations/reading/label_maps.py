"""Answer keys from NIfTI label maps: a research dataset's segmentations become gold cases' reference reads.

`import_label_map_answer_key` imports a NIfTI volume (as `manage.py import_dicom` does, so the same
file gives the same series), makes its series a gold case of the task when it is not a case yet,
cuts the label map into one lesion per connected component (or per label value), and stores the
result as the case's answer key through `submission.submit_answer_key`, so it is checked exactly as a
read drawn on the answer-key page (the task must offer the mask tool, at most its lesions per case).
This module must never store anything but through `submit_answer_key`, and never turn an existing
non-gold case into a gold one (a gold case changes how readers are scored; that is the console's call).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from scipy import ndimage

from annotations.core import mask_rle
from annotations.models import Case, Task
from annotations.reading.submission import SubmissionResult, submit_answer_key
from viewer.models import Instance, Series
from viewer.nifti.importing import NiftiOptions
from viewer.nifti.labels import LabelMasks, read_label_masks
from viewer.services.dicom_import import import_paths

LesionsBy = Literal["components", "labels"]
LESIONS_BY: tuple[str, ...] = ("components", "labels")


class LabelMapError(ValueError):
    """A label map that cannot become an answer key (its image did not import, a follow-up task, ...)."""


@dataclass(frozen=True)
class LabelMapAnswerKey:
    """What one label map became: the case, its stored answer key and how many lesions it holds."""

    case: Case
    created_case: bool
    submission: SubmissionResult
    lesions: int


def lesion_masks(
    masks: LabelMasks, *, slice_uids: Sequence[str], lesions_by: LesionsBy = "components"
) -> list[dict[str, np.ndarray]]:
    """Return one {SOP instance UID: bool [rows, columns] mask} per lesion.

    `slice_uids` are the series' instances in anatomical order. "labels": a lesion per label value,
    in label order. "components": a lesion per 3-D face-connected component of all labels together,
    in the order of their first voxel (slice, row, column).
    """
    if lesions_by not in LESIONS_BY:
        raise ValueError(f"lesions_by {lesions_by!r} is not one of {LESIONS_BY}")
    if lesions_by == "labels":
        return [dict(masks.masks[label]) for label in masks.labels]
    position = {uid: index for index, uid in enumerate(slice_uids)}
    planes = [plane for by_uid in masks.masks.values() for plane in by_uid.values()]
    if not planes:
        return []
    volume = np.zeros((len(slice_uids), *planes[0].shape), dtype=bool)
    for by_uid in masks.masks.values():
        for uid, plane in by_uid.items():
            if uid not in position:
                raise ValueError(f"label map slice {uid} is not in the series")
            volume[position[uid]] |= plane
    components, count = ndimage.label(volume)
    lesions = []
    for number in range(1, count + 1):
        present = components == number
        lesions.append({slice_uids[k]: present[k] for k in np.flatnonzero(present.any(axis=(1, 2)))})
    return lesions


def answer_key_document(
    *, case_id: int, lesions: Sequence[Mapping[str, np.ndarray]], comment: str, client_uuid: uuid.UUID | None = None
) -> dict:
    """Return the read document (docs/read-format.md) of masks only: one lesion per entry, or a no-lesion read."""
    entries = [
        {
            "lesion": number,
            "mask": {
                "slices": [
                    {"sop_instance_uid": uid, "frame": 1, "counts": mask_rle.encode(np.asarray(plane, dtype=bool))}
                    for uid, plane in masks.items()
                ]
            },
        }
        for number, masks in enumerate(lesions, start=1)
    ]
    return {
        "client_uuid": str(client_uuid or uuid.uuid4()),
        "case": case_id,
        "started_at": timezone.now().isoformat(),
        "duration_s": 0,
        "flags": {"no_lesion": not entries},
        "lesions": entries,
        "comment": comment,
    }


def import_labelled_image(
    *, image_path: Path, label_path: Path, modality: str = "MR", patient_id: str | None = None
) -> tuple[Series, LabelMasks, list[str]]:
    """Import a NIfTI image (if not yet) after checking its label map; return its series, the label map's masks
    and the series' SOP Instance UIDs in anatomical order.

    The label map is checked first, so one that does not fit its image leaves nothing imported. Raises
    NiftiError/ValueError (label map not on the image's grid) or LabelMapError (the image did not import).
    """
    image_path, label_path = Path(image_path), Path(label_path)
    masks = read_label_masks(image_path=image_path, label_path=label_path, modality=modality, patient_id=patient_id)
    report = import_paths([image_path], nifti=NiftiOptions(modality=modality, patient_id=patient_id))
    series = Series.objects.filter(series_instance_uid=masks.series_instance_uid).first()
    if series is None:
        reasons = "; ".join(f"{o.name}: {o.reason}" for o in report.outcomes if o.reason)
        raise LabelMapError(f"the image {image_path.name} did not import: {reasons or 'no series'}")
    slice_uids = list(
        Instance.objects.filter(series=series)
        .order_by(*Instance._meta.ordering)
        .values_list("sop_instance_uid", flat=True)
    )
    return series, masks, slice_uids


def _gold_case(task: Task, series: Series) -> tuple[Case, bool]:
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(task=task, series=series).first()
        if case is not None:
            return case, False
        number = Case.objects.filter(task=task).count() + 1
        return Case.objects.create(task=task, series=series, label=f"Case {number}", is_gold=True), True


def import_label_map_answer_key(
    *,
    task: Task,
    image_path: Path,
    label_path: Path,
    user: AbstractBaseUser | None = None,
    modality: str = "MR",
    patient_id: str | None = None,
    lesions_by: LesionsBy = "components",
) -> LabelMapAnswerKey:
    """Import the NIfTI image (if not yet), and store its label map as the answer key of its gold case in the task.

    Raises LabelMapError (image refused, follow-up task), NiftiError/ValueError (label map not on the image's
    grid), NotGoldCase (the series is a non-gold case of the task) or ReadValidationError (the task's rules
    refuse the masks, e.g. no mask tool or too many lesions).
    """
    if task.is_follow_up:
        raise LabelMapError(f"task {task.pk} ({task.name}) is a follow-up task: answer keys are for single reads")
    series, masks, slice_uids = import_labelled_image(
        image_path=image_path, label_path=label_path, modality=modality, patient_id=patient_id
    )
    case, created = _gold_case(task, series)
    lesions = lesion_masks(masks, slice_uids=slice_uids, lesions_by=lesions_by)
    document = answer_key_document(
        case_id=case.pk, lesions=lesions, comment=f"label map {masks.label_map_name} ({masks.description()})"
    )
    submission = submit_answer_key(user=user, case=case, document=document)
    return LabelMapAnswerKey(case=case, created_case=created, submission=submission, lesions=len(lesions))
