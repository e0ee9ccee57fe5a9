"""A model's RECIST lines from a DICOM TID 1500 measurement report (Comprehensive, Comprehensive 3D or Enhanced SR).

highdicom parses the report; every measurement group (TID 1501 image measurements, as our SR export, OHIF
and dcmqi write them, or a TID 1410 planar ROI whose region is a line) whose measurements point at a
2-point SCOORD POLYLINE becomes one lesion: the longer line its long axis, the longest other line on the
same image and frame its short axis (RECIST's definition, so a report that names them differently still
reads the same). Groups sharing a tracking UID are one lesion (our export splits a lesion whose axes lie on
different slices into two groups; then the short axis, on another slice, is left out, because a mark lives
on one frame). SCOORD3D lines are placed on the slice of the case's series whose plane holds both end
points. The case is the task's case whose series holds the referenced images. This module must never
store anything: services.py does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.coding import Code

from annotations.core.geometry import FrameGeometry, frames_of_instance, line_length_mm
from annotations.models import Case, Task
from annotations.predictions.errors import PredictionError
from annotations.predictions.lesion_marks import LesionMark, checked_mark
from viewer.models import Instance, Series

SR_STORAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
}
# DICOM SCOORD puts (0, 0) at the top-left corner of the top-left pixel; the read format at its centre.
SCOORD_OFFSET_PX = 0.5
# SCOORD3D graphic data is float32 (FL): a point on a slice 400 mm from the origin may be off its plane by
# a few micrometres. A line further than this from every slice was drawn on a reformat and has no slice.
ON_PLANE_TOLERANCE_MM = 0.1
COMMENT = Code("121106", "DCM", "Comment")


@dataclass(frozen=True)
class ImageLine:
    """A line on one frame of one image, read-format image coordinates."""

    sop_instance_uid: str
    frame: int
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class PatientLine:
    """A SCOORD3D line: two points in patient coordinates (mm) of a frame of reference."""

    frame_of_reference_uid: str
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]


@dataclass
class GroupLines:
    label: str
    lines: list[ImageLine | PatientLine]


def read_report(path: Path) -> hd.sr.MeasurementReport:
    """The TID 1500 measurement report of the SR file at path; PredictionError when it is none."""
    try:
        sr = hd.sr.srread(str(path))
    except Exception as error:  # noqa: BLE001 - pydicom and highdicom raise many kinds for a file that is not an SR
        raise PredictionError(f"{path.name} is not a readable DICOM SR: {error}") from error
    try:
        return hd.sr.MeasurementReport.from_sequence([sr])
    except Exception as error:  # noqa: BLE001 - highdicom raises several kinds for an SR of another template
        raise PredictionError(f"{path.name} is not a TID 1500 measurement report: {error}") from error


def _line(coordinates) -> ImageLine | PatientLine | None:
    """The line of one SCOORD or SCOORD3D item, or None when it is not a 2-point POLYLINE."""
    if getattr(coordinates.graphic_type, "value", coordinates.graphic_type) != "POLYLINE":
        return None
    points = np.asarray(coordinates.value, dtype=float)
    if points.shape not in ((2, 2), (2, 3)):
        return None
    if isinstance(coordinates, hd.sr.Scoord3DContentItem):
        start, end = (tuple(float(v) for v in point) for point in points)
        return PatientLine(str(coordinates.frame_of_reference_uid), start, end)
    source = next(
        (item for item in getattr(coordinates, "ContentSequence", []) if hasattr(item, "referenced_sop_instance_uid")),
        None,
    )
    if source is None:
        return None
    frames = source.referenced_frame_numbers or [1]
    start, end = (tuple(float(v) - SCOORD_OFFSET_PX for v in point) for point in points)
    return ImageLine(str(source.referenced_sop_instance_uid), int(frames[0]), start, end)


def _label(group) -> str:
    """The group's Comment (our export and OHIF keep the lesion's label there), else its tracking identifier."""
    for item in group[0].ContentSequence:
        kind = getattr(item.value_type, "value", item.value_type)
        if kind == "TEXT" and (item.name.value, item.name.scheme_designator) == (
            COMMENT.value,
            COMMENT.scheme_designator,
        ):
            return str(item.value)
    return str(group.tracking_identifier or "")


def report_lines(report: hd.sr.MeasurementReport) -> list[GroupLines]:
    """The lines of every measurement group, one entry per lesion (groups merged by tracking UID), in order."""
    lesions: dict[str, GroupLines] = {}
    groups = [*report.get_image_measurement_groups(), *report.get_planar_roi_measurement_groups()]
    for number, group in enumerate(groups):
        items = [c for m in group.get_measurements() for c in (m.referenced_coordinates or [])]
        roi = getattr(group, "roi", None)
        if roi is not None:
            items.append(roi)
        lines = [line for line in map(_line, items) if line is not None]
        if not lines:
            continue
        key = str(group.tracking_uid or f"group-{number}")
        if key in lesions:
            lesions[key].lines += lines
        else:
            lesions[key] = GroupLines(label=_label(group), lines=lines)
    return list(lesions.values())


def _on_slice(line: PatientLine, frames: list[FrameGeometry]) -> tuple[FrameGeometry, ImageLine] | None:
    """The frame whose plane holds both end points, with the line in its pixels."""
    for frame in frames:
        *start, start_off = frame.to_image(line.start_mm)
        *end, end_off = frame.to_image(line.end_mm)
        if max(start_off, end_off) <= ON_PLANE_TOLERANCE_MM:
            return frame, ImageLine(frame.sop_instance_uid, frame.frame, tuple(start), tuple(end))
    return None


def sr_lesion_marks(*, task: Task, path: Path) -> tuple[Case, list[LesionMark]]:
    """Return the task's case the SR at path measures and its lesions as marks; PredictionError says why not."""
    path = Path(path)
    report = read_report(path)
    try:
        lesions = report_lines(report)
    except Exception as error:  # noqa: BLE001 - highdicom parses groups lazily; a malformed one raises any kind
        raise PredictionError(f"{path.name} has a measurement group highdicom cannot read: {error}") from error
    if not lesions:
        raise PredictionError(
            f"{path.name} has no measurement with a line (a 2-point SCOORD or SCOORD3D POLYLINE): nothing to import"
        )
    case = _case_of(task=task, path=path, lesions=lesions)
    instances = {instance.sop_instance_uid: instance for instance in case.series.instances.all()}
    frames = [frame for instance in instances.values() for frame in frames_of_instance(instance)]
    marks = []
    for number, lesion in enumerate(lesions, start=1):
        name = f"{path.name}, measurement {number}" + (f" ({lesion.label})" if lesion.label else "")
        lines = []
        for line in lesion.lines:
            if isinstance(line, PatientLine):
                placed = _on_slice(line, frames)
                if placed is None:
                    raise PredictionError(
                        f"{name}: its SCOORD3D line lies on no slice of series {case.series.series_instance_uid} "
                        f"(within {ON_PLANE_TOLERANCE_MM} mm): lines drawn on a reformat cannot be imported"
                    )
                line = placed[1]
            lines.append(line)
        long_axis = max(lines, key=lambda item: _length_mm(item, instances))
        same_frame = [
            item
            for item in lines
            if item is not long_axis
            and (item.sop_instance_uid, item.frame) == (long_axis.sop_instance_uid, long_axis.frame)
        ]
        short_axis = max(same_frame, key=lambda item: _length_mm(item, instances), default=None)
        mark = LesionMark(
            sop_instance_uid=long_axis.sop_instance_uid,
            frame=long_axis.frame,
            long_axis=(long_axis.start, long_axis.end),
            short_axis=(short_axis.start, short_axis.end) if short_axis else None,
            label=lesion.label,
        )
        marks.append(checked_mark(mark, instance=instances[long_axis.sop_instance_uid], name=name))
    return case, marks


def _length_mm(line: ImageLine, instances: dict[str, Instance]) -> float:
    spacing = instances[line.sop_instance_uid].pixel_spacing_mm or (1.0, 1.0)  # checked_mark refuses no spacing
    return line_length_mm(start=line.start, end=line.end, pixel_spacing_mm=spacing)


def _case_of(*, task: Task, path: Path, lesions: list[GroupLines]) -> Case:
    """The one case of the task whose series holds every line's image (or frame of reference for SCOORD3D)."""
    image_uids = {line.sop_instance_uid for lesion in lesions for line in lesion.lines if isinstance(line, ImageLine)}
    frames_of_reference = {
        line.frame_of_reference_uid for lesion in lesions for line in lesion.lines if isinstance(line, PatientLine)
    }
    known = dict(Instance.objects.filter(sop_instance_uid__in=image_uids).values_list("sop_instance_uid", "series_id"))
    unknown = sorted(image_uids - set(known))
    if unknown:
        raise PredictionError(
            f"{path.name} measures images Readerboard does not have ({', '.join(unknown[:3])}"
            f"{', …' if len(unknown) > 3 else ''}): import their series first"
        )
    cases = Case.objects.filter(task=task).select_related("series")
    by_image = {case.series_id: case for case in cases.filter(series_id__in=set(known.values()))}
    outside = sorted({series_id for series_id in known.values() if series_id not in by_image})
    if outside:
        uids = Series.objects.filter(pk__in=outside).values_list("series_instance_uid", flat=True)
        raise PredictionError(f"{path.name} measures series {', '.join(sorted(uids))}, not a case of task {task.pk}")
    candidates = set(by_image.values())
    if frames_of_reference:
        by_frame = list(cases.filter(series__frame_of_reference_uid__in=frames_of_reference))
        if not by_frame:
            raise PredictionError(
                f"{path.name} measures in frame of reference {', '.join(sorted(frames_of_reference))}, "
                f"which no series of task {task.pk} has"
            )
        candidates = candidates or set(by_frame)
        if len(candidates) > 1 or not candidates & set(by_frame):
            raise PredictionError(
                f"{path.name}'s lines do not name one case of task {task.pk}: their images and frame of "
                f"reference point at cases {sorted(case.pk for case in set(by_frame) | candidates)}"
            )
    if len(candidates) != 1:
        raise PredictionError(
            f"{path.name} measures images of {len(candidates)} cases of task {task.pk}; one SR, one case"
        )
    return candidates.pop()
