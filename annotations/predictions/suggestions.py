"""Model suggestions for readers: a case's model prediction as a read document the reading page draws.

Only for tasks that name a `suggestion_model` ("check the model" tasks) and have a tool to draw it: the
prediction's voxels (with the mask tool) are cut into lesions (3-D face-connected components on the
series' voxel grid, largest first), and its RECIST marks (with the long axis or bidirectional tool)
become lesions' long and short axes, with `length_mm` from the image's PixelSpacing as the read format
requires. A line whose midpoint lies in a mask lesion on the line's slice joins that lesion (one line per
lesion; the first in the prediction's order wins); any other line is a lesion of its own. At most the
task's lesions per case: masks first, then lines. The cutting and joining is core.model_review's
`model_lesion_documents`, the one the model report uses, and works on the mask's voxel indices: it must
never build a volume of the series (a 500-slice CT would cost hundreds of MB on every next case and every
submit). The document is in the read format (docs/read-format.md), so the page draws it as the reader's
own editable marks; the reader keeps (accepts), edits or erases (rejects) them and submits an ordinary
read. This module must never store anything nor suggest in tasks that did not ask for it.
"""

from __future__ import annotations

import numpy as np

from annotations.core.geometry import line_length_mm, series_geometry
from annotations.core.model_review import model_lesion_documents
from annotations.models import Case, ModelPrediction
from annotations.predictions.lesions import prediction_voxels
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
    instances = list(Instance.objects.filter(series_id=case.series_id).only(*Instance.GEOMETRY_FIELDS))
    geometry = series_geometry(instances)
    # The mask stays flat voxel indices throughout: a volume of a 500-slice CT would cost hundreds of MB per call.
    voxels = prediction_voxels(prediction, geometry=geometry) if with_masks else np.empty(0, dtype=np.int64)
    lines = []
    if with_lines:
        by_uid = {instance.sop_instance_uid: instance for instance in instances}
        with_short_axis = "bidirectional" in tools
        lines = [_lines(mark, by_uid, with_short_axis=with_short_axis) for mark in prediction.lesion_marks or []]
    limit = min(MAX_LESIONS, task.max_lesions_per_case or MAX_LESIONS)
    lesions = model_lesion_documents(
        voxels, [line for line in lines if line is not None], geometry=geometry, max_lesions=limit
    )
    return {"model_name": prediction.model_name, "lesions": lesions, "flags": {}, "comment": ""}


def _lines(mark: dict, by_uid: dict[str, Instance], *, with_short_axis: bool) -> dict | None:
    """The mark's long (and short) axis in the read format, or None when its image cannot carry a line."""
    instance = by_uid.get(mark.get("sop_instance_uid"))
    if instance is None or not mark.get("long_axis"):
        return None
    frame = int(mark.get("frame") or 1)
    spacing = instance.pixel_spacing_mm
    if not spacing or not 1 <= frame <= instance.number_of_frames:
        return None

    def line(axis: dict) -> dict:
        start, end = [float(v) for v in axis["start"]], [float(v) for v in axis["end"]]
        length = line_length_mm(start=start, end=end, pixel_spacing_mm=spacing)
        return {
            "sop_instance_uid": instance.sop_instance_uid,
            "frame": frame,
            "start": start,
            "end": end,
            "length_mm": round(length, 3),
        }

    lines = {"long_axis": line(mark["long_axis"])}
    if with_short_axis and mark.get("short_axis"):
        lines["short_axis"] = line(mark["short_axis"])
    return lines
