"""A simulated reader study: synthetic CT cases with known lesions and a population of readers of mixed skill.

Pure (numpy only, no Django): `make_cases` draws the cases' geometry and truth,
`read_document` draws one reader's read of one case as a read document
(docs/read-format.md) ready for the submission service. Every draw comes from a
generator seeded by (seed, case, reader), so a reader reads a case the same way
in every task of a run, and a run is reproduced exactly from its seed.

Geometry, chosen so the benchmark runs in minutes on a shared 2-core machine:
each case is a small axial series of 192 x 192 pixels at 1.0 mm (a 192 mm field,
four 96 mm cells, at most one lesion per cell so lesions never touch) with
2.5 mm slices, only as many slices as its largest lesion needs plus 3 above and
below. Readers "see" the truth through their noise model. Masks come from one of
two sources (`MASK_SOURCES`): "brush", an ellipse painted with the reader's
spill/shrink habit on the slices a lesion crosses (no pixels needed), or
"proposed", the real mask-proposal core (annotations/core/segmentation) run on
the reader's own noisy lines over the case rendered in HU (`render_case`: each
cell's organ background, the ellipsoid lesions with a soft edge and a contrast,
correlated noise), and corrected by some readers on the slices where the
proposal disagrees most with what they would have painted (`_edit_proposal`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from annotations.core import mask_rle
from annotations.core import segmentation as proposals

ROWS = COLUMNS = 192
PIXEL_MM = 1.0
SLICE_MM = 2.5
MARGIN_SLICES = 3
CELL_CENTRES_MM = [(-48.0, -48.0), (48.0, -48.0), (-48.0, 48.0), (48.0, 48.0)]
FIELD_ORIGIN_MM = (-(COLUMNS // 2) * PIXEL_MM, -(ROWS // 2) * PIXEL_MM)
LIMITS = (COLUMNS - 1.0, ROWS - 1.0)
MASK_SOURCES = ("brush", "proposed")

# Rendering for proposed masks (HU): each cell's organ background, and the range its lesions' level is drawn
# from; a cell without a lesion is liver. Correlated noise of NOISE_HU, lesion edges blurred over EDGE_MM.
BACKGROUND_HU = {"liver": 60.0, "lung": -850.0, "lymph node": -100.0, "kidney": 160.0}
LESION_HU = {"liver": (-10.0, 40.0), "lung": (0.0, 50.0), "lymph node": (20.0, 60.0), "kidney": (90.0, 140.0)}
NOISE_HU = 15.0
EDGE_MM = 0.8
SLAB_OFFSETS = (-1 / 3, 0.0, 1 / 3)  # depths (in slice thicknesses) averaged for partial volume
# Editing proposals: of the slices where the proposal and the reader's own painting overlap less than
# EDIT_BELOW_DICE, the reader replaces at most EDIT_MAX_SLICES (the worst) with what they would have painted.
EDIT_BELOW_DICE = 0.7
EDIT_MAX_SLICES = 2
# Probability that a reader of each tier corrects a proposed mask (per lesion).
EDIT_RATE = {"expert": 0.5, "resident": 0.3, "novice": 0.15}


@dataclass(frozen=True)
class Organ:
    """Where lesions grow: their size range (mm), shape, and how hard they are to see and measure."""

    name: str
    long_axis_mm: tuple[float, float]
    # Short / long in-plane axis, and cranio-caudal half-extent / in-plane long half-axis.
    short_ratio: tuple[float, float]
    depth_ratio: tuple[float, float]
    noise_factor: float
    miss_factor: float
    weight: float


ORGANS = [
    Organ("liver", (15.0, 60.0), (0.70, 0.95), (0.6, 0.9), 1.3, 1.2, 0.35),
    Organ("lung", (10.0, 35.0), (0.80, 1.00), (0.8, 1.0), 0.8, 0.8, 0.30),
    Organ("lymph node", (10.0, 25.0), (0.45, 0.75), (0.6, 0.9), 1.0, 1.4, 0.20),
    Organ("kidney", (12.0, 45.0), (0.75, 0.95), (0.6, 0.9), 1.0, 1.0, 0.15),
]


@dataclass(frozen=True)
class ReaderProfile:
    """One simulated reader's habits (all per read unless stated)."""

    name: str
    endpoint_noise_mm: float  # SD of each end point, per coordinate
    length_bias: float  # multiplies every length they measure (boundary habit)
    neighbour_slice: float  # probability of measuring one slice off the lesion's widest slice
    miss: float  # probability of missing a lesion (more for small, low-contrast ones)
    false_positives: float  # mean false lesions per read (Poisson)
    outlier: float  # probability of a wild measurement (wrong extent)
    mask_scale: float  # systematic spill (> 1) or shrink (< 1) of painted masks
    mask_noise: float  # SD of the per-lesion mask scale around mask_scale
    edit_rate: float = 0.0  # probability of correcting a proposed mask (proposed masks only)


def reader_population(seed: int, *, experts: int = 5, residents: int = 9, novices: int = 6) -> list[ReaderProfile]:
    """Return the study's readers: experts, residents and novices with individual habits drawn from the seed."""
    rng = np.random.default_rng([seed, 0])
    tiers = [
        ("expert", experts, 0.6, 0.02, 0.08, 0.03, 0.03, 0.005, 0.04),
        ("resident", residents, 1.2, 0.04, 0.15, 0.08, 0.08, 0.02, 0.08),
        ("novice", novices, 2.2, 0.07, 0.25, 0.15, 0.20, 0.05, 0.12),
    ]
    readers = []
    for tier, count, noise, bias_sd, neighbour, miss, fp, outlier, mask_sd in tiers:
        for index in range(count):
            readers.append(
                ReaderProfile(
                    name=f"{tier} {index + 1}",
                    endpoint_noise_mm=float(noise * rng.uniform(0.75, 1.25)),
                    length_bias=float(rng.normal(1.0, bias_sd)),
                    neighbour_slice=float(neighbour * rng.uniform(0.6, 1.4)),
                    miss=float(miss * rng.uniform(0.6, 1.4)),
                    false_positives=float(fp * rng.uniform(0.6, 1.4)),
                    outlier=float(outlier * rng.uniform(0.6, 1.4)),
                    mask_scale=float(np.clip(rng.normal(1.0, mask_sd), 0.75, 1.3)),
                    mask_noise=float(mask_sd / 2),
                    edit_rate=EDIT_RATE[tier],
                )
            )
    return readers


@dataclass(frozen=True)
class TrueLesion:
    """A lesion's truth: an ellipsoid with its in-plane long axis at angle_rad, centred on a slice."""

    organ: str
    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]  # in-plane long, in-plane short, cranio-caudal
    angle_rad: float
    centre_slice: int

    @property
    def long_axis_mm(self) -> float:
        return 2.0 * self.semi_axes_mm[0]

    @property
    def short_axis_mm(self) -> float:
        return 2.0 * self.semi_axes_mm[1]


@dataclass
class SyntheticCase:
    """One case: its series' slice UIDs and positions, and its true lesions."""

    index: int
    series_uid: str
    n_slices: int
    lesions: list[TrueLesion] = field(default_factory=list)

    def slice_uid(self, k: int) -> str:
        return f"{self.series_uid}.{k + 1}"

    def slice_z_mm(self, k: int) -> float:
        return k * SLICE_MM

    def as_json(self) -> dict:
        return {**asdict(self)}


def make_cases(seed: int, *, min_lesions: int = 500, empty_fraction: float = 0.1) -> list[SyntheticCase]:
    """Return cases until at least min_lesions lesions exist; about empty_fraction of the cases have none."""
    rng = np.random.default_rng([seed, 1])
    organ_weights = np.array([organ.weight for organ in ORGANS])
    cases: list[SyntheticCase] = []
    total = 0
    while total < min_lesions:
        index = len(cases)
        n = 0 if rng.random() < empty_fraction else int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.20]))
        cells = rng.permutation(len(CELL_CENTRES_MM))[:n]
        drafts = []
        for cell in cells:
            organ = ORGANS[int(rng.choice(len(ORGANS), p=organ_weights / organ_weights.sum()))]
            long_mm = float(rng.uniform(*organ.long_axis_mm))
            a = long_mm / 2
            b = a * float(rng.uniform(*organ.short_ratio))
            c = a * float(rng.uniform(*organ.depth_ratio))
            cx, cy = (v + float(rng.uniform(-12, 12)) for v in CELL_CENTRES_MM[cell])
            drafts.append((organ.name, cx, cy, a, b, c, float(rng.uniform(0, math.pi))))
        reach = max((math.ceil(c / SLICE_MM) for *_, c, _ in drafts), default=2)
        n_slices = 2 * (reach + MARGIN_SLICES) + 1
        lesions = []
        for name, cx, cy, a, b, c, angle in drafts:
            lo = math.ceil(c / SLICE_MM) + MARGIN_SLICES
            k = int(rng.integers(lo, n_slices - lo)) if n_slices - lo > lo else n_slices // 2
            lesions.append(TrueLesion(name, (cx, cy, k * SLICE_MM), (a, b, c), angle, k))
        cases.append(SyntheticCase(index, f"2.25.19{seed}.{index}", n_slices, lesions))
        total += len(lesions)
    return cases


def cross_section(lesion: TrueLesion, k: int) -> float:
    """Return the scale of the lesion's ellipse on slice k (0 when the slice misses it)."""
    dz = abs(k - lesion.centre_slice) * SLICE_MM
    c = lesion.semi_axes_mm[2]
    return math.sqrt(1.0 - (dz / c) ** 2) if dz < c else 0.0


def to_image(x_mm: float, y_mm: float) -> tuple[float, float]:
    """Return (column, row) of a patient (x, y) point on any slice."""
    return (x_mm - FIELD_ORIGIN_MM[0]) / PIXEL_MM, (y_mm - FIELD_ORIGIN_MM[1]) / PIXEL_MM


def ellipse_mask(centre_mm: tuple[float, float], semi_axes_mm: tuple[float, float], angle_rad: float) -> np.ndarray:
    """Return the rows x columns boolean mask of pixel centres inside the ellipse."""
    ys = FIELD_ORIGIN_MM[1] + np.arange(ROWS)[:, None] * PIXEL_MM - centre_mm[1]
    xs = FIELD_ORIGIN_MM[0] + np.arange(COLUMNS)[None, :] * PIXEL_MM - centre_mm[0]
    cos, sin = math.cos(angle_rad), math.sin(angle_rad)
    u = xs * cos + ys * sin
    v = -xs * sin + ys * cos
    return (u / semi_axes_mm[0]) ** 2 + (v / semi_axes_mm[1]) ** 2 <= 1.0


def true_mask_voxels(case: SyntheticCase, lesion: TrueLesion) -> np.ndarray:
    """Return the lesion's voxels as sorted flat indices into the case's (slices, rows, columns) grid."""
    parts = []
    for k in range(case.n_slices):
        scale = cross_section(lesion, k)
        if scale <= 0:
            continue
        mask = ellipse_mask(
            lesion.centre_mm[:2], (lesion.semi_axes_mm[0] * scale, lesion.semi_axes_mm[1] * scale), lesion.angle_rad
        )
        parts.append(np.flatnonzero(mask) + k * ROWS * COLUMNS)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _line(case: SyntheticCase, k: int, start_mm, end_mm) -> dict:
    start = [round(min(max(v, 0.0), limit), 2) for v, limit in zip(to_image(*start_mm), LIMITS, strict=True)]
    end = [round(min(max(v, 0.0), limit), 2) for v, limit in zip(to_image(*end_mm), LIMITS, strict=True)]
    length = math.hypot(end[0] - start[0], end[1] - start[1]) * PIXEL_MM
    return {
        "sop_instance_uid": case.slice_uid(k),
        "frame": 1,
        "start": start,
        "end": end,
        "length_mm": round(length, 3),
    }


def _measure(
    case: SyntheticCase,
    lesion_number: int,
    centre_mm: tuple[float, float],
    semi_axes_mm: tuple[float, float, float],
    angle: float,
    centre_slice: int,
    reader: ReaderProfile,
    noise_factor: float,
    rng: np.random.Generator,
    *,
    with_mask: bool,
    proposal: ProposalContext | None = None,
) -> dict:
    """Return one reader lesion (lines and mask) for an ellipsoid seen through the reader's habits.

    The mask is painted (brush) unless ``proposal`` is given: then it is proposed from the lines (and edited).
    """
    k = centre_slice
    if rng.random() < reader.neighbour_slice:
        k = int(np.clip(k + rng.choice([-1, 1]), 0, case.n_slices - 1))
    dz = abs(k - centre_slice) * SLICE_MM
    scale = math.sqrt(max(1.0 - (dz / semi_axes_mm[2]) ** 2, 0.05))
    a, b = semi_axes_mm[0] * scale, semi_axes_mm[1] * scale
    length_scale = reader.length_bias
    angle_seen = angle + rng.normal(0, 0.05)
    if rng.random() < reader.outlier:
        # A wild measurement: the wrong boundary (a vessel, the organ's edge) or a fraction of the lesion.
        length_scale *= float(rng.choice([rng.uniform(0.45, 0.7), rng.uniform(1.35, 1.8)]))
    noise = reader.endpoint_noise_mm * noise_factor
    cx, cy = centre_mm
    ux, uy = math.cos(angle_seen), math.sin(angle_seen)

    def end(sign: float, half: float, dx: float, dy: float) -> tuple[float, float]:
        return (cx + sign * half * dx + rng.normal(0, noise), cy + sign * half * dy + rng.normal(0, noise))

    long_half = a * length_scale
    short_half = b * reader.length_bias
    long_axis = _line(case, k, end(-1, long_half, ux, uy), end(1, long_half, ux, uy))
    short_axis = _line(case, k, end(-1, short_half, -uy, ux), end(1, short_half, -uy, ux))
    if short_axis["length_mm"] > long_axis["length_mm"]:
        long_axis, short_axis = short_axis, long_axis
    lesion: dict = {"lesion": lesion_number, "long_axis": long_axis, "short_axis": short_axis}
    if with_mask:
        habit = brush_habit(reader, rng, endpoint_noise_mm=noise)
        mask_scale, offset = habit.scale, habit.offset_mm
        painted = {}
        for kk in range(case.n_slices):
            dzz = abs(kk - centre_slice) * SLICE_MM
            if dzz >= semi_axes_mm[2] * mask_scale:
                continue
            s = math.sqrt(1.0 - (dzz / (semi_axes_mm[2] * mask_scale)) ** 2) * mask_scale
            mask = ellipse_mask((cx + offset[0], cy + offset[1]), (semi_axes_mm[0] * s, semi_axes_mm[1] * s), angle)
            if mask.any():
                painted[kk] = mask
        masks = painted
        if proposal is not None:
            masks = _proposed_masks(case, k, long_axis, short_axis, painted, reader, proposal, lesion_number)
        slices = [
            {"sop_instance_uid": case.slice_uid(kk), "frame": 1, "counts": mask_rle.encode(mask)}
            for kk, mask in sorted(masks.items())
        ]
        if slices:
            lesion["mask"] = {"slices": slices}
    return lesion


@dataclass(frozen=True)
class BrushHabit:
    """How one reader paints one lesion's mask with the brush: the true outline scaled and shifted.

    ``scale`` spills (> 1) or shrinks (< 1) the outline about the lesion's centre, in plane and through the
    slices alike; ``offset_mm`` (x, y) shifts it in plane (the hand's unsteadiness).
    """

    scale: float
    offset_mm: tuple[float, float]


def brush_habit(reader: ReaderProfile, rng: np.random.Generator, *, endpoint_noise_mm: float) -> BrushHabit:
    """Draw a reader's brush habit for one lesion: their spill/shrink habit, offset by half their hand's noise."""
    scale = reader.mask_scale * float(rng.normal(1.0, reader.mask_noise))
    offset = rng.normal(0, endpoint_noise_mm / 2, 2)
    return BrushHabit(scale=scale, offset_mm=(float(offset[0]), float(offset[1])))


def paint_truth(truth: np.ndarray, spacing_mm: tuple[float, float, float], habit: BrushHabit) -> np.ndarray:
    """The brush model on any true mask (slices, rows, cols): the truth scaled about its centroid, then shifted.

    A voxel is painted when the point it maps back to (shift undone, scale undone about the centroid) lies in
    the truth (nearest voxel). On an ellipsoid this is the ellipse painting of `_measure`; on an irregular
    lesion the reader follows its true outline exactly, so the model's only errors are the habit's spill or
    shrink and the hand's offset (it is, if anything, kind to the brush).
    """
    truth = np.asarray(truth, dtype=bool)
    if truth.ndim != 3 or not truth.any():
        raise ValueError(f"truth must be a non-empty 3D mask, got shape {truth.shape}")
    if not habit.scale > 0:
        raise ValueError(f"a brush habit's scale must be positive, got {habit.scale!r}")
    centre = np.array(ndimage.center_of_mass(truth))
    shift_px = np.array([0.0, habit.offset_mm[1] / spacing_mm[1], habit.offset_mm[0] / spacing_mm[2]])
    # output index p reads the truth at centre + (p - centre - shift) / scale
    inverse = 1.0 / habit.scale
    painted = ndimage.affine_transform(
        truth.astype(np.uint8),
        np.full(3, inverse),
        offset=centre - (centre + shift_px) * inverse,
        order=0,
        mode="constant",
        cval=0,
    )
    return painted.astype(bool)


@dataclass
class ProposalContext:
    """What a reader making masks from their lines needs: the case's pixels, and where to count what happened."""

    volume: np.ndarray  # (slices, rows, columns) HU, from render_case
    seed: int
    reader_index: int
    stats: dict = field(default_factory=lambda: defaultdict(int))


def _point(line: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    return (line["start"][0], line["start"][1]), (line["end"][0], line["end"][1])


def _proposed_masks(
    case: SyntheticCase,
    k: int,
    long_axis: dict,
    short_axis: dict,
    painted: dict[int, np.ndarray],
    reader: ReaderProfile,
    proposal: ProposalContext,
    lesion_number: int,
) -> dict[int, np.ndarray]:
    """Return the reader's mask made from their own lines with the real core, edited or not; brush if refused.

    `propose_from_line` on the line's slice, then `propagate` through the neighbouring slices. When the core
    refuses (`NoLesionFound`, or a line too short to prompt), the reader paints the mask instead.
    """
    stats = proposal.stats
    stats["attempted"] += 1
    started = time.perf_counter()
    try:
        start, end = _point(long_axis)
        first = proposals.propose_from_line(
            image=proposal.volume[k],
            pixel_spacing_mm=(PIXEL_MM, PIXEL_MM),
            start=start,
            end=end,
            short_axis=_point(short_axis),
        )
        volume = proposals.propagate(
            volume=proposal.volume, spacing_mm=(SLICE_MM, PIXEL_MM, PIXEL_MM), seed_slice=k, seed_mask=first.mask
        )
    except ValueError as error:  # NoLesionFound is a ValueError; so is a line too short to prompt
        stats["refused"] += 1
        stats["refused_" + type(error).__name__] += 1
        return painted
    finally:
        stats["proposal_ms_total"] += round(1000 * (time.perf_counter() - started))
    stats["proposed"] += 1
    masks = {kk: mask for kk, mask in volume.masks.items() if mask.any()}
    # A separate generator: whether a reader edits must not shift the draws of their next lesion.
    edit_rng = np.random.default_rng([proposal.seed, 3, case.index, proposal.reader_index, lesion_number])
    if edit_rng.random() < reader.edit_rate:
        masks, edited = _edit_proposal(masks, painted)
        stats["edited"] += 1
        stats["edited_slices"] += edited
    return masks


def _edit_proposal(
    proposed: dict[int, np.ndarray], painted: dict[int, np.ndarray]
) -> tuple[dict[int, np.ndarray], int]:
    """Replace the proposal on its worst slices (Dice against the reader's painting below EDIT_BELOW_DICE).

    At most EDIT_MAX_SLICES slices, the lowest Dice first, over every slice either mask is on; a slice the
    reader would not have painted is erased. Returns the edited masks and the number of slices changed.
    """
    scores = []
    for kk in set(proposed) | set(painted):
        a, b = proposed.get(kk), painted.get(kk)
        sa = int(a.sum()) if a is not None else 0
        sb = int(b.sum()) if b is not None else 0
        overlap = int((a & b).sum()) if a is not None and b is not None else 0
        dice = 2.0 * overlap / (sa + sb) if sa + sb else 1.0
        if dice < EDIT_BELOW_DICE:
            scores.append((dice, kk))
    edited = dict(proposed)
    for _, kk in sorted(scores)[:EDIT_MAX_SLICES]:
        if kk in painted:
            edited[kk] = painted[kk]
        else:
            edited.pop(kk, None)
    return edited, min(len(scores), EDIT_MAX_SLICES)


def render_case(case: SyntheticCase, seed: int) -> np.ndarray:
    """Return the case as a (slices, rows, columns) float32 volume in HU, for the mask-proposal core.

    Each cell (a quarter of the field) is its lesion's organ background (`BACKGROUND_HU`; liver when empty);
    each lesion is its ellipsoid at a level drawn from `LESION_HU`, its edge a linear ramp EDGE_MM wide
    centred on the true boundary (the truth, pixel centres inside the ellipsoid at the slice's centre, is
    the half-level contour in plane), averaged over three depths within the slice's thickness (partial
    volume: the first and last slices of a lesion are fainter and smaller than their truth); then Gaussian
    noise of NOISE_HU smoothed over about a pixel. Deterministic from (seed, case).
    """
    rng = np.random.default_rng([seed, 4, case.index])
    volume = np.full((case.n_slices, ROWS, COLUMNS), BACKGROUND_HU["liver"], dtype=np.float32)
    half_r, half_c = ROWS // 2, COLUMNS // 2
    cells = [(slice(0, half_r), slice(0, half_c)), (slice(0, half_r), slice(half_c, None))]
    cells += [(slice(half_r, None), slice(0, half_c)), (slice(half_r, None), slice(half_c, None))]
    ys = FIELD_ORIGIN_MM[1] + np.arange(ROWS)[:, None] * PIXEL_MM
    xs = FIELD_ORIGIN_MM[0] + np.arange(COLUMNS)[None, :] * PIXEL_MM
    for lesion in case.lesions:
        level = float(rng.uniform(*LESION_HU[lesion.organ]))
        cell = next(i for i, centre in enumerate(CELL_CENTRES_MM) if _in_cell(lesion, centre))
        rows, cols = cells[cell]
        volume[:, rows, cols] = BACKGROUND_HU[lesion.organ]
        a, b, c = lesion.semi_axes_mm
        cos, sin = math.cos(lesion.angle_rad), math.sin(lesion.angle_rad)
        u = (xs - lesion.centre_mm[0]) * cos + (ys - lesion.centre_mm[1]) * sin
        v = -(xs - lesion.centre_mm[0]) * sin + (ys - lesion.centre_mm[1]) * cos
        in_plane = (u / a) ** 2 + (v / b) ** 2
        radius_mm = (a * b * c) ** (1 / 3)
        for k in range(case.n_slices):
            dz = (k - lesion.centre_slice) * SLICE_MM
            if abs(dz) >= c + EDGE_MM + SLICE_MM / 2:
                continue
            # Partial volume across the slice's thickness: the mean over three depths within it.
            fraction = np.zeros((ROWS, COLUMNS))
            for sub in SLAB_OFFSETS:
                r = np.sqrt(in_plane + ((dz + sub * SLICE_MM) / c) ** 2)
                fraction += np.clip(0.5 - (r - 1.0) * radius_mm / EDGE_MM, 0.0, 1.0) / len(SLAB_OFFSETS)
            inside = fraction > 0
            volume[k][inside] += (fraction[inside] * (level - volume[k][inside])).astype(np.float32)
    noise = ndimage.gaussian_filter(rng.standard_normal(volume.shape).astype(np.float32), sigma=(0, 0.7, 0.7))
    noise *= NOISE_HU / max(float(noise.std()), 1e-6)
    return volume + noise


def read_document(
    case: SyntheticCase,
    reader_index: int,
    reader: ReaderProfile,
    *,
    seed: int,
    case_pk: int,
    with_mask: bool = True,
    mask_source: str = "brush",
    volume: np.ndarray | None = None,
    stats: dict | None = None,
) -> dict:
    """Return the reader's read of the case as a read document; the same for the same (seed, case, reader).

    ``mask_source`` "proposed" makes each mask from the reader's lines with the mask-proposal core over
    ``volume`` (rendered with `render_case` when not given) and counts what happened into ``stats``
    (attempted, proposed, refused, edited, edited_slices, proposal_ms_total). The lines are the same
    whatever the source.
    """
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    proposal = None
    if with_mask and mask_source == "proposed":
        proposal = ProposalContext(
            volume=render_case(case, seed) if volume is None else volume,
            seed=seed,
            reader_index=reader_index,
            stats=stats if stats is not None else defaultdict(int),
        )
    rng = np.random.default_rng([seed, 2, case.index, reader_index])
    organs = {organ.name: organ for organ in ORGANS}
    lesions = []
    for truth in case.lesions:
        organ = organs[truth.organ]
        small = 1.5 if truth.long_axis_mm < 15 else 1.0
        seen = rng.random() >= min(reader.miss * organ.miss_factor * small, 0.9)
        # Draw the measurement even when missed, so a lesion's draws do not shift the next lesion's.
        measured = _measure(
            case,
            len(lesions) + 1,
            truth.centre_mm[:2],
            truth.semi_axes_mm,
            truth.angle_rad,
            truth.centre_slice,
            reader,
            organ.noise_factor,
            rng,
            with_mask=with_mask,
            proposal=proposal,
        )
        if seen:
            lesions.append(measured)
    used = {i for i, centre in enumerate(CELL_CENTRES_MM) for t in case.lesions if _in_cell(t, centre)}
    for _ in range(int(rng.poisson(reader.false_positives))):
        free = [i for i in range(len(CELL_CENTRES_MM)) if i not in used]
        if not free:
            break
        cell = int(rng.choice(free))
        used.add(cell)
        a = float(rng.uniform(4, 10))
        cx, cy = (v + float(rng.uniform(-15, 15)) for v in CELL_CENTRES_MM[cell])
        k = int(rng.integers(MARGIN_SLICES, case.n_slices - MARGIN_SLICES))
        lesions.append(
            _measure(
                case,
                len(lesions) + 1,
                (cx, cy),
                (a, a * 0.8, a * 0.8),
                float(rng.uniform(0, math.pi)),
                k,
                reader,
                1.0,
                rng,
                with_mask=with_mask,
                proposal=proposal,
            )
        )
    return {
        "client_uuid": str(_uuid(seed, case_pk, reader_index)),
        "case": case_pk,
        "started_at": "2026-11-30T09:00:00Z",
        "duration_s": round(float(rng.uniform(30, 150)), 1),
        "flags": {"no_lesion": not lesions, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": lesions,
    }


def _in_cell(lesion: TrueLesion, centre: tuple[float, float]) -> bool:
    return abs(lesion.centre_mm[0] - centre[0]) < 40 and abs(lesion.centre_mm[1] - centre[1]) < 40


def _uuid(seed: int, case_pk: int, reader_index: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"readerboard-bench-19/{seed}/{case_pk}/{reader_index}")
