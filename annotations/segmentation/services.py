"""Mask proposals for a reader: check the prompt, load the pixels it can reach, run the core, answer in RLE.

A reader draws a long axis (or taps a lesion, or corrects one slice of an earlier proposal) and asks for the
lesion's mask. This module decides whether the user may ask (a reader with a live lease on the case or an
earlier read of it; an admin writing the answer key of a gold case), checks the prompt against the case's
series exactly as the read document would be checked, loads only the slices and the in-plane crop the
proposal can reach (in HU, through the viewer's frame cache), and calls the pure core
(`annotations.core.segmentation`) under a time budget and a per-user rate limit. Masks come back as the read
document's run lengths (docs/read-format.md, "mask") keyed by SOP instance UID and frame.
It never stores anything and never trusts the page for geometry it can compute itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from annotations.booth.roles import is_admin
from annotations.core import mask_rle
from annotations.core.geometry import line_length_mm
from annotations.core.segmentation import (
    ALGORITHM_NAME,
    ALGORITHM_VERSION,
    DEFAULT_SEGMENTER,
    Axes,
    NoLesionFound,
    Segmenter,
    propagate,
    propose_from_line,
    propose_from_tap,
    recist_axes,
)
from annotations.models import Case, CaseTimePoint, Read, Reader
from annotations.models.tasks import Tool
from annotations.reading.documents import is_finite_number, parse_lesion_lines
from annotations.reading.rules import rules_for_series
from viewer.dicomweb.delivery import native_frame_array
from viewer.models import Instance, Series
from viewer.selectors import series_instances

# How far (in line lengths) a proposal seeded by a line can reach in-plane and through the slices, with the
# core's bounds: its mask lies in a disc 1.5 lines across, propagation keeps within 0.75 of the mask's long
# axis in-plane and 0.7 of it in depth (annotations/core/segmentation); the rest is margin for its crops.
LINE_CROP_HALF_PER_LINE = 1.7
LINE_DEPTH_PER_LINE = 1.1
SEED_CROP_HALF_PER_LONG_AXIS = 1.2
SEED_DEPTH_PER_LONG_AXIS = 0.75
# A tap does not know the lesion's size: the core tries sizes up to 80 mm, so its slice crop is wide.
TAP_CROP_HALF_MM = 110.0
CROP_MARGIN_MM = 12.0
DEFAULT_TIME_BUDGET_S = 8.0
DEFAULT_PROPOSALS_PER_MINUTE = 30
RATE_WINDOW_S = 60


class CaseNotFound(Exception):
    """No such case for this user (no lease on it, no read of it, not an admin's gold case): 404, never 403."""


class ProposalRefused(ValueError):
    """The prompt is malformed or does not fit the case's images; `errors` maps JSON paths to messages (400)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{path}: {', '.join(messages)}" for path, messages in errors.items()))
        self.errors = errors


class NoLesionHere(Exception):
    """The prompt is on air, fat, bone or featureless tissue; `reason` is a sentence for the reader (422)."""

    def __init__(self, reason: str):
        super().__init__(f"no lesion found here: {reason}")
        self.reason = reason


class ProposalTimedOut(Exception):
    """The proposal ran past its time budget and was stopped (503); nothing partial is returned."""

    def __init__(self, budget_s: float):
        super().__init__(
            f"the mask proposal took longer than {budget_s:g} s and was stopped; "
            "draw the line again across the lesion, or paint the mask by hand"
        )
        self.budget_s = budget_s


class TooManyProposals(Exception):
    """The reader asked for more proposals than the per-minute limit allows; retry after `retry_after_s` (429)."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many mask proposals; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LinePrompt:
    """A RECIST long axis (and optionally its short axis) as line objects of the read document."""

    long_axis: Any
    short_axis: Any = None


@dataclass(frozen=True)
class TapPrompt:
    """One tap inside a lesion: (col, row) pixel of one frame."""

    sop_instance_uid: Any
    frame: Any
    point: Any


@dataclass(frozen=True)
class SeedMaskPrompt:
    """One slice of a mask the reader corrected, to propagate again from: a mask slice of the read document."""

    sop_instance_uid: Any
    frame: Any
    counts: Any


Prompt = LinePrompt | TapPrompt | SeedMaskPrompt


@dataclass(frozen=True)
class MaskProposal:
    """A proposed lesion mask in the read document's form, the RECIST axes on its largest slice, and its origin.

    ``slices`` are read-format mask slices ({"sop_instance_uid", "frame", "counts"}); ``long_axis`` and
    ``short_axis`` are read-format lines (with ``length_mm``) on ``largest``; ``stopped`` says why
    propagation ended on each side ("up" = later in reading order).
    """

    prompt: str
    algorithm: str
    algorithm_version: str
    slices: list[dict]
    seed: dict
    largest: dict
    long_axis: dict
    short_axis: dict | None
    volume_mm3: float
    stopped: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


# --- limits -----------------------------------------------------------------------------------------


def time_budget_s() -> float:
    return float(settings.READERBOARD.get("MASK_PROPOSAL_TIME_BUDGET_S", DEFAULT_TIME_BUDGET_S))


def proposals_per_minute() -> int:
    return int(settings.READERBOARD.get("MASK_PROPOSALS_PER_MINUTE", DEFAULT_PROPOSALS_PER_MINUTE))


def check_proposal_rate(*, user_id: int, now_s: float | None = None) -> None:
    """Count one proposal for the user; raise TooManyProposals past `proposals_per_minute()` in a minute.

    Counted per user (a reader, or an admin writing answer keys without a reader profile).
    """
    limit = proposals_per_minute()
    now_s = time.time() if now_s is None else now_s
    key = f"readerboard:rate:mask-proposal:user:{user_id}"
    history = [t for t in cache.get(key, []) if t > now_s - RATE_WINDOW_S]
    if len(history) >= limit:
        raise TooManyProposals(max(1, int(history[0] + RATE_WINDOW_S - now_s) + 1))
    history.append(now_s)
    cache.set(key, history, RATE_WINDOW_S)


class _Budget:
    """A segmenter that refuses to start once the proposal's time budget is spent.

    The core calls its segmenter once per slice (and per candidate size of a tap), each call a few ms, so
    checking the clock before each call stops a runaway proposal within one call of its budget.
    """

    def __init__(self, inner: Segmenter, *, budget_s: float, started_s: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.budget_s = budget_s
        self.deadline_s = started_s + budget_s

    def check(self) -> None:
        if time.monotonic() > self.deadline_s:
            raise ProposalTimedOut(self.budget_s)

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        self.check()
        return self.inner(image, lesion_seeds, background_seeds)


# --- access and images ------------------------------------------------------------------------------


def case_for_proposal(*, user, case_id: int) -> Case:
    """The case, when the user may draw on it now; else CaseNotFound.

    A reader may while holding a live lease on the case or after reading it. An admin may on a gold case: the
    answer-key page (reading.answer_keys) takes no lease, and admins write the answer key of any task's gold
    cases (the answer-key API's permission is the admin role, with no per-task grant).
    """
    reader: Reader | None = getattr(user, "reader", None)
    allowed = Q(pk__in=[])
    if reader is not None:
        allowed |= Q(leases__reader=reader, leases__expires_at__gt=timezone.now()) | Q(
            pk__in=Read.objects.filter(reader=reader).values("case_id")
        )
    if is_admin(user):
        allowed |= Q(is_gold=True)
    case = Case.objects.select_related("task", "series").filter(allowed, pk=case_id).distinct().first()
    if case is None:
        raise CaseNotFound(f"case {case_id} not found")
    return case


def _case_series_ids(case: Case) -> set[int]:
    """The case's series and, for a follow-up case, its time points' series."""
    ids = {case.series_id}
    ids.update(CaseTimePoint.objects.filter(case=case).values_list("series_id", flat=True))
    return ids


@dataclass(frozen=True)
class _Slice:
    instance: Instance
    frame: int


def _reading_order(series: Series) -> list[_Slice]:
    return [_Slice(instance, frame) for instance in series_instances(series=series) for frame in _frames(instance)]


def _frames(instance: Instance) -> range:
    return range(1, (instance.number_of_frames or 1) + 1)


def _slice_spacing_mm(slices: list[_Slice], index: int) -> float:
    """Distance between neighbouring slices around `index` (mm), from their positions, else the header."""
    positions = [s.instance.sort_position_mm for s in slices[max(0, index - 2) : index + 3]]
    if len(positions) > 1 and all(p is not None for p in positions) and len({s.instance.pk for s in slices}) > 1:
        steps = [abs(b - a) for a, b in zip(positions, positions[1:], strict=False) if abs(b - a) > 1e-6]
        if steps:
            return float(np.median(steps))
    instance = slices[index].instance
    for value in (instance.spacing_between_slices_mm, instance.slice_thickness_mm):
        if value and value > 0:
            return float(value)
    return 1.0


def _same_geometry(a: Instance, b: Instance) -> bool:
    return (a.rows, a.columns, a.pixel_spacing_mm) == (b.rows, b.columns, b.pixel_spacing_mm)


@dataclass(frozen=True)
class _Crop:
    """A box of one series' slices: slice indices [first, last], rows [r0, r1), cols [c0, c1)."""

    first: int
    last: int
    r0: int
    r1: int
    c0: int
    c1: int


def _crop_around(
    *, slices: list[_Slice], seed: int, centre: tuple[float, float], half_mm: float, depth_mm: float
) -> _Crop:
    instance = slices[seed].instance
    row_mm, col_mm = _spacing(instance)
    spacing = _slice_spacing_mm(slices, seed)
    reach = math.ceil(depth_mm / spacing) + 1 if depth_mm > 0 else 0
    first, last = seed, seed
    while first > 0 and seed - first < reach and _same_geometry(slices[first - 1].instance, instance):
        first -= 1
    while last < len(slices) - 1 and last - seed < reach and _same_geometry(slices[last + 1].instance, instance):
        last += 1
    half_rows, half_cols = math.ceil(half_mm / row_mm), math.ceil(half_mm / col_mm)
    col, row = round(centre[0]), round(centre[1])
    return _Crop(
        first=first,
        last=last,
        r0=max(0, row - half_rows),
        r1=min(instance.rows, row + half_rows + 1),
        c0=max(0, col - half_cols),
        c1=min(instance.columns, col + half_cols + 1),
    )


def _spacing(instance: Instance) -> tuple[float, float]:
    row_mm, col_mm = instance.pixel_spacing_mm
    return float(row_mm), float(col_mm)


def _load_hu(slices: list[_Slice], crop: _Crop, budget: _Budget) -> np.ndarray:
    """The crop's pixels in modality units (HU for CT) as float32 (slices, rows, cols)."""
    volume = np.empty((crop.last - crop.first + 1, crop.r1 - crop.r0, crop.c1 - crop.c0), dtype=np.float32)
    for offset, index in enumerate(range(crop.first, crop.last + 1)):
        budget.check()
        item = slices[index]
        frame = native_frame_array(item.instance, frame_number=item.frame)
        region = frame[crop.r0 : crop.r1, crop.c0 : crop.c1].astype(np.float32)
        volume[offset] = region * np.float32(item.instance.rescale_slope) + np.float32(item.instance.rescale_intercept)
    return volume


# --- the service ------------------------------------------------------------------------------------


def propose_mask(*, user, case_id: int, prompt: Prompt, propagate_3d: bool = True) -> MaskProposal:
    """Return the proposed mask of the lesion the prompt points at, on its slice and (by default) its neighbours.

    ``user`` is the signed-in user: a reader, or an admin writing a gold case's answer key (`case_for_proposal`).
    Raises TooManyProposals (rate), CaseNotFound (no lease, no read, not an admin's gold case), ProposalRefused
    (a malformed prompt or one off the case's images, by JSON path), NoLesionHere (nothing lesion-like there)
    or ProposalTimedOut.
    """
    check_proposal_rate(user_id=user.pk)
    started_s = time.monotonic()
    budget = _Budget(DEFAULT_SEGMENTER, budget_s=time_budget_s(), started_s=started_s)
    case = case_for_proposal(user=user, case_id=case_id)
    path = {LinePrompt: "long_axis", TapPrompt: "tap", SeedMaskPrompt: "seed_mask"}[type(prompt)]
    target = prompt.long_axis if isinstance(prompt, LinePrompt) else prompt
    uid = target.get("sop_instance_uid") if isinstance(target, dict) else getattr(target, "sop_instance_uid", None)
    instance = (
        Instance.objects.select_related("series").filter(sop_instance_uid=uid).first() if isinstance(uid, str) else None
    )
    if instance is None or instance.series_id not in _case_series_ids(case):
        raise ProposalRefused({f"{path}.sop_instance_uid": ["is not an instance of this case's series"]})
    rules = rules_for_series(task=case.task, series_id=instance.series_id, series=instance.series)
    if Tool.MASK not in rules.tools:
        raise ProposalRefused({"case": ["the task does not offer lesion masks"]})
    if not instance.pixel_spacing_mm or instance.samples_per_pixel != 1:
        raise ProposalRefused({f"{path}.sop_instance_uid": ["masks are proposed on greyscale images with spacing"]})
    slices = _reading_order(instance.series)
    is_ct = instance.series.modality == "CT"
    try:
        if isinstance(prompt, LinePrompt):
            proposal, crop, seed = _from_line(prompt, slices, rules, budget, is_ct=is_ct, propagate_3d=propagate_3d)
        elif isinstance(prompt, TapPrompt):
            proposal, crop, seed = _from_tap(prompt, slices, rules, budget, is_ct=is_ct, propagate_3d=propagate_3d)
        else:
            proposal, crop, seed = _from_seed_mask(prompt, slices, rules, budget, propagate_3d=propagate_3d)
    except NoLesionFound as exc:
        raise NoLesionHere(exc.reason) from None
    return _answer(
        prompt=path if path != "long_axis" else "line",
        result=proposal,
        slices=slices,
        crop=crop,
        seed=seed,
        elapsed_s=time.monotonic() - started_s,
    )


def _seed_index(slices: list[_Slice], uid: str, frame: int) -> int:
    for index, item in enumerate(slices):
        if item.instance.sop_instance_uid == uid and item.frame == frame:
            return index
    raise ProposalRefused({"sop_instance_uid": ["is not an instance of this case's series"]})


def _from_line(prompt: LinePrompt, slices, rules, budget, *, is_ct: bool, propagate_3d: bool):
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path.lstrip("."), []).append(message)

    lesion = {"long_axis": prompt.long_axis}
    if prompt.short_axis is not None:
        lesion["short_axis"] = prompt.short_axis
    # The line is checked by the read document's own rules, so what the page may submit it may also prompt with.
    lines = parse_lesion_lines(lesion, "", 1, rules, fail)
    if errors or not lines:
        raise ProposalRefused(errors or {"long_axis": ["is not a valid line"]})
    long_line = next(line for line in lines if line.kind == "long_axis")
    short_line = next((line for line in lines if line.kind == "short_axis"), None)
    seed = _seed_index(slices, long_line.sop_instance_uid, long_line.frame)
    centre = ((long_line.start[0] + long_line.end[0]) / 2.0, (long_line.start[1] + long_line.end[1]) / 2.0)
    crop = _crop_around(
        slices=slices,
        seed=seed,
        centre=centre,
        half_mm=LINE_CROP_HALF_PER_LINE * long_line.length_mm + CROP_MARGIN_MM,
        depth_mm=(LINE_DEPTH_PER_LINE * long_line.length_mm) if propagate_3d else 0.0,
    )
    volume = _load_hu(slices, crop, budget)
    spacing = _spacing(slices[seed].instance)

    def shift(point: tuple[float, float]) -> tuple[float, float]:
        return (point[0] - crop.c0, point[1] - crop.r0)

    try:
        slice_proposal = propose_from_line(
            image=volume[seed - crop.first],
            pixel_spacing_mm=spacing,
            start=shift(long_line.start),
            end=shift(long_line.end),
            short_axis=(shift(short_line.start), shift(short_line.end)) if short_line else None,
            is_ct=is_ct,
            segmenter=budget,
        )
    except NoLesionFound:
        raise
    except ValueError as exc:
        raise ProposalRefused({"long_axis": [str(exc)]}) from None
    return _run(volume, slices, crop, seed, slice_proposal.mask, budget, propagate_3d=propagate_3d), crop, seed


def _from_tap(prompt: TapPrompt, slices, rules, budget, *, is_ct: bool, propagate_3d: bool):
    uid, frame, point = prompt.sop_instance_uid, prompt.frame, prompt.point
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1:
        raise ProposalRefused({"tap.frame": ["must be a frame number from 1"]})
    extent = rules.instances.get(uid)
    if extent is None or frame > extent.number_of_frames:
        raise ProposalRefused({"tap.frame": ["is beyond the instance's frames"]})
    if not (isinstance(point, list | tuple) and len(point) == 2 and all(is_finite_number(v) for v in point)):
        raise ProposalRefused({"tap.point": ["must be [column, row] as two finite numbers"]})
    col, row = float(point[0]), float(point[1])
    if not (-0.5 <= col <= extent.columns - 0.5 and -0.5 <= row <= extent.rows - 0.5):
        raise ProposalRefused(
            {"tap.point": [f"[{col}, {row}] is outside the image ({extent.columns} x {extent.rows} pixels)"]}
        )
    seed = _seed_index(slices, uid, frame)
    # First the tapped slice alone (the core finds the lesion's size there), then only the slices its size
    # can reach: the same result as the core's own propagation, without decoding the whole series.
    slice_crop = _crop_around(slices=slices, seed=seed, centre=(col, row), half_mm=TAP_CROP_HALF_MM, depth_mm=0.0)
    image = _load_hu(slices, _Crop(seed, seed, slice_crop.r0, slice_crop.r1, slice_crop.c0, slice_crop.c1), budget)
    spacing = _spacing(slices[seed].instance)
    thickness = _slice_spacing_mm(slices, seed)
    try:
        on_slice = propose_from_tap(
            volume=_with_barrier(image[0]),
            spacing_mm=(thickness, *spacing),
            slice_index=0,
            point=(
                min(max(col, 0.0), extent.columns - 1) - slice_crop.c0,
                min(max(row, 0.0), extent.rows - 1) - slice_crop.r0,
            ),
            is_ct=is_ct,
            segmenter=budget,
        )
    except NoLesionFound:
        raise
    except ValueError as exc:
        raise ProposalRefused({"tap.point": [str(exc)]}) from None
    full = np.zeros((extent.rows, extent.columns), dtype=bool)
    full[slice_crop.r0 : slice_crop.r1, slice_crop.c0 : slice_crop.c1] = on_slice.masks[0]
    return _propagate_from_mask(full, slices, seed, budget, propagate_3d=propagate_3d)


# The core takes volumes of two slices or more; a tapped slice alone is given a neighbour nothing can look like,
# so its propagation ends at once and the tapped slice's mask is the core's own. The neighbours are then loaded
# only as far as that mask's size can reach.
BARRIER_VALUE = 1.0e9


def _with_barrier(image: np.ndarray) -> np.ndarray:
    return np.stack([image, np.full_like(image, BARRIER_VALUE)])


def _from_seed_mask(prompt: SeedMaskPrompt, slices, rules, budget, *, propagate_3d: bool):
    uid, frame, counts = prompt.sop_instance_uid, prompt.frame, prompt.counts
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1:
        raise ProposalRefused({"seed_mask.frame": ["must be a frame number from 1"]})
    extent = rules.instances.get(uid)
    if extent is None or frame > extent.number_of_frames:
        raise ProposalRefused({"seed_mask.frame": ["is beyond the instance's frames"]})
    try:
        mask = mask_rle.decode(counts, rows=extent.rows, columns=extent.columns)
    except (TypeError, ValueError) as exc:
        raise ProposalRefused({"seed_mask.counts": [str(exc)]}) from None
    if not mask.any():
        raise ProposalRefused({"seed_mask.counts": ["the mask is empty: paint the lesion on this slice first"]})
    seed = _seed_index(slices, uid, frame)
    return _propagate_from_mask(mask, slices, seed, budget, propagate_3d=propagate_3d)


def _propagate_from_mask(mask: np.ndarray, slices, seed: int, budget, *, propagate_3d: bool):
    """Propagate a full-frame mask of slice `seed`, loading only what its size can reach."""
    spacing = _spacing(slices[seed].instance)
    axes = recist_axes(mask, spacing)
    long_mm = max(axes.long_axis_mm, min(spacing))
    rows, cols = np.nonzero(mask)
    crop = _crop_around(
        slices=slices,
        seed=seed,
        centre=(float(cols.mean()), float(rows.mean())),
        half_mm=max(
            SEED_CROP_HALF_PER_LONG_AXIS * long_mm,
            (max(rows.max() - rows.min(), cols.max() - cols.min()) + 1) * max(spacing),
        )
        + CROP_MARGIN_MM,
        depth_mm=(SEED_DEPTH_PER_LONG_AXIS * long_mm) if propagate_3d else 0.0,
    )
    volume = _load_hu(slices, crop, budget)
    local = mask[crop.r0 : crop.r1, crop.c0 : crop.c1]
    return _run(volume, slices, crop, seed, local, budget, propagate_3d=propagate_3d), crop, seed


@dataclass(frozen=True)
class _Result:
    """What the core proposed, on the crop: masks by series slice index, the largest slice and its axes."""

    masks: dict[int, np.ndarray]
    largest: int
    axes: Axes
    volume_mm3: float
    stopped: dict[str, str]


def _run(volume, slices, crop: _Crop, seed: int, seed_mask: np.ndarray, budget, *, propagate_3d: bool) -> _Result:
    """Propagate the crop's seed mask through the crop's slices, or keep it alone when not `propagate_3d`."""
    spacing = _spacing(slices[seed].instance)
    thickness = _slice_spacing_mm(slices, seed)
    if not propagate_3d or crop.first == crop.last:
        return _Result(
            masks={seed: seed_mask},
            largest=seed,
            axes=recist_axes(seed_mask, spacing),
            volume_mm3=float(seed_mask.sum()) * spacing[0] * spacing[1] * thickness,
            stopped={"up": "not propagated", "down": "not propagated"},
        )
    proposal = propagate(
        volume=volume,
        spacing_mm=(thickness, *spacing),
        seed_slice=seed - crop.first,
        seed_mask=seed_mask,
        segmenter=budget,
    )
    return _Result(
        masks={crop.first + index: mask for index, mask in proposal.masks.items()},
        largest=crop.first + proposal.largest_slice,
        axes=proposal.axes,
        volume_mm3=proposal.volume_mm3,
        stopped=dict(proposal.stopped),
    )


def _line(item: _Slice, start: tuple[float, float], end: tuple[float, float]) -> dict:
    start = (round(float(start[0]), 2), round(float(start[1]), 2))
    end = (round(float(end[0]), 2), round(float(end[1]), 2))
    return {
        "sop_instance_uid": item.instance.sop_instance_uid,
        "frame": item.frame,
        "start": list(start),
        "end": list(end),
        "length_mm": round(line_length_mm(start=start, end=end, pixel_spacing_mm=_spacing(item.instance)), 2),
    }


def _answer(*, prompt: str, result: _Result, slices, crop: _Crop, seed: int, elapsed_s: float) -> MaskProposal:
    instance = slices[seed].instance
    shape = (instance.rows, instance.columns)
    mask_slices = []
    for index, local_mask in sorted(result.masks.items()):
        item = slices[index]
        full = np.zeros(shape, dtype=bool)
        full[crop.r0 : crop.r1, crop.c0 : crop.c1] = local_mask
        mask_slices.append(
            {"sop_instance_uid": item.instance.sop_instance_uid, "frame": item.frame, "counts": mask_rle.encode(full)}
        )
    largest = slices[result.largest]
    axes = result.axes

    def shift(point: tuple[float, float]) -> tuple[float, float]:
        return (point[0] + crop.c0, point[1] + crop.r0)

    long_axis = _line(largest, shift(axes.long_start), shift(axes.long_end))
    short_axis = _line(largest, shift(axes.short_start), shift(axes.short_end)) if axes.short_axis_mm > 0 else None
    seed_item = slices[seed]
    return MaskProposal(
        prompt=prompt,
        algorithm=ALGORITHM_NAME,
        algorithm_version=ALGORITHM_VERSION,
        slices=mask_slices,
        seed={"sop_instance_uid": seed_item.instance.sop_instance_uid, "frame": seed_item.frame},
        largest={"sop_instance_uid": largest.instance.sop_instance_uid, "frame": largest.frame},
        long_axis=long_axis,
        short_axis=short_axis,
        volume_mm3=round(result.volume_mm3, 1),
        stopped=result.stopped,
        elapsed_s=round(elapsed_s, 3),
    )
