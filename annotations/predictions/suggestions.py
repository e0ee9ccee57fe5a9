"""Model suggestions for readers: a case's model prediction as a read document the reading page draws.

Only for tasks that name a `suggestion_model` ("check the model" tasks) and have a tool to draw it: the
prediction's voxels (with the mask tool) are cut into lesions (3-D face-connected components, largest
first), and its RECIST marks (with the long axis or bidirectional tool) become lesions' long and short
axes, with `length_mm` from the image's PixelSpacing as the read format requires. A line whose midpoint
lies in a mask lesion on the line's slice joins that lesion (one line per lesion; the first in the
prediction's order wins); any other line is a lesion of its own. At most the task's lesions per case:
masks first, then lines. The document is in the read format (docs/read-format.md), so the page draws
it as the reader's own editable marks; the reader keeps (accepts), edits or erases (rejects) them and
submits an ordinary read. This module must never store anything nor suggest in tasks that did not ask
for it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from annotations.core import mask_rle
from annotations.core.geometry import line_length_mm
from annotations.models import Case, ModelPrediction
from annotations.reading.documents import MAX_LESIONS
from viewer.models import Instance

LINE_TOOLS = frozenset({"long_axis", "bidirectional"})


def suggestion_document(*, case: Case) -> dict | None:
    """Return {"model_name", "lesions", "flags", "comment"} of the case's suggestion, or None when there is none."""
    task = case.task
    tools = set(task.tools or [])
    with_masks, with_lines = "mask" in tools, bool(tools & LINE_TOOLS)
    if not task.suggestion_model or task.is_follow_up or not (with_masks or with_lines):
        return None
    prediction = ModelPrediction.objects.filter(case=case, model_name=task.suggestion_model).first()
    if prediction is None:
        return None
    instances = list(
        Instance.objects.filter(series_id=case.series_id)
        .order_by(*Instance._meta.ordering)
        .values_list("sop_instance_uid", "rows", "columns", "number_of_frames", "pixel_spacing_mm")
    )
    position = {row[0]: index for index, row in enumerate(instances)}
    limit = min(MAX_LESIONS, task.max_lesions_per_case or MAX_LESIONS)
    lesions: list[dict] = []
    components, mask_lesion = None, {}
    if with_masks and prediction.mask_slices and instances:
        components, mask_lesion, lesions = _mask_lesions(prediction, instances, position, limit)
    if with_lines:
        with_short_axis = "bidirectional" in tools
        for mark in prediction.lesion_marks:
            lines = _lines(mark, instances, position, with_short_axis=with_short_axis)
            if lines is None:
                continue
            lesion = _containing_lesion(mark, components, mask_lesion, position, lesions)
            if lesion is not None:
                lesion.update(lines)
            elif len(lesions) < limit:
                lesions.append({"lesion": len(lesions) + 1, **lines})
    return {"model_name": prediction.model_name, "lesions": lesions, "flags": {}, "comment": ""}


def _mask_lesions(prediction, instances, position, limit) -> tuple[np.ndarray, dict[int, int], list[dict]]:
    """The prediction's largest connected components as lesions; the label image and {label: lesion index}."""
    _, rows, columns, _, _ = instances[0]
    volume = np.zeros((len(instances), rows, columns), dtype=bool)
    for entry in prediction.mask_slices:
        if entry["sop_instance_uid"] in position:
            volume[position[entry["sop_instance_uid"]]] = mask_rle.decode(entry["counts"], rows=rows, columns=columns)
    components, count = ndimage.label(volume)
    sizes = ndimage.sum_labels(volume, components, index=range(1, count + 1)) if count else []
    largest = [int(label) for label in np.argsort(-np.asarray(sizes), kind="stable")[:limit] + 1]
    lesions, mask_lesion = [], {}
    for number, label in enumerate(sorted(largest), start=1):
        present = components == label
        slices = [
            {"sop_instance_uid": instances[k][0], "frame": 1, "counts": mask_rle.encode(present[k])}
            for k in np.flatnonzero(present.any(axis=(1, 2)))
        ]
        mask_lesion[label] = number - 1
        lesions.append({"lesion": number, "mask": {"slices": slices}})
    return components, mask_lesion, lesions


def _lines(mark: dict, instances, position, *, with_short_axis: bool) -> dict | None:
    """The mark's long (and short) axis in the read format, or None when its image cannot carry a line."""
    index = position.get(mark.get("sop_instance_uid"))
    if index is None or not mark.get("long_axis"):
        return None
    uid, _, _, number_of_frames, spacing = instances[index]
    frame = int(mark.get("frame") or 1)
    if not spacing or not 1 <= frame <= number_of_frames:
        return None

    def line(axis: dict) -> dict:
        start, end = [float(v) for v in axis["start"]], [float(v) for v in axis["end"]]
        length = line_length_mm(start=start, end=end, pixel_spacing_mm=spacing)
        return {"sop_instance_uid": uid, "frame": frame, "start": start, "end": end, "length_mm": round(length, 3)}

    lines = {"long_axis": line(mark["long_axis"])}
    if with_short_axis and mark.get("short_axis"):
        lines["short_axis"] = line(mark["short_axis"])
    return lines


def _containing_lesion(mark: dict, components, mask_lesion, position, lesions) -> dict | None:
    """The mask lesion holding the long axis' midpoint on its slice, when it has no line yet."""
    if components is None or int(mark.get("frame") or 1) != 1:
        return None
    start, end = mark["long_axis"]["start"], mark["long_axis"]["end"]
    _, rows, columns = components.shape
    # (0, 0) is the centre of the top-left pixel, so the nearest pixel is the rounded coordinate.
    column = min(max(round((start[0] + end[0]) / 2), 0), columns - 1)
    row = min(max(round((start[1] + end[1]) / 2), 0), rows - 1)
    index = mask_lesion.get(int(components[position[mark["sop_instance_uid"]], row, column]))
    if index is None or "long_axis" in lesions[index]:
        return None
    return lesions[index]
