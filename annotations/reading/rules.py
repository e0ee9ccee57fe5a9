"""The rules a read is checked against: the task's tools, limits and questions, and its series' instance extents.

Loaded from the database (instance extents are cached per process and series version); the checking itself is
`reading.documents`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from annotations.core.field_checks import is_finite_number
from annotations.models import Case, Task
from annotations.questions.services import current_question_set, questions_of
from annotations.reading.documents import InstanceExtent, ReadRules
from viewer.dicomweb.access import cache_scope, series_version
from viewer.models import Instance, Series


def rules_for_case(case: Case) -> ReadRules:
    """Return the task's rules and the geometry of every instance of the case's series."""
    return rules_for_series(task=case.task, series_id=case.series_id, series=case.series)


def rules_for_series(*, task: Task, series_id: int, series: Series | None = None) -> ReadRules:
    """Return the task's rules and the geometry of every instance of one series (a follow-up reads several).

    `series`, when the caller already holds the row, saves looking it up again.
    """
    if series is None:
        series = Series.objects.only("pk", "series_instance_uid").get(pk=series_id)
    # Every submit checks its marks against hundreds of instances; their geometry changes only when
    # instances are added or removed, so it is loaded once per process and series version.
    instances = _instance_geometries(cache_scope(), series_id, series.series_instance_uid, series_version(series))
    question_set = current_question_set(task)
    return ReadRules(
        tools=frozenset(task.tools or []),
        max_lesions_per_case=task.max_lesions_per_case,
        instances=instances,
        questions=questions_of(question_set),
        question_set_id=question_set.pk if question_set else None,
    )


@lru_cache(maxsize=256)
def _instance_geometries(scope: str, series_id: int, series_uid: str, version: str) -> Mapping[str, InstanceExtent]:
    # Store, series UID and version are in the key so a cached entry never outlives its rows' identity.
    return MappingProxyType(
        {
            uid: InstanceExtent(
                pk=pk,
                rows=rows,
                columns=columns,
                number_of_frames=frames or 1,
                pixel_spacing_mm=_spacing(spacing),
            )
            for uid, pk, rows, columns, frames, spacing in Instance.objects.filter(series_id=series_id).values_list(
                "sop_instance_uid", "pk", "rows", "columns", "number_of_frames", "pixel_spacing_mm"
            )
        }
    )


def _spacing(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(is_finite_number(v) and v > 0 for v in value):
        return float(value[0]), float(value[1])
    return None
