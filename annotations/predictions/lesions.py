"""Loading lesions to compare a model with: a prediction's lesions, a consensus's, an answer key's.

Each loader turns stored rows into ReaderLesions on the case's voxel grid (core.model_review does the
comparing): a prediction's mask cut into 3-D components with its RECIST lines joined to them, a case
consensus's accepted lesions (medoid lines and STAPLE or majority masks), an answer key's lesions. It only
reads, and never shows anything of one reader to another.
"""

from __future__ import annotations

import numpy as np

from annotations.core import mask_rle
from annotations.core.geometry import SeriesGeometry, series_geometry
from annotations.core.lesion_matching import ReaderLesion
from annotations.core.model_review import lesions_from_document, model_lesion_documents
from annotations.models import Case, CaseConsensus, ModelPrediction, Read
from viewer.models import Instance


def case_geometry(case: Case) -> SeriesGeometry:
    """Return the voxel grid and patient-space geometry of the case's series."""
    return series_geometry(Instance.objects.filter(series_id=case.series_id).only(*Instance.GEOMETRY_FIELDS))


def prediction_voxels(prediction: ModelPrediction, *, geometry: SeriesGeometry) -> np.ndarray:
    """Return the prediction's mask as sorted flat indices into the case's voxel grid (slices off it left out)."""
    _, rows, columns = geometry.shape
    parts = []
    for entry in prediction.mask_slices:
        slice_index = geometry.slice_index(entry["sop_instance_uid"], int(entry.get("frame", 1)))
        if slice_index is not None:
            pixels = mask_rle.foreground_indices(entry["counts"], rows=rows, columns=columns)
            parts.append(pixels + slice_index * rows * columns)
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def prediction_lesions(prediction: ModelPrediction, *, geometry: SeriesGeometry) -> list[ReaderLesion]:
    """Return the model's lesions: its mask's 3-D components, its RECIST lines joined to the one they lie on."""
    lines = [
        {
            "lesion": mark["lesion"],
            **{
                kind: {"sop_instance_uid": mark["sop_instance_uid"], "frame": mark.get("frame", 1), **mark[kind]}
                for kind in ("long_axis", "short_axis")
                if mark.get(kind)
            },
        }
        for mark in prediction.lesion_marks or []
    ]
    documents = model_lesion_documents(prediction_voxels(prediction, geometry=geometry), lines, geometry=geometry)
    return lesions_from_document(documents, geometry=geometry)


def consensus_lesions(consensus: CaseConsensus, *, geometry: SeriesGeometry) -> list[ReaderLesion]:
    """Return the consensus's accepted lesions (the crowd's answer), numbered as the consensus numbers them."""
    documents = [
        {
            "lesion": lesion.lesion_index,
            "long_axis": lesion.long_axis,
            "short_axis": lesion.short_axis,
            "mask": {"slices": lesion.mask_slices or []},
        }
        for lesion in consensus.lesions.all()
        if lesion.accepted
    ]
    return lesions_from_document(documents, geometry=geometry)


def answer_key_lesions(answer_key: Read, *, geometry: SeriesGeometry) -> list[ReaderLesion]:
    """Return the lesions of a gold case's answer key, as its document numbers them."""
    return lesions_from_document((answer_key.document or {}).get("lesions") or [], geometry=geometry)
