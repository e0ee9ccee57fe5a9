"""Read-only queries of the reading side: open tasks, reader read counts, a case's images.

Selectors return querysets or plain values and never write. None of them may return a Mark,
MaskSlice, Read document or consensus to a reader other than its author: reads are blind.
"""

from __future__ import annotations

from functools import lru_cache

from django.db.models import Count, Q, QuerySet

from annotations.instructions import render_instructions
from annotations.models import Case, Reader, Task
from viewer.models import Instance, Series

# Standard CT presets (centre, width in HU); the first is the default.
CT_WINDOW_PRESETS = [
    {"name": "Soft tissue", "center": 40, "width": 400},
    {"name": "Lung", "center": -600, "width": 1500},
    {"name": "Liver", "center": 60, "width": 160},
    {"name": "Bone", "center": 400, "width": 1800},
    {"name": "Brain", "center": 40, "width": 80},
]


def open_tasks() -> QuerySet[Task]:
    """Tasks a reader may read, newest first, with their case counts."""
    return Task.objects.filter(is_open=True).annotate(case_count=Count("cases")).order_by("-created_at", "-id")


def readers_by_reads() -> QuerySet[Reader]:
    """Active readers annotated with `cases_read`: distinct cases read, skips not counted; most first.

    Deactivated accounts (and the demo's simulated readers, which are never active) leave the board.
    """
    return (
        Reader.objects.filter(user__is_active=True)
        .annotate(cases_read=Count("reads__case", filter=Q(reads__skip=False), distinct=True))
        .filter(cases_read__gt=0)
        .order_by("-cases_read", "created_at", "id")
    )


def reads_of_reader(reader: Reader) -> int:
    """Return the distinct cases this reader has read (skips not counted)."""
    return Case.objects.filter(reads__reader=reader, reads__skip=False).distinct().count()


def case_instances(case: Case) -> QuerySet[Instance]:
    """The case's instances in anatomical reading order (the series' sort key)."""
    return Instance.objects.filter(series_id=case.series_id).order_by("sort_position_mm", "instance_number", "id")


def case_instance_summaries(case: Case) -> list[dict]:
    """What the reading page needs of each instance of the case's series, in reading order.

    Next case sends this list (hundreds of instances for a real-size series) with every case; it
    changes only when instances are added to or removed from the series, so it is built once per
    process and series version (one memoised count query instead of loading every row each time).
    """
    from viewer.dicomweb.access import cache_scope, series_version  # memoised briefly per process

    series = case.series
    return list(_instance_summaries(cache_scope(), series.pk, series.series_instance_uid, series_version(series)))


@lru_cache(maxsize=256)
def _instance_summaries(scope: str, series_id: int, series_uid: str, version: str) -> tuple[dict, ...]:
    # Store, series UID and version are in the key so a cached list never outlives its rows' identity.
    return tuple(
        {
            "sop_instance_uid": sop_instance_uid,
            "frames": frames or 1,
            "rows": rows,
            "columns": columns,
            "pixel_spacing_mm": pixel_spacing_mm,
        }
        for sop_instance_uid, frames, rows, columns, pixel_spacing_mm in Instance.objects.filter(series_id=series_id)
        .order_by("sort_position_mm", "instance_number", "id")
        .values_list("sop_instance_uid", "number_of_frames", "rows", "columns", "pixel_spacing_mm")
    )


def window_presets(series: Series) -> list[dict]:
    """Window presets for a series: the CT set for CT, else the windows the files carry (may be empty)."""
    if series.modality.upper() == "CT":
        return [dict(preset) for preset in CT_WINDOW_PRESETS]
    first = Instance.objects.filter(series=series).order_by("sort_position_mm", "instance_number", "id").first()
    presets = []
    if first is not None:
        for index, (center, width) in enumerate(
            zip(first.window_centers or [], first.window_widths or [], strict=False)
        ):
            if width and width > 0:
                presets.append(
                    {
                        "name": "File window" if index == 0 else f"File window {index + 1}",
                        "center": center,
                        "width": width,
                    }
                )
    return presets


def instructions_html(task: Task) -> str:
    """Return the task's markdown instructions as sanitised HTML (no scripts, no event handlers)."""
    return render_instructions(task.instructions_md or "")
