"""Import DICOM files, folders and zip archives into the store.

One service for the command line and the console upload: each file is parsed
once, validated (a DICOM image whose first frame the server can decode),
copied into `storages["dicom"]` by UID (the data dir by default, object storage
when configured; see viewer.services.stored_files) and recorded. Re-importing an
instance is a no-op. Study, series or instance UIDs that are not DICOM UIDs (so no
DICOMweb URL can name them) are replaced by UIDs derived from them, the same on
every import. A bad file is reported by name with the reason and never leaves a half
record or a stray file behind. Zips are extracted defensively (no traversal,
bounded size and count, streamed to disk). NIfTI volumes (`.nii`, `.nii.gz`, or a NIfTI header
in an upload or zip member) are converted to a DICOM series first (viewer.nifti) and their
slices imported like any other file; label maps beside them are checked, not imported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pydicom
from django.conf import settings
from django.db import IntegrityError, transaction
from pydicom.errors import InvalidDicomError

from viewer.models import Collection, Instance, Series, Study
from viewer.nifti.importing import NiftiOptions, NiftiSource, convert_sources, is_nifti_source
from viewer.services import phi, stored_files

logger = logging.getLogger(__name__)

IMPORTED = "imported"
DUPLICATE = "duplicate"
REJECTED = "rejected"
# Read and checked but not imported as images (a label map beside its NIfTI image).
SKIPPED = "skipped"


class UnsafeArchiveError(ValueError):
    """A zip archive that would escape its folder, is too big, or looks like a zip bomb."""


@dataclass(frozen=True)
class FileOutcome:
    name: str
    status: str
    reason: str = ""
    sop_instance_uid: str = ""
    # Identifying attributes the file carried (names only, never values); see services/phi.py.
    phi_attributes: tuple[str, ...] = ()


@dataclass
class ImportReport:
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == IMPORTED)

    @property
    def duplicates(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == DUPLICATE)

    @property
    def rejected(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == REJECTED)

    @property
    def skipped(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == SKIPPED)

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(o.reason.split(":")[0] for o in self.outcomes if o.status == REJECTED))

    def phi_summary(self) -> dict[str, int]:
        return phi.summarise([list(o.phi_attributes) for o in self.outcomes if o.status in (IMPORTED, DUPLICATE)])

    def summary(self) -> dict:
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "rejected_by_reason": self.rejected_by_reason(),
            "phi": self.phi_summary(),
        }


ProgressCallback = Callable[[int, int, FileOutcome], None]


def import_paths(
    paths: Iterable[Path | str],
    *,
    collection_name: str | None = None,
    progress: ProgressCallback | None = None,
    deidentify: bool = False,
    nifti: NiftiOptions | None = None,
) -> ImportReport:
    """Import every DICOM file found in paths (files, folders, zips, NIfTI volumes); return the per-file report.

    `nifti` says how NIfTI volumes are converted (modality, patient); MR and the file's stem without it.
    """
    collection = Collection.objects.get_or_create(name=collection_name)[0] if collection_name else None
    report = ImportReport()
    with tempfile.TemporaryDirectory(dir=_tmp_dir(), prefix="import-") as scratch:
        sources = list(_expand_sources([Path(p) for p in paths], Path(scratch), report, nifti or NiftiOptions()))
        total = len(sources) + len(report.outcomes)
        for display_name, path in sources:
            outcome = import_file(path, display_name=display_name, collection=collection, deidentify=deidentify)
            report.outcomes.append(outcome)
            if progress:
                progress(len(report.outcomes), total, outcome)
    return report


def import_file(
    path: Path, *, display_name: str | None = None, collection: Collection | None = None, deidentify: bool = False
) -> FileOutcome:
    """Validate one file and store it (de-identified first when asked); return what happened to it."""
    name = display_name or str(path)
    try:
        ds = _read_dataset(path)
        found_phi = tuple(phi.identifying_attributes(ds))
        if deidentify:
            phi.deidentify(ds)
        replaced = replace_unservable_uids(ds)
        meta = instance_metadata(ds)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OSError) as error:
        # InvalidFileError carries its own reason; anything else is a malformed attribute.
        reason = str(error) if isinstance(error, InvalidFileError) else f"malformed attribute: {error}"
        return FileOutcome(name, REJECTED, reason)
    if Instance.objects.filter(sop_instance_uid=meta["sop_instance_uid"]).exists():
        return FileOutcome(name, DUPLICATE, "already imported", meta["sop_instance_uid"], found_phi)
    try:
        _check_decodable(path, ds)
    except InvalidFileError as error:
        return FileOutcome(name, REJECTED, str(error), meta["sop_instance_uid"])
    try:
        instance = _store(path, ds, meta, collection, rewrite=deidentify or bool(replaced))
    except IntegrityError:
        # A concurrent import stored the same instance first.
        return FileOutcome(name, DUPLICATE, "already imported", meta["sop_instance_uid"], found_phi)
    _keep_metadata_document(instance)
    note = f"new UIDs derived from {', '.join(replaced)}, which are not DICOM UIDs" if replaced else ""
    return FileOutcome(name, IMPORTED, note, meta["sop_instance_uid"], found_phi)


def _keep_metadata_document(instance: Instance) -> None:
    """Write the WADO-RS metadata beside the file now, so the first viewer never waits on header parsing."""
    from viewer.dicomweb.delivery import write_metadata_sidecar

    try:
        write_metadata_sidecar(instance)
    except Exception:  # noqa: BLE001 - the instance is imported; the document is rebuilt on first request
        logger.warning("metadata document of %s not written at import", instance.sop_instance_uid, exc_info=True)


class InvalidFileError(ValueError):
    """A file that cannot be imported; the message is the reason shown to the user."""


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=False, defer_size="1 MB")
    except InvalidDicomError:
        raise InvalidFileError("not DICOM: no DICM preamble or recognisable header") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise InvalidFileError(f"truncated or corrupt: {error}") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InvalidFileError("no pixel data: not an image (e.g. SR, RT plan or presentation state)")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise InvalidFileError("unsupported pixel data: float pixel data (parametric maps) is not shown by the viewer")
    return ds


# The UIDs that name an instance in DICOMweb URLs (the same rule as viewer/dicomweb_urls.py's converter).
INSTANCE_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_SERVABLE_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DERIVED_UID_NAMESPACE = uuid.UUID("5d1f0c52-1b8e-4c59-9a43-7d6c1e0b9f21")  # Readerboard's, fixed forever


def servable_uid(value: str) -> str:
    """Return `value` when it is a DICOM UID a URL can name, else a 2.25 UID derived from it (always the same)."""
    if len(value) <= 64 and _SERVABLE_UID.fullmatch(value):
        return value
    # PS3.5 B.2: a UUID as one 2.25 arc; a name-based UUID makes it the same on every import.
    return f"2.25.{uuid.uuid5(_DERIVED_UID_NAMESPACE, value).int}"


def replace_unservable_uids(ds: pydicom.Dataset) -> dict[str, str]:
    """Give the instance derived UIDs where its own are not DICOM UIDs; return {keyword: original value}.

    Derived deterministically, so a re-import finds the stored instance and stays a no-op,
    and every file of one bad series lands in one series.
    """
    replaced = {}
    for keyword in INSTANCE_UID_KEYWORDS:
        value = str(ds.get(keyword, "") or "").strip()
        if value and servable_uid(value) != value:
            setattr(ds, keyword, servable_uid(value))
            replaced[keyword] = value
    file_meta = getattr(ds, "file_meta", None)
    if "SOPInstanceUID" in replaced and file_meta is not None and "MediaStorageSOPInstanceUID" in file_meta:
        file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if replaced:
        logger.info("new UIDs for %s: %s", ds.SOPInstanceUID, sorted(replaced))
    return replaced


def _uid(ds: pydicom.Dataset, keyword: str) -> str:
    value = str(ds.get(keyword, "") or "").strip()
    if not value:
        raise InvalidFileError(f"missing UID: {keyword} is empty")
    if len(value) > 64:
        raise InvalidFileError(f"invalid UID: {keyword} is longer than 64 characters")
    return value


def _floats(value, count: int) -> list[float] | None:
    if value is None:
        return None
    try:
        numbers = [
            float(v) for v in (value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value])
        ]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


def _first_float(value, default: float | None) -> float | None:
    if value is None or value == "":
        return default
    try:
        number = float(value[0] if isinstance(value, list | tuple | pydicom.multival.MultiValue) else value)
    except (TypeError, ValueError, IndexError):
        return default
    return number if np.isfinite(number) else default


def _sequence_item(ds: pydicom.Dataset, *keywords: str) -> pydicom.Dataset | None:
    """Walk nested single-item sequences, e.g. SharedFunctionalGroups -> PixelMeasures."""
    item = ds
    for keyword in keywords:
        sequence = item.get(keyword)
        if not sequence:
            return None
        item = sequence[0]
    return item


def instance_metadata(ds: pydicom.Dataset) -> dict:
    """Return the Instance/Series/Study fields held in the database, read from a dataset."""
    for keyword in ("Rows", "Columns"):
        if not ds.get(keyword):
            raise InvalidFileError(f"not an image: {keyword} is missing or zero")
    shared_measures = _sequence_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
    shared_orientation = _sequence_item(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    first_frame_measures = _sequence_item(per_frame[0], "PixelMeasuresSequence") if per_frame else None
    measures = shared_measures or first_frame_measures or ds

    pixel_spacing = _floats(measures.get("PixelSpacing") or ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), 2)
    orientation_source = shared_orientation or (
        _sequence_item(per_frame[0], "PlaneOrientationSequence") if per_frame else None
    )
    orientation = _floats((orientation_source or ds).get("ImageOrientationPatient"), 6)
    frame_positions = []
    for frame_item in per_frame:
        position = _sequence_item(frame_item, "PlanePositionSequence")
        frame_positions.append(_floats(position.get("ImagePositionPatient"), 3) if position else None)
    position = _floats(ds.get("ImagePositionPatient"), 3) or (frame_positions[0] if frame_positions else None)
    if frame_positions and not all(frame_positions):
        frame_positions = []

    slope = _first_float(ds.get("RescaleSlope"), None)
    intercept = _first_float(ds.get("RescaleIntercept"), None)
    transform = _sequence_item(ds, "SharedFunctionalGroupsSequence", "PixelValueTransformationSequence")
    if transform is not None and slope is None:
        slope = _first_float(transform.get("RescaleSlope"), None)
        intercept = _first_float(transform.get("RescaleIntercept"), None)
    voi = _sequence_item(ds, "SharedFunctionalGroupsSequence", "FrameVOILUTSequence") or ds
    centers = voi.get("WindowCenter")
    widths = voi.get("WindowWidth")
    centers_list = (
        [
            float(v)
            for v in (centers if isinstance(centers, pydicom.multival.MultiValue) else [centers])
            if v not in (None, "")
        ]
        if centers is not None
        else []
    )
    widths_list = (
        [
            float(v)
            for v in (widths if isinstance(widths, pydicom.multival.MultiValue) else [widths])
            if v not in (None, "")
        ]
        if widths is not None
        else []
    )

    sort_position = None
    if orientation and position:
        normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
        sort_position = float(np.dot(normal, np.array(position)))
    elif ds.get("SliceLocation") not in (None, ""):
        sort_position = _first_float(ds.get("SliceLocation"), None)

    try:
        instance_number = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        instance_number = None
    try:
        series_number = int(ds.get("SeriesNumber")) if ds.get("SeriesNumber") not in (None, "") else None
    except (TypeError, ValueError):
        series_number = None
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames < 1:
        raise InvalidFileError(f"invalid NumberOfFrames: {ds.get('NumberOfFrames')!r}")
    file_meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(getattr(file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    sop_class = str(ds.get("SOPClassUID") or getattr(file_meta, "MediaStorageSOPClassUID", "") or "")
    if not sop_class:
        raise InvalidFileError("missing UID: SOPClassUID is empty")

    return {
        "sop_instance_uid": _uid(ds, "SOPInstanceUID"),
        "series_instance_uid": _uid(ds, "SeriesInstanceUID"),
        "study_instance_uid": _uid(ds, "StudyInstanceUID"),
        "sop_class_uid": sop_class,
        "instance_number": instance_number,
        "series_number": series_number,
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "number_of_frames": frames,
        "samples_per_pixel": int(ds.get("SamplesPerPixel") or 1),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation") or ""),
        "bits_allocated": int(ds.get("BitsAllocated") or 16),
        "bits_stored": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16),
        "high_bit": int(ds.get("HighBit") if ds.get("HighBit") is not None else (ds.get("BitsStored") or 16) - 1),
        "pixel_representation": int(ds.get("PixelRepresentation") or 0),
        "planar_configuration": int(ds.PlanarConfiguration) if ds.get("PlanarConfiguration") is not None else None,
        "pixel_spacing_mm": pixel_spacing,
        "slice_thickness_mm": _first_float(measures.get("SliceThickness") or ds.get("SliceThickness"), None),
        "spacing_between_slices_mm": _first_float(
            measures.get("SpacingBetweenSlices") or ds.get("SpacingBetweenSlices"), None
        ),
        "image_position_patient": position,
        "image_orientation_patient": orientation,
        "frame_positions_patient": frame_positions or None,
        "rescale_slope": slope if slope is not None else 1.0,
        "rescale_intercept": intercept if intercept is not None else 0.0,
        "rescale_type": str(ds.get("RescaleType") or ("HU" if ds.get("Modality") == "CT" else "")),
        "window_centers": centers_list,
        "window_widths": widths_list,
        "transfer_syntax_uid": transfer_syntax,
        "sort_position_mm": sort_position,
        "modality": str(ds.get("Modality") or ""),
    }


def _check_decodable(path: Path, ds: pydicom.Dataset) -> None:
    """Decode the first frame; reject what the server could not show."""
    from pydicom.pixels import pixel_array

    transfer_syntax = ds.file_meta.get("TransferSyntaxUID", "") if hasattr(ds, "file_meta") else ""
    try:
        frame = pixel_array(str(path), index=0)
    except NotImplementedError:
        raise InvalidFileError(f"undecodable transfer syntax: {transfer_syntax} has no available decoder") from None
    except RuntimeError as error:
        if "plugin" in str(error).lower() or "decoder" in str(error).lower():
            raise InvalidFileError(f"undecodable transfer syntax: {transfer_syntax} ({error})") from None
        raise InvalidFileError(f"undecodable pixel data: {error}") from None
    except Exception as error:  # noqa: BLE001 - any decoder failure (incl. Pillow's bomb guard) is bad input
        raise InvalidFileError(f"undecodable pixel data: {error}") from None
    if frame.size == 0:
        raise InvalidFileError("undecodable pixel data: first frame is empty")


def _study_fields(ds: pydicom.Dataset) -> dict:
    return {
        "patient_id": str(ds.get("PatientID") or "")[:64],
        "patient_name": str(ds.get("PatientName") or "")[:324],
        "patient_birth_date": str(ds.get("PatientBirthDate") or "")[:8],
        "patient_sex": str(ds.get("PatientSex") or "")[:16],
        "study_date": str(ds.get("StudyDate") or "")[:8],
        "study_time": str(ds.get("StudyTime") or "")[:16],
        "study_description": str(ds.get("StudyDescription") or "")[:200],
        "accession_number": str(ds.get("AccessionNumber") or "")[:64],
        "study_id": str(ds.get("StudyID") or "")[:16],
    }


def _series_fields(ds: pydicom.Dataset, meta: dict) -> dict:
    return {
        "modality": meta["modality"][:16],
        "series_number": meta["series_number"],
        "series_description": str(ds.get("SeriesDescription") or "")[:200],
        "body_part_examined": str(ds.get("BodyPartExamined") or "")[:64],
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID") or "")[:64],
    }


def stored_relative_path(meta: dict) -> str:
    """Where an instance lives under the data dir: one folder per study and series."""
    return str(
        PurePosixPath(
            "dicom", meta["study_instance_uid"], meta["series_instance_uid"], meta["sop_instance_uid"] + ".dcm"
        )
    )


def _store(path: Path, ds: pydicom.Dataset, meta: dict, collection: Collection | None, *, rewrite: bool) -> Instance:
    relative = stored_relative_path(meta)
    local = stored_files.is_local_store()
    if local:
        target = Path(stored_files.dicom_store().path(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
    else:
        # Object storage: the file is completed locally and uploaded once its record has committed.
        descriptor, name = tempfile.mkstemp(prefix=f"{meta['sop_instance_uid']}.", suffix=".partial", dir=_tmp_dir())
        os.close(descriptor)
        partial = Path(name)
    if rewrite:
        ds.save_as(partial, enforce_file_format=False)
    else:
        shutil.copyfile(path, partial)
    try:
        with transaction.atomic():
            study, created = Study.objects.get_or_create(
                study_instance_uid=meta["study_instance_uid"],
                defaults={**_study_fields(ds), "collection": collection},
            )
            if not created and collection and study.collection_id is None:
                study.collection = collection
                study.save(update_fields=["collection"])
            series, _ = Series.objects.get_or_create(
                series_instance_uid=meta["series_instance_uid"],
                defaults={**_series_fields(ds, meta), "study": study},
            )
            instance_fields = {
                k: v
                for k, v in meta.items()
                if k
                not in {"sop_instance_uid", "series_instance_uid", "study_instance_uid", "series_number", "modality"}
            }
            instance = Instance.objects.create(
                sop_instance_uid=meta["sop_instance_uid"],
                series=series,
                file_path=relative,
                file_size=partial.stat().st_size,
                **instance_fields,
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # The file takes its final name only once the record has committed.
    try:
        if local:
            os.replace(partial, target)
        else:
            stored_files.upload(name=relative, source=partial, sop_instance_uid=meta["sop_instance_uid"])
    except Exception:
        instance.delete()
        partial.unlink(missing_ok=True)
        raise
    return instance


# --- sources: files, folders, zips -------------------------------------------------


def _tmp_dir() -> Path:
    directory = settings.DATA_DIR / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _expand_sources(
    paths: list[Path], scratch: Path, report: ImportReport, nifti: NiftiOptions
) -> Iterator[tuple[str, Path]]:
    """Yield (display name, file path) for every candidate file; unsafe zips and refused NIfTI files are reported.

    NIfTI volumes come last, as the DICOM slices they were converted to, named '<file>:<slice file>'
    like zip members (so the console maps them back to the dropped file).
    """
    nifti_sources: list[NiftiSource] = []
    for display_name, path, slice_prefix in _candidate_files(paths, scratch, report):
        if is_nifti_source(display_name=display_name, path=path):
            nifti_sources.append(NiftiSource(display_name, path, slice_prefix))
        else:
            yield display_name, path
    if not nifti_sources:
        return
    conversion = convert_sources(nifti_sources, scratch=scratch / "nifti", options=nifti)
    report.outcomes.extend(FileOutcome(name, REJECTED, reason) for name, reason in conversion.refused)
    report.outcomes.extend(FileOutcome(name, SKIPPED, note) for name, note in conversion.label_maps)
    yield from conversion.slices


def _candidate_files(paths: list[Path], scratch: Path, report: ImportReport) -> Iterator[tuple[str, Path, str]]:
    """Yield (display name, file path, short name) for every file, zip members extracted; unsafe zips are reported."""
    for root in paths:
        if not root.exists():
            report.outcomes.append(FileOutcome(str(root), REJECTED, "not found: no such file or folder"))
            continue
        candidates = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for candidate in candidates:
            if zipfile.is_zipfile(candidate):
                target = scratch / f"zip{len(list(scratch.iterdir()))}"
                try:
                    extracted = safe_extract_zip(candidate, target)
                except UnsafeArchiveError as error:
                    report.outcomes.append(FileOutcome(str(candidate), REJECTED, f"unsafe zip: {error}"))
                    continue
                for member_name, member_path in extracted:
                    yield f"{candidate.name}:{member_name}", member_path, f"{candidate.name}:{member_name}"
            else:
                yield str(candidate), candidate, candidate.name


def safe_extract_zip(archive: Path, target: Path) -> list[tuple[str, Path]]:
    """Extract a zip under target, refusing traversal, links, too many files or too many bytes."""
    limits = settings.READERBOARD
    max_bytes, max_files, max_ratio = (
        limits["ZIP_MAX_UNCOMPRESSED_BYTES"],
        limits["ZIP_MAX_FILES"],
        limits["ZIP_MAX_RATIO"],
    )
    extracted: list[tuple[str, Path]] = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsafeArchiveError(f"unreadable archive ({error})") from None
    with zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        if len(members) > max_files:
            raise UnsafeArchiveError(f"{len(members)} files exceeds the limit of {max_files}")
        declared = sum(info.file_size for info in members)
        if declared > max_bytes:
            raise UnsafeArchiveError(f"{declared} uncompressed bytes exceeds the limit of {max_bytes}")
        for info in members:
            _check_member_name(info)
            if info.compress_size and info.file_size / info.compress_size > max_ratio and info.file_size > 1_000_000:
                raise UnsafeArchiveError(f"{info.filename} expands {info.file_size // info.compress_size}x (zip bomb?)")
        target.mkdir(parents=True, exist_ok=True)
        written_total = 0
        for index, info in enumerate(members):
            destination = target / f"{index:06d}.dcm"
            # Never trust the declared size: count bytes while streaming.
            with zf.open(info) as source, open(destination, "wb") as sink:
                while chunk := source.read(1 << 20):
                    written_total += len(chunk)
                    if written_total > max_bytes:
                        raise UnsafeArchiveError(f"archive expands past the limit of {max_bytes} bytes")
                    sink.write(chunk)
            extracted.append((info.filename, destination))
    return extracted


def _check_member_name(info: zipfile.ZipInfo) -> None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(f"entry {info.filename!r} would be written outside the import folder")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"entry {info.filename!r} is a symbolic link")
