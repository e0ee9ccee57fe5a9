"""RECIST 1.1 arithmetic: target lesions, sum of diameters, change from baseline and nadir, response category.

Rules from Eisenhauer et al., "New response evaluation criteria in solid tumours: revised RECIST guideline
(version 1.1)", Eur J Cancer 2009;45:228-247 (docs/follow-up.md lists them as applied here). Pure: plain
dataclasses in and out, no Django, no database; used by follow-up reads, longitudinal consensus, exports and
the demo's truth. Non-target lesions' unequivocal progression is a reader's judgement and is not modelled:
a response here is judged on target lesions and new lesions.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
MIN_MEASURABLE_MM = 10.0  # non-nodal lesion, longest diameter (CT slice thickness <= 5 mm)
MIN_NODE_TARGET_SHORT_AXIS_MM = 15.0
NORMAL_NODE_SHORT_AXIS_MM = 10.0  # a node under 10 mm short axis is normal: counts as disappeared for CR
PR_DECREASE_FRACTION = 0.30
PD_INCREASE_FRACTION = 0.20
PD_MIN_INCREASE_MM = 5.0
# Sums are in mm from drawn lines; a hair of tolerance keeps "exactly 20 %" from being lost to float rounding.
_EPSILON_MM = 1e-6


class Response(enum.StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


class Status(enum.StrEnum):
    MEASURED = "measured"
    DISAPPEARED = "disappeared"
    NOT_EVALUABLE = "not_evaluable"


@dataclass(frozen=True)
class BaselineLesionSize:
    """A lesion measured at baseline; `key` is its identity at every time point."""

    key: str
    long_axis_mm: float | None
    short_axis_mm: float | None = None
    is_node: bool = False
    site: str | None = None

    @property
    def diameter_mm(self) -> float | None:
        return diameter_mm(is_node=self.is_node, long_axis_mm=self.long_axis_mm, short_axis_mm=self.short_axis_mm)

    @property
    def is_measurable_target(self) -> bool:
        size = self.diameter_mm
        if size is None:
            return False
        return size >= (MIN_NODE_TARGET_SHORT_AXIS_MM if self.is_node else MIN_MEASURABLE_MM) - _EPSILON_MM


@dataclass(frozen=True)
class LesionAtTimePoint:
    """What a reader recorded for one baseline lesion at one follow-up time point."""

    status: Status
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None

    def __post_init__(self) -> None:
        if self.status == Status.MEASURED and self.long_axis_mm is None and self.short_axis_mm is None:
            raise ValueError("a measured lesion needs a long or short axis")
        for name in ("long_axis_mm", "short_axis_mm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class TimePointMeasurements:
    """One follow-up time point of one read (or of the consensus): baseline lesions by key, and new lesions."""

    index: int
    lesions: Mapping[str, LesionAtTimePoint]
    new_lesions: int = 0


@dataclass(frozen=True)
class TargetSelection:
    targets: tuple[str, ...]
    non_targets: tuple[str, ...]


@dataclass(frozen=True)
class TimePointResponse:
    index: int
    sum_mm: float | None
    baseline_sum_mm: float
    nadir_sum_mm: float
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    new_lesions: int
    response: Response
    not_evaluable_targets: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        """Return the `recist` entry of docs/follow-up.md (sums to 0.1 mm, percentages to 0.1)."""
        return {
            "index": self.index,
            "sum_mm": _round(self.sum_mm),
            "baseline_sum_mm": _round(self.baseline_sum_mm),
            "nadir_sum_mm": _round(self.nadir_sum_mm),
            "change_from_baseline_pct": _round(self.change_from_baseline_pct),
            "change_from_nadir_pct": _round(self.change_from_nadir_pct),
            "new_lesions": self.new_lesions,
            "response": str(self.response),
        }


def diameter_mm(*, is_node: bool, long_axis_mm: float | None, short_axis_mm: float | None) -> float | None:
    """Return the diameter RECIST sums: a node's short axis (its long axis if none drawn), else the long axis."""
    if is_node:
        return short_axis_mm if short_axis_mm is not None else long_axis_mm
    return long_axis_mm


def select_targets(
    lesions: Sequence[BaselineLesionSize],
    *,
    max_targets: int = MAX_TARGETS,
    max_per_organ: int = MAX_TARGETS_PER_ORGAN,
) -> TargetSelection:
    """Return the target lesions: measurable, largest first, at most 5 and at most 2 per known organ.

    Lesions without a site are not limited per organ (the organ is unknown). Ties keep the given order.
    """
    keys = [lesion.key for lesion in lesions]
    if len(set(keys)) != len(keys):
        raise ValueError(f"baseline lesion keys must be unique, got {keys}")
    measurable = [lesion for lesion in lesions if lesion.is_measurable_target]
    ranked = sorted(measurable, key=lambda lesion: -(lesion.diameter_mm or 0.0))
    per_organ: Counter[str] = Counter()
    targets: list[str] = []
    for lesion in ranked:
        if len(targets) >= max_targets:
            break
        organ = (lesion.site or "").strip().lower()
        if organ and per_organ[organ] >= max_per_organ:
            continue
        if organ:
            per_organ[organ] += 1
        targets.append(lesion.key)
    chosen = set(targets)
    return TargetSelection(
        targets=tuple(key for key in keys if key in chosen),
        non_targets=tuple(key for key in keys if key not in chosen),
    )


def assess(
    baseline: Sequence[BaselineLesionSize],
    follow_ups: Sequence[TimePointMeasurements],
    *,
    targets: Sequence[str] | None = None,
) -> list[TimePointResponse]:
    """Return the response at every follow-up time point (in index order), each judged against the nadir so far.

    `targets` overrides the selection (e.g. targets an admin fixed); by default `select_targets(baseline)`.
    A baseline target missing from a time point's lesions counts as not evaluable.
    """
    by_key = {lesion.key: lesion for lesion in baseline}
    target_keys = tuple(targets) if targets is not None else select_targets(baseline).targets
    unknown = [key for key in target_keys if key not in by_key]
    if unknown:
        raise ValueError(f"targets {unknown} are not baseline lesions")
    baseline_sum = sum(by_key[key].diameter_mm or 0.0 for key in target_keys)
    nadir = baseline_sum
    answer = []
    for point in sorted(follow_ups, key=lambda p: p.index):
        result = _assess_time_point(point, [by_key[key] for key in target_keys], baseline_sum, nadir)
        answer.append(result)
        # Only a complete sum can be a new nadir; a time point with a target missing says nothing about it.
        if result.sum_mm is not None and not result.not_evaluable_targets:
            nadir = min(nadir, result.sum_mm)
    return answer


def _assess_time_point(
    point: TimePointMeasurements, targets: list[BaselineLesionSize], baseline_sum: float, nadir: float
) -> TimePointResponse:
    total = 0.0
    missing: list[str] = []
    all_gone = True
    for target in targets:
        lesion = point.lesions.get(target.key)
        if lesion is None or lesion.status == Status.NOT_EVALUABLE:
            missing.append(target.key)
            continue
        if lesion.status == Status.DISAPPEARED:
            continue
        size = diameter_mm(is_node=target.is_node, long_axis_mm=lesion.long_axis_mm, short_axis_mm=lesion.short_axis_mm)
        size = size or 0.0
        total += size
        # CR: non-nodal targets gone, nodal targets back to normal (< 10 mm short axis), which still add to the sum.
        if size > 0 and not (target.is_node and size < NORMAL_NODE_SHORT_AXIS_MM - _EPSILON_MM):
            all_gone = False
    from_baseline = _change_pct(total, baseline_sum)
    from_nadir = _change_pct(total, nadir)
    increase_mm = total - nadir
    grew = increase_mm >= PD_INCREASE_FRACTION * nadir - _EPSILON_MM and increase_mm >= PD_MIN_INCREASE_MM - _EPSILON_MM
    if point.new_lesions > 0 or (targets and grew):
        # Progression stands even with a target missing: the missing one could only add to the sum.
        response = Response.PD
    elif missing or not targets:
        response = Response.NE
    elif all_gone:
        response = Response.CR
    elif baseline_sum - total >= PR_DECREASE_FRACTION * baseline_sum - _EPSILON_MM:
        response = Response.PR
    else:
        response = Response.SD
    return TimePointResponse(
        index=point.index,
        sum_mm=None if missing else total,
        baseline_sum_mm=baseline_sum,
        nadir_sum_mm=nadir,
        change_from_baseline_pct=None if missing else from_baseline,
        change_from_nadir_pct=None if missing else from_nadir,
        new_lesions=point.new_lesions,
        response=response,
        not_evaluable_targets=tuple(missing),
    )


def best_overall_response(responses: Sequence[Response]) -> Response | None:
    """Return the best response recorded (CR > PR > SD > PD > NE), without RECIST's confirmation rules."""
    order = [Response.CR, Response.PR, Response.SD, Response.PD, Response.NE]
    present = set(responses)
    return next((response for response in order if response in present), None)


def _change_pct(value: float, reference: float) -> float | None:
    if reference <= 0:
        return None
    return 100.0 * (value - reference) / reference


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def baseline_sizes(baseline_lesions: list[dict]) -> list[BaselineLesionSize]:
    """Return RECIST baseline sizes from baseline lesions in the contract's shape (lengths from their lines)."""
    sizes = []
    for lesion in baseline_lesions:
        long_axis, short_axis = lesion.get("long_axis"), lesion.get("short_axis")
        sizes.append(
            BaselineLesionSize(
                key=lesion["id"],
                long_axis_mm=float(long_axis["length_mm"]) if long_axis else None,
                short_axis_mm=float(short_axis["length_mm"]) if short_axis else None,
                is_node=bool(lesion.get("is_node")),
                site=lesion.get("site") or None,
            )
        )
    return sizes
