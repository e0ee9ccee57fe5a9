"""Reads of the image store that are more than one queryset: visibility, lookups by UID, QIDO searches.

Every read here goes through the series access policy named by
settings.READERBOARD["SERIES_ACCESS_POLICY"], so a caller cannot forget it. This
module must never write, and never import annotations/ directly (the policy is
loaded by name, keeping the viewer -> annotations arrow out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils.module_loading import import_string

from viewer.models import Instance, Series, Study


class NotVisibleError(LookupError):
    """The resource does not exist or the user may not see it (the two are not told apart)."""


@lru_cache(maxsize=4)
def _load_policy(dotted_path: str) -> Callable[..., QuerySet[Series]]:
    return import_string(dotted_path)


def visible_series(*, user) -> QuerySet[Series]:
    """Return the series this user may load, by the configured access policy."""
    return _load_policy(settings.READERBOARD["SERIES_ACCESS_POLICY"])(user=user)


def visible_studies(*, user) -> QuerySet[Study]:
    """Return the studies with at least one series this user may load."""
    return Study.objects.filter(series__in=visible_series(user=user)).distinct()


def study_for(*, user, study_uid: str) -> Study:
    """Return a visible study by UID or raise NotVisibleError."""
    study = visible_studies(user=user).filter(study_instance_uid=study_uid).first()
    if study is None:
        raise NotVisibleError(f"study {study_uid} not found")
    return study


def series_for(*, user, study_uid: str, series_uid: str) -> Series:
    """Return a visible series of a study by UIDs or raise NotVisibleError."""
    series = (
        visible_series(user=user)
        .filter(series_instance_uid=series_uid, study__study_instance_uid=study_uid)
        .select_related("study")
        .first()
    )
    if series is None:
        raise NotVisibleError(f"series {series_uid} of study {study_uid} not found")
    return series


def series_instances(*, series: Series) -> list[Instance]:
    """Return a series' instances in reading order (position along the slice normal)."""
    return list(series.instances.order_by("sort_position_mm", "instance_number", "id"))


def series_version(*, series: Series) -> str:
    """Return a token that changes whenever instances are added to or removed from a series."""
    summary = series.instances.aggregate(count=Count("id"), last=Max("id"))
    return f"{summary['count']}-{summary['last'] or 0}"


@dataclass(frozen=True)
class Page:
    limit: int | None
    offset: int


# QIDO-RS matching keys we filter on, by level: keyword -> (model field path, matching kind).
STUDY_MATCHING = {
    "StudyInstanceUID": ("study_instance_uid", "uid"),
    "PatientID": ("patient_id", "text"),
    "PatientName": ("patient_name", "text"),
    "AccessionNumber": ("accession_number", "text"),
    "StudyDate": ("study_date", "date"),
    "StudyDescription": ("study_description", "text"),
    "StudyID": ("study_id", "text"),
    "ModalitiesInStudy": ("series__modality", "text"),
    "Modality": ("series__modality", "text"),
}
SERIES_MATCHING = {
    "SeriesInstanceUID": ("series_instance_uid", "uid"),
    "Modality": ("modality", "text"),
    "SeriesNumber": ("series_number", "number"),
    "SeriesDescription": ("series_description", "text"),
    "BodyPartExamined": ("body_part_examined", "text"),
} | {keyword: ("study__" + path, kind) for keyword, (path, kind) in STUDY_MATCHING.items() if keyword != "Modality"}
INSTANCE_MATCHING = {
    "SOPInstanceUID": ("sop_instance_uid", "uid"),
    "SOPClassUID": ("sop_class_uid", "uid"),
    "InstanceNumber": ("instance_number", "number"),
} | {keyword: ("series__" + path, kind) for keyword, (path, kind) in SERIES_MATCHING.items()}


def matching_filter(matching: dict[str, tuple[str, str]], keyword: str, value: str) -> Q:
    """Return the Q of one QIDO matching key (PS3.18 8.3.4.6); raise ValueError naming a bad value."""
    path, kind = matching[keyword]
    if kind == "uid":
        uids = [uid.strip() for uid in value.replace("\\", ",").split(",") if uid.strip()]
        return Q(**{f"{path}__in": uids})
    if kind == "number":
        try:
            return Q(**{path: int(value)})
        except ValueError:
            raise ValueError(f"{keyword} must be an integer, got {value!r}") from None
    if kind == "date":
        return _date_range(path, keyword, value)
    if "*" in value or "?" in value:
        regex = "^" + "".join(".*" if c == "*" else "." if c == "?" else _regex_escape(c) for c in value) + "$"
        return Q(**{f"{path}__iregex": regex})
    return Q(**{f"{path}__iexact": value})


def _regex_escape(char: str) -> str:
    return "\\" + char if char in ".^$+{}[]|()\\" else char


def _date_range(path: str, keyword: str, value: str) -> Q:
    start, dash, end = value.partition("-")
    for part in (start, end):
        if part and not (len(part) == 8 and part.isdigit()):
            raise ValueError(f"{keyword} must be YYYYMMDD or a YYYYMMDD-YYYYMMDD range, got {value!r}")
    if not dash:
        return Q(**{path: start})
    query = Q()
    if start:
        query &= Q(**{f"{path}__gte": start})
    if end:
        query &= Q(**{f"{path}__lte": end})
    return query


def search_studies(*, user, filters: list[Q], page: Page) -> list[tuple[Study, list[str], int, int]]:
    """Return matching visible studies with (modalities, series count, instance count)."""
    visible = visible_series(user=user)
    studies = Study.objects.filter(series__in=visible)
    for query in filters:
        studies = studies.filter(query)
    studies = studies.distinct().order_by("study_date", "study_time", "id")
    studies = list(_paginate(studies, page))
    series_rows = (
        Series.objects.filter(pk__in=visible.values("pk"), study__in=studies)
        .values("study_id", "modality")
        .annotate(instances=Count("instances"))
    )
    summary: dict[int, tuple[list[str], int, int]] = {study.pk: ([], 0, 0) for study in studies}
    for row in series_rows:
        modalities, series_count, instance_count = summary[row["study_id"]]
        if row["modality"]:
            modalities.append(row["modality"])
        summary[row["study_id"]] = (modalities, series_count + 1, instance_count + row["instances"])
    return [(study, *summary[study.pk]) for study in studies]


def search_series(*, user, filters: list[Q], page: Page, study_uid: str | None = None) -> list[tuple[Series, int]]:
    """Return matching visible series (optionally of one study) with their instance counts."""
    series = Series.objects.filter(pk__in=visible_series(user=user).values("pk")).select_related("study")
    if study_uid is not None:
        series = series.filter(study__study_instance_uid=study_uid)
    for query in filters:
        series = series.filter(query)
    series = series.annotate(instance_count=Count("instances", distinct=True)).order_by("series_number", "id")
    return [(item, item.instance_count) for item in _paginate(series, page)]


def search_instances(
    *, user, filters: list[Q], page: Page, study_uid: str | None = None, series_uid: str | None = None
) -> list[Instance]:
    """Return matching visible instances (optionally of one study or series) in reading order."""
    instances = Instance.objects.filter(series__in=visible_series(user=user).values("pk")).select_related(
        "series", "series__study"
    )
    if study_uid is not None:
        instances = instances.filter(series__study__study_instance_uid=study_uid)
    if series_uid is not None:
        instances = instances.filter(series__series_instance_uid=series_uid)
    for query in filters:
        instances = instances.filter(query)
    instances = instances.order_by("series_id", "sort_position_mm", "instance_number", "id")
    return list(_paginate(instances, page))


def _paginate(queryset, page: Page):
    if page.limit is None:
        return queryset[page.offset :]
    return queryset[page.offset : page.offset + page.limit]
