"""Mask proposals from a RECIST line or tap (annotations/core/segmentation): quality on fixed hard phantoms,
bounds, "no lesion found" on bad prompts, 3D propagation that stops, and RECIST axes against a hand-worked
ellipse and scikit-image's Feret diameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.measure import regionprops

from annotations.core.segmentation import (
    NoLesionFound,
    propagate,
    propose_from_line,
    propose_from_tap,
    recist_axes,
)
from benchmarks.segmentation_phantoms import make_phantom

SPACING = (0.7, 0.7)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def ellipse(shape, centre, semi_axes, angle_deg=0.0, spacing=(1.0, 1.0)) -> np.ndarray:
    """Pixels whose centres lie inside an ellipse given in mm (semi-axes along the rotated x and y)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    y, x = (rows - centre[1]) * spacing[0], (cols - centre[0]) * spacing[1]
    a = math.radians(angle_deg)
    u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= 1.0


def truth_line(phantom):
    axes = recist_axes(phantom.truth[phantom.largest_slice], phantom.spacing_mm[1:])
    return axes.long_start, axes.long_end


@pytest.fixture(scope="module")
def liver_phantom():
    """Liver CT: a lobulated 23 mm hypodense lesion (-53 HU against the organ) with a vessel touching it."""
    return make_phantom(0)


@pytest.fixture(scope="module")
def node_phantom():
    """Lymph node (21 mm) in fat against muscle, a vessel touching, noise 24 HU against 26 HU contrast."""
    return make_phantom(2)


def test_line_on_a_hard_liver_lesion_gives_its_mask(liver_phantom):
    p, s = liver_phantom, liver_phantom.largest_slice
    start, end = truth_line(p)
    proposal = propose_from_line(image=p.volume[s], pixel_spacing_mm=p.spacing_mm[1:], start=start, end=end)
    assert dice(proposal.mask, p.truth[s]) >= 0.88


def test_a_bidirectional_prompt_seeds_both_axes(liver_phantom):
    p, s = liver_phantom, liver_phantom.largest_slice
    axes = recist_axes(p.truth[s], p.spacing_mm[1:])
    proposal = propose_from_line(
        image=p.volume[s],
        pixel_spacing_mm=p.spacing_mm[1:],
        start=axes.long_start,
        end=axes.long_end,
        short_axis=(axes.short_start, axes.short_end),
    )
    assert dice(proposal.mask, p.truth[s]) >= 0.88


def test_line_on_a_low_contrast_node_against_muscle_gives_its_mask(node_phantom):
    p, s = node_phantom, node_phantom.largest_slice
    start, end = truth_line(p)
    proposal = propose_from_line(image=p.volume[s], pixel_spacing_mm=p.spacing_mm[1:], start=start, end=end)
    assert dice(proposal.mask, p.truth[s]) >= 0.85


def test_propagation_from_the_line_slice_recovers_the_lesion_in_3d(liver_phantom):
    p, s = liver_phantom, liver_phantom.largest_slice
    start, end = truth_line(p)
    seed = propose_from_line(image=p.volume[s], pixel_spacing_mm=p.spacing_mm[1:], start=start, end=end).mask
    result = propagate(volume=p.volume, spacing_mm=p.spacing_mm, seed_slice=s, seed_mask=seed)
    # Below the set's 0.85 median target: an unenhanced vessel as dense as the lesion touches it.
    assert dice(result.as_array(p.volume.shape), p.truth) >= 0.8


def test_mr_units_are_normalised_from_the_seed_not_from_hu(liver_phantom):
    """The same slice in arbitrary units (scaled, offset, even inverted) gives the same mask."""
    p, s = liver_phantom, liver_phantom.largest_slice
    start, end = truth_line(p)
    hu = propose_from_line(image=p.volume[s], pixel_spacing_mm=p.spacing_mm[1:], start=start, end=end).mask
    for gain, offset in ((3.7, 900.0), (-2.0, 2000.0)):
        mr = propose_from_line(
            image=gain * p.volume[s] + offset, pixel_spacing_mm=p.spacing_mm[1:], start=start, end=end, is_ct=False
        ).mask
        assert dice(mr, hu) >= 0.97


def noisy(image: np.ndarray, sigma: float = 15.0, seed: int = 0) -> np.ndarray:
    return image + ndimage.gaussian_filter(np.random.default_rng(seed).normal(0, sigma * 1.6, image.shape), 0.6)


@pytest.mark.parametrize(
    ("scene", "level_hu"),
    [("air", -1000.0), ("lung", -850.0), ("fat", -100.0), ("bone", 900.0), ("plain liver", 60.0)],
)
def test_line_or_tap_on_air_fat_bone_or_plain_organ_finds_no_lesion(scene, level_hu):
    image = noisy(np.full((128, 128), level_hu))
    with pytest.raises(NoLesionFound):
        propose_from_line(image=image, pixel_spacing_mm=SPACING, start=(50.0, 60.0), end=(80.0, 70.0))
    with pytest.raises(NoLesionFound):
        propose_from_tap(
            volume=np.repeat(image[None], 5, axis=0), spacing_mm=(1.0, *SPACING), slice_index=2, point=(64.0, 64.0)
        )


def test_line_across_a_bone_cortex_finds_no_lesion():
    rows, cols = np.mgrid[:128, :128]
    ring = np.hypot(rows - 64, cols - 64)
    image = noisy(np.where(ring < 25, 350.0, np.where(ring < 32, 1100.0, 40.0)))
    with pytest.raises(NoLesionFound):
        propose_from_line(image=image, pixel_spacing_mm=SPACING, start=(40.0, 64.0), end=(88.0, 64.0))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    half_length_px=st.floats(6.0, 30.0),
    angle=st.floats(0.0, math.pi),
    dx=st.floats(-8.0, 8.0),
    dy=st.floats(-8.0, 8.0),
)
def test_a_proposal_never_reaches_past_a_bound_set_by_the_line_length(half_length_px, angle, dx, dy):
    """A line drawn short inside a big lesion (or across its edge into an organ of the same density)."""
    image = noisy(np.where(ellipse((160, 160), (80, 80), (40.0, 30.0), spacing=SPACING), 20.0, 60.0))
    image[:, 120:] = 20.0  # an organ as dense as the lesion, touching it
    centre = np.array([80.0 + dx, 80.0 + dy])
    half = half_length_px * np.array([math.cos(angle), math.sin(angle)])
    start, end = tuple(centre - half), tuple(centre + half)
    try:
        proposal = propose_from_line(image=image, pixel_spacing_mm=SPACING, start=start, end=end)
    except NoLesionFound:
        return
    rows, cols = np.nonzero(proposal.mask)
    reach_mm = np.hypot((rows - centre[1]) * SPACING[0], (cols - centre[0]) * SPACING[1]).max()
    line_mm = 2 * half_length_px * SPACING[0]
    assert reach_mm <= 0.75 * line_mm + 1e-9
    assert proposal.mask.sum() * SPACING[0] * SPACING[1] <= math.pi * (0.75 * line_mm) ** 2


def lesion_beside_an_organ():
    """A 16 mm spherical lesion (20 HU) on 9 of 31 slices, in liver (60 HU), touching a 25 HU organ on every slice."""
    spacing = (1.5, 0.8, 0.8)
    z, y, x = np.mgrid[:31, :96, :96]
    zz, yy, xx = (z - 15) * spacing[0], (y - 48) * spacing[1], (x - 48) * spacing[2]
    lesion = zz**2 + yy**2 + xx**2 <= 8.0**2
    organ = xx > 8.5
    volume = np.where(organ, 25.0, 60.0)
    volume = np.where(lesion, 20.0, volume)
    volume = ndimage.gaussian_filter(volume, (0.5, 1.0, 1.0))
    volume = volume + np.random.default_rng(3).normal(0, 10.0, volume.shape)
    return volume.astype(np.float32), lesion, organ, spacing


def test_propagation_stops_where_the_lesion_ends_and_does_not_flood_the_organ_beside_it():
    volume, lesion, organ, spacing = lesion_beside_an_organ()
    seed = propose_from_line(image=volume[15], pixel_spacing_mm=spacing[1:], start=(38.0, 48.0), end=(58.0, 48.0)).mask
    result = propagate(volume=volume, spacing_mm=spacing, seed_slice=15, seed_mask=seed)
    proposal = result.as_array(volume.shape)
    lesion_slices = np.nonzero(lesion.any(axis=(1, 2)))[0]
    assert min(result.masks) >= lesion_slices.min() - 1
    assert max(result.masks) <= lesion_slices.max() + 1
    assert (proposal & organ & ~lesion).sum() <= 0.1 * lesion.sum()
    assert dice(proposal, lesion) >= 0.8


def test_propagation_stops_where_a_lesion_ends_rather_than_running_on_into_the_organ_it_sits_in():
    # Kidney CT: an enhancing lesion (+53 HU) against the kidney, fat beyond the organ's edge touching it. The
    # fat in its rim makes plain kidney look lesion-like by the step at its edge alone; the organ's own level
    # (the rim's median) tells the kidney apart, so the proposal ends within a slice of where the lesion does.
    phantom = make_phantom(138, seed=26)
    start, end = truth_line(phantom)
    seed = propose_from_line(
        image=phantom.volume[phantom.largest_slice], pixel_spacing_mm=phantom.spacing_mm[1:], start=start, end=end
    ).mask
    result = propagate(
        volume=phantom.volume, spacing_mm=phantom.spacing_mm, seed_slice=phantom.largest_slice, seed_mask=seed
    )
    lesion_slices = np.nonzero(phantom.truth.any(axis=(1, 2)))[0]
    assert lesion_slices.min() - 1 <= min(result.masks)
    assert max(result.masks) <= lesion_slices.max() + 1
    assert dice(result.as_array(phantom.truth.shape), phantom.truth) >= 0.75


def test_followed_levels_keep_the_lesions_side_when_a_slice_reads_the_other_way():
    # A node darker than the muscle it lies on and brighter than the fat around it: on one slice its rim is
    # mostly fat (background below it), on the next mostly muscle (above). Averaging the two as they come
    # would put the background on the lesion's own level and end the propagation there.
    from annotations.core.segmentation.volume_proposal import _follow_levels

    seed_levels = (-9.0, -70.0, -95.0)
    lesion, background, organ = _follow_levels(seed_levels, (-11.0, 50.0, 48.0), side=-1.0)

    assert lesion == pytest.approx(-10.0)
    assert background == pytest.approx(lesion - 61.0)
    assert organ == pytest.approx(-23.5)


def test_propagating_again_from_a_corrected_slice_uses_the_correction():
    volume, lesion, _, spacing = lesion_beside_an_organ()
    corrected = lesion[13]
    result = propagate(volume=volume, spacing_mm=spacing, seed_slice=13, seed_mask=corrected)
    assert np.array_equal(result.masks[13], corrected)
    assert dice(result.as_array(volume.shape), lesion) >= 0.8


def test_tap_inside_a_lesion_gives_its_mask_and_its_axes_on_its_largest_slice():
    volume, lesion, organ, spacing = lesion_beside_an_organ()
    result = propose_from_tap(volume=volume, spacing_mm=spacing, slice_index=14, point=(45.0, 50.0))
    assert dice(result.as_array(volume.shape), lesion) >= 0.8
    assert result.largest_slice in (14, 15, 16)
    # The organ, 5 HU denser than the lesion and 0.5 mm from it, blurs into it: either axis may end a little
    # inside the organ or short of it, so 2 mm rather than the set's 1.5 mm median target.
    assert result.axes.long_axis_mm == pytest.approx(16.0, abs=2.0)
    assert result.axes.short_axis_mm == pytest.approx(16.0, abs=2.5)


def test_axes_of_an_ellipse_are_its_diameters():
    """Hand-worked: semi-axes 15 and 7.5 mm at 0.5 mm pixels, tilted 30 degrees: 30 mm by 15 mm, perpendicular."""
    mask = ellipse((120, 120), (60, 60), (15.0, 7.5), angle_deg=30.0, spacing=(0.5, 0.5))
    axes = recist_axes(mask, (0.5, 0.5))
    assert axes.long_axis_mm == pytest.approx(30.0, abs=0.75)
    assert axes.short_axis_mm == pytest.approx(15.0, abs=0.75)
    long_dir = np.subtract(axes.long_end, axes.long_start)
    short_dir = np.subtract(axes.short_end, axes.short_start)
    assert abs(np.dot(long_dir, short_dir)) / (np.linalg.norm(long_dir) * np.linalg.norm(short_dir)) < 0.02
    assert math.degrees(math.atan2(long_dir[1], long_dir[0])) % 180 == pytest.approx(30.0, abs=3.0)


def test_axes_are_measured_in_mm_on_anisotropic_pixels():
    """A 20 mm circle on 1.0 x 0.5 mm pixels is 20 rows by 40 columns and still 20 mm both ways."""
    mask = ellipse((40, 80), (40, 20), (10.0, 10.0), spacing=(1.0, 0.5))
    axes = recist_axes(mask, (1.0, 0.5))
    assert axes.long_axis_mm == pytest.approx(20.0, abs=1.0)
    assert axes.short_axis_mm == pytest.approx(20.0, abs=1.0)


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(3.0, 25.0),
    b=st.floats(3.0, 25.0),
    angle=st.floats(0.0, 180.0),
    lobe=st.tuples(st.floats(-10, 10), st.floats(-10, 10), st.floats(2.0, 8.0)),
)
def test_long_axis_matches_skimage_feret_diameter_and_short_never_exceeds_long(a, b, angle, lobe):
    mask = ellipse((80, 80), (40, 40), (a, b), angle_deg=angle) | ellipse(
        (80, 80), (40 + lobe[0], 40 + lobe[1]), (lobe[2], lobe[2])
    )
    mask = ndimage.binary_fill_holes(mask)
    labels = ndimage.label(mask)[0]
    mask = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    axes = recist_axes(mask, (1.0, 1.0))
    # scikit-image measures between points of a contour around the pixels, we between pixel centres:
    # about one pixel longer (0.75 to 1.75 px on 200 random ellipses).
    feret = regionprops(mask.astype(np.uint8))[0].feret_diameter_max
    assert 0.5 <= feret - axes.long_axis_mm <= 2.0
    assert axes.short_axis_mm <= axes.long_axis_mm + 1e-9
    length = math.dist(axes.long_start, axes.long_end)
    assert length == pytest.approx(axes.long_axis_mm)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_spacing_mm": (0.0, 0.7)}, "pixel_spacing_mm"),
        ({"start": (10.0, 10.0), "end": (11.0, 10.0)}, "at least"),
        ({"start": (-5.0, 10.0)}, "outside"),
        ({"image": np.zeros((4, 4, 4))}, "dimensions"),
    ],
)
def test_malformed_prompts_are_value_errors_that_name_the_problem(kwargs, message):
    arguments = {
        "image": np.zeros((64, 64)),
        "pixel_spacing_mm": SPACING,
        "start": (20.0, 20.0),
        "end": (40.0, 30.0),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message) as raised:
        propose_from_line(**arguments)
    assert not isinstance(raised.value, NoLesionFound)


def test_empty_masks_have_no_axes():
    with pytest.raises(ValueError, match="empty"):
        recist_axes(np.zeros((8, 8), dtype=bool), (1.0, 1.0))


def test_the_core_imports_no_django_and_nothing_else_from_the_project():
    import subprocess
    import sys

    code = (
        "import sys, annotations.core.segmentation\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'readerboard', 'viewer', 'benchmarks')"
        " or (m.startswith('annotations.') and not m.startswith('annotations.core'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
