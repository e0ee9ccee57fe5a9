"""Binary DICOM Segmentation objects of lesion masks (per read and per case consensus), built with highdicom.

One SEG per read that painted masks (one segment per lesion: MANUAL when painted by hand,
SEMIAUTOMATIC with the algorithm's name when the reader started from a proposed mask)
and one per case consensus (one segment per accepted consensus lesion, the
STAPLE or majority label). Source images are the series' images the masks lie
on; segments carry the same tracking UIDs as the SR measurement groups, so a
tool can pair a lesion's lines with its mask. This module must never read the
source images' pixel data or write files: it returns datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from annotations.core import mask_rle
from annotations.exports import sanitise
from annotations.exports.sources import (
    SOFTWARE_NAME,
    SeriesSources,
    person_name,
    reader_label,
    software_version,
)
from annotations.exports.sr_export import (
    CONSENSUS_DEVICE_NAME,
    consensus_lesion_label,
    finding_code,
    read_lesion_label,
    tracking_uid,
)
from annotations.models import CaseConsensus, MaskProvenance, MaskSource, Read, Task
from viewer.dicom_files import READERBOARD_UID_ROOT
from viewer.models import Instance

READS_SEG_SERIES_NUMBER = 9903
CONSENSUS_SEG_SERIES_NUMBER = 9904


@dataclass(frozen=True)
class MaskFrame:
    """One painted frame: run lengths over the frame's row-major bitmap, starting with zeros."""

    instance: Instance
    frame: int
    counts: Sequence[int]


@dataclass(frozen=True)
class SegmentMasks:
    label: str
    tracking_id: str
    tracking_uid: str
    frames: Sequence[MaskFrame]
    # This segment's own algorithm type and identification (a proposed mask in a reader's SEG); None: the SEG's.
    algorithm_type: hd.seg.SegmentAlgorithmTypeValues | None = None
    algorithm: hd.AlgorithmIdentificationSequence | None = None


def _source_layout(sources: SeriesSources, segments: Sequence[SegmentMasks]) -> tuple[list[Instance], dict]:
    """Return the source images and a map (instance id, frame) -> frame index of the SEG's pixel array.

    Single-frame series: the images that carry a mask, in reading order. A multi-frame
    source: that one image, all of its frames (highdicom indexes by source frame).
    """
    used = {frame.instance.pk for segment in segments for frame in segment.frames}
    instances = [instance for instance in sources.instances if instance.pk in used]
    multi_frame = [instance for instance in instances if instance.number_of_frames > 1]
    if multi_frame:
        if len(instances) > 1:
            raise ValueError(
                f"masks span {len(instances)} images including a multi-frame image "
                f"{multi_frame[0].sop_instance_uid}; a SEG can reference one multi-frame source"
            )
        only = instances[0]
        return instances, {(only.pk, frame): frame - 1 for frame in range(1, only.number_of_frames + 1)}
    return instances, {(instance.pk, 1): index for index, instance in enumerate(instances)}


def segmentation(
    *,
    sources: SeriesSources,
    segments: Sequence[SegmentMasks],
    finding_name: str,
    algorithm_type: hd.seg.SegmentAlgorithmTypeValues,
    algorithm: hd.AlgorithmIdentificationSequence | None,
    series_instance_uid: str,
    series_number: int,
    instance_number: int,
    series_description: str,
    content_label: str,
    content_description: str,
    content_creator_name: str | None = None,
    sop_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """Return a binary SEG with one segment per entry of `segments`, numbered from 1 in order."""
    if not segments:
        raise ValueError("a segmentation needs at least one segment")
    source_instances, frame_index = _source_layout(sources, segments)
    first = source_instances[0]
    n_frames = len(frame_index)
    pixels = np.zeros((n_frames, first.rows, first.columns, len(segments)), dtype=bool)
    for number, segment in enumerate(segments):
        for mask in segment.frames:
            pixels[frame_index[(mask.instance.pk, mask.frame)], :, :, number] |= mask_rle.decode(
                mask.counts, rows=mask.instance.rows, columns=mask.instance.columns
            )
    finding = finding_code(finding_name)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=sanitise.dicom_text(segment.label, "LO", fallback="Lesion"),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=finding,
            algorithm_type=segment.algorithm_type or algorithm_type,
            algorithm_identification=segment.algorithm if segment.algorithm_type else algorithm,
            tracking_uid=segment.tracking_uid,
            tracking_id=sanitise.dicom_text(segment.tracking_id, "LO", fallback="Lesion"),
        )
        for number, segment in enumerate(segments, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=[sources.header(instance) for instance in source_instances],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(prefix=READERBOARD_UID_ROOT),
        instance_number=instance_number,
        manufacturer=SOFTWARE_NAME,
        manufacturer_model_name="Readerboard export",
        software_versions=software_version(),
        device_serial_number="0",
        content_label=content_label,
        content_description=sanitise.dicom_text(content_description, "LO"),
        content_creator_name=content_creator_name,
        series_description=sanitise.dicom_text(series_description, "LO"),
        # UTF-8: every character sanitise leaves in a text value can be encoded.
        specific_character_set="ISO_IR 192",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=True,
    )
    return seg


def read_segment_numbers(read: Read) -> dict[int, int]:
    """Lesion number -> segment number in the read's SEG (lesions with a mask, numbered from 1 in order)."""
    indices = sorted(set(read.mask_slices.values_list("lesion_index", flat=True)))
    return {index: number for number, index in enumerate(indices, start=1)}


def consensus_segment_numbers(consensus: CaseConsensus) -> dict[int, int]:
    """Lesion number -> segment number in the consensus SEG (accepted lesions with a mask, in order)."""
    accepted = consensus.lesions.filter(accepted=True).order_by("lesion_index")
    indices = [lesion.lesion_index for lesion in accepted.only("lesion_index", "mask_slices") if lesion.mask_slices]
    return {index: number for number, index in enumerate(indices, start=1)}


def seg_for_read(
    *,
    read: Read,
    task: Task,
    sources: SeriesSources,
    series_instance_uid: str,
    instance_number: int = 1,
    pseudonymise: bool = True,
    sop_instance_uid: str | None = None,
) -> hd.seg.Segmentation | None:
    """Return the SEG of one read's masks (a segment per lesion), or None when it painted none."""
    by_lesion: dict[int, list[MaskFrame]] = {}
    for mask in read.mask_slices.select_related("instance").order_by("lesion_index", "id"):
        by_lesion.setdefault(mask.lesion_index, []).append(MaskFrame(mask.instance, mask.frame, mask.counts))
    if not by_lesion:
        return None
    provenances = {provenance.lesion_index: provenance for provenance in read.mask_provenances.all()}
    segments = [
        SegmentMasks(
            label=f"Lesion {index}",
            tracking_id=read_lesion_label(read, index),
            tracking_uid=tracking_uid("read", read.pk, index),
            frames=frames,
            **proposed_segment_algorithm(provenances.get(index)),
        )
        for index, frames in sorted(by_lesion.items())
    ]
    label = reader_label(read.reader, pseudonymise=pseudonymise)
    return segmentation(
        sources=sources,
        segments=segments,
        finding_name=task.finding,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        algorithm=None,
        series_instance_uid=series_instance_uid,
        series_number=READS_SEG_SERIES_NUMBER,
        instance_number=instance_number,
        series_description=f"Readerboard masks: {task.name}",
        content_label="READ",
        content_description=f"Read {read.pk} v{read.version} by {label}",
        content_creator_name=person_name(label),
        sop_instance_uid=sop_instance_uid,
    )


def proposed_segment_algorithm(provenance: MaskProvenance | None) -> dict:
    """A proposed mask's segment fields: SEMIAUTOMATIC, identified by the algorithm; {} for a hand-made mask.

    The reader started from the algorithm's proposal and may have edited it; how (source), whether it was
    edited and the Dice between proposal and submitted mask travel as the algorithm's parameters.
    """
    if provenance is None or provenance.source == MaskSource.HAND or not provenance.algorithm:
        return {}
    parameters = {"source": provenance.source, "edited": "yes" if provenance.edited else "no"}
    if provenance.edit_dice is not None:
        parameters["edit_dice"] = f"{provenance.edit_dice:.4f}"
    return {
        "algorithm_type": hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        "algorithm": hd.AlgorithmIdentificationSequence(
            name=provenance.algorithm[:64],
            family=codes.cid7162.MorphologicalOperations,
            version=provenance.algorithm_version[:64],
            parameters=parameters,
        ),
    }


def seg_for_consensus(
    *,
    consensus: CaseConsensus,
    task: Task,
    sources: SeriesSources,
    series_instance_uid: str,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
) -> hd.seg.Segmentation | None:
    """Return the SEG of a case's consensus masks (a segment per accepted lesion), or None without masks."""
    segments = []
    for lesion in consensus.lesions.filter(accepted=True).order_by("lesion_index"):
        if not lesion.mask_slices:
            continue
        frames = [
            MaskFrame(sources.by_uid(item["sop_instance_uid"]), int(item.get("frame", 1)), item["counts"])
            for item in lesion.mask_slices
        ]
        segments.append(
            SegmentMasks(
                label=consensus_lesion_label(lesion.lesion_index),
                tracking_id=consensus_lesion_label(lesion.lesion_index),
                tracking_uid=tracking_uid("consensus", consensus.case_id, consensus.inputs_hash, lesion.lesion_index),
                frames=frames,
            )
        )
    if not segments:
        return None
    method = (consensus.params or {}).get("method", task.consensus_method)
    # Fused from readers' manual masks by an algorithm: semi-automatic, identified by name and version.
    algorithm = hd.AlgorithmIdentificationSequence(
        name=CONSENSUS_DEVICE_NAME,
        family=codes.cid7162.ManualProcessing,
        version=sanitise.dicom_text(consensus.algorithm_version, "LO", fallback="unknown"),
        parameters={"method": sanitise.dicom_text(method, "LO")},
    )
    return segmentation(
        sources=sources,
        segments=segments,
        finding_name=task.finding,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm=algorithm,
        series_instance_uid=series_instance_uid,
        series_number=CONSENSUS_SEG_SERIES_NUMBER,
        instance_number=instance_number,
        series_description=f"Readerboard consensus masks: {task.name}",
        content_label="CONSENSUS",
        content_description=f"{method} consensus {consensus.algorithm_version} of {consensus.n_reads} reads",
        sop_instance_uid=sop_instance_uid,
    )
