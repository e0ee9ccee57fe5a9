"""Model review: a model's lesions against a read that started from them, or against reference lesions.

One matching rule for both uses, lesion_matching's (anchors within reach, or a mask that holds or overlaps
the other side's line or mask; one-to-one, smallest distance first): `review_suggestion` says what a read
made of each lesion a model suggested (accepted, edited, rejected) and which of the read's lesions are new
(added); `compare_with_reference` pairs a model's lesions with reference lesions (a crowd consensus, an
answer key) for per-lesion sensitivity, false positives, Dice and long-axis error, and `summarise_comparisons`
pools cases. Pure: read-format lesion dicts or ReaderLesion dataclasses and a SeriesGeometry in, dataclasses
out; it never touches the database and never guesses a geometry it was not given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from annotations.core import mask_rle
from annotations.core.agreement import dice
from annotations.core.case_consensus import build_reader_lesions
from annotations.core.geometry import SeriesGeometry
from annotations.core.lesion_matching import ReaderLesion, group_lesions
from annotations.core.line_consensus import DrawnLine
from annotations.core.segmentation.axes import recist_axes

# A reader who submits a suggested mask untouched gets Dice 1; a stray brush stroke still counts as accepted.
KEPT_DICE = 0.98
# A suggested line whose end points the reader moved by at most a pixel (a click on a handle) is kept.
KEPT_LINE_PX = 1.0

ACCEPTED, EDITED, REJECTED, ADDED = "accepted", "edited", "rejected", "added"

# The two sides of a pairing, as lesion_matching's "readers" (it matches at most one lesion per reader).
_LEFT, _RIGHT = 0, 1


def lesions_from_document(
    lesions: Iterable[dict], *, geometry: SeriesGeometry, reader_id: int = 0, read_id: int = 0
) -> list[ReaderLesion]:
    """Return ReaderLesions of read-format lesions ({"lesion", "long_axis", "short_axis", "mask": {"slices"}}).

    Lines and mask slices on frames outside the series' voxel grid are left out, as consensus leaves them out.
    """
    instance_keys: dict[str, int] = {}
    frames = {}
    for frame in geometry.frames:
        key = instance_keys.setdefault(frame.sop_instance_uid, len(instance_keys))
        frames[(key, frame.frame)] = frame
    marks, mask_slices = [], []
    for lesion in lesions:
        number = int(lesion["lesion"])
        for kind in ("long_axis", "short_axis"):
            line = lesion.get(kind)
            if line and line.get("sop_instance_uid") in instance_keys:
                marks.append(
                    {
                        "read_id": read_id,
                        "lesion_index": number,
                        "kind": kind,
                        "instance_id": instance_keys[line["sop_instance_uid"]],
                        "frame": int(line.get("frame", 1)),
                        "start_col": float(line["start"][0]),
                        "start_row": float(line["start"][1]),
                        "end_col": float(line["end"][0]),
                        "end_row": float(line["end"][1]),
                    }
                )
        for entry in (lesion.get("mask") or {}).get("slices", []):
            if entry.get("sop_instance_uid") in instance_keys:
                mask_slices.append(
                    {
                        "lesion_index": number,
                        "instance_id": instance_keys[entry["sop_instance_uid"]],
                        "frame": int(entry.get("frame", 1)),
                        "counts": entry["counts"],
                    }
                )
    return build_reader_lesions(
        read_id=read_id, reader_id=reader_id, marks=marks, mask_slices=mask_slices, frames=frames, geometry=geometry
    )


def component_labels(voxels: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Return a mask's sorted voxels, each one's 3-D face-connected component (1..n) and n.

    Components are numbered by their first voxel in raster order (slice, row, column), as ndimage.label
    numbers them. Works on the voxels alone, so a model's lesions spread over a 500-slice series never need
    a volume in memory: each slice's pixels are labelled in 2-D within their bounding box, and the slice
    components that share a pixel with the next slice are joined in a graph of slice components (far
    fewer nodes than voxels, which keeps the memory a few arrays of the mask's size).
    """
    voxels = np.unique(np.asarray(voxels, dtype=np.int64))
    n = voxels.size
    if n == 0:
        return voxels, np.empty(0, dtype=np.int64), 0
    _, rows, columns = shape
    plane = rows * columns
    present, starts = np.unique(voxels // plane, return_index=True)
    ends = np.append(starts[1:], n)
    node = np.empty(n, dtype=np.int64)  # each voxel's slice component, numbered across the series
    nodes = 0
    joins: list[np.ndarray] = []
    previous: tuple[int, np.ndarray, np.ndarray] | None = None
    for k, begin, end in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
        pixels = voxels[begin:end] - k * plane
        row, column = np.divmod(pixels, columns)
        top, left = int(row.min()), int(column.min())
        box = np.zeros((int(row.max()) - top + 1, int(column.max()) - left + 1), dtype=bool)
        box[row - top, column - left] = True
        labelled, count = ndimage.label(box)
        ids = labelled[row - top, column - left].astype(np.int64) + (nodes - 1)
        del box, labelled
        node[begin:end] = ids
        nodes += count
        if previous is not None and previous[0] == k - 1:
            _, above_pixels, above_ids = previous
            _, i, j = np.intersect1d(above_pixels, pixels, assume_unique=True, return_indices=True)
            if i.size:
                joins.append(np.unique(np.stack([above_ids[i], ids[j]], axis=1), axis=0))
        previous = (k, pixels, ids)
    pairs = np.concatenate(joins) if joins else np.empty((0, 2), dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(nodes, nodes))
    count, component_of_node = connected_components(graph, directed=False)
    raw = component_of_node[node]
    # connected_components numbers by its own traversal; renumber by first voxel (voxels are sorted).
    first_voxel = np.full(count, n, dtype=np.int64)
    np.minimum.at(first_voxel, raw, np.arange(n))
    number = np.empty(count, dtype=np.int64)
    number[np.argsort(first_voxel)] = np.arange(1, count + 1)
    return voxels, number[raw], int(count)


def mask_lesion_documents(voxels: np.ndarray, *, geometry: SeriesGeometry) -> list[dict]:
    """Return one read-format lesion per 3-D face-connected component of a mask, numbered 1..n in raster order.

    `voxels` are flat indices into the series' voxel grid (slices x rows x columns), as ReaderLesion holds them.
    """
    return model_lesion_documents(voxels, [], geometry=geometry)


def model_lesion_documents(
    voxels: np.ndarray, lines: Sequence[dict], *, geometry: SeriesGeometry, max_lesions: int | None = None
) -> list[dict]:
    """Return a model's lesions in the read format: mask components, with the model's lines joined to them.

    `voxels` (flat indices into the series' grid) are cut into 3-D face-connected components; with
    `max_lesions`, only that many of the largest are kept (ties to the lower label). The kept components are
    numbered 1..k in label order (raster order of their first voxel). Each of `lines` ({"long_axis",
    "short_axis"}, read-format lines), in the given order, joins the kept component under its long axis's
    midpoint when that component has no line yet (the first line wins), or else becomes a lesion of its own,
    numbered after them, while there is room under `max_lesions`. The whole work is on the voxels, never on
    a volume, so a 500-slice series costs memory in proportion to the mask, not to the series.
    """
    sorted_voxels, labels, count = component_labels(voxels, geometry.shape)
    sizes = np.bincount(labels, minlength=count + 1)[1:]
    kept = np.arange(1, count + 1)
    if max_lesions is not None:
        kept = np.sort(np.argsort(-sizes, kind="stable")[:max_lesions] + 1)
    lesions = _component_documents(sorted_voxels, labels, kept, geometry=geometry)
    number_of_label = {int(label): number for number, label in enumerate(kept.tolist(), start=1)}
    _, rows, columns = geometry.shape
    for line in lines:
        long_axis = line.get("long_axis")
        if not long_axis:
            continue
        marks = {kind: line[kind] for kind in ("long_axis", "short_axis") if line.get(kind)}
        slice_index = geometry.slice_index(long_axis["sop_instance_uid"], int(long_axis.get("frame", 1)))
        label = 0
        if slice_index is not None and sorted_voxels.size:
            # (0, 0) is the centre of the top-left pixel, so the nearest pixel is the rounded coordinate; a
            # line may end on the image's outer edge (-0.5), whose nearest pixel is the edge pixel.
            column = min(max(round((float(long_axis["start"][0]) + float(long_axis["end"][0])) / 2), 0), columns - 1)
            row = min(max(round((float(long_axis["start"][1]) + float(long_axis["end"][1])) / 2), 0), rows - 1)
            voxel = (slice_index * rows + row) * columns + column
            at = min(int(np.searchsorted(sorted_voxels, voxel)), sorted_voxels.size - 1)
            label = int(labels[at]) if sorted_voxels[at] == voxel else 0
        number = number_of_label.get(label)
        if number is not None and "long_axis" not in lesions[number - 1]:
            lesions[number - 1] = {**lesions[number - 1], **marks}
        elif max_lesions is None or len(lesions) < max_lesions:
            lesions.append({"lesion": len(lesions) + 1, **marks})
    return lesions


def _component_documents(
    sorted_voxels: np.ndarray, labels: np.ndarray, kept: np.ndarray, *, geometry: SeriesGeometry
) -> list[dict]:
    """Return the kept components (labels in ascending order) as mask lesions numbered 1..k, slices in grid order."""
    _, rows, columns = geometry.shape
    plane = rows * columns
    # One stable sort groups each component's voxels, still ascending, without a mask per component.
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.stack([kept, kept + 1]))
    lesions = []
    for number, (begin, end) in enumerate(zip(bounds[0].tolist(), bounds[1].tolist(), strict=True), start=1):
        mine = sorted_voxels[order[begin:end]]
        slice_of = mine // plane
        present, first = np.unique(slice_of, return_index=True)
        ends = np.append(first[1:], mine.size)
        slices = [
            {
                "sop_instance_uid": geometry.frames[k].sop_instance_uid,
                "frame": geometry.frames[k].frame,
                "counts": mask_rle.encode_indices(mine[a:b] - k * plane, rows=rows, columns=columns),
            }
            for k, a, b in zip(present.tolist(), first.tolist(), ends.tolist(), strict=True)
        ]
        lesions.append({"lesion": number, "mask": {"slices": slices}})
    return lesions


def pair_lesions(
    left: Sequence[ReaderLesion], right: Sequence[ReaderLesion], *, slice_spacing_mm: float
) -> list[tuple[ReaderLesion | None, ReaderLesion | None]]:
    """Return the one-to-one pairing of two sides' lesions; an unpaired lesion comes with None on the other side.

    Each side's lesion numbers must be unique. Pairs come in the order of the left side's lesion numbers,
    then the right side's unpaired lesions in theirs.
    """
    tagged = [dataclasses.replace(lesion, reader_id=_LEFT, read_id=0) for lesion in left]
    tagged += [dataclasses.replace(lesion, reader_id=_RIGHT, read_id=0) for lesion in right]
    by_key = {
        **{(_LEFT, lesion.lesion_index): lesion for lesion in left},
        **{(_RIGHT, lesion.lesion_index): lesion for lesion in right},
    }
    if len(by_key) != len(tagged):
        raise ValueError("lesion numbers must be unique on each side")
    pairs: list[tuple[ReaderLesion | None, ReaderLesion | None]] = []
    for group in group_lesions(tagged, slice_spacing_mm=slice_spacing_mm):
        sides = {member.reader_id: by_key[(member.reader_id, member.lesion_index)] for member in group.members}
        pairs.append((sides.get(_LEFT), sides.get(_RIGHT)))
    pairs.sort(key=lambda pair: (pair[0] is None, (pair[0] or pair[1]).lesion_index))
    return pairs


def long_axis_mm(lesion: ReaderLesion, *, geometry: SeriesGeometry) -> float | None:
    """Return the lesion's long axis (mm): its drawn line, else its mask's longest diameter on its largest slice.

    None for a lesion with neither.
    """
    if lesion.long_axis is not None:
        return float(lesion.long_axis.length_mm)
    if lesion.mask_voxels is None or lesion.mask_voxels.size == 0:
        return None
    _, rows, columns = geometry.shape
    slice_of = lesion.mask_voxels // (rows * columns)
    slices, sizes = np.unique(slice_of, return_counts=True)
    # Ties go to the lower slice index, so the figure does not depend on the order of the voxels.
    largest = int(slices[int(np.argmax(sizes))])
    plane = np.zeros(rows * columns, dtype=bool)
    plane[lesion.mask_voxels[slice_of == largest] - largest * rows * columns] = True
    return recist_axes(plane.reshape(rows, columns), geometry.frames[largest].pixel_spacing_mm).long_axis_mm


def mask_dice(first: ReaderLesion, second: ReaderLesion) -> float | None:
    """Return the Dice of two lesions' masks, or None unless both have one."""
    if first.mask_voxels is None or second.mask_voxels is None:
        return None
    return float(dice(first.mask_voxels, second.mask_voxels))


def line_kept(suggested: DrawnLine | None, drawn: DrawnLine | None, *, tolerance_px: float = KEPT_LINE_PX) -> bool:
    """Return whether a drawn line is the suggested one: same frame, each end within tolerance (either way round)."""
    if suggested is None:
        return True
    if drawn is None or (suggested.sop_instance_uid, suggested.frame) != (drawn.sop_instance_uid, drawn.frame):
        return False
    ends = np.array([suggested.start, suggested.end], dtype=float)
    same_way = np.array([drawn.start, drawn.end], dtype=float)
    return any(
        bool(np.all(np.linalg.norm(ends - candidate, axis=1) <= tolerance_px))
        for candidate in (same_way, same_way[::-1])
    )


@dataclass(frozen=True)
class LesionVerdict:
    """What a read made of one suggested lesion (or that a read lesion was added): numbers, verdict, changes."""

    suggested_lesion: int | None
    read_lesion: int | None
    verdict: str
    mask_dice: float | None = None
    long_axis_change_mm: float | None = None


def review_suggestion(
    suggested: Sequence[ReaderLesion], read: Sequence[ReaderLesion], *, slice_spacing_mm: float
) -> list[LesionVerdict]:
    """Return one verdict per suggested lesion and one per read lesion that matches none (added).

    A suggested lesion the read kept is accepted when every mark the model gave is still there as it was
    drawn (mask Dice at least KEPT_DICE, line ends within KEPT_LINE_PX); marks the reader added beside them
    do not change that. Kept but changed is edited; not kept at all is rejected.
    """
    verdicts = []
    for model_lesion, read_lesion in pair_lesions(suggested, read, slice_spacing_mm=slice_spacing_mm):
        if read_lesion is None:
            verdicts.append(LesionVerdict(model_lesion.lesion_index, None, REJECTED))
            continue
        if model_lesion is None:
            verdicts.append(LesionVerdict(None, read_lesion.lesion_index, ADDED))
            continue
        overlap = mask_dice(model_lesion, read_lesion)
        mask_kept = model_lesion.mask_voxels is None or (overlap is not None and overlap >= KEPT_DICE)
        lines_kept = line_kept(model_lesion.long_axis, read_lesion.long_axis) and line_kept(
            model_lesion.short_axis, read_lesion.short_axis
        )
        change = (
            read_lesion.long_axis.length_mm - model_lesion.long_axis.length_mm
            if model_lesion.long_axis is not None and read_lesion.long_axis is not None
            else None
        )
        verdicts.append(
            LesionVerdict(
                model_lesion.lesion_index,
                read_lesion.lesion_index,
                ACCEPTED if mask_kept and lines_kept else EDITED,
                mask_dice=overlap,
                long_axis_change_mm=change,
            )
        )
    return verdicts


@dataclass(frozen=True)
class LesionPair:
    """A model lesion paired with a reference lesion: mask Dice and long-axis error (model minus reference, mm)."""

    model_lesion: int
    reference_lesion: int
    dice: float | None
    long_axis_error_mm: float | None


@dataclass(frozen=True)
class ReferenceComparison:
    """One case's model lesions against its reference lesions."""

    reference_lesions: int
    model_lesions: int
    pairs: tuple[LesionPair, ...]

    @property
    def found(self) -> int:
        """Reference lesions the model found."""
        return len(self.pairs)

    @property
    def missed(self) -> int:
        return self.reference_lesions - self.found

    @property
    def false_positives(self) -> int:
        """Model lesions that match no reference lesion."""
        return self.model_lesions - self.found

    @property
    def mean_dice(self) -> float | None:
        """Mean mask Dice of the found lesions (None when no pair has masks on both sides)."""
        values = [pair.dice for pair in self.pairs if pair.dice is not None]
        return float(np.mean(values)) if values else None

    @property
    def mean_abs_long_axis_error_mm(self) -> float | None:
        """Mean absolute long-axis error of the found lesions, mm (None when no pair has both axes)."""
        values = [abs(pair.long_axis_error_mm) for pair in self.pairs if pair.long_axis_error_mm is not None]
        return float(np.mean(values)) if values else None


def compare_with_reference(
    model: Sequence[ReaderLesion], reference: Sequence[ReaderLesion], *, geometry: SeriesGeometry
) -> ReferenceComparison:
    """Return the pairing of a case's model lesions with its reference lesions, with Dice and long-axis error."""
    pairs = []
    for model_lesion, reference_lesion in pair_lesions(model, reference, slice_spacing_mm=geometry.slice_spacing_mm):
        if model_lesion is None or reference_lesion is None:
            continue
        model_axis = long_axis_mm(model_lesion, geometry=geometry)
        reference_axis = long_axis_mm(reference_lesion, geometry=geometry)
        pairs.append(
            LesionPair(
                model_lesion=model_lesion.lesion_index,
                reference_lesion=reference_lesion.lesion_index,
                dice=mask_dice(model_lesion, reference_lesion),
                long_axis_error_mm=(
                    model_axis - reference_axis if model_axis is not None and reference_axis is not None else None
                ),
            )
        )
    return ReferenceComparison(reference_lesions=len(reference), model_lesions=len(model), pairs=tuple(pairs))


@dataclass(frozen=True)
class ComparisonSummary:
    """Cases pooled: per-lesion sensitivity, false positives per case, Dice and long-axis error of found lesions."""

    cases: int
    reference_lesions: int
    found: int
    false_positives: int
    sensitivity: float | None
    false_positives_per_case: float | None
    dice_median: float | None
    dice_mean: float | None
    long_axis_mean_abs_error_mm: float | None
    long_axis_mean_error_mm: float | None


def summarise_comparisons(comparisons: Iterable[ReferenceComparison]) -> ComparisonSummary:
    """Return the pooled figures: sensitivity over all reference lesions, false positives over all cases."""
    comparisons = list(comparisons)
    reference = sum(c.reference_lesions for c in comparisons)
    found = sum(c.found for c in comparisons)
    false_positives = sum(c.false_positives for c in comparisons)
    dices = [p.dice for c in comparisons for p in c.pairs if p.dice is not None]
    errors = [p.long_axis_error_mm for c in comparisons for p in c.pairs if p.long_axis_error_mm is not None]
    return ComparisonSummary(
        cases=len(comparisons),
        reference_lesions=reference,
        found=found,
        false_positives=false_positives,
        sensitivity=found / reference if reference else None,
        false_positives_per_case=false_positives / len(comparisons) if comparisons else None,
        dice_median=float(np.median(dices)) if dices else None,
        dice_mean=float(np.mean(dices)) if dices else None,
        long_axis_mean_abs_error_mm=float(np.mean(np.abs(errors))) if errors else None,
        long_axis_mean_error_mm=float(np.mean(errors)) if errors else None,
    )
