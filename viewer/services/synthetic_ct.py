"""Synthetic CT series with known anatomy and lesions, written as valid DICOM.

Used by the demo and by tests: each lesion is an ellipsoid of known diameters,
so a line drawn across it has a known true length. Geometry is exact: axial
slices, identity orientation, pixel spacing and slice spacing as given.
This module must never touch the database; it only writes files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, generate_uid

from viewer.dicom_files import READERBOARD_UID_ROOT, new_file_dataset


@dataclass(frozen=True)
class SyntheticLesion:
    """An ellipsoidal lesion; centre in patient mm, full diameters along x, y, z in mm."""

    center_mm: tuple[float, float, float]
    diameters_mm: tuple[float, float, float]
    hu: float = 45.0

    @property
    def long_axis_mm(self) -> float:
        """The greatest in-plane (axial) diameter."""
        return float(max(self.diameters_mm[0], self.diameters_mm[1]))

    @property
    def short_axis_mm(self) -> float:
        return float(min(self.diameters_mm[0], self.diameters_mm[1]))


@dataclass
class SyntheticPatient:
    patient_id: str
    patient_name: str
    lesions: list[SyntheticLesion]
    rows: int = 512
    columns: int = 512
    slices: int = 80
    pixel_spacing_mm: float = 0.7
    slice_spacing_mm: float = 2.5
    sex: str = "O"
    birth_date: str = "19600101"
    seed: int = 0


@dataclass
class WrittenSeries:
    study_instance_uid: str
    series_instance_uid: str
    files: list[Path] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    slice_z_mm: list[float] = field(default_factory=list)
    origin_mm: tuple[float, float] = (0.0, 0.0)


def _anatomy(patient: SyntheticPatient, xx: np.ndarray, yy: np.ndarray, z: float) -> dict[str, np.ndarray]:
    """Return the boolean masks of body, subcutaneous fat, lungs, liver and spine at x, y (mm) on the plane z."""
    ps = patient.pixel_spacing_mm
    half_w = patient.columns * ps * 0.42
    half_h = patient.rows * ps * 0.32
    z_edge = (patient.slices - 1) * patient.slice_spacing_mm / 2.0
    # Torso tapers gently with z so neighbouring slices differ.
    taper = 1.0 - 0.08 * (z / max(1.0, z_edge or 1.0)) ** 2
    lung = np.zeros(np.shape(xx), dtype=bool)
    for side in (-1, 1):
        lung |= ((xx - side * half_w * 0.45) / (half_w * 0.33)) ** 2 + ((yy + half_h * 0.05) / (half_h * 0.7)) ** 2 <= 1
    liver = ((xx + half_w * 0.35) / (half_w * 0.4)) ** 2 + ((yy - half_h * 0.25) / (half_h * 0.45)) ** 2 <= 1
    return {
        "body": (xx / (half_w * taper)) ** 2 + (yy / (half_h * taper)) ** 2 <= 1.0,
        "fat": (xx / (half_w * taper * 0.97)) ** 2 + (yy / (half_h * taper * 0.95)) ** 2 > 1.0,
        "lung": lung,
        # The liver sits below the lung bases (z < 0); above them the same place is lung.
        "liver": liver & (z < 0),
        "spine": (xx / 14.0) ** 2 + ((yy - half_h * 0.75) / 14.0) ** 2 <= 1,
    }


def tissue_at(patient: SyntheticPatient, point_mm: tuple[float, float, float]) -> str:
    """Return the tissue the synthetic body has at a point (lesions aside), as the image paints it:
    "bone" (spine), "liver", "lung", "fat", "soft_tissue" or "air"."""
    x, y, z = (float(v) for v in point_mm)
    organs = {name: bool(mask) for name, mask in _anatomy(patient, np.array(x), np.array(y), z).items()}
    if organs["spine"]:
        return "bone"
    if not organs["body"]:
        return "air"
    if organs["liver"]:
        return "liver"
    if organs["lung"]:
        return "lung"
    return "fat" if organs["fat"] else "soft_tissue"


def volume_hu(patient: SyntheticPatient) -> tuple[np.ndarray, tuple[float, float], list[float]]:
    """Return (volume in HU as int16 [z, row, col], (x0, y0) of pixel (0,0) in mm, slice z positions in mm)."""
    rng = np.random.default_rng(patient.seed)
    ps = patient.pixel_spacing_mm
    x0 = -(patient.columns - 1) * ps / 2.0
    y0 = -(patient.rows - 1) * ps / 2.0
    xs = x0 + np.arange(patient.columns) * ps
    ys = y0 + np.arange(patient.rows) * ps
    zs = [
        -(patient.slices - 1) * patient.slice_spacing_mm / 2.0 + k * patient.slice_spacing_mm
        for k in range(patient.slices)
    ]
    xx, yy = np.meshgrid(xs, ys)  # [row, col]
    volume = np.full((patient.slices, patient.rows, patient.columns), -1000, dtype=np.int16)
    for k, z in enumerate(zs):
        organs = _anatomy(patient, xx, yy, z)
        body = organs["body"]
        slice_hu = np.where(body, 40.0, -1000.0)
        slice_hu[body & organs["fat"]] = -100.0
        slice_hu[organs["lung"] & body] = -850.0
        slice_hu[organs["liver"] & body] = 110.0  # portal venous phase, so hypodense lesions stand out
        slice_hu[organs["spine"]] = 700.0
        for lesion in patient.lesions:
            cx, cy, cz = lesion.center_mm
            ax, ay, az = (d / 2.0 for d in lesion.diameters_mm)
            dz = ((z - cz) / az) ** 2
            if dz <= 1.0:
                inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0 - dz
                slice_hu[inside] = lesion.hu
        noise = rng.normal(0.0, 8.0, size=slice_hu.shape)
        volume[k] = np.clip(np.rint(slice_hu + noise), -1024, 3071).astype(np.int16)
    return volume, (float(x0), float(y0)), zs


def write_series(
    patient: SyntheticPatient,
    out_dir: Path,
    *,
    study_description: str = "CT CHEST ABDOMEN",
    uid_seed: str | None = None,
    study_datetime: dt.datetime | None = None,
) -> WrittenSeries:
    """Write the patient's CT as one file per slice in out_dir; return the UIDs and paths.

    With `uid_seed` every UID is derived from it, so writing and importing the same series
    again (after an interrupted demo set-up, say) is a no-op instead of a second copy.
    `study_datetime` dates the study (follow-up demos write one patient's studies at several dates).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    volume, (x0, y0), zs = volume_hu(patient)

    def new_uid(*parts: object) -> str:
        entropy = [uid_seed, *map(str, parts)] if uid_seed else None
        return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=entropy)

    study_uid = new_uid("study")
    series_uid = new_uid("series")
    frame_uid = new_uid("frame-of-reference")
    written = WrittenSeries(study_uid, series_uid, origin_mm=(x0, y0))
    now = study_datetime or dt.datetime(2026, 11, 1, 9, 30, 0)
    for k, z in enumerate(zs):
        sop_uid = new_uid("instance", k)
        path = out_dir / f"CT{k + 1:04d}.dcm"
        ds = new_file_dataset(path, sop_class_uid=CTImageStorage, sop_instance_uid=sop_uid)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        _patient_study_and_series(ds, patient, study_description=study_description, when=now)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = k + 1
        _image_plane(ds, patient, origin_mm=(x0, y0, z))
        _ct_pixels(ds, patient, volume[k])
        ds.save_as(path, enforce_file_format=True)
        written.files.append(path)
        written.sop_instance_uids.append(sop_uid)
        written.slice_z_mm.append(float(z))
    return written


def _patient_study_and_series(ds, patient: SyntheticPatient, *, study_description: str, when: dt.datetime) -> None:
    """Patient, General Study, General Series and General Equipment modules, the same in every slice."""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = when.strftime("%H%M%S")
    ds.AccessionNumber = f"ACC{patient.patient_id[-4:]}"
    ds.Modality = "CT"
    ds.Manufacturer = "Readerboard synthetic"
    ds.InstitutionName = "Readerboard Demo"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description
    ds.SeriesDescription = f"Axial {patient.slice_spacing_mm:g} mm (synthetic)"
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1


def _image_plane(ds, patient: SyntheticPatient, *, origin_mm: tuple[float, float, float]) -> None:
    """Image Plane module of an axial slice whose first pixel's centre is at `origin_mm`."""
    x0, y0, z = origin_mm
    ds.SliceThickness = f"{patient.slice_spacing_mm:g}"
    ds.ImagePositionPatient = [f"{x0:.4f}", f"{y0:.4f}", f"{z:.4f}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.4f}"
    ds.PixelSpacing = [f"{patient.pixel_spacing_mm:g}", f"{patient.pixel_spacing_mm:g}"]


def _ct_pixels(ds, patient: SyntheticPatient, slice_hu: np.ndarray) -> None:
    """Image Pixel, CT Image and VOI LUT modules: signed 16-bit values stored with a -1024 HU intercept."""
    intercept = -1024.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = patient.rows
    ds.Columns = patient.columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = (slice_hu.astype(np.int32) - int(intercept)).astype(np.int16).tobytes()


def demo_patients(*, count: int = 4, slices: int = 80, rows: int = 512, columns: int = 512) -> list[SyntheticPatient]:
    """Return a reproducible set of demo patients, each with 1 to 3 lesions of known size."""
    rng = np.random.default_rng(2017)
    patients = []
    for index in range(count):
        # A smaller matrix keeps the body's field of view (lesions sit up to 60 mm off centre): bigger pixels.
        spacing = float(rng.choice([0.68, 0.7, 0.78])) * max(1.0, 512 / rows)
        n_slices = slices + int(rng.integers(0, 41)) if slices >= 60 else slices
        slice_z = [-(n_slices - 1) * 2.5 / 2.0 + k * 2.5 for k in range(n_slices)]
        n_lesions = int(rng.integers(1, 4))
        lesions = []
        placements = [(-60.0, 40.0), (55.0, -20.0), (-20.0, 55.0)]  # liver, right lung, left liver edge
        for lesion_index in range(n_lesions):
            px, py = placements[lesion_index]
            long_mm = float(rng.choice([12.0, 18.0, 24.0, 32.0, 40.0]))
            short_mm = round(long_mm * float(rng.uniform(0.6, 0.9)), 1)
            depth_mm = max(short_mm, 12.0)
            # Centres sit on a slice so the greatest axial diameter is really drawn there.
            z_c = slice_z[int(rng.integers(n_slices // 3, 2 * n_slices // 3))]
            # Lesions in the lung are solid (soft tissue), those in the liver hypodense.
            hu = 20.0 if lesion_index != 1 else 35.0
            lesions.append(SyntheticLesion((px, py, z_c), (long_mm, short_mm, depth_mm), hu=hu))
        patients.append(
            SyntheticPatient(
                patient_id=f"RB-DEMO-{index + 1:03d}",
                patient_name=f"Demo^Patient{index + 1}",
                lesions=lesions,
                rows=rows,
                columns=columns,
                slices=n_slices,
                pixel_spacing_mm=spacing,
                sex=["F", "M"][index % 2],
                birth_date=f"19{50 + index * 7}0{1 + index % 9}15",
                seed=index + 1,
            )
        )
    return patients


def read_back_hu(path: Path) -> np.ndarray:
    """Return one written slice in HU (used by tests to check the geometry)."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
