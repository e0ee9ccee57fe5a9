"""Importing a model's predictions of a task's cases: masks (NIfTI, DICOM SEG) and RECIST lines (TID 1500 SR, CSV).

A NIfTI prediction is an integer image on the grid of a case's exported image (`imagesTr/case_<id>_0000.nii.gz`
of the `nnunet` or `monai` export, in any axis order: it is reoriented, never resampled), named after the
case as nnU-Net names its outputs (`case_<id>.nii.gz`); every voxel above 0 is lesion. A DICOM SEG (`.dcm`,
e.g. from TotalSegmentator or a PACS AI node) finds its case by the series its frames reference; every
segment together is lesion (fractional segments above one half). Either is cut into per-slice run lengths
keyed by SOP Instance UID and stored as the case's `ModelPrediction` for that model (a re-import replaces
it). Lines come from a TID 1500 SR (sr_import) or a DeepLesion-style CSV (deeplesion_import) and are stored
as the prediction's `lesion_marks` beside its mask (lesion_marks). This module must never touch reads,
answer keys or consensus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import io_orientation, ornt_transform

from annotations.core import mask_rle
from annotations.exports.sources import SeriesSources
from annotations.models import Case, ModelPrediction, Task
from annotations.predictions.deeplesion_import import deeplesion_marks
from annotations.predictions.errors import PredictionError
from annotations.predictions.lesion_marks import store_lesion_marks
from annotations.predictions.sr_import import SR_STORAGE_CLASSES, sr_lesion_marks
from viewer.nifti.from_dicom import series_affine_lps
from viewer.nifti.geometry import lps_to_ras
from viewer.services.stored_files import local_path

CASE_FILE = re.compile(r"^case_0*(\d+)\.nii(\.gz)?$")
PREDICTION_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".csv", ".CSV")
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
# nnU-Net writes predictions through SimpleITK in float32: its affines differ from ours by rounding.
AFFINE_TOLERANCE_MM = 1e-2


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
        # A truncated .nii.gz has a readable header and fails (EOFError) only when its voxels are read: read them here.
        image = nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine)
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds for a file that is not NIfTI
        raise PredictionError(f"{Path(path).name} is not a readable NIfTI: {error}") from error
    masks = slice_masks(image, instances=[local_path(instance) for instance in sources.instances])
    return _store(case=case, model_name=model_name, path=Path(path), sources=sources, masks=masks)


def store_masks_by_instance(
    *, case: Case, model_name: str, source_name: str, masks: dict[str, np.ndarray]
) -> ModelPrediction:
    """Store {SOP Instance UID: bool [rows, columns]} masks of the case's series as its prediction by `model_name`."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    sources = SeriesSources.load(case.series)
    index_of = {instance.sop_instance_uid: index for index, instance in enumerate(sources.instances)}
    unknown = sorted(set(masks) - set(index_of))
    if unknown:
        raise PredictionError(f"{source_name}: slice {unknown[0]} is not an image of case {case.pk}")
    by_index = {index_of[uid]: plane for uid, plane in masks.items() if plane.any()}
    return _store(case=case, model_name=model_name, path=Path(source_name), sources=sources, masks=by_index)


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
    """The NIfTI, DICOM and CSV files among paths (files, or folders searched one level deep), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [child for child in path.iterdir() if child.name.endswith(PREDICTION_SUFFIXES)]
        else:
            found.append(path)
    return sorted(found)


def dicom_kind(path: Path) -> str:
    """ "seg" or "sr" by the file's SOPClassUID; PredictionError for any other DICOM or a file that is none."""
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds for a file that is not DICOM
        raise PredictionError(f"{path.name} is not a readable DICOM file: {error}") from error
    sop_class = str(header.get("SOPClassUID", ""))
    if sop_class == SEGMENTATION_STORAGE:
        return "seg"
    if sop_class in SR_STORAGE_CLASSES:
        return "sr"
    raise PredictionError(
        f"{path.name} is neither a DICOM SEG nor a Comprehensive/Enhanced SR (SOP Class UID {sop_class or 'missing'})"
    )


def import_predictions(*, task: Task, model_name: str, paths: Iterable[Path]) -> list[PredictionImport]:
    """Store every prediction file among paths as its case's prediction by `model_name`; report each file.

    `case_<id>.nii.gz` label maps and DICOM SEG set a case's mask, TID 1500 SRs and DeepLesion-style CSVs its
    RECIST marks (each replacing what the model had of that kind for the case). A CSV reports one entry per
    case it stored and one per refused row.
    """
    results: list[PredictionImport] = []
    for path in prediction_files(paths):
        try:
            if path.name.lower().endswith(".csv"):
                results += _import_csv(task=task, model_name=model_name, path=path)
            elif path.name.endswith((".nii", ".nii.gz")):
                results.append(_import_nifti(task=task, model_name=model_name, path=path))
            elif dicom_kind(path) == "seg":
                results.append(
                    PredictionImport(
                        path=path, prediction=store_seg_prediction(task=task, model_name=model_name, path=path)
                    )
                )
            else:
                results.append(
                    PredictionImport(
                        path=path, prediction=store_sr_prediction(task=task, model_name=model_name, path=path)
                    )
                )
        except (PredictionError, ValueError, OSError) as error:
            results.append(PredictionImport(path=path, error=str(error)))
    return results


def _import_nifti(*, task: Task, model_name: str, path: Path) -> PredictionImport:
    match = CASE_FILE.match(path.name)
    case = Case.objects.filter(task=task, pk=int(match[1])).select_related("series").first() if match else None
    if case is None:
        reason = "not named case_<id>.nii.gz" if match is None else f"case {match[1]} is not in task {task.pk}"
        return PredictionImport(path=path, error=reason)
    return PredictionImport(path=path, prediction=store_prediction(case=case, model_name=model_name, path=path))


def store_sr_prediction(*, task: Task, model_name: str, path: Path) -> ModelPrediction:
    """Store the lines of the TID 1500 SR at `path` as the RECIST marks by `model_name` of the case it measures."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    case, marks = sr_lesion_marks(task=task, path=Path(path))
    return store_lesion_marks(case=case, model_name=model_name, source_file=Path(path).name, marks=marks)


def _import_csv(*, task: Task, model_name: str, path: Path) -> list[PredictionImport]:
    """Store each case's rows of a DeepLesion-style CSV as its RECIST marks; one report per case and per bad row."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    found = deeplesion_marks(task=task, path=path)
    results = [
        PredictionImport(
            path=path,
            prediction=store_lesion_marks(case=case, model_name=model_name, source_file=path.name, marks=marks),
        )
        for case, marks in found.marks.items()
    ]
    results += [PredictionImport(path=path, error=error) for error in found.row_errors]
    if not results:
        results.append(PredictionImport(path=path, error=f"{path.name} has no rows"))
    return results


def prediction_kinds(*, task: Task, model_name: str) -> tuple[bool, bool]:
    """Whether `model_name`'s predictions of the task's cases hold masks, and whether they hold lines."""
    kinds = ModelPrediction.objects.filter(case__task=task, model_name=model_name.strip()).values_list(
        "voxel_count", "lesion_marks"
    )
    has_masks = has_lines = False
    for voxel_count, lesion_marks in kinds.iterator():
        has_masks, has_lines = has_masks or voxel_count > 0, has_lines or bool(lesion_marks)
    return has_masks, has_lines


def show_to_readers(*, task: Task, model_name: str) -> Task:
    """Make the task a "check the model" task: its readers start from `model_name`'s prediction of each case.

    The task's tools must draw what the prediction holds: the mask tool for masks, the long axis or
    bidirectional tool for lines (a model without predictions yet needs one of them).
    """
    tools = set(task.tools or [])
    has_masks, has_lines = prediction_kinds(task=task, model_name=model_name)
    line_tools = bool(tools & {"long_axis", "bidirectional"})
    missing = []
    if has_masks and "mask" not in tools:
        missing.append("the mask tool for its masks")
    if has_lines and not line_tools:
        missing.append("the long axis or bidirectional tool for its lines")
    if not (has_masks or has_lines) and not ("mask" in tools or line_tools):
        missing.append("a mask, long axis or bidirectional tool")
    if task.is_follow_up:
        raise PredictionError(f"task {task.pk} ({task.name}) is a follow-up task: models are checked in single reads")
    if missing:
        raise PredictionError(
            f"task {task.pk} ({task.name}) lacks {' and '.join(missing)}: readers could not edit the suggestions"
        )
    task.suggestion_model = model_name.strip()
    task.save(update_fields=["suggestion_model"])
    return task


def stop_showing_to_readers(*, task: Task) -> Task:
    """Let the task's readers start from an empty slate again; the predictions stay for the model-vs-crowd report."""
    task.suggestion_model = ""
    task.save(update_fields=["suggestion_model"])
    return task
