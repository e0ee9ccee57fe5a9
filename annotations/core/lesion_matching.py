"""Lesion matching: group the marks of one case's readers into lesions, at most one per reader per lesion.

The rule (docs/consensus.md): two reader lesions may belong together when their
anchors (line midpoint, or mask centroid for a mask-only lesion) are closer than
half the longer of their sizes plus one slice spacing, or when a mask contains
or overlaps the other's line or mask. Groups form by average-linkage
agglomeration over compatible pairs of different readers, smallest distance
first; then conflicts (a reader with marks in two nearby lesions) are settled
by swapping that reader's marks between lesions whenever the swap lowers the
total within-lesion distance. Pure: dataclasses and arrays in, never the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from annotations.core.line_consensus import DrawnLine

# Half the longer size: a mark may be off-centre by up to a radius and still be the same lesion.
SIZE_FRACTION = 0.5
MAX_SWAP_PASSES = 50


@dataclass(frozen=True)
class ReaderLesion:
    """One reader's lesion in one case: its lines and/or mask, placed in patient space.

    `mask_voxels` are sorted flat indices into the series' voxel grid; `line_voxels`
    the grid voxels the long axis passes through (to test whether a mask holds the line).
    `anchor_mm` and `size_mm` are the line's midpoint and length, or for a mask-only
    lesion the mask's centroid and greatest in-plane extent.
    """

    reader_id: int
    read_id: int
    lesion_index: int
    anchor_mm: tuple[float, float, float]
    size_mm: float
    long_axis: DrawnLine | None = None
    short_axis: DrawnLine | None = None
    mask_voxels: np.ndarray | None = field(default=None, compare=False)
    line_voxels: np.ndarray | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.reader_id, self.lesion_index, self.read_id)


@dataclass
class LesionGroup:
    """Reader lesions judged to be the same lesion (one per reader)."""

    members: list[ReaderLesion]

    @property
    def reader_ids(self) -> list[int]:
        return sorted(member.reader_id for member in self.members)

    @property
    def anchor_mm(self) -> np.ndarray:
        return np.mean([member.anchor_mm for member in self.members], axis=0)

    def lines(self, kind: str = "long_axis") -> list[DrawnLine]:
        return [getattr(m, kind) for m in self.members if getattr(m, kind) is not None]

    def masks(self) -> dict[int, np.ndarray]:
        return {m.reader_id: m.mask_voxels for m in self.members if m.mask_voxels is not None}


def within_reach(distance_mm: float, size_a_mm: float, size_b_mm: float, *, slice_spacing_mm: float) -> bool:
    """Return whether two anchors are close enough to be one lesion: d < 0.5 * longer size + slice spacing."""
    return distance_mm < SIZE_FRACTION * max(size_a_mm, size_b_mm) + slice_spacing_mm


def _overlaps(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None or a.size == 0 or b.size == 0:
        return False
    if a[-1] < b[0] or b[-1] < a[0]:
        return False
    return bool(np.intersect1d(a, b, assume_unique=True).size)


def compatible(a: ReaderLesion, b: ReaderLesion, *, slice_spacing_mm: float) -> bool:
    """Return whether two reader lesions of different readers may be the same lesion."""
    if a.reader_id == b.reader_id:
        return False
    distance = float(np.linalg.norm(np.asarray(a.anchor_mm) - np.asarray(b.anchor_mm)))
    if within_reach(distance, a.size_mm, b.size_mm, slice_spacing_mm=slice_spacing_mm):
        return True
    # A mask that holds the other reader's line, or overlaps their mask, is the same lesion whatever its size.
    return (
        _overlaps(a.mask_voxels, b.line_voxels)
        or _overlaps(b.mask_voxels, a.line_voxels)
        or _overlaps(a.mask_voxels, b.mask_voxels)
    )


def group_lesions(lesions: Sequence[ReaderLesion], *, slice_spacing_mm: float) -> list[LesionGroup]:
    """Return the lesion groups of one case, largest support first.

    The result does not depend on the order of `lesions`: they are put in a
    canonical order (reader, lesion number) first, and ties are broken on it.
    """
    items = sorted(lesions, key=lambda lesion: lesion.key)
    if len({item.key for item in items}) != len(items):
        raise ValueError("each (reader, lesion number, read) may appear only once")
    n = len(items)
    if n == 0:
        return []
    anchors = np.array([item.anchor_mm for item in items], dtype=float)
    distance = np.linalg.norm(anchors[:, None, :] - anchors[None, :, :], axis=2)
    allowed = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            allowed[i, j] = allowed[j, i] = compatible(items[i], items[j], slice_spacing_mm=slice_spacing_mm)
    readers = [item.reader_id for item in items]
    clusters: list[list[int]] = [[i] for i in range(n)]

    def joinable(a: list[int], b: list[int]) -> bool:
        if {readers[i] for i in a} & {readers[j] for j in b}:
            return False
        return bool(allowed[np.ix_(a, b)].all())

    while True:
        best: tuple[float, int, int] | None = None
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                if not joinable(clusters[x], clusters[y]):
                    continue
                linkage = round(float(distance[np.ix_(clusters[x], clusters[y])].mean()), 9)
                candidate = (linkage, x, y)
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            break
        _, x, y = best
        clusters[x] = sorted(clusters[x] + clusters[y])
        del clusters[y]
    clusters = _settle_conflicts(clusters, readers=readers, allowed=allowed, distance=distance)
    groups = [LesionGroup(members=[items[i] for i in sorted(cluster)]) for cluster in clusters]
    groups.sort(key=lambda g: (-len(g.members), tuple(np.round(g.anchor_mm, 6)), g.members[0].key))
    return groups


def _within_cost(cluster: list[int], distance: np.ndarray) -> float:
    if len(cluster) < 2:
        return 0.0
    block = distance[np.ix_(cluster, cluster)]
    return float(block.sum() / 2.0)


def _settle_conflicts(
    clusters: list[list[int]], *, readers: list[int], allowed: np.ndarray, distance: np.ndarray
) -> list[list[int]]:
    """Swap a reader's marks between two lesions while that lowers the total within-lesion distance."""

    def valid(cluster: list[int]) -> bool:
        return all(allowed[i, j] for k, i in enumerate(cluster) for j in cluster[k + 1 :])

    for _ in range(MAX_SWAP_PASSES):
        improved = False
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                a, b = clusters[x], clusters[y]
                shared = {readers[i] for i in a} & {readers[j] for j in b}
                for reader in sorted(shared):
                    ia = next(i for i in a if readers[i] == reader)
                    ib = next(j for j in b if readers[j] == reader)
                    new_a = sorted([i for i in a if i != ia] + [ib])
                    new_b = sorted([j for j in b if j != ib] + [ia])
                    before = _within_cost(a, distance) + _within_cost(b, distance)
                    after = _within_cost(new_a, distance) + _within_cost(new_b, distance)
                    if after < before - 1e-9 and valid(new_a) and valid(new_b):
                        clusters[x], clusters[y] = a, b = new_a, new_b
                        improved = True
        if not improved:
            break
    return clusters


@dataclass(frozen=True)
class PointMatch:
    """A pairing of item `left` with item `right` at `distance_mm`."""

    left: int
    right: int
    distance_mm: float


def match_points(
    left_mm: Sequence[Sequence[float]],
    left_sizes_mm: Sequence[float],
    right_mm: Sequence[Sequence[float]],
    right_sizes_mm: Sequence[float],
    *,
    slice_spacing_mm: float,
) -> list[PointMatch]:
    """Return the one-to-one pairing of left and right anchors within reach that minimises total distance.

    Used to pair consensus or reader lesions with reference (gold-standard) lesions.
    """
    if len(left_mm) == 0 or len(right_mm) == 0:
        return []
    left = np.asarray(left_mm, dtype=float)
    right = np.asarray(right_mm, dtype=float)
    distance = np.linalg.norm(left[:, None, :] - right[None, :, :], axis=2)
    reach = np.zeros(distance.shape, dtype=bool)
    for i, j in np.ndindex(*distance.shape):
        reach[i, j] = within_reach(
            distance[i, j], left_sizes_mm[i], right_sizes_mm[j], slice_spacing_mm=slice_spacing_mm
        )
    # Pairs out of reach cost more than any feasible assignment, so they are chosen only when forced, then dropped.
    big = float(distance.max() + 1.0) * (len(left) + len(right) + 1)
    cost = np.where(reach, distance, big)
    rows, cols = linear_sum_assignment(cost)
    return [PointMatch(int(i), int(j), float(distance[i, j])) for i, j in zip(rows, cols, strict=True) if reach[i, j]]
