"""DICOM Comprehensive 3D SR measurement reports (TID 1500) of reads and consensus, built with highdicom.

One document per read (person observer: the reader's pseudonym) and one per case
consensus (device observer: Readerboard consensus and its version). Each measured
lesion is a TID 1501 measurement group laid out as OHIF writes and reads them
(`@cornerstonejs/adapters`): the tracking identifier names the Cornerstone tool
(`Cornerstone3DTools@^0.1.0:Length` or `...:Bidirectional`), the tracking UID is
ours and stable, a Comment holds the lesion's label, and every line is a NUM (Length,
or Long Axis and Short Axis) with its own SCOORD POLYLINE `INFERRED FROM` it on the
source image and frame (TID 300/320). A lesion with a mask in a SEG of the same
export also gets a TID 1411 group that references its segment, under the same
tracking UID and with the label as tracking identifier. Answers to task questions
(sr_answers) give a lesion's group its Finding (the coded lesion type) and Finding Sites,
other answers are evaluations in the group, and the case's answers go into TID 1500's
Qualitative Evaluations container. This module must never read
pixel data or write files: it returns datasets.

Coordinates: the read format puts (0, 0) at the centre of the top-left pixel,
DICOM SCOORD at its top-left corner, so every point is shifted by half a pixel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from annotations.exports import sanitise
from annotations.exports.sources import (
    SOFTWARE_NAME,
    SeriesSources,
    person_name,
    reader_label,
    software_version,
)
from annotations.exports.sr_answers import LOCAL_SCHEME, SRAnswers, consensus_values, sr_answers
from annotations.models import CaseConsensus, Mark, QuestionSet, Read, Task
from viewer.dicom_files import READERBOARD_UID_ROOT
from viewer.models import Instance

# DICOM SCOORD puts (0, 0) at the top-left corner of the top-left pixel; the read format at its centre.
SCOORD_OFFSET_PX = 0.5
CONSENSUS_DEVICE_NAME = "Readerboard consensus"
READS_SR_SERIES_NUMBER = 9901
CONSENSUS_SR_SERIES_NUMBER = 9902
# TID 1500's container of the report's (here: the case's) qualitative evaluations, as DCMTK's
# TID 1500 classes (libcmr) code it.
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")
# OHIF and @cornerstonejs/adapters pick the tool of a measurement group by its tracking identifier.
CORNERSTONE_TRACKING_PREFIX = "Cornerstone3DTools@^0.1.0"
LENGTH_TOOL = "Length"
BIDIRECTIONAL_TOOL = "Bidirectional"
# The adapters find the axes by these exact meanings (pydicom's table spells them "Long axis").
LONG_AXIS = Code("103339001", "SCT", "Long Axis")
SHORT_AXIS = Code("103340004", "SCT", "Short Axis")
# A free-text label of the measurement; OHIF shows it as the annotation's label.
COMMENT = Code("121106", "DCM", "Comment")
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

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
class SegmentInSeg:
    """Where a lesion's mask is: one segment of a SEG instance made from a source series."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    segment_number: int
    source_series_instance_uid: str


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion: its label, its lines (a long axis and, for bidirectional marks, a short axis) and its mask."""

    label: str
    tracking_uid: str
    long_axis: LineOnImage | None
    short_axis: LineOnImage | None = None
    segment: SegmentInSeg | None = None
    # The lesion's answers: its own Finding (else the task's), Finding Sites and evaluations.
    answers: SRAnswers = SRAnswers()

    @property
    def tool(self) -> str:
        """The Cornerstone tool that draws these lines: Bidirectional for two axes on one frame, else Length."""
        if self.short_axis is None or self.long_axis is None:
            return LENGTH_TOOL
        same_frame = (self.short_axis.sop_instance_uid, self.short_axis.frame) == (
            self.long_axis.sop_instance_uid,
            self.long_axis.frame,
        )
        return BIDIRECTIONAL_TOOL if same_frame else LENGTH_TOOL


def finding_code(finding: str) -> Code:
    """Return the coded concept of a task's finding: SNOMED CT when pydicom knows the term, else a local code."""
    keyword = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", finding) if word)
    known = getattr(codes.SCT, keyword, None) if keyword else None
    meaning = sanitise.dicom_text(finding, "LO")
    if known is not None:
        # Keep the task's own word as the meaning when SNOMED lists it as a synonym (Tumor -> 108369006).
        return Code(known.value, known.scheme_designator, meaning or known.meaning)
    if not keyword:
        raise ValueError(f"finding {finding!r} has no letters to code")
    return Code(keyword.upper()[:16], LOCAL_SCHEME, meaning)


def procedure_code(modality: str) -> Code:
    """The procedure reported (CID 100) for a series' modality."""
    return _PROCEDURE_BY_MODALITY.get(modality.upper(), _IMAGING_PROCEDURE)


def tracking_uid(*parts: object) -> str:
    """A UID that is the same in every export for the same lesion, so tools can follow it across files."""
    # Stored keys may hold text UTF-8 cannot encode; cleaning leaves every other key (and so its UID) as it was.
    sources = [sanitise.text(part, count=False) for part in parts]
    return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=["readerboard-lesion", *sources])


def _line_measurement(name: Code, line: LineOnImage) -> hd.sr.Measurement:
    """A NUM in mm with the line itself INFERRED FROM it, selected from its image (and frame)."""
    points = np.array([line.start, line.end], dtype=float) + SCOORD_OFFSET_PX
    coordinates = hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=points,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=line.sop_class_uid,
            referenced_sop_instance_uid=line.sop_instance_uid,
            referenced_frame_numbers=[line.frame] if line.number_of_frames > 1 else None,
        ),
    )
    return hd.sr.Measurement(
        name=name, value=float(line.length_mm), unit=codes.UCUM.Millimeter, referenced_coordinates=[coordinates]
    )


def _finding_sites(answers: SRAnswers) -> list[hd.sr.FindingSite] | None:
    return [hd.sr.FindingSite(anatomic_location=site) for site in answers.finding_sites] or None


def _coded_evaluations(answers: SRAnswers) -> list[hd.sr.QualitativeEvaluation] | None:
    return [hd.sr.QualitativeEvaluation(name=e.name, value=e.value) for e in answers.evaluations if e.is_coded] or None


def _text_evaluations(answers: SRAnswers) -> list[hd.sr.TextContentItem]:
    """The answers that have no code, as TEXT items named by their question."""
    return [
        hd.sr.TextContentItem(name=e.name, value=e.value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for e in answers.evaluations
        if not e.is_coded
    ]


def _lines_group(
    *,
    lesion: LesionMeasurement,
    tool: str,
    measurements: list[hd.sr.Measurement],
    label: str,
    finding: Code,
    algorithm: hd.sr.AlgorithmIdentification | None,
    with_evaluations: bool = True,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    answers = lesion.answers
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=lesion.tracking_uid, identifier=f"{CORNERSTONE_TRACKING_PREFIX}:{tool}"
        ),
        finding_type=answers.finding or finding,
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        finding_sites=_finding_sites(answers),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=_coded_evaluations(answers) if with_evaluations else None,
    )
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(
            name=COMMENT,
            value=sanitise.dicom_text(label, "UT"),
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    if with_evaluations:
        group[0].ContentSequence.extend(_text_evaluations(answers))
    return group


def measurement_groups(
    *,
    lesion: LesionMeasurement,
    finding: Code,
    algorithm: hd.sr.AlgorithmIdentification | None = None,
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """Return the TID 1501 groups of one lesion's lines, as OHIF reads them.

    One group (a Length, or a Bidirectional's Long Axis and Short Axis) when the lines share
    an image; a consensus may take its axes from different slices, and a Cornerstone
    Bidirectional lives on one image, so then each axis is its own Length group, under the
    lesion's one tracking UID.
    """
    if lesion.long_axis is None:
        raise ValueError(f"lesion {lesion.label!r} has no long axis to measure")
    common = dict(lesion=lesion, finding=finding, algorithm=algorithm)
    if lesion.short_axis is None:
        measurements = [_line_measurement(codes.SCT.Length, lesion.long_axis)]
        return [_lines_group(tool=LENGTH_TOOL, measurements=measurements, label=lesion.label, **common)]
    if lesion.tool == BIDIRECTIONAL_TOOL:
        measurements = [
            _line_measurement(LONG_AXIS, lesion.long_axis),
            _line_measurement(SHORT_AXIS, lesion.short_axis),
        ]
        return [_lines_group(tool=BIDIRECTIONAL_TOOL, measurements=measurements, label=lesion.label, **common)]
    # The lesion's evaluations once, in its first group, so nothing reading the groups counts them twice.
    return [
        _lines_group(
            tool=LENGTH_TOOL,
            measurements=[_line_measurement(LONG_AXIS, lesion.long_axis)],
            label=f"{lesion.label} long axis",
            **common,
        ),
        _lines_group(
            tool=LENGTH_TOOL,
            measurements=[_line_measurement(SHORT_AXIS, lesion.short_axis)],
            label=f"{lesion.label} short axis",
            with_evaluations=False,
            **common,
        ),
    ]


def mask_group(
    *,
    lesion: LesionMeasurement,
    finding: Code,
    algorithm: hd.sr.AlgorithmIdentification | None = None,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """Return the TID 1411 group that points at the lesion's segment in its SEG.

    It carries the lesion's Finding and Finding Sites; its evaluations only when the lesion has no
    lines group to hold them.
    """
    if lesion.segment is None:
        raise ValueError(f"lesion {lesion.label!r} has no segment to reference")
    segment = lesion.segment
    answers = lesion.answers
    with_evaluations = lesion.long_axis is None
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=lesion.tracking_uid, identifier=sanitise.dicom_text(lesion.label, "UT", fallback="Lesion")
        ),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=SEGMENTATION_STORAGE,
            sop_instance_uid=segment.sop_instance_uid,
            segment_number=segment.segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(segment.source_series_instance_uid),
        ),
        finding_type=answers.finding or finding,
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        finding_sites=_finding_sites(answers),
        algorithm_id=algorithm,
        qualitative_evaluations=_coded_evaluations(answers) if with_evaluations else None,
    )
    if with_evaluations:
        group[0].ContentSequence.extend(_text_evaluations(answers))
    return group


def _segment_evidence(lesions: Sequence[LesionMeasurement]) -> list[Dataset]:
    """One evidence item per SEG instance the report points at."""
    evidence = {}
    for lesion in lesions:
        if lesion.segment is not None and lesion.segment.sop_instance_uid not in evidence:
            reference = Dataset()
            reference.StudyInstanceUID = lesion.segment.study_instance_uid
            reference.SeriesInstanceUID = lesion.segment.series_instance_uid
            reference.SOPClassUID = SEGMENTATION_STORAGE
            reference.SOPInstanceUID = lesion.segment.sop_instance_uid
            evidence[lesion.segment.sop_instance_uid] = reference
    return list(evidence.values())


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
    case_answers: SRAnswers | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Return a TID 1500 Comprehensive 3D SR: per lesion a group of its lines and a group pointing at its mask.

    `case_answers` go into the report's Qualitative Evaluations container (TID 1500): CODE items
    where the answer is coded, TEXT items otherwise.
    """
    if not lesions:
        raise ValueError("a measurement report needs at least one lesion")
    groups: list = []
    for lesion in lesions:
        if lesion.long_axis is not None:
            groups += measurement_groups(lesion=lesion, finding=finding, algorithm=algorithm)
        if lesion.segment is not None:
            groups.append(mask_group(lesion=lesion, finding=finding, algorithm=algorithm))
    report = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=procedure,
        imaging_measurements=groups,
    )
    if case_answers is not None and case_answers.evaluations:
        report[0].ContentSequence.append(_case_evaluations(case_answers))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*evidence, *_segment_evidence(lesions)],
        content=report[0],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(prefix=READERBOARD_UID_ROOT),
        instance_number=instance_number,
        manufacturer=SOFTWARE_NAME,
        is_complete=True,
        # Submitted reads and stored consensus results never change: the report is final.
        is_final=True,
        series_description=sanitise.dicom_text(series_description, "LO"),
        # UTF-8: every character sanitise leaves in a text value can be encoded.
        specific_character_set="ISO_IR 192",
    )
    sr.SoftwareVersions = software_version()
    return sr


def _case_evaluations(answers: SRAnswers) -> hd.sr.ContainerContentItem:
    """TID 1500's Qualitative Evaluations container holding a case's answers."""
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = [
        hd.sr.CodeContentItem(name=e.name, value=e.value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        if e.is_coded
        else hd.sr.TextContentItem(name=e.name, value=e.value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for e in answers.evaluations
    ]
    return container


def line_on_image(instance: Instance, *, frame: int, start, end, length_mm: float) -> LineOnImage:
    """Return a read-format line on one frame of an instance as the SR builders take it."""
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


def read_lesion_label(read: Read, lesion_index: int) -> str:
    """The human-readable name of a read's lesion in SR and SEG, e.g. `Read 10 lesion 1`."""
    return f"Read {read.pk} lesion {lesion_index}"


def consensus_lesion_label(lesion_index: int) -> str:
    return f"Consensus lesion {lesion_index}"


def read_lesions(
    *,
    read: Read,
    marks: Sequence[Mark],
    segments: Mapping[int, SegmentInSeg] | None = None,
    lesion_questions: Sequence[dict] = (),
) -> list[LesionMeasurement]:
    """The lesions of one read with a long axis or a segment, in the reader's order, with their answers."""
    segments = segments or {}
    lesion_answers = sanitise.mapping(sanitise.mapping(read.answers).get("lesions"))
    by_lesion: dict[int, dict[str, Mark]] = {index: {} for index in segments}
    for mark in marks:
        by_lesion.setdefault(mark.lesion_index, {})[mark.kind] = mark
    lesions = []
    for index in sorted(by_lesion):
        lines = {
            kind: line_on_image(mark.instance, frame=mark.frame, start=(mark.start_col, mark.start_row),
                        end=(mark.end_col, mark.end_row), length_mm=mark.length_mm)
            for kind, mark in by_lesion[index].items()
        }  # fmt: skip
        if "long_axis" not in lines and index not in segments:
            continue
        lesions.append(
            LesionMeasurement(
                label=read_lesion_label(read, index),
                tracking_uid=tracking_uid("read", read.pk, index),
                long_axis=lines.get("long_axis"),
                short_axis=lines.get("short_axis") if "long_axis" in lines else None,
                segment=segments.get(index),
                answers=sr_answers(lesion_questions, lesion_answers.get(str(index)), lesion=True),
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
    segments: Mapping[int, SegmentInSeg] | None = None,
) -> hd.sr.Comprehensive3DSR | None:
    """Return the measurement report of one read, or None when it has no lines.

    `segments` maps lesion numbers to their masks' segments in a SEG of the same export.
    """
    marks = list(read.marks.select_related("instance"))
    question_set = read.question_set  # the version this read answered
    lesion_questions = question_set.lesion_questions if question_set else []
    case_questions = question_set.case_questions if question_set else []
    lesions = read_lesions(read=read, marks=marks, segments=segments, lesion_questions=lesion_questions)
    if not any(lesion.long_axis for lesion in lesions):
        return None
    observer = reader_observer(read.reader, pseudonymise=pseudonymise)
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
        case_answers=sr_answers(case_questions, sanitise.mapping(read.answers).get("case"), lesion=False),
    )


def reader_observer(reader, *, pseudonymise: bool) -> hd.sr.ObservationContext:
    """Return the observation context of a reader (a person named by pseudonym unless identified)."""
    return hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=person_name(reader_label(reader, pseudonymise=pseudonymise))
            ),
        )
    )


def consensus_observer(
    consensus: CaseConsensus,
) -> tuple[hd.sr.ObservationContext, hd.sr.AlgorithmIdentification]:
    """Return the device observation context and algorithm identification of a stored consensus."""
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=consensus_device_uid(),
                name=CONSENSUS_DEVICE_NAME,
                manufacturer_name=SOFTWARE_NAME,
                model_name=sanitise.dicom_text(f"consensus {consensus.algorithm_version}", "LO"),
            ),
        )
    )
    algorithm = hd.sr.AlgorithmIdentification(
        name=CONSENSUS_DEVICE_NAME,
        version=sanitise.dicom_text(consensus.algorithm_version, "LO", fallback="unknown"),
        parameters=[
            sanitise.dicom_text(f"{key}={value}", "LO")
            for key, value in sorted(sanitise.mapping(consensus.params).items())
        ]
        or None,
    )
    return observer, algorithm


def consensus_device_uid() -> str:
    """The device observer UID of Readerboard's consensus algorithm, the same in every export."""
    return generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=["readerboard-consensus-device"])


def consensus_lesions(
    *,
    consensus: CaseConsensus,
    sources: SeriesSources,
    segments: Mapping[int, SegmentInSeg] | None = None,
    lesion_questions: Sequence[dict] = (),
) -> list[LesionMeasurement]:
    """The accepted consensus lesions with a long axis or a segment, in lesion order, with consensus answers."""
    segments = segments or {}
    lesion_blocks = sanitise.mapping(sanitise.mapping(consensus.answers).get("lesions"))
    lesions = []
    for lesion in consensus.lesions.filter(accepted=True).order_by("lesion_index"):
        if not lesion.long_axis and lesion.lesion_index not in segments:
            continue
        lines = {}
        for kind in ("long_axis", "short_axis"):
            line = getattr(lesion, kind)
            if line:
                frame = int(line.get("frame", 1))
                instance = sources.by_uid(line["sop_instance_uid"])
                lines[kind] = line_on_image(
                    instance, frame=frame, start=line["start"], end=line["end"], length_mm=line["length_mm"]
                )
        lesions.append(
            LesionMeasurement(
                label=consensus_lesion_label(lesion.lesion_index),
                tracking_uid=tracking_uid("consensus", consensus.case_id, consensus.inputs_hash, lesion.lesion_index),
                long_axis=lines.get("long_axis"),
                short_axis=lines.get("short_axis") if "long_axis" in lines else None,
                segment=segments.get(lesion.lesion_index),
                answers=sr_answers(
                    lesion_questions,
                    consensus_values(lesion_questions, lesion_blocks.get(str(lesion.lesion_index))),
                    lesion=True,
                ),
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
    segments: Mapping[int, SegmentInSeg] | None = None,
) -> hd.sr.Comprehensive3DSR | None:
    """Return the measurement report of a case's consensus, or None when it has no accepted lines.

    Consensus answers (plurality or median per question) stand where a read's answers would.
    """
    question_set = _answered_question_set(consensus)
    lesion_questions = question_set.lesion_questions if question_set else []
    case_questions = question_set.case_questions if question_set else []
    lesions = consensus_lesions(
        consensus=consensus, sources=sources, segments=segments, lesion_questions=lesion_questions
    )
    if not any(lesion.long_axis for lesion in lesions):
        return None
    observer, algorithm = consensus_observer(consensus)
    lines = [line for lesion in lesions for line in (lesion.long_axis, lesion.short_axis) if line is not None]
    instances = [sources.by_uid(line.sop_instance_uid) for line in lines]
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
        case_answers=sr_answers(
            case_questions,
            consensus_values(case_questions, sanitise.mapping(consensus.answers).get("case")),
            lesion=False,
        ),
    )


def _answered_question_set(consensus: CaseConsensus) -> QuestionSet | None:
    """The question version the consensus answers belong to (None without answers)."""
    version = sanitise.mapping(consensus.answers).get("version")
    if version is None:
        return None
    return QuestionSet.objects.filter(task_id=consensus.case.task_id, version=version).first()
