"""Model suggestions for readers: a case's model prediction as a read document the reading page draws.

Only for tasks that name a `suggestion_model` ("check the model" tasks) and offer the mask tool: the
prediction's voxels are cut into lesions (3-D face-connected components, largest first, at most the task's
lesions per case) and returned in the read format (docs/read-format.md) so the page draws them as the
reader's own editable masks; the reader keeps (accepts), edits or erases (rejects) them and submits an
ordinary read. This module must never store anything nor suggest in tasks that did not ask for it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from annotations.core import mask_rle
from annotations.models import Case, ModelPrediction
from annotations.reading.documents import MAX_LESIONS
from viewer.models import Instance


def suggestion_document(*, case: Case) -> dict | None:
    """Return {"model_name", "lesions", "flags", "comment"} of the case's suggestion, or None when there is none."""
    task = case.task
    if not task.suggestion_model or task.is_follow_up or "mask" not in (task.tools or []):
        return None
    prediction = ModelPrediction.objects.filter(case=case, model_name=task.suggestion_model).first()
    if prediction is None:
        return None
    instances = list(
        Instance.objects.filter(series_id=case.series_id)
        .order_by(*Instance._meta.ordering)
        .values_list("sop_instance_uid", "rows", "columns")
    )
    position = {uid: index for index, (uid, _, _) in enumerate(instances)}
    lesions = []
    if prediction.mask_slices and instances:
        _, rows, columns = instances[0]
        volume = np.zeros((len(instances), rows, columns), dtype=bool)
        for entry in prediction.mask_slices:
            if entry["sop_instance_uid"] in position:
                volume[position[entry["sop_instance_uid"]]] = mask_rle.decode(
                    entry["counts"], rows=rows, columns=columns
                )
        components, count = ndimage.label(volume)
        sizes = ndimage.sum_labels(volume, components, index=range(1, count + 1)) if count else []
        limit = min(MAX_LESIONS, task.max_lesions_per_case or MAX_LESIONS)
        largest = [int(label) for label in np.argsort(-np.asarray(sizes), kind="stable")[:limit] + 1]
        for number, label in enumerate(sorted(largest), start=1):
            present = components == label
            slices = [
                {"sop_instance_uid": instances[k][0], "frame": 1, "counts": mask_rle.encode(present[k])}
                for k in np.flatnonzero(present.any(axis=(1, 2)))
            ]
            lesions.append({"lesion": number, "mask": {"slices": slices}})
    return {"model_name": prediction.model_name, "lesions": lesions, "flags": {}, "comment": ""}
