"""Importing a model's predictions of a task's cases: NIfTI on our datasets' voxel grid, or DICOM SEG.

A NIfTI prediction is an integer image on the grid of a case's exported image (`imagesTr/case_<id>_0000.nii.gz`
of the `nnunet` or `monai` export, in any axis order: it is reoriented, never resampled), named after the
case as nnU-Net names its outputs (`case_<id>.nii.gz`); every voxel above 0 is lesion. A DICOM SEG (`.dcm`,
e.g. from TotalSegmentator or a PACS AI node) finds its case by the series its frames reference; every
segment together is lesion (fractional segments above one half). Either is cut into per-slice run lengths
keyed by SOP Instance UID and stored as the case's `ModelPrediction` for that model (a re-import replaces
it). This module must never touch reads, answer keys or consensus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation, ornt_transform

from annotations.core import mask_rle
from annotations.exports.sources import SeriesSources
from annotations.models import Case, ModelPrediction, Task
from viewer.nifti.from_dicom import series_affine_lps
from viewer.nifti.geometry import lps_to_ras
from viewer.services.stored_files import local_path

CASE_FILE = re.compile(r"^case_0*(\d+)\.nii(\.gz)?$")
# nnU-Net writes predictions through SimpleITK in float32: its affines differ from ours by rounding.
AFFINE_TOLERANCE_MM = 1e-2


class PredictionError(ValueError):
    """A prediction file that cannot be stored (not a case of the task, not on the case's voxel grid)."""


@dataclass(frozen=True)
class PredictionImport:
    path: Path
    prediction: ModelPrediction | None = None
    error: str = ""


def slice_masks(prediction: nib.Nifti1Image, *, instances: list) -> dict[int, np.ndarray]:
    """Return {slice index: bool [rows, columns]} of the prediction's voxels above 0, on the series' slices.

    `instances` are the series' files in anatomical order; the prediction must cover exactly their grid.
    """
    native = lps_to_ras(series_affine_lps(instances))  # voxel (column, row, slice) -> RAS mm
    reoriented = prediction.as_reoriented(ornt_transform(io_orientation(prediction.affine), io_orientation(native)))
    data = np.asarray(reoriented.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    expected = _native_shape(instances)
    if data.shape != expected:
        raise PredictionError(f"prediction of shape {prediction.shape} is not on the case's grid {expected}")
    difference = float(np.max(np.abs(reoriented.affine - native)))
    if difference > AFFINE_TOLERANCE_MM:
        raise PredictionError(f"prediction's affine differs from the case image's by up to {difference:.3g} mm")
    return {k: data[:, :, k].T > 0 for k in range(data.shape[2]) if np.any(data[:, :, k] > 0)}


def _native_shape(instances: list) -> tuple[int, int, int]:
    import pydicom

    header = pydicom.dcmread(instances[0], stop_before_pixels=True)
    return int(header.Columns), int(header.Rows), len(instances)


def store_prediction(*, case: Case, model_name: str, path: Path) -> ModelPrediction:
    """Store the NIfTI prediction at `path` as the case's prediction by `model_name`; return it."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    sources = SeriesSources.load(case.series)
    if any(instance.number_of_frames > 1 for instance in sources.instances):
        raise PredictionError(f"case {case.pk} is a multi-frame series: predictions are for single-frame series")
    try:
        image = nib.load(str(path))
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds for a file that is not NIfTI
        raise PredictionError(f"{Path(path).name} is not a readable NIfTI: {error}") from error
    masks = slice_masks(image, instances=[local_path(instance) for instance in sources.instances])
    return _store(case=case, model_name=model_name, path=Path(path), sources=sources, masks=masks)


def _store(
    *, case: Case, model_name: str, path: Path, sources: SeriesSources, masks: dict[int, np.ndarray]
) -> ModelPrediction:
    entries = [
        {
            "sop_instance_uid": sources.instances[index].sop_instance_uid,
            "frame": 1,
            "counts": mask_rle.encode(plane),
        }
        for index, plane in sorted(masks.items())
    ]
    prediction, _ = ModelPrediction.objects.update_or_create(
        case=case,
        model_name=model_name.strip(),
        defaults={
            "source_file": Path(path).name[:255],
            "mask_slices": entries,
            "voxel_count": int(sum(int(plane.sum()) for plane in masks.values())),
        },
    )
    return prediction


def seg_case(*, task: Task, seg: hd.seg.Segmentation) -> Case:
    """The case of the task whose series the SEG's frames lie on; PredictionError when there is none."""
    series_uids = {series_uid for _, series_uid, _ in seg.get_source_image_uids()}
    case = Case.objects.filter(task=task, series__series_instance_uid__in=series_uids).select_related("series").first()
    if case is None:
        raise PredictionError(f"the SEG's source series {sorted(series_uids)} is not a case of task {task.pk}")
    return case


def store_seg_prediction(*, task: Task, model_name: str, path: Path) -> ModelPrediction:
    """Store the DICOM SEG at `path` as the prediction by `model_name` of the task's case it lies on."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    try:
        seg = hd.seg.segread(str(path))
    except Exception as error:  # noqa: BLE001 - pydicom and highdicom raise many kinds for a file that is not a SEG
        raise PredictionError(f"{Path(path).name} is not a readable DICOM SEG: {error}") from error
    case = seg_case(task=task, seg=seg)
    sources = SeriesSources.load(case.series)
    if any(instance.number_of_frames > 1 for instance in sources.instances):
        raise PredictionError(f"case {case.pk} is a multi-frame series: predictions are for single-frame series")
    referenced = {sop_uid for _, _, sop_uid in seg.get_source_image_uids()}
    uids = [instance.sop_instance_uid for instance in sources.instances if instance.sop_instance_uid in referenced]
    if not uids:
        raise PredictionError(f"{Path(path).name} references none of case {case.pk}'s images")
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, assert_missing_frames_are_empty=True)
    lesion = pixels.max(axis=-1) > 0.5 if pixels.dtype.kind == "f" else pixels.any(axis=-1)
    masks = {}
    for uid, plane in zip(uids, lesion, strict=True):
        if plane.any():
            instance = sources.by_uid(uid)
            masks[sources.slice_index(instance_id=instance.pk, frame=1)] = plane
    return _store(case=case, model_name=model_name, path=Path(path), sources=sources, masks=masks)


def prediction_files(paths: Iterable[Path]) -> list[Path]:
    """The NIfTI and DICOM files among paths (files, or folders searched one level deep), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [child for child in path.iterdir() if child.name.endswith((".nii", ".nii.gz", ".dcm"))]
        else:
            found.append(path)
    return sorted(found)


def import_predictions(*, task: Task, model_name: str, paths: Iterable[Path]) -> list[PredictionImport]:
    """Store every `case_<id>.nii.gz` and DICOM SEG among paths as its case's prediction; report each file."""
    results = []
    for path in prediction_files(paths):
        if not path.name.endswith((".nii", ".nii.gz")):
            try:
                prediction = store_seg_prediction(task=task, model_name=model_name, path=path)
                results.append(PredictionImport(path=path, prediction=prediction))
            except (PredictionError, ValueError, OSError) as error:
                results.append(PredictionImport(path=path, error=str(error)))
            continue
        match = CASE_FILE.match(path.name)
        case = Case.objects.filter(task=task, pk=int(match[1])).select_related("series").first() if match else None
        if case is None:
            reason = "not named case_<id>.nii.gz" if match is None else f"case {match[1]} is not in task {task.pk}"
            results.append(PredictionImport(path=path, error=reason))
            continue
        try:
            results.append(
                PredictionImport(path=path, prediction=store_prediction(case=case, model_name=model_name, path=path))
            )
        except (PredictionError, ValueError, OSError) as error:
            results.append(PredictionImport(path=path, error=str(error)))
    return results


def show_to_readers(*, task: Task, model_name: str) -> Task:
    """Make the task a "check the model" task: its readers start from `model_name`'s prediction of each case."""
    if task.is_follow_up or "mask" not in (task.tools or []):
        raise PredictionError(f"task {task.pk} ({task.name}) has no mask tool: readers could not edit the suggestions")
    task.suggestion_model = model_name.strip()
    task.save(update_fields=["suggestion_model"])
    return task
