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
below. No pixel data exists: readers "see" the truth through their noise model,
and masks are painted only on the slices a lesion crosses.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np

from annotations.core import mask_rle

ROWS = COLUMNS = 192
PIXEL_MM = 1.0
SLICE_MM = 2.5
MARGIN_SLICES = 3
CELL_CENTRES_MM = [(-48.0, -48.0), (48.0, -48.0), (-48.0, 48.0), (48.0, 48.0)]
FIELD_ORIGIN_MM = (-(COLUMNS // 2) * PIXEL_MM, -(ROWS // 2) * PIXEL_MM)
LIMITS = (COLUMNS - 1.0, ROWS - 1.0)


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
) -> dict:
    """Return one reader lesion (lines and mask) for an ellipsoid seen through the reader's habits."""
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
        mask_scale = reader.mask_scale * float(rng.normal(1.0, reader.mask_noise))
        offset = rng.normal(0, noise / 2, 2)
        slices = []
        for kk in range(case.n_slices):
            dzz = abs(kk - centre_slice) * SLICE_MM
            if dzz >= semi_axes_mm[2] * mask_scale:
                continue
            s = math.sqrt(1.0 - (dzz / (semi_axes_mm[2] * mask_scale)) ** 2) * mask_scale
            mask = ellipse_mask((cx + offset[0], cy + offset[1]), (semi_axes_mm[0] * s, semi_axes_mm[1] * s), angle)
            if mask.any():
                slices.append({"sop_instance_uid": case.slice_uid(kk), "frame": 1, "counts": mask_rle.encode(mask)})
        if slices:
            lesion["mask"] = {"slices": slices}
    return lesion


def read_document(
    case: SyntheticCase, reader_index: int, reader: ReaderProfile, *, seed: int, case_pk: int, with_mask: bool = True
) -> dict:
    """Return the reader's read of the case as a read document; the same for the same (seed, case, reader)."""
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
