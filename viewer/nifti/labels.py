"""Label maps beside NIfTI images: find them, check them against their image, and cut them into per-slice masks.

A label map is an integer NIfTI on the same voxel grid as its image (`case_label.nii.gz` or
`case_seg.nii.gz` beside `case.nii.gz`, or every `case_*.nii.gz`, as BraTS names its sequences).
Once checked (same shape, same affine) it is cut with the image's slice layout, so each mask lines
up with a converted slice and is keyed by that slice's SOP Instance UID: what the annotations side
needs to store answer keys or pre-annotations. This module must never touch the database or write
files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.nifti.reading import NiftiError, NiftiVolume, nifti_stem, read_nifti
from viewer.nifti.to_dicom import DEFAULT_MODALITY, SeriesPlan, plan_series

LABEL_MAP_SUFFIXES = ("_label", "_seg")
AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class LabelMasks:
    """Per-label, per-slice masks of one label map on one converted series.

    `masks[label][sop_instance_uid]` is a bool [rows, columns] array of the slice; only slices where
    the label occurs are present, and label 0 (background) never is.
    """

    label_map_name: str
    image_name: str
    series_instance_uid: str
    masks: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(sorted(self.masks))

    def description(self) -> str:
        """Return e.g. 'labels 1 (12 slices), 2 (1 slice)', or 'no labels'."""
        if not self.masks:
            return "no labels"
        parts = [f"{label} ({_count(len(self.masks[label]), 'slice')})" for label in self.labels]
        return ("label " if len(parts) == 1 else "labels ") + ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def image_stem_of_label_map(name: str, *, suffixes: Iterable[str] = LABEL_MAP_SUFFIXES) -> str | None:
    """Return the image stem a label map's name points to ('case' for 'case_seg.nii.gz'), or None."""
    stem = nifti_stem(name)
    for suffix in suffixes:
        if stem.lower().endswith(suffix.lower()) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def labels_images(label_map_stem: str, image_stem: str) -> bool:
    """True when a label map with this image stem belongs beside an image with this stem."""
    return image_stem == label_map_stem or image_stem.startswith(label_map_stem + "_")


def check_label_map(*, image: NiftiVolume, label_map: NiftiVolume) -> None:
    """Raise NiftiError naming both files when the label map is not on the image's voxel grid or not integer."""
    if label_map.shape != image.shape:
        raise NiftiError(
            f"label map {label_map.name} has shape {label_map.shape}, its image {image.name} {image.shape}"
        )
    difference = float(np.max(np.abs(label_map.affine_ras - image.affine_ras)))
    if difference > AFFINE_TOLERANCE_MM:
        raise NiftiError(
            f"label map {label_map.name} has a different affine from its image {image.name} "
            f"(entries differ by up to {difference:.4g} mm)"
        )
    values = label_map.real_values()
    if values.dtype.kind == "f" and not np.array_equal(values, np.rint(values)):
        raise NiftiError(f"label map {label_map.name} holds non-integer values: not a label map")
    if values.min() < 0:
        raise NiftiError(f"label map {label_map.name} holds negative labels ({values.min():g})")


def label_masks(*, image: NiftiVolume, label_map: NiftiVolume, plan: SeriesPlan) -> LabelMasks:
    """Check the label map against its image and return its masks keyed by the plan's SOP Instance UIDs."""
    check_label_map(image=image, label_map=label_map)
    if plan.layout.shape != image.shape:
        raise ValueError(f"series plan of shape {plan.layout.shape} is not for the image of shape {image.shape}")
    slices = plan.layout.to_slices(np.rint(label_map.real_values()).astype(np.int64))
    result = LabelMasks(label_map.name, image.name, plan.series_instance_uid)
    for label in (int(v) for v in np.unique(slices) if v != 0):
        present = slices == label
        result.masks[label] = {
            plan.sop_instance_uids[index]: present[index].copy() for index in np.flatnonzero(present.any(axis=(1, 2)))
        }
    return result


def read_label_masks(
    *,
    image_path: Path,
    label_path: Path,
    modality: str = DEFAULT_MODALITY,
    patient_id: str | None = None,
    patient_name: str | None = None,
) -> LabelMasks:
    """Read an image and its label map and return the masks keyed by the SOP Instance UIDs the image's import gives.

    The options must be those the image was (or will be) imported with, since the UIDs derive from them.
    """
    image = read_nifti(Path(image_path))
    label_map = read_nifti(Path(label_path))
    plan = plan_series(image, modality=modality, patient_id=patient_id, patient_name=patient_name)
    return label_masks(image=image, label_map=label_map, plan=plan)
