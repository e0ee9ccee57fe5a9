"""Turn a stored single-frame DICOM series, or per-slice masks drawn on it, into NIfTI images.

The instances come in anatomical order (the order the viewer shows them, as
`Series.instances` returns them). Voxel (i, j, k) is column i, row j of slice k, mapped to RAS
millimetres through `geometry.lps_to_ras`, then reoriented (axis swaps and flips only, never a
resampling) to the axis codes asked for: RAS by default, or the original file's codes to get back
the voxel grid a NIfTI import came from. A label image made from masks gets exactly the affine
of the image made from the same instances. This module reads files and datasets; it must never
touch the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from pydicom.pixels import apply_rescale

from viewer.nifti.geometry import lps_to_ras, slice_affine_lps

Instances = Sequence[pydicom.Dataset | Path | str]


def _datasets(instances: Instances, *, pixels: bool) -> list[pydicom.Dataset]:
    if not instances:
        raise ValueError("a series needs at least one instance")
    return [
        item if isinstance(item, pydicom.Dataset) else pydicom.dcmread(item, stop_before_pixels=not pixels)
        for item in instances
    ]


def _floats(ds: pydicom.Dataset, keyword: str, count: int) -> list[float]:
    value = ds.get(keyword)
    if value is None or len(value) != count:
        raise ValueError(f"instance {ds.get('SOPInstanceUID', '?')} has no usable {keyword}: {value!r}")
    return [float(v) for v in value]


def series_affine_lps(instances: Instances) -> np.ndarray:
    """Return the affine mapping (column, row, slice index, 1) to LPS mm; refuse a series no affine describes."""
    datasets = _datasets(instances, pixels=False)
    for ds in datasets:
        if int(ds.get("NumberOfFrames") or 1) != 1:
            raise ValueError(f"instance {ds.get('SOPInstanceUID', '?')} has {ds.NumberOfFrames} frames: one per slice")
    orientation = np.array(_floats(datasets[0], "ImageOrientationPatient", 6))
    spacing = _floats(datasets[0], "PixelSpacing", 2)
    shape = (int(datasets[0].Rows), int(datasets[0].Columns))
    for ds in datasets[1:]:
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6), orientation, atol=1e-4):
            raise ValueError(f"instance {ds.SOPInstanceUID} is oriented differently from the first slice")
        if not np.allclose(_floats(ds, "PixelSpacing", 2), spacing, atol=1e-4):
            raise ValueError(f"instance {ds.SOPInstanceUID} has a different PixelSpacing from the first slice")
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise ValueError(f"instance {ds.SOPInstanceUID} is {ds.Rows}x{ds.Columns}, not {shape[0]}x{shape[1]}")
    thickness = datasets[0].get("SpacingBetweenSlices") or datasets[0].get("SliceThickness")
    return slice_affine_lps(
        positions_lps=[_floats(ds, "ImagePositionPatient", 3) for ds in datasets],
        orientation=orientation,
        pixel_spacing_mm=spacing,
        slice_spacing_mm=float(thickness) if thickness not in (None, "") else None,
    )


def _reoriented(image: nib.Nifti1Image, axcodes: str | Sequence[str] | None) -> nib.Nifti1Image:
    if axcodes is None:
        return image
    codes = tuple(axcodes)
    if len(codes) != 3 or {c for c in codes} - set("RLAPSI"):
        raise ValueError(f"axis codes {axcodes!r} are not three of R/L, A/P, S/I (e.g. 'RAS')")
    try:
        target = axcodes2ornt(codes)
    except ValueError:
        raise ValueError(f"axis codes {axcodes!r} name one world axis twice") from None
    return image.as_reoriented(ornt_transform(io_orientation(image.affine), target))


def _new_image(volume: np.ndarray, affine_lps: np.ndarray, axcodes) -> nib.Nifti1Image:
    image = nib.Nifti1Image(volume, lps_to_ras(affine_lps))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)  # scanner-anatomical, as converters from DICOM write it
    image.set_sform(image.affine, code=1)
    return _reoriented(image, axcodes)


def series_to_nifti(instances: Instances, *, axcodes: str | Sequence[str] | None = "RAS") -> nib.Nifti1Image:
    """Return the series as a NIfTI image of real values (HU for CT) whose affine maps voxels to RAS mm.

    `instances` are pydicom datasets or file paths in anatomical order. Integer real values stay
    integers (int16, or int32 when they do not fit), others become float32. `axcodes` orders the
    voxel axes (e.g. "RAS", "LAS", or the codes `nibabel.aff2axcodes` gives for the original
    file); None keeps column, row, slice.
    """
    datasets = _datasets(instances, pixels=True)
    affine_lps = series_affine_lps(datasets)
    planes = [apply_rescale(ds.pixel_array, ds) for ds in datasets]
    volume = np.stack([plane.T for plane in planes], axis=-1)  # [column, row, slice]
    if np.array_equal(volume, np.rint(volume)):
        low, high = float(volume.min()), float(volume.max())
        volume = volume.astype(np.int16 if low >= -32768 and high <= 32767 else np.int32)
    else:
        volume = volume.astype(np.float32)
    return _new_image(volume, affine_lps, axcodes)


def masks_to_label_nifti(
    masks: Mapping[int, np.ndarray],
    *,
    instances: Instances,
    label: int = 1,
    axcodes: str | Sequence[str] | None = "RAS",
) -> nib.Nifti1Image:
    """Return a uint8/uint16 label image, on the same voxel grid and affine as `series_to_nifti` gives, from 2-D masks.

    `masks` maps a slice index (position in `instances`, anatomical order) to a [row, column]
    array: booleans become `label`, integers are kept as label values. Slices without a mask are 0.
    """
    datasets = _datasets(instances, pixels=False)
    affine_lps = series_affine_lps(datasets)
    rows, columns = int(datasets[0].Rows), int(datasets[0].Columns)
    if not 0 < int(label) <= 65535:
        raise ValueError(f"label {label} is not in 1..65535")
    volume = np.zeros((columns, rows, len(datasets)), dtype=np.uint16)
    for index, mask in masks.items():
        if not 0 <= int(index) < len(datasets):
            raise ValueError(f"mask for slice {index}, but the series has slices 0..{len(datasets) - 1}")
        mask = np.asarray(mask)
        if mask.shape != (rows, columns):
            raise ValueError(f"mask for slice {index} is {mask.shape}, the slice is {(rows, columns)} (rows, columns)")
        values = np.where(mask, label, 0) if mask.dtype == bool else mask
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"mask for slice {index} holds labels outside 0..65535")
        volume[:, :, int(index)] = values.T
    if volume.max() <= 255:
        volume = volume.astype(np.uint8)
    return _new_image(volume, affine_lps, axcodes)
