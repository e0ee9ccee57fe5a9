"""Write a checked NIfTI volume as a DICOM series: one single-frame CT or MR Image Storage instance per slice.

The series is what the rest of the platform expects from a scanner: 16-bit pixels with a rescale
to real values (HU for CT), ImagePositionPatient per slice, ImageOrientationPatient, PixelSpacing
and slice spacing from the affine (through `geometry.dicom_layout`, the one place RAS becomes LPS),
and study, series, frame of reference and SOP instance UIDs derived from the file's content, the
modality and the patient ID, so importing the same file with the same options again is a no-op.
The files pass dciodvfy. This module only writes files; it must never touch the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from viewer.nifti.geometry import SliceLayout, dicom_layout
from viewer.nifti.reading import NiftiVolume, has_nifti_name, nifti_stem
from viewer.services.synthetic_ct import READERBOARD_UID_ROOT

MODALITIES = {"CT": CTImageStorage, "MR": MRImageStorage}
DEFAULT_MODALITY = "MR"  # ATLAS, BraTS and most research NIfTI are MR; CT datasets say --nifti-modality CT
_UINT16_MAX = 65535


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class PixelEncoding:
    """A volume as 16-bit stored values and the rescale that gives back real values (stored * slope + intercept)."""

    stored: np.ndarray
    slope: float
    intercept: float

    @property
    def signed(self) -> bool:
        return self.stored.dtype == np.int16


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class SeriesPlan:
    """Everything about a converted series but its pixels: who, which UIDs, and where each slice goes."""

    source_name: str
    modality: str
    patient_id: str
    patient_name: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: tuple[str, ...]
    layout: SliceLayout


@dataclass
class ConvertedSeries:
    """A written series: its plan and one file per slice, in slice order (along the plane's normal)."""

    plan: SeriesPlan
    files: list[Path] = field(default_factory=list)


def _ds(value: float) -> str:
    """A number as DICOM decimal string text (at most 16 characters, as precise as fits)."""
    return format_number_as_ds(float(value))


def encode_pixels(*, stored: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> PixelEncoding:
    """Return 16-bit stored values and a rescale for voxels whose real value is stored * slope + intercept.

    Lossless whenever the real values are integers spanning at most 65536 values, or the stored
    values already fit 16 bits; otherwise (floats) the range is quantised to 65536 steps.
    """
    stored = np.asarray(stored)
    if stored.size == 0:
        raise ValueError("cannot encode an empty volume")
    if stored.dtype.kind in "iub":
        low, high = int(stored.min()), int(stored.max())
        if low >= 0 and high <= _UINT16_MAX:
            return PixelEncoding(stored.astype(np.uint16), slope, intercept)
        if low >= -32768 and high <= 32767:
            return PixelEncoding(stored.astype(np.int16), slope, intercept)
        if high - low <= _UINT16_MAX:
            offset = (stored.astype(np.int64) - low).astype(np.uint16)
            return PixelEncoding(offset, slope, intercept + slope * low)
    real = stored.astype(np.float64) * slope + intercept
    if not np.all(np.isfinite(real)):
        raise ValueError("cannot encode voxels that are not finite numbers")
    low, high = float(real.min()), float(real.max())
    if np.array_equal(real, np.rint(real)) and high - low <= _UINT16_MAX:
        if low >= 0 and high <= _UINT16_MAX:
            return PixelEncoding(real.astype(np.uint16), 1.0, 0.0)
        if low >= -32768 and high <= 32767:
            return PixelEncoding(real.astype(np.int16), 1.0, 0.0)
        return PixelEncoding((real - low).astype(np.uint16), 1.0, low)
    if high == low:
        return PixelEncoding(np.zeros(real.shape, dtype=np.uint16), 1.0, low)
    # Slope and intercept as DICOM will store them (16-character decimal strings); one step of headroom
    # keeps the highest value inside 16 bits whichever way the text rounds.
    step = float(_ds((high - low) / (_UINT16_MAX - 1)))
    low = float(_ds(low))
    quantised = np.clip(np.rint((real - low) / step), 0, _UINT16_MAX).astype(np.uint16)
    return PixelEncoding(quantised, step, low)


def _clean_lo(value: str, *, what: str) -> str:
    cleaned = "".join(ch for ch in str(value) if ch.isprintable() and ch != "\\").strip()[:64]
    if not cleaned:
        raise ValueError(f"{what} {value!r} is empty once cleaned for DICOM")
    return cleaned


def source_stem(volume: NiftiVolume) -> str:
    """Return the file name without `.nii` / `.nii.gz`; a file not named so (an upload) is named by its content."""
    stem = nifti_stem(volume.name) if has_nifti_name(volume.name) else ""
    # The upload id would change on every upload, and with it the patient ID and every UID.
    return stem or f"NIFTI-{volume.content_sha256[:12]}"


def plan_series(
    volume: NiftiVolume,
    *,
    modality: str = DEFAULT_MODALITY,
    patient_id: str | None = None,
    patient_name: str | None = None,
) -> SeriesPlan:
    """Return the UIDs, patient and slice layout a volume gets as a DICOM series (the same on every call).

    The patient ID and name default to the file's stem (`source_stem`). The UIDs derive from the uncompressed file
    content, the modality and the patient ID.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality {modality!r} is not one of {sorted(MODALITIES)}")
    stem = source_stem(volume)
    patient_id = _clean_lo(patient_id if patient_id is not None else stem, what="patient ID")
    patient_name = _clean_lo(patient_name if patient_name is not None else patient_id, what="patient name")
    layout = dicom_layout(affine_ras=volume.affine_ras, shape=volume.shape)

    def uid(*parts: object) -> str:
        # One separated string, so no two (patient ID, part) pairs can run together into the same text.
        entropy = "\x1f".join(["nifti", volume.content_sha256, modality, patient_id, *map(str, parts)])
        return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=[entropy])

    return SeriesPlan(
        source_name=volume.name,
        modality=modality,
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=uid("study"),
        series_instance_uid=uid("series"),
        frame_of_reference_uid=uid("frame-of-reference"),
        sop_instance_uids=tuple(uid("instance", index) for index in range(layout.slices)),
        layout=layout,
    )


def _windows(encoding: PixelEncoding, modality: str) -> list[tuple[float, float, str]]:
    """Return (centre, width, explanation) display windows in real units; MR's from the data's own range."""
    if modality == "CT":
        return [(40.0, 400.0, "SOFT TISSUE"), (40.0, 80.0, "BRAIN"), (-600.0, 1500.0, "LUNG")]
    # Every second voxel along each axis is plenty for percentiles, and keeps a big volume's copy small.
    sample = encoding.stored[::2, ::2, ::2].astype(np.float64) * encoding.slope + encoding.intercept
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return [((low + high) / 2.0, max(high - low, 1.0), "AUTO")]


def nifti_to_series(
    volume: NiftiVolume,
    out_dir: Path,
    *,
    modality: str = DEFAULT_MODALITY,
    patient_id: str | None = None,
    patient_name: str | None = None,
) -> ConvertedSeries:
    """Write the volume as one DICOM file per slice in out_dir; return the plan and the files in slice order."""
    plan = plan_series(volume, modality=modality, patient_id=patient_id, patient_name=patient_name)
    layout = plan.layout
    encoding = encode_pixels(stored=volume.stored, slope=volume.slope, intercept=volume.intercept)
    slices = layout.to_slices(encoding.stored)
    windows = _windows(encoding, modality)
    orientation = [_ds(v) for v in layout.image_orientation_patient]
    row_spacing, column_spacing = layout.pixel_spacing_mm
    sop_class = MODALITIES[modality]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = ConvertedSeries(plan)
    for index, sop_uid in enumerate(plan.sop_instance_uids):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = READERBOARD_UID_ROOT + "1"
        meta.ImplementationVersionName = "READERBOARD_01"
        path = out_dir / f"{modality}{index + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL" if modality == "CT" else "OTHER"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.StudyTime = ""
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = "Readerboard NIfTI import"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "NIfTI import"
        ds.SeriesDescription = f"{source_stem(volume)} (NIfTI)"[:64]
        ds.DerivationDescription = "Converted from NIfTI; voxels unchanged, axes swapped or flipped only"
        ds.PatientName = plan.patient_name
        ds.PatientID = plan.patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyInstanceUID = plan.study_instance_uid
        ds.SeriesInstanceUID = plan.series_instance_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.Laterality = ""
        ds.InstanceNumber = index + 1
        ds.PatientPosition = ""
        ds.FrameOfReferenceUID = plan.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        position = layout.image_position_patient(index)
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = orientation
        normal = np.cross(layout.image_orientation_patient[:3], layout.image_orientation_patient[3:])
        ds.SliceLocation = _ds(float(normal @ np.array(position)))
        ds.PixelSpacing = [_ds(row_spacing), _ds(column_spacing)]
        ds.SliceThickness = _ds(layout.slice_spacing_mm)
        ds.SpacingBetweenSlices = _ds(layout.slice_spacing_mm)
        if modality == "CT":
            ds.KVP = ""
            ds.AcquisitionNumber = 1
        else:
            ds.ScanningSequence = "RM"  # research mode: the sequence is not known from a NIfTI
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = ""
            ds.EchoTime = ""
            ds.EchoTrainLength = ""
            ds.RepetitionTime = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = layout.rows
        ds.Columns = layout.columns
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if encoding.signed else 0
        if modality == "CT" or (encoding.slope, encoding.intercept) != (1.0, 0.0):
            # Required by CT; MR Image has no rescale, so MR carries one (Standard Extended) only when needed.
            ds.RescaleIntercept = _ds(encoding.intercept)
            ds.RescaleSlope = _ds(encoding.slope)
            ds.RescaleType = "HU" if modality == "CT" else "US"
        ds.WindowCenter = [_ds(center) for center, _, _ in windows]
        ds.WindowWidth = [_ds(width) for _, width, _ in windows]
        ds.WindowCenterWidthExplanation = [explanation for _, _, explanation in windows]
        ds.PixelData = np.ascontiguousarray(slices[index]).tobytes()
        ds.save_as(path, enforce_file_format=True)
        converted.files.append(path)
    return converted
