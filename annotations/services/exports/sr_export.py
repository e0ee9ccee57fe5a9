"""DICOM Comprehensive 3D SR measurement reports (TID 1500) of reads and consensus, built with highdicom.

One document per read (person observer: the reader's pseudonym) and one per case
consensus (device observer: Readerboard's consensus algorithm and its version).
Each lesion is a TID 1410 planar ROI group with a tracking identifier and UID,
the finding coded in SNOMED CT, the long axis as an SCOORD POLYLINE on its source
image, a Length in mm and, for bidirectional marks, Long Axis and Short Axis.
This module must never read pixel data or write files: it returns datasets.

Coordinates: the read format puts (0, 0) at the centre of the top-left pixel,
DICOM SCOORD at its top-left corner, so every point is shifted by half a pixel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from annotations.models import CaseConsensus, Mark, Read, Task
from annotations.services.exports.sources import (
    SOFTWARE_NAME,
    SeriesSources,
    person_name,
    reader_label,
    software_version,
)
from viewer.models import Instance
from viewer.services.synthetic_ct import READERBOARD_UID_ROOT

# DICOM SCOORD puts (0, 0) at the top-left corner of the top-left pixel; the read format at its centre.
SCOORD_OFFSET_PX = 0.5
CONSENSUS_DEVICE_NAME = "Readerboard consensus"
READS_SR_SERIES_NUMBER = 9901
CONSENSUS_SR_SERIES_NUMBER = 9902
# Private coding scheme for findings SNOMED CT's table here does not know.
LOCAL_SCHEME = "99RDBD"

_PROCEDURE_BY_MODALITY = {
    "CT": codes.LN.CTUnspecifiedBodyRegion,
    "MR": Code("25056-3", "LN", "MRI unspecified body region"),
    "PT": Code("44136-0", "LN", "PET unspecified body region"),
}
_IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging")


@dataclass(frozen=True)
class LineOnImage:
    """A measured line on one frame of one image, in read-format image coordinates (column, row)."""

    sop_class_uid: str
    sop_instance_uid: str
    frame: int
    number_of_frames: int
    start: tuple[float, float]
    end: tuple[float, float]
    length_mm: float


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion's lines: a long axis and, for bidirectional marks, a short axis."""

    tracking_id: str
    tracking_uid: str
    long_axis: LineOnImage
    short_axis: LineOnImage | None = None


def finding_code(finding: str) -> Code:
    """Return the coded concept of a task's finding: SNOMED CT when pydicom knows the term, else a local code."""
    keyword = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", finding) if word)
    known = getattr(codes.SCT, keyword, None) if keyword else None
    if known is not None:
        # Keep the task's own word as the meaning when SNOMED lists it as a synonym (Tumor -> 108369006).
        return Code(known.value, known.scheme_designator, finding.strip() or known.meaning)
    if not keyword:
        raise ValueError(f"finding {finding!r} has no letters to code")
    return Code(keyword.upper()[:16], LOCAL_SCHEME, finding.strip())


def procedure_code(modality: str) -> Code:
    """The procedure reported (CID 100) for a series' modality."""
    return _PROCEDURE_BY_MODALITY.get(modality.upper(), _IMAGING_PROCEDURE)


def tracking_uid(*parts: object) -> str:
    """A UID that is the same in every export for the same lesion, so tools can follow it across files."""
    return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=["readerboard-lesion", *map(str, parts)])


def _region(line: LineOnImage) -> hd.sr.ImageRegion:
    points = np.array([line.start, line.end], dtype=float) + SCOORD_OFFSET_PX
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=points,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=line.sop_class_uid,
            referenced_sop_instance_uid=line.sop_instance_uid,
            referenced_frame_numbers=[line.frame] if line.number_of_frames > 1 else None,
        ),
    )


def _mm(name: Code, value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=codes.UCUM.Millimeter)


def measurement_group(
    *,
    lesion: LesionMeasurement,
    finding: Code,
    algorithm: hd.sr.AlgorithmIdentification | None = None,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """Return the TID 1410 group of one lesion."""
    measurements = [_mm(codes.SCT.Length, lesion.long_axis.length_mm)]
    if lesion.short_axis is not None:
        measurements += [
            _mm(codes.SCT.LongAxis, lesion.long_axis.length_mm),
            _mm(codes.SCT.ShortAxis, lesion.short_axis.length_mm),
        ]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=lesion.tracking_uid, identifier=lesion.tracking_id),
        referenced_region=_region(lesion.long_axis),
        finding_type=finding,
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        algorithm_id=algorithm,
        measurements=measurements,
    )


def measurement_report_sr(
    *,
    lesions: Sequence[LesionMeasurement],
    observation_context: hd.sr.ObservationContext,
    finding: Code,
    procedure: Code,
    evidence: Sequence[Dataset],
    series_instance_uid: str,
    series_number: int,
    instance_number: int,
    series_description: str,
    algorithm: hd.sr.AlgorithmIdentification | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Return a TID 1500 Comprehensive 3D SR with one planar ROI group per lesion."""
    if not lesions:
        raise ValueError("a measurement report needs at least one lesion")
    report = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=procedure,
        imaging_measurements=[
            measurement_group(lesion=lesion, finding=finding, algorithm=algorithm) for lesion in lesions
        ],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(prefix=READERBOARD_UID_ROOT),
        instance_number=instance_number,
        manufacturer=SOFTWARE_NAME,
        is_complete=True,
        # Submitted reads and stored consensus results never change: the report is final.
        is_final=True,
        series_description=series_description[:64],
    )
    sr.SoftwareVersions = software_version()
    return sr


def _line(instance: Instance, *, frame: int, start, end, length_mm: float) -> LineOnImage:
    return LineOnImage(
        sop_class_uid=instance.sop_class_uid,
        sop_instance_uid=instance.sop_instance_uid,
        frame=frame,
        number_of_frames=instance.number_of_frames,
        start=(float(start[0]), float(start[1])),
        end=(float(end[0]), float(end[1])),
        length_mm=float(length_mm),
    )


def evidence_for(*, sources: SeriesSources, instances: Sequence[Instance]) -> list[Dataset]:
    """Evidence datasets: the first measured image's own header (patient and study), then the other images' UIDs."""
    unique = list({instance.pk: instance for instance in instances}.values())
    evidence = [sources.header(unique[0])]
    study_uid = sources.series.study.study_instance_uid
    for instance in unique[1:]:
        reference = Dataset()
        reference.StudyInstanceUID = study_uid
        reference.SeriesInstanceUID = sources.series.series_instance_uid
        reference.SOPClassUID = instance.sop_class_uid
        reference.SOPInstanceUID = instance.sop_instance_uid
        evidence.append(reference)
    return evidence


def read_lesions(*, read: Read, marks: Sequence[Mark]) -> list[LesionMeasurement]:
    """The lesions of one read that have a long axis, in the reader's order."""
    by_lesion: dict[int, dict[str, Mark]] = {}
    for mark in marks:
        by_lesion.setdefault(mark.lesion_index, {})[mark.kind] = mark
    lesions = []
    for index in sorted(by_lesion):
        lines = {
            kind: _line(mark.instance, frame=mark.frame, start=(mark.start_col, mark.start_row),
                        end=(mark.end_col, mark.end_row), length_mm=mark.length_mm)
            for kind, mark in by_lesion[index].items()
        }  # fmt: skip
        if "long_axis" not in lines:
            continue
        lesions.append(
            LesionMeasurement(
                tracking_id=f"Read {read.pk} lesion {index}",
                tracking_uid=tracking_uid("read", read.pk, index),
                long_axis=lines["long_axis"],
                short_axis=lines.get("short_axis"),
            )
        )
    return lesions


def sr_for_read(
    *,
    read: Read,
    task: Task,
    sources: SeriesSources,
    series_instance_uid: str,
    instance_number: int = 1,
    pseudonymise: bool = True,
) -> hd.sr.Comprehensive3DSR | None:
    """Return the measurement report of one read, or None when it has no lines."""
    marks = list(read.marks.select_related("instance"))
    lesions = read_lesions(read=read, marks=marks)
    if not lesions:
        return None
    observer = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=person_name(reader_label(read.reader, pseudonymise=pseudonymise))
            ),
        )
    )
    return measurement_report_sr(
        lesions=lesions,
        observation_context=observer,
        finding=finding_code(task.finding),
        procedure=procedure_code(sources.series.modality),
        evidence=evidence_for(sources=sources, instances=[mark.instance for mark in marks]),
        series_instance_uid=series_instance_uid,
        series_number=READS_SR_SERIES_NUMBER,
        instance_number=instance_number,
        series_description=f"Readerboard reads: {task.name}",
    )


def consensus_device_uid() -> str:
    """The device observer UID of Readerboard's consensus algorithm, the same in every export."""
    return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=["readerboard-consensus-device"])


def consensus_lesions(*, consensus: CaseConsensus, sources: SeriesSources) -> list[LesionMeasurement]:
    """The accepted consensus lesions with a long axis, in lesion order."""
    lesions = []
    for lesion in consensus.lesions.filter(accepted=True).order_by("lesion_index"):
        if not lesion.long_axis:
            continue
        lines = {}
        for kind in ("long_axis", "short_axis"):
            line = getattr(lesion, kind)
            if line:
                frame = int(line.get("frame", 1))
                instance = sources.by_uid(line["sop_instance_uid"])
                lines[kind] = _line(
                    instance, frame=frame, start=line["start"], end=line["end"], length_mm=line["length_mm"]
                )
        lesions.append(
            LesionMeasurement(
                tracking_id=f"Consensus lesion {lesion.lesion_index}",
                tracking_uid=tracking_uid("consensus", consensus.case_id, consensus.inputs_hash, lesion.lesion_index),
                long_axis=lines["long_axis"],
                short_axis=lines.get("short_axis"),
            )
        )
    return lesions


def sr_for_consensus(
    *,
    consensus: CaseConsensus,
    task: Task,
    sources: SeriesSources,
    series_instance_uid: str,
    instance_number: int = 1,
) -> hd.sr.Comprehensive3DSR | None:
    """Return the measurement report of a case's consensus, or None when it has no accepted lines."""
    lesions = consensus_lesions(consensus=consensus, sources=sources)
    if not lesions:
        return None
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=consensus_device_uid(),
                name=CONSENSUS_DEVICE_NAME,
                manufacturer_name=SOFTWARE_NAME,
                model_name=f"consensus {consensus.algorithm_version}"[:64],
            ),
        )
    )
    algorithm = hd.sr.AlgorithmIdentification(
        name=CONSENSUS_DEVICE_NAME,
        version=consensus.algorithm_version,
        parameters=[f"{key}={value}" for key, value in sorted((consensus.params or {}).items())] or None,
    )
    instances = [sources.by_uid(lesion.long_axis.sop_instance_uid) for lesion in lesions]
    return measurement_report_sr(
        lesions=lesions,
        observation_context=observer,
        finding=finding_code(task.finding),
        procedure=procedure_code(sources.series.modality),
        evidence=evidence_for(sources=sources, instances=instances),
        series_instance_uid=series_instance_uid,
        series_number=CONSENSUS_SR_SERIES_NUMBER,
        instance_number=instance_number,
        series_description=f"Readerboard consensus: {task.name}",
        algorithm=algorithm,
    )
