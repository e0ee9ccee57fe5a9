"""Case consensus: from one case's current reads to stored consensus lesions, agreement flags and reader quality.

It loads each case's current reads (the latest version per reader, skips left
out), places every mark in patient space, groups marks into lesions
(lesion_matching), takes the medoid line (line_consensus) and the STAPLE or
majority mask (staple) of each lesion, compares readers with the gold standard
where the case has one, and stores CaseConsensus / ConsensusLesion rows keyed by
the inputs' hash and ALGORITHM_VERSION, so a rerun with the same inputs finds
the rows it made instead of making new ones. The numerical work happens in the
pure `compute_case`, which takes dataclasses, never models. This module never
changes a Read, and nothing it returns may be shown to a reader of an open task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max
from scipy.optimize import linear_sum_assignment

from annotations.models import Case, CaseConsensus, ConsensusLesion, Mark, MaskSlice, Read, ReaderQuality, Task
from annotations.models.reads import MarkKind
from annotations.models.tasks import ReferenceLesion, Tool
from annotations.services import mask_rle
from annotations.services.agreement import bland_altman, dice, mean_pairwise_dice
from annotations.services.geometry import (
    FrameGeometry,
    SeriesGeometry,
    frames_of_instance,
    series_geometry,
    series_geometry_from_frames,
)
from annotations.services.lesion_matching import LesionGroup, ReaderLesion, group_lesions, match_points
from annotations.services.line_consensus import DrawnLine, LineConsensus, line_consensus
from annotations.services.staple import majority_vote, staple
from viewer.models import Instance

logger = logging.getLogger(__name__)

# Bump whenever a change in this package could change a stored result.
ALGORITHM_VERSION = "1.0.0"

INSTANCE_FIELDS = (
    "pk",
    "series_id",
    "sop_instance_uid",
    "rows",
    "columns",
    "number_of_frames",
    "pixel_spacing_mm",
    "slice_thickness_mm",
    "spacing_between_slices_mm",
    "image_position_patient",
    "image_orientation_patient",
    "frame_positions_patient",
)


@dataclass(frozen=True)
class ConsensusParams:
    """Settings of one consensus run; stored with the result and part of its inputs hash."""

    method: str = Task.ConsensusMethod.STAPLE
    min_support: int | None = None
    use_reader_weights: bool = False
    # Flags for expert review.
    max_long_axis_cv: float = 0.20
    min_mask_dice: float = 0.50
    # STAPLE runs over the union of the masks' bounding box grown by this much (see docs/consensus.md).
    roi_margin_fraction: float = 0.25
    roi_margin_min_px: int = 3
    roi_margin_slices: int = 1

    def as_json(self) -> dict:
        return {key: (str(value) if key == "method" else value) for key, value in asdict(self).items()}

    @classmethod
    def for_task(cls, task: Task, **overrides) -> ConsensusParams:
        return cls(method=str(task.consensus_method), min_support=task.min_support, **overrides)


@dataclass
class ReadInput:
    """One current read of a case, ready for consensus."""

    read_id: int
    reader_id: int
    no_lesion: bool
    quality_problem: bool
    duration_s: float | None
    lesions: list[ReaderLesion] = field(default_factory=list)

    @property
    def painted(self) -> bool:
        return any(lesion.mask_voxels is not None for lesion in self.lesions)


# Gold answers typed in the console carry lengths and at most a slice: their centre is a stand-in.
ADMIN_REFERENCE_SOURCE = "admin"
# A typed-in answer pairs with a line only when their lengths differ by at most this fraction of the answer.
GOLD_LENGTH_TOLERANCE_FRACTION = 0.5


@dataclass(frozen=True)
class ReferenceInput:
    reference_id: int
    center_mm: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float | None
    label: str = ""
    # False for typed-in answers, matched by slice and length instead of by position (docs/consensus.md).
    position_known: bool = True
    sop_instance_uid: str = ""


@dataclass
class CaseInputs:
    """Everything the pure consensus of one case needs."""

    case_id: int
    task_id: int
    reads_per_case: int
    mask_tool: bool
    geometry: SeriesGeometry
    reads: list[ReadInput]
    references: list[ReferenceInput] = field(default_factory=list)
    weights: dict[int, float] = field(default_factory=dict)


@dataclass
class LesionOutcome:
    lesion_index: int
    support: int
    support_fraction: float
    accepted: bool
    long_axis: dict | None
    short_axis: dict | None
    long_axis_median_mm: float | None
    long_axis_iqr_mm: float | None
    long_axis_cv: float | None
    short_axis_median_mm: float | None
    mask_slices: list[dict] | None
    mask_method: str
    members: list[dict]
    statistics: dict
    anchor_mm: list[float]


@dataclass
class CaseOutcome:
    lesions: list[LesionOutcome]
    summary: dict
    low_agreement: bool


# --------------------------------------------------------------------------------------------------------------
# Pure core


def min_support_for(n_readers: int, min_support: int | None) -> int:
    """Return the readers a lesion needs: the task's figure, or a majority of the case's readers."""
    if min_support is not None:
        return max(1, int(min_support))
    return n_readers // 2 + 1


def inputs_hash(inputs: CaseInputs, params: ConsensusParams) -> str:
    """Return a SHA-256 over what determines the result: read ids (reads are immutable), params, weights, gold."""
    payload = {
        "reads": sorted(read.read_id for read in inputs.reads),
        "params": params.as_json(),
        "weights": (
            {str(k): round(v, 6) for k, v in sorted(inputs.weights.items())} if params.use_reader_weights else None
        ),
        "references": [
            [ref.reference_id, [round(c, 4) for c in ref.center_mm], round(ref.long_axis_mm, 4)]
            + ([] if ref.position_known else [ref.sop_instance_uid])
            for ref in sorted(inputs.references, key=lambda r: r.reference_id)
        ],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def compute_case(inputs: CaseInputs, params: ConsensusParams) -> CaseOutcome:
    """Return the consensus lesions, the case summary and the low-agreement flag of one case."""
    reads = sorted(inputs.reads, key=lambda read: read.reader_id)
    n_readers = len(reads)
    needed = min_support_for(n_readers, params.min_support)
    weights = {
        read.reader_id: (inputs.weights.get(read.reader_id, 1.0) if params.use_reader_weights else 1.0)
        for read in reads
    }
    reader_lesions = [lesion for read in reads for lesion in read.lesions]
    groups = group_lesions(reader_lesions, slice_spacing_mm=inputs.geometry.slice_spacing_mm)
    # Mask raters: readers who painted, and "no lesion" voters when painting was possible (they vote background).
    mask_raters = [r.reader_id for r in reads if r.painted or (inputs.mask_tool and r.no_lesion)]
    if not any(r.painted for r in reads):
        mask_raters = []
    outcomes = [
        _lesion_outcome(
            index,
            group,
            inputs=inputs,
            params=params,
            n_readers=n_readers,
            needed=needed,
            weights=weights,
            mask_raters=mask_raters,
        )
        for index, group in enumerate(groups, start=1)
    ]
    summary, flags = _case_summary(inputs, reads, outcomes, params=params, needed=needed)
    return CaseOutcome(lesions=outcomes, summary=summary, low_agreement=bool(flags))


def _lesion_outcome(
    index: int,
    group: LesionGroup,
    *,
    inputs: CaseInputs,
    params: ConsensusParams,
    n_readers: int,
    needed: int,
    weights: dict[int, float],
    mask_raters: list[int],
) -> LesionOutcome:
    support = len(group.members)
    fraction = support / n_readers if n_readers else 0.0
    statistics: dict = {"min_support": needed, "n_readers": n_readers}
    total_weight = sum(weights.values()) or 1.0
    statistics["weighted_support_fraction"] = sum(weights[m.reader_id] for m in group.members) / total_weight
    long_result = _line_result(group.lines("long_axis"), weights, params)
    short_result = _line_result(group.lines("short_axis"), weights, params)
    if long_result is not None:
        statistics["reader_long_axis_mm"] = {str(k): v for k, v in long_result.lengths_mm.items()}
        statistics["medoid_cost_mm"] = long_result.medoid_cost_mm
    if short_result is not None:
        statistics["reader_short_axis_mm"] = {str(k): v for k, v in short_result.lengths_mm.items()}
    mask_slices = None
    mask_method = ""
    painted = group.masks()
    if painted and mask_raters:
        mask_slices, mask_statistics = _mask_consensus(painted, mask_raters, inputs.geometry, params)
        mask_method = str(params.method)
        statistics.update(mask_statistics)
    return LesionOutcome(
        lesion_index=index,
        support=support,
        support_fraction=fraction,
        accepted=support >= needed,
        long_axis=long_result.medoid.as_json() if long_result else None,
        short_axis=short_result.medoid.as_json() if short_result else None,
        long_axis_median_mm=long_result.median_mm if long_result else None,
        long_axis_iqr_mm=long_result.iqr_mm if long_result else None,
        long_axis_cv=long_result.cv if long_result else None,
        short_axis_median_mm=short_result.median_mm if short_result else None,
        mask_slices=mask_slices,
        mask_method=mask_method,
        members=[
            {"read_id": m.read_id, "reader_id": m.reader_id, "lesion_index": m.lesion_index} for m in group.members
        ],
        statistics=statistics,
        anchor_mm=[float(v) for v in group.anchor_mm],
    )


def _line_result(lines: list[DrawnLine], weights: dict[int, float], params: ConsensusParams) -> LineConsensus | None:
    if not lines:
        return None
    line_weights = [weights[line.reader_id] for line in lines] if params.use_reader_weights else None
    return line_consensus(lines, weights=line_weights)


def _mask_consensus(
    painted: dict[int, np.ndarray], raters: list[int], geometry: SeriesGeometry, params: ConsensusParams
) -> tuple[list[dict], dict]:
    """Return the consensus mask slices (run lengths) and mask statistics of one lesion."""
    shape = geometry.shape
    raters = sorted(set(raters) | set(painted))
    union = np.unique(np.concatenate([voxels for voxels in painted.values()]))
    k, r, c = np.unravel_index(union, shape)
    lo = np.array([k.min(), r.min(), c.min()])
    hi = np.array([k.max(), r.max(), c.max()]) + 1
    extent = hi - lo
    margin = np.maximum(params.roi_margin_min_px, np.ceil(params.roi_margin_fraction * extent)).astype(int)
    margin[0] = params.roi_margin_slices
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.array(shape))
    roi_shape = tuple(int(v) for v in hi - lo)

    def dense(voxels: np.ndarray | None) -> np.ndarray:
        volume = np.zeros(roi_shape, dtype=bool)
        if voxels is not None and voxels.size:
            kk, rr, cc = np.unravel_index(voxels, shape)
            volume[kk - lo[0], rr - lo[1], cc - lo[2]] = True
        return volume

    volumes = [dense(painted.get(reader)) for reader in raters]
    statistics: dict = {"mask_raters": raters, "roi": {"start": lo.tolist(), "shape": list(roi_shape)}}
    if params.method == Task.ConsensusMethod.MAJORITY:
        label = majority_vote(volumes)
    else:
        result = staple(volumes)
        label = result.label
        statistics["staple"] = {
            "prior": result.prior,
            "iterations": result.iterations,
            "readers": {
                str(reader): {"sensitivity": _finite(p), "specificity": _finite(q)}
                for reader, p, q in zip(raters, result.sensitivity, result.specificity, strict=True)
            },
            "mean_posterior_in_label": _finite(float(result.posterior[label].mean())) if label.any() else None,
        }
    kk, rr, cc = np.nonzero(label)
    consensus_voxels = np.ravel_multi_index((kk + lo[0], rr + lo[1], cc + lo[2]), shape)
    consensus_voxels.sort()
    statistics["consensus_voxels"] = int(consensus_voxels.size)
    voxel_mm3 = float(np.prod(geometry.voxel_size_mm()))
    statistics["consensus_volume_mm3"] = consensus_voxels.size * voxel_mm3
    statistics["dice_to_consensus"] = {
        str(reader): dice(voxels, consensus_voxels) for reader, voxels in painted.items()
    }
    statistics["mean_pairwise_dice"] = mean_pairwise_dice([painted[reader] for reader in sorted(painted)])
    slices = []
    plane = shape[1] * shape[2]
    slice_of = consensus_voxels // plane
    for slice_index in np.unique(slice_of):
        frame = geometry.frames[int(slice_index)]
        in_plane = consensus_voxels[slice_of == slice_index] - slice_index * plane
        slices.append(
            {
                "sop_instance_uid": frame.sop_instance_uid,
                "frame": frame.frame,
                "counts": mask_rle.encode_indices(in_plane, rows=shape[1], columns=shape[2]),
            }
        )
    return slices, statistics


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _case_summary(
    inputs: CaseInputs, reads: list[ReadInput], outcomes: list[LesionOutcome], *, params: ConsensusParams, needed: int
) -> tuple[dict, list[str]]:
    n_readers = len(reads)
    n_no_lesion = sum(1 for read in reads if read.no_lesion)
    n_with_lesions = sum(1 for read in reads if read.lesions)
    flags: list[str] = []
    if n_readers >= 2 and min(n_no_lesion, n_with_lesions) / n_readers > 1 / 3:
        flags.append("readers split on whether there is a lesion")
    for lesion in outcomes:
        name = f"lesion {lesion.lesion_index}"
        if n_readers >= 3 and 1 / 3 <= lesion.support_fraction < 2 / 3:
            flags.append(f"{name}: marked by {lesion.support} of {n_readers} readers")
        if lesion.accepted and lesion.long_axis_cv is not None and lesion.long_axis_cv > params.max_long_axis_cv:
            flags.append(f"{name}: long-axis lengths vary by CV {lesion.long_axis_cv:.2f}")
        pairwise = lesion.statistics.get("mean_pairwise_dice")
        if lesion.accepted and pairwise is not None and pairwise < params.min_mask_dice:
            flags.append(f"{name}: masks overlap poorly (mean Dice {pairwise:.2f})")
    summary = {
        "n_readers": n_readers,
        "reader_ids": [read.reader_id for read in reads],
        "reads_per_case": inputs.reads_per_case,
        "complete": n_readers >= inputs.reads_per_case,
        "n_no_lesion": n_no_lesion,
        "n_with_lesions": n_with_lesions,
        "n_quality_problem": sum(1 for read in reads if read.quality_problem),
        "n_lesions": len(outcomes),
        "n_accepted": sum(1 for lesion in outcomes if lesion.accepted),
        "min_support": needed,
        "slice_spacing_mm": inputs.geometry.slice_spacing_mm,
        "flags": flags,
        "agreement": _detection_agreement(outcomes, n_readers=n_readers, n_no_lesion=n_no_lesion),
    }
    if inputs.references:
        summary["gold"] = _gold_figures(inputs, reads, outcomes)
    return summary, flags


def _detection_agreement(outcomes: list[LesionOutcome], *, n_readers: int, n_no_lesion: int) -> float | None:
    """Return how far the readers agreed on what is there (0 to 1): the mean support fraction of the
    case's lesion groups, or, when nobody marked a lesion, the share of readers who said "no lesion"."""
    if n_readers == 0:
        return None
    if not outcomes:
        return round(n_no_lesion / n_readers, 4)
    return round(sum(lesion.support_fraction for lesion in outcomes) / len(outcomes), 4)


def _gold_figures(inputs: CaseInputs, reads: list[ReadInput], outcomes: list[LesionOutcome]) -> dict:
    """Return each reader's and the consensus' errors against the reference lesions of a gold case.

    References with a known position (synthetic ground truth) pair with long axes by
    position, as lesions are matched; typed-in answers, whose centre is only a stand-in,
    pair with the lines left over by slice and nearest length (see match_by_slice_and_length).
    """
    refs = inputs.references
    placed = [i for i, ref in enumerate(refs) if ref.position_known]
    typed = [i for i, ref in enumerate(refs) if not ref.position_known]
    spacing = inputs.geometry.slice_spacing_mm

    def score(anchors: list, lengths: list[float], slices: list[str]) -> dict:
        pairs = [
            (p.left, placed[p.right], p.distance_mm, "position")
            for p in match_points(
                anchors,
                lengths,
                [refs[i].center_mm for i in placed],
                [refs[i].long_axis_mm for i in placed],
                slice_spacing_mm=spacing,
            )
        ]
        used = {left for left, *_ in pairs}
        free = [i for i in range(len(lengths)) if i not in used]
        pairs += [
            (free[left], typed[right], None, "slice_and_length")
            for left, right in match_by_slice_and_length(
                [lengths[i] for i in free],
                [slices[i] for i in free],
                [refs[i].long_axis_mm for i in typed],
                [refs[i].sop_instance_uid for i in typed],
            )
        ]
        matched = [
            {
                "reference_id": refs[right].reference_id,
                "measured_mm": float(lengths[left]),
                "reference_mm": refs[right].long_axis_mm,
                "error_mm": float(lengths[left] - refs[right].long_axis_mm),
                "distance_mm": distance,
                "matched_by": how,
            }
            for left, right, distance, how in sorted(pairs, key=lambda pair: pair[1])
        ]
        return {
            "matched": matched,
            "missed": len(refs) - len(matched),
            "false_positives": len(anchors) - len(matched),
        }

    readers = {}
    for read in reads:
        lines = [lesion.long_axis for lesion in read.lesions if lesion.long_axis is not None]
        readers[str(read.reader_id)] = score(
            [line.midpoint_mm.tolist() for line in lines],
            [line.length_mm for line in lines],
            [line.sop_instance_uid for line in lines],
        )
    accepted = [o for o in outcomes if o.accepted and o.long_axis_median_mm is not None]
    consensus_anchors = [_line_midpoint(o.long_axis, inputs.geometry) or o.anchor_mm for o in accepted]
    consensus = score(
        consensus_anchors,
        [o.long_axis_median_mm for o in accepted],
        [(o.long_axis or {}).get("sop_instance_uid", "") for o in accepted],
    )
    return {"references": [asdict(ref) for ref in refs], "readers": readers, "consensus": consensus}


def match_by_slice_and_length(
    lengths_mm: Sequence[float],
    slices: Sequence[str],
    reference_lengths_mm: Sequence[float],
    reference_slices: Sequence[str],
    *,
    tolerance_fraction: float = GOLD_LENGTH_TOLERANCE_FRACTION,
) -> list[tuple[int, int]]:
    """Return one-to-one (line, reference) index pairs for references known only by slice and length.

    A line may pair with a reference when it lies on the reference's slice (SOP
    Instance UID; a reference without a slice accepts any slice) and its length is
    within tolerance_fraction of the reference's; among those pairs the assignment
    with the least total length difference wins, so each line takes its nearest length.
    """
    if not lengths_mm or not reference_lengths_mm:
        return []
    if tolerance_fraction <= 0:
        raise ValueError(f"tolerance_fraction must be positive, got {tolerance_fraction}")
    difference = np.abs(np.subtract.outer(np.asarray(lengths_mm, float), np.asarray(reference_lengths_mm, float)))
    same_slice = np.array([[not ref or ref == line for ref in reference_slices] for line in slices], dtype=bool)
    allowed = same_slice & (difference <= tolerance_fraction * np.asarray(reference_lengths_mm, float)[None, :])
    if not allowed.any():
        return []
    # Forbidden pairs cost more than any allowed assignment, so they are chosen only when forced, then dropped.
    cost = np.where(allowed, difference, float(difference.max() + 1.0) * (difference.size + 1))
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if allowed[i, j]]


def _line_midpoint(line: dict | None, geometry: SeriesGeometry) -> list[float] | None:
    if not line:
        return None
    frame = geometry.frame(line["sop_instance_uid"], line["frame"])
    if frame is None:
        return None
    mid = frame.to_patient_mm((line["start"][0] + line["end"][0]) / 2, (line["start"][1] + line["end"][1]) / 2)
    return mid.tolist()


# --------------------------------------------------------------------------------------------------------------
# Building inputs from rows


class _InstanceRow:
    """An Instance's geometry from a values() row, so frames_of_instance can read it without a model."""

    def __init__(self, row: dict):
        self.__dict__.update(row)


def _drawn_line(mark: dict, frame: FrameGeometry, reader_id: int) -> DrawnLine:
    start = (mark["start_col"], mark["start_row"])
    end = (mark["end_col"], mark["end_row"])
    return DrawnLine(
        reader_id=reader_id,
        read_id=mark["read_id"],
        sop_instance_uid=frame.sop_instance_uid,
        frame=frame.frame,
        start=start,
        end=end,
        start_mm=tuple(float(v) for v in frame.to_patient_mm(*start)),
        end_mm=tuple(float(v) for v in frame.to_patient_mm(*end)),
        # Recomputed from geometry rather than trusting the page's figure.
        length_mm=frame.line_length_mm(start, end),
    )


def _line_voxels(line: DrawnLine, geometry: SeriesGeometry) -> np.ndarray | None:
    slice_index = geometry.slice_index(line.sop_instance_uid, line.frame)
    if slice_index is None:
        return None
    _, rows, columns = geometry.shape
    steps = int(math.ceil(max(abs(line.end[0] - line.start[0]), abs(line.end[1] - line.start[1])) * 2)) + 1
    t = np.linspace(0.0, 1.0, steps)
    cols = np.clip(np.rint(line.start[0] + t * (line.end[0] - line.start[0])), 0, columns - 1).astype(np.int64)
    rws = np.clip(np.rint(line.start[1] + t * (line.end[1] - line.start[1])), 0, rows - 1).astype(np.int64)
    return np.unique(slice_index * rows * columns + rws * columns + cols)


def _mask_anchor(voxels: np.ndarray, geometry: SeriesGeometry) -> tuple[tuple[float, float, float], float]:
    """Return a mask's centroid (patient mm) and its greatest in-plane extent (mm)."""
    k, r, c = np.unravel_index(voxels, geometry.shape)
    points = []
    extent = 0.0
    for slice_index in np.unique(k):
        on_slice = k == slice_index
        frame = geometry.frames[int(slice_index)]
        rr, cc = r[on_slice], c[on_slice]
        points.append(frame.to_patient_mm(float(cc.mean()), float(rr.mean())) * on_slice.sum())
        row_spacing, column_spacing = frame.pixel_spacing_mm
        extent = max(extent, (cc.max() - cc.min() + 1) * column_spacing, (rr.max() - rr.min() + 1) * row_spacing)
    centroid = np.sum(points, axis=0) / voxels.size
    return tuple(float(v) for v in centroid), float(extent)


def build_reader_lesions(
    *,
    read_id: int,
    reader_id: int,
    marks: Iterable[dict],
    mask_slices: Iterable[dict],
    frames: dict[tuple[int, int], FrameGeometry],
    geometry: SeriesGeometry,
) -> list[ReaderLesion]:
    """Return one read's lesions from its Mark and MaskSlice rows (as dicts with instance_id)."""
    long_axes: dict[int, DrawnLine] = {}
    short_axes: dict[int, DrawnLine] = {}
    masks: dict[int, list[np.ndarray]] = defaultdict(list)
    for mark in marks:
        frame = frames.get((mark["instance_id"], mark["frame"]))
        if frame is None:
            continue
        line = _drawn_line(mark, frame, reader_id)
        (long_axes if mark["kind"] == MarkKind.LONG_AXIS else short_axes)[mark["lesion_index"]] = line
    _, rows, columns = geometry.shape
    for mask_slice in mask_slices:
        frame = frames.get((mask_slice["instance_id"], mask_slice["frame"]))
        slice_index = geometry.slice_index(frame.sop_instance_uid, frame.frame) if frame else None
        if slice_index is None:
            continue  # Frames outside the series' grid (a differently sized image) cannot join a 3-D mask.
        pixels = mask_rle.foreground_indices(mask_slice["counts"], rows=rows, columns=columns)
        if pixels.size:
            masks[mask_slice["lesion_index"]].append(pixels + slice_index * rows * columns)
    lesions = []
    for lesion_index in sorted(set(long_axes) | set(masks)):
        long_axis = long_axes.get(lesion_index)
        voxels = np.unique(np.concatenate(masks[lesion_index])) if masks.get(lesion_index) else None
        if long_axis is not None:
            anchor = tuple(float(v) for v in long_axis.midpoint_mm)
            size = long_axis.length_mm
        else:
            anchor, size = _mask_anchor(voxels, geometry)
        lesions.append(
            ReaderLesion(
                reader_id=reader_id,
                read_id=read_id,
                lesion_index=lesion_index,
                anchor_mm=anchor,
                size_mm=size,
                long_axis=long_axis,
                short_axis=short_axes.get(lesion_index),
                mask_voxels=voxels,
                line_voxels=_line_voxels(long_axis, geometry) if long_axis is not None else None,
            )
        )
    return lesions


def current_reads(case_ids: Sequence[int]) -> dict[int, list[dict]]:
    """Return, per case, its current reads: the latest version of each reader, skips left out."""
    latest: dict[tuple[int, int], dict] = {}
    rows = Read.objects.filter(case_id__in=case_ids).values(
        "id", "case_id", "reader_id", "version", "no_lesion", "skip", "quality_problem", "duration_s"
    )
    for row in rows:
        key = (row["case_id"], row["reader_id"])
        if key not in latest or row["version"] > latest[key]["version"]:
            latest[key] = row
    per_case: dict[int, list[dict]] = defaultdict(list)
    for row in latest.values():
        if not row["skip"]:
            per_case[row["case_id"]].append(row)
    return per_case


def load_case_inputs(
    case_ids: Sequence[int], *, weights: dict[int, dict[int, float]] | None = None, with_marks: bool = True
) -> dict[int, CaseInputs]:
    """Return the consensus inputs of the given cases, with a handful of queries however many cases there are.

    Without marks the reads carry no lesions: enough for `inputs_hash`, much cheaper to load.
    """
    cases = list(Case.objects.filter(pk__in=case_ids).select_related("task"))
    reads = current_reads([case.pk for case in cases])
    if not with_marks:
        gold_references = _references([case for case in cases if case.is_gold])
        return {
            case.pk: CaseInputs(
                case_id=case.pk,
                task_id=case.task_id,
                reads_per_case=case.task.reads_per_case,
                mask_tool=Tool.MASK in (case.task.tools or []),
                geometry=series_geometry([]),
                reads=[
                    ReadInput(row["id"], row["reader_id"], row["no_lesion"], row["quality_problem"], row["duration_s"])
                    for row in reads.get(case.pk, [])
                ],
                references=gold_references.get(case.series_id, []) if case.is_gold else [],
                weights=(weights or {}).get(case.task_id, {}),
            )
            for case in cases
        }
    read_ids = [row["id"] for rows in reads.values() for row in rows]
    series_ids = {case.series_id for case in cases}
    instances: dict[int, list[_InstanceRow]] = defaultdict(list)
    for row in Instance.objects.filter(series_id__in=series_ids).values(*INSTANCE_FIELDS):
        instances[row["series_id"]].append(_InstanceRow(row))
    geometries: dict[int, SeriesGeometry] = {}
    frames: dict[tuple[int, int], FrameGeometry] = {}
    for series_id, rows in instances.items():
        series_frames = []
        for row in rows:
            for frame in frames_of_instance(row):
                frames[(row.pk, frame.frame)] = frame
                series_frames.append(frame)
        geometries[series_id] = series_geometry_from_frames(series_frames)
    marks: dict[int, list[dict]] = defaultdict(list)
    for chunk in _chunks(read_ids):
        for row in Mark.objects.filter(read_id__in=chunk).values(
            "read_id", "lesion_index", "kind", "instance_id", "frame", "start_col", "start_row", "end_col", "end_row"
        ):
            marks[row["read_id"]].append(row)
    masks: dict[int, list[dict]] = defaultdict(list)
    for chunk in _chunks(read_ids):
        for row in MaskSlice.objects.filter(read_id__in=chunk).values(
            "read_id", "lesion_index", "instance_id", "frame", "counts"
        ):
            masks[row["read_id"]].append(row)
    references = _references([case for case in cases if case.is_gold])
    result = {}
    for case in cases:
        geometry = geometries.get(case.series_id) or series_geometry([])
        read_inputs = [
            ReadInput(
                read_id=row["id"],
                reader_id=row["reader_id"],
                no_lesion=row["no_lesion"],
                quality_problem=row["quality_problem"],
                duration_s=row["duration_s"],
                lesions=build_reader_lesions(
                    read_id=row["id"],
                    reader_id=row["reader_id"],
                    marks=marks.get(row["id"], []),
                    mask_slices=masks.get(row["id"], []),
                    frames=frames,
                    geometry=geometry,
                ),
            )
            for row in reads.get(case.pk, [])
        ]
        result[case.pk] = CaseInputs(
            case_id=case.pk,
            task_id=case.task_id,
            reads_per_case=case.task.reads_per_case,
            mask_tool=Tool.MASK in (case.task.tools or []),
            geometry=geometry,
            reads=read_inputs,
            references=references.get(case.series_id, []) if case.is_gold else [],
            weights=(weights or {}).get(case.task_id, {}),
        )
    return result


def _references(gold_cases: list[Case]) -> dict[int, list[ReferenceInput]]:
    references: dict[int, list[ReferenceInput]] = defaultdict(list)
    series_ids = {case.series_id for case in gold_cases}
    for ref in ReferenceLesion.objects.filter(series_id__in=series_ids).order_by("pk") if series_ids else []:
        references[ref.series_id].append(
            ReferenceInput(
                reference_id=ref.pk,
                center_mm=tuple(float(v) for v in ref.center_patient_mm),
                long_axis_mm=float(ref.long_axis_mm),
                short_axis_mm=None if ref.short_axis_mm is None else float(ref.short_axis_mm),
                label=ref.label,
                position_known=ref.source != ADMIN_REFERENCE_SOURCE,
                sop_instance_uid=ref.sop_instance_uid,
            )
        )
    return references


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    # SQLite limits the number of query parameters; 900 stays below every build's limit.
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def reader_weights(task_ids: Iterable[int]) -> dict[int, dict[int, float]]:
    """Return the stored per-reader consensus weights of the given tasks."""
    weights: dict[int, dict[int, float]] = defaultdict(dict)
    for task_id, reader_id, weight in ReaderQuality.objects.filter(task_id__in=list(task_ids)).values_list(
        "task_id", "reader_id", "weight"
    ):
        weights[task_id][reader_id] = float(weight)
    return weights


# --------------------------------------------------------------------------------------------------------------
# Storing


def _store(case_id: int, outcome: CaseOutcome | None, *, digest: str, params: ConsensusParams, n_reads: int):
    """Store one case's outcome under its hash (or find the rows of an earlier identical run); mark it current."""
    with transaction.atomic():
        existing = CaseConsensus.objects.filter(
            case_id=case_id, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION
        ).first()
        if existing is None:
            try:
                with transaction.atomic():
                    existing = CaseConsensus.objects.create(
                        case_id=case_id,
                        algorithm_version=ALGORITHM_VERSION,
                        params=params.as_json(),
                        inputs_hash=digest,
                        n_reads=n_reads,
                        summary=outcome.summary,
                        low_agreement=outcome.low_agreement,
                        is_current=True,
                    )
                    ConsensusLesion.objects.bulk_create(_lesion_rows(existing, outcome))
            except IntegrityError:
                # Another worker stored the same inputs first; its rows are as good as ours.
                existing = CaseConsensus.objects.get(
                    case_id=case_id, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION
                )
        CaseConsensus.objects.filter(case_id=case_id, is_current=True).exclude(pk=existing.pk).update(is_current=False)
        if not existing.is_current:
            CaseConsensus.objects.filter(pk=existing.pk).update(is_current=True)
            existing.is_current = True
    return existing


def _lesion_rows(consensus: CaseConsensus, outcome: CaseOutcome) -> list[ConsensusLesion]:
    return [
        ConsensusLesion(
            consensus=consensus,
            lesion_index=lesion.lesion_index,
            support=lesion.support,
            support_fraction=lesion.support_fraction,
            accepted=lesion.accepted,
            long_axis=lesion.long_axis,
            short_axis=lesion.short_axis,
            long_axis_median_mm=lesion.long_axis_median_mm,
            long_axis_iqr_mm=lesion.long_axis_iqr_mm,
            long_axis_cv=lesion.long_axis_cv,
            short_axis_median_mm=lesion.short_axis_median_mm,
            mask_slices=lesion.mask_slices,
            mask_method=lesion.mask_method,
            members=lesion.members,
            statistics={**lesion.statistics, "anchor_mm": lesion.anchor_mm},
        )
        for lesion in outcome.lesions
    ]


def compute_case_consensus(*, case: Case, use_reader_weights: bool = False) -> CaseConsensus | None:
    """Compute (or find) the consensus of a case's current reads and make it the case's current result.

    Returns None, and leaves no current result, when the case has no current reads.
    """
    weights = reader_weights([case.task_id]) if use_reader_weights else None
    inputs = load_case_inputs([case.pk], weights=weights)[case.pk]
    params = ConsensusParams.for_task(case.task, use_reader_weights=use_reader_weights)
    if not inputs.reads:
        CaseConsensus.objects.filter(case=case, is_current=True).update(is_current=False)
        return None
    digest = inputs_hash(inputs, params)
    found = CaseConsensus.objects.filter(case=case, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION).first()
    outcome = None if found else compute_case(inputs, params)
    stored = _store(case.pk, outcome, digest=digest, params=params, n_reads=len(inputs.reads))
    if case.is_gold:
        refresh_reader_quality(task=case.task)
    return stored


@dataclass
class TaskRecompute:
    cases: int = 0
    computed: int = 0
    unchanged: int = 0
    without_reads: int = 0
    low_agreement: int = 0


def _compute_pair(job: tuple[CaseInputs, ConsensusParams]) -> CaseOutcome:
    return compute_case(*job)


def recompute_task_consensus(
    *,
    task: Task,
    case_ids: Sequence[int] | None = None,
    use_reader_weights: bool = False,
    workers: int = 1,
    batch_size: int = 250,
) -> TaskRecompute:
    """Bring every case of a task (or the given cases) to a current consensus, then refresh reader quality.

    Cases whose inputs did not change keep their rows. `workers` > 1 spreads the
    numerical work over that many processes (the database work stays here).
    """
    ids = list(
        Case.objects.filter(task=task, **({"pk__in": list(case_ids)} if case_ids is not None else {}))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    report = TaskRecompute(cases=len(ids))
    params = ConsensusParams.for_task(task, use_reader_weights=use_reader_weights)
    weights = reader_weights([task.pk]) if use_reader_weights else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) if workers > 1 else None
    try:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            inputs = load_case_inputs(batch, weights=weights, with_marks=False)
            digests = {case_id: inputs_hash(inputs[case_id], params) for case_id in batch if inputs[case_id].reads}
            known = set(
                CaseConsensus.objects.filter(
                    case_id__in=batch, algorithm_version=ALGORITHM_VERSION, inputs_hash__in=list(digests.values())
                ).values_list("case_id", "inputs_hash")
            )
            empty = [case_id for case_id in batch if not inputs[case_id].reads]
            if empty:
                CaseConsensus.objects.filter(case_id__in=empty, is_current=True).update(is_current=False)
                report.without_reads += len(empty)
            todo = [case_id for case_id, digest in digests.items() if (case_id, digest) not in known]
            if todo:
                inputs.update(load_case_inputs(todo, weights=weights))
            jobs = [(inputs[case_id], params) for case_id in todo]
            outcomes = list(pool.map(_compute_pair, jobs, chunksize=16)) if pool else [compute_case(*j) for j in jobs]
            _store_batch(dict(zip(todo, outcomes, strict=True)), digests, inputs, params)
            report.computed += len(todo)
            report.unchanged += len(digests) - len(todo)
            # Cases whose stored rows match their inputs but are not current (e.g. after a read was withdrawn).
            current = set(
                CaseConsensus.objects.filter(case_id__in=batch, is_current=True).values_list("case_id", "inputs_hash")
            )
            for case_id, digest in digests.items():
                if case_id not in todo and (case_id, digest) not in current:
                    _store(case_id, None, digest=digest, params=params, n_reads=len(inputs[case_id].reads))
    finally:
        if pool:
            pool.shutdown()
    report.low_agreement = CaseConsensus.objects.filter(case__task=task, is_current=True, low_agreement=True).count()
    refresh_reader_quality(task=task)
    return report


def _store_batch(
    outcomes: dict[int, CaseOutcome], digests: dict[int, str], inputs: dict[int, CaseInputs], params: ConsensusParams
) -> None:
    if not outcomes:
        return
    with transaction.atomic():
        CaseConsensus.objects.filter(case_id__in=list(outcomes), is_current=True).update(is_current=False)
        rows = CaseConsensus.objects.bulk_create(
            [
                CaseConsensus(
                    case_id=case_id,
                    algorithm_version=ALGORITHM_VERSION,
                    params=params.as_json(),
                    inputs_hash=digests[case_id],
                    n_reads=len(inputs[case_id].reads),
                    summary=outcome.summary,
                    low_agreement=outcome.low_agreement,
                    is_current=True,
                )
                for case_id, outcome in outcomes.items()
            ]
        )
        lesions = []
        for row, outcome in zip(rows, outcomes.values(), strict=True):
            lesions.extend(_lesion_rows(row, outcome))
        ConsensusLesion.objects.bulk_create(lesions, batch_size=500)


def stale_case_ids(*, task: Task | None = None) -> list[int]:
    """Return cases whose current consensus is missing, older than their newest read, or of an older algorithm."""
    cases = Case.objects.filter(reads__isnull=False)
    if task is not None:
        cases = cases.filter(task=task)
    newest_read = dict(cases.values("pk").annotate(newest=Max("reads__submitted_at")).values_list("pk", "newest"))
    current = {
        row["case_id"]: row
        for row in CaseConsensus.objects.filter(case_id__in=list(newest_read), is_current=True).values(
            "case_id", "computed_at", "algorithm_version"
        )
    }
    stale = []
    for case_id, newest in newest_read.items():
        row = current.get(case_id)
        if row is None or row["algorithm_version"] != ALGORITHM_VERSION or row["computed_at"] < newest:
            stale.append(case_id)
    return sorted(stale)


# --------------------------------------------------------------------------------------------------------------
# Reader quality


GOLD_ERROR_FLOOR_MM = 2.0
WEIGHT_RANGE = (0.2, 5.0)


def refresh_reader_quality(*, task: Task) -> list[ReaderQuality]:
    """Recompute every reader's figures in a task from its current consensus rows and current reads."""
    case_ids = list(task.cases.values_list("pk", flat=True))
    reads = current_reads(case_ids)
    per_reader: dict[int, dict] = defaultdict(
        lambda: {
            "n_reads": 0,
            "durations": [],
            "gold_errors": [],
            "gold_matched": 0,
            "gold_missed": 0,
            "gold_false_positives": 0,
            "sens": [],
            "spec": [],
            "dice": [],
            "measured": [],
            "consensus": [],
            "lesions_marked": 0,
            "accepted_found": 0,
            "accepted_total": 0,
        }
    )
    for rows in reads.values():
        for row in rows:
            figures = per_reader[row["reader_id"]]
            figures["n_reads"] += 1
            if row["duration_s"] is not None:
                figures["durations"].append(row["duration_s"])
    consensus_rows = CaseConsensus.objects.filter(case__task=task, is_current=True)
    for summary in consensus_rows.values_list("summary", flat=True):
        gold = summary.get("gold")
        if gold:
            for reader_id, score in gold["readers"].items():
                figures = per_reader[int(reader_id)]
                figures["gold_errors"].extend(match["error_mm"] for match in score["matched"])
                figures["gold_matched"] += len(score["matched"])
                figures["gold_missed"] += score["missed"]
                figures["gold_false_positives"] += score["false_positives"]
        for reader_id in summary.get("reader_ids", []):
            per_reader[reader_id]["accepted_total"] += summary.get("n_accepted", 0)
    for lesion in ConsensusLesion.objects.filter(consensus__in=consensus_rows).values(
        "accepted", "long_axis_median_mm", "statistics", "members"
    ):
        statistics = lesion["statistics"]
        for member in lesion["members"]:
            figures = per_reader[member["reader_id"]]
            figures["lesions_marked"] += 1
            if lesion["accepted"]:
                figures["accepted_found"] += 1
        for reader_id, values in (statistics.get("staple") or {}).get("readers", {}).items():
            if values["sensitivity"] is not None:
                per_reader[int(reader_id)]["sens"].append(values["sensitivity"])
            if values["specificity"] is not None:
                per_reader[int(reader_id)]["spec"].append(values["specificity"])
        for reader_id, value in (statistics.get("dice_to_consensus") or {}).items():
            per_reader[int(reader_id)]["dice"].append(value)
        if lesion["accepted"] and lesion["long_axis_median_mm"] is not None:
            for reader_id, length in (statistics.get("reader_long_axis_mm") or {}).items():
                per_reader[int(reader_id)]["measured"].append(length)
                per_reader[int(reader_id)]["consensus"].append(lesion["long_axis_median_mm"])
    rmse = {
        reader_id: float(np.sqrt(np.mean(np.square(f["gold_errors"]))))
        for reader_id, f in per_reader.items()
        if f["gold_errors"]
    }
    median_rmse = float(np.median(list(rmse.values()))) if rmse else 0.0
    stored = []
    with transaction.atomic():
        for reader_id, f in sorted(per_reader.items()):
            weight = 1.0
            if reader_id in rmse:
                # Inverse error variance relative to the typical gold reader, floored so a lucky reader is not a god.
                floor = GOLD_ERROR_FLOOR_MM**2
                weight = float(np.clip((floor + median_rmse**2) / (floor + rmse[reader_id] ** 2), *WEIGHT_RANGE))
            agreement = bland_altman(f["measured"], f["consensus"]).as_json() if f["measured"] else None
            found = f["accepted_found"]
            figures = {
                "gold": {
                    "matched": f["gold_matched"],
                    "missed": f["gold_missed"],
                    "false_positives": f["gold_false_positives"],
                    "rmse_mm": rmse.get(reader_id),
                    "mean_error_mm": float(np.mean(f["gold_errors"])) if f["gold_errors"] else None,
                    "detection_rate": (
                        f["gold_matched"] / (f["gold_matched"] + f["gold_missed"])
                        if f["gold_matched"] + f["gold_missed"]
                        else None
                    ),
                },
                "bland_altman_vs_consensus": agreement,
                "mean_dice_to_consensus": float(np.mean(f["dice"])) if f["dice"] else None,
                "lesions_marked": f["lesions_marked"],
                "consensus_lesions_found": found,
                "consensus_lesions_total": f["accepted_total"],
                "staple_lesions": len(f["sens"]),
            }
            quality, _ = ReaderQuality.objects.update_or_create(
                task=task,
                reader_id=reader_id,
                defaults={
                    "n_reads": f["n_reads"],
                    "mean_time_s": float(np.mean(f["durations"])) if f["durations"] else None,
                    "gold_mean_abs_error_mm": float(np.mean(np.abs(f["gold_errors"]))) if f["gold_errors"] else None,
                    "sensitivity": float(np.mean(f["sens"])) if f["sens"] else None,
                    "specificity": float(np.mean(f["spec"])) if f["spec"] else None,
                    "weight": weight,
                    "figures": figures,
                },
            )
            stored.append(quality)
    return stored
