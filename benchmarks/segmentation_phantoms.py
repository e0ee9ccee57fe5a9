"""Hard synthetic lesions for the mask-proposal benchmark and tests: CT liver, lung, lymph node, kidney and MR T1.

Each phantom is a small volume (slices, rows, cols) with one lobulated, irregular lesion (a union of
ellipsoids whose surface is displaced by smooth noise), blurred edges, low or enhancing contrast against
its organ, a vessel and/or an organ edge touching it, correlated noise, and its true mask. Deterministic:
``make_phantom(index, seed=...)`` always draws the same lesion. Prompts (jittered RECIST lines, taps in
the lesion's inner half) are drawn here too so that tests and the benchmark give readers the same hands.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SITES = ("liver", "lung", "node", "kidney", "mr_t1")


@dataclass(frozen=True)
class Phantom:
    """A lesion volume with its truth; ``is_ct`` False means arbitrary (MR) units."""

    index: int
    site: str
    is_ct: bool
    volume: np.ndarray  # (slices, rows, cols) float32
    truth: np.ndarray  # bool, same shape
    spacing_mm: tuple[float, float, float]  # (slice, row, col)
    contrast: float  # lesion minus organ, image units
    noise_sigma: float
    blur_mm: float
    touching: tuple[str, ...]

    @property
    def largest_slice(self) -> int:
        return int(np.argmax(self.truth.sum(axis=(1, 2))))


def _rotation(rng: np.random.Generator, tilt_deg: float) -> np.ndarray:
    yaw = rng.uniform(0, 2 * math.pi)
    tilt = math.radians(rng.uniform(-tilt_deg, tilt_deg))
    rz = np.array([[1, 0, 0], [0, math.cos(yaw), -math.sin(yaw)], [0, math.sin(yaw), math.cos(yaw)]])
    rx = np.array([[math.cos(tilt), -math.sin(tilt), 0], [math.sin(tilt), math.cos(tilt), 0], [0, 0, 1]])
    return rz @ rx


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: tuple[float, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=sigma_px, mode="wrap")
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def make_phantom(index: int, *, seed: int = 26, site: str | None = None, diameter_mm: float | None = None) -> Phantom:
    """Draw phantom ``index`` of the set (site cycles through `SITES` unless given)."""
    rng = np.random.default_rng([seed, index])
    site = site or SITES[index % len(SITES)]
    diameter = diameter_mm if diameter_mm is not None else float(np.exp(rng.uniform(math.log(8), math.log(60))))
    pixel = float(rng.uniform(0.6, 0.9)) if site != "mr_t1" else float(rng.uniform(0.8, 1.2))
    thickness = float(rng.choice([1.0, 1.0, 1.5, 2.5])) if site != "mr_t1" else float(rng.choice([1.5, 2.0, 3.0]))
    half_a = diameter / 2
    radii = np.array([half_a * rng.uniform(0.6, 1.0), half_a, half_a * rng.uniform(0.55, 0.95)])  # z, y, x
    if site == "node":
        radii = np.array([half_a * rng.uniform(0.6, 1.0), half_a, half_a * rng.uniform(0.5, 0.8)])
    fov = 2.1 * diameter + 16.0
    size = int(math.ceil(fov / pixel / 8.0) * 8)
    n_slices = int(math.ceil((2 * radii[0] * 1.35 + 10.0) / thickness))
    z = (np.arange(n_slices) - (n_slices - 1) / 2) * thickness
    y = (np.arange(size) - (size - 1) / 2) * pixel
    zz, yy, xx = np.meshgrid(z, y, y, indexing="ij")
    coords = np.stack([zz, yy, xx], axis=-1)
    rotation = _rotation(rng, tilt_deg=20)
    offset = rng.uniform(-0.1, 0.1, 3) * half_a
    local = (coords - offset) @ rotation
    field = np.sqrt(((local / radii) ** 2).sum(-1))
    lobes = 0 if site == "node" else int(rng.integers(1, 4))
    for _ in range(lobes):
        direction = rng.standard_normal(3)
        direction[0] *= 0.5
        direction /= np.linalg.norm(direction)
        centre = direction * radii * rng.uniform(0.45, 0.7)
        lobe_radii = radii * rng.uniform(0.35, 0.55)
        field = np.minimum(field, np.sqrt((((local - centre) / lobe_radii) ** 2).sum(-1)))
    irregular = 0.04 if site == "node" else float(rng.uniform(0.06, 0.14))
    smooth_px = (max(1.0, 0.25 * half_a / thickness), 0.25 * half_a / pixel, 0.25 * half_a / pixel)
    field += irregular * _smooth_noise(rng, field.shape, smooth_px)
    truth = field < 1.0
    labels, count = ndimage.label(truth)
    if count > 1:
        truth = labels == int(np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    # Scene: organ level, what touches the lesion, lesion level.
    contrast_sign = -1.0 if rng.random() < 0.6 else 1.0
    contrast_hu = contrast_sign * (rng.uniform(20, 90) if contrast_sign < 0 else rng.uniform(20, 60))
    touching: list[str] = []
    texture = _smooth_noise(rng, field.shape, (3.0 / thickness, 4.0 / pixel, 4.0 / pixel))
    lesion_texture = _smooth_noise(rng, field.shape, (1.5 / thickness, 2.0 / pixel, 2.0 / pixel))
    if site == "lung":
        organ, lesion_level, edge_level, vessel_level = -850.0, float(rng.uniform(0, 50)), 45.0, 40.0
        image = organ + 30.0 * texture
        contrast_hu = lesion_level - organ
    elif site == "node":
        organ = 50.0  # the muscle / soft tissue the node lies against, in fat
        lesion_level = organ + contrast_hu
        edge_level, vessel_level = organ, 180.0
        image = -100.0 + 8.0 * texture
    elif site == "kidney":
        organ = 160.0
        lesion_level, edge_level, vessel_level = organ + contrast_hu, -100.0, 190.0
        image = organ + 6.0 * texture
    elif site == "mr_t1":
        # T1-like arbitrary units: liver 400, fat bright, vessels dark (flow void); bias field and gain come last.
        organ = 400.0
        relative = rng.uniform(-0.45, -0.1) if contrast_sign < 0 else rng.uniform(0.1, 0.3)
        contrast_hu = organ * relative
        lesion_level, edge_level, vessel_level = organ + contrast_hu, 900.0, 80.0
        image = organ + 12.0 * texture
    else:  # liver, portal venous (bright vessels) or unenhanced (dark vessels)
        organ = 60.0
        lesion_level, edge_level, vessel_level = organ + contrast_hu, -100.0, 170.0 if rng.random() < 0.7 else 10.0
        image = organ + 6.0 * texture
    # Organ edge: a half-space touching the lesion (node: always, it lies on muscle; lung: juxtapleural).
    points = coords[truth]
    edge_p = {"lung": 0.4, "node": 1.0, "kidney": 0.7}.get(site, 0.5)
    if rng.random() < edge_p:
        normal = np.array([0.0, *rng.standard_normal(2)])
        normal /= np.linalg.norm(normal)
        reach = float((points @ normal).max())
        edge = coords @ normal > reach * rng.uniform(0.85, 1.05)
        image = np.where(edge, edge_level + 6.0 * texture, image)
        touching.append("organ edge")
        if site == "node":
            image = np.where(~edge & (coords @ normal < -reach * 1.6), organ + 6.0 * texture, image)
    # A vessel: a tube tangent to the lesion, overlapping it a little.
    if rng.random() < (0.8 if site != "node" else 0.6):
        axis = rng.standard_normal(3)
        axis[0] = abs(axis[0]) + (1.5 if rng.random() < 0.5 else 0.0)
        axis /= np.linalg.norm(axis)
        side = np.cross(axis, rng.standard_normal(3))
        side /= np.linalg.norm(side)
        radius = float(rng.uniform(1.5, 3.0) if site == "lung" else rng.uniform(2.0, 6.0))
        reach = float((points @ side).max())
        along = coords @ axis
        offset_point = side * (reach + radius * rng.uniform(0.3, 0.9))
        distance = np.linalg.norm(coords - offset_point - along[..., None] * axis, axis=-1)
        image = np.where(distance < radius, vessel_level, image)
        touching.append("vessel")
    # Texture inside the lesion: a sixth of its contrast against the organ (lung: against soft tissue, 10 HU).
    heterogeneity = 10.0 if site == "lung" else 0.15 * abs(contrast_hu)
    image = np.where(truth, lesion_level + heterogeneity * lesion_texture, image)
    blur_mm = float(rng.uniform(0.6, 1.6))
    image = ndimage.gaussian_filter(
        image, sigma=(max(0.4, 0.5 * blur_mm / thickness), blur_mm / pixel, blur_mm / pixel)
    )
    noise_sigma = float(rng.uniform(8, 25)) if site != "mr_t1" else float(rng.uniform(0.04, 0.1) * organ)
    noise = ndimage.gaussian_filter(rng.standard_normal(image.shape), sigma=(0, 0.6, 0.6))
    noise *= noise_sigma / max(float(noise.std()), 1e-6)
    image = image + noise
    is_ct = site != "mr_t1"
    if not is_ct:
        gain = float(rng.uniform(0.5, 3.0))
        bias = 1.0 + 0.1 * _smooth_noise(rng, image.shape, (20.0 / thickness, 40.0 / pixel, 40.0 / pixel))
        image = image * bias * gain
        contrast_hu *= gain
        noise_sigma *= gain
    return Phantom(
        index=index,
        site=site,
        is_ct=is_ct,
        volume=image.astype(np.float32),
        truth=truth,
        spacing_mm=(thickness, pixel, pixel),
        contrast=float(contrast_hu),
        noise_sigma=noise_sigma,
        blur_mm=blur_mm,
        touching=tuple(touching),
    )


def phantoms(count: int, *, seed: int = 26) -> Iterator[Phantom]:
    """The first ``count`` phantoms of the set, one at a time (they are large)."""
    for index in range(count):
        yield make_phantom(index, seed=seed)


Line = tuple[tuple[float, float], tuple[float, float]]


def jittered_line(
    start: tuple[float, float], end: tuple[float, float], rng: np.random.Generator, *, spacing_mm: tuple[float, float]
) -> Line:
    """A reader's version of a line: end points by up to 1.5 px, angle by up to 5 degrees, length by up to 10 %."""
    a, b = np.asarray(start, float), np.asarray(end, float)
    centre = (a + b) / 2
    half = (b - a) / 2
    angle = math.radians(rng.uniform(-5, 5))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    half = rotation @ half * rng.uniform(0.9, 1.1)
    new_a = centre - half + rng.uniform(-1.5, 1.5, 2)
    new_b = centre + half + rng.uniform(-1.5, 1.5, 2)
    return (float(new_a[0]), float(new_a[1])), (float(new_b[0]), float(new_b[1]))


def inner_half_tap(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A tap anywhere in the lesion's inner half: pixels at least half the deepest point's depth inside."""
    depth = ndimage.distance_transform_edt(mask)
    rows, cols = np.nonzero(depth >= 0.5 * depth.max())
    pick = int(rng.integers(len(rows)))
    return float(cols[pick]), float(rows[pick])
