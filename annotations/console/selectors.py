"""Read-only queries behind the console pages: task progress, dashboards and collections.

Everything here is computed from the stored rows (reads, leases, consensus), so a
dashboard is right after any restart. It must never write, and never be used to
answer a reader: it exposes other readers' work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.utils import timezone

from annotations.assignment.services import read_target
from annotations.models import Case, CaseConsensus, Lease, ModelPrediction, Read, Task
from viewer.models import Collection, Instance, Series

ACTIVE_WINDOW = timedelta(minutes=10)
READS_PER_HOUR_WINDOW_H = 24


@dataclass(frozen=True)
class CaseProgress:
    id: int
    label: str
    is_gold: bool
    reads: int
    target: int
    complete: bool
    consensus: str  # "none", "current", "stale"
    low_agreement: bool
    lesions: int | None
    # Adaptive reads: "needs 2 more reads: long axes disagree by 22%", or "settled: readers agree".
    read_decision: str = ""


def counted_reads_per_case(task: Task) -> dict[int, int]:
    """Return case id -> readers with a non-skip read (the reads that count towards the target)."""
    rows = (
        Read.objects.filter(case__task=task, skip=False).values("case_id").annotate(n=Count("reader_id", distinct=True))
    )
    return {row["case_id"]: row["n"] for row in rows}


def case_progress(task: Task) -> list[CaseProgress]:
    """Return every case of the task with its reads, completeness and consensus status."""
    reads = counted_reads_per_case(task)
    latest_read = dict(
        Read.objects.filter(case__task=task)
        .values("case_id")
        .annotate(at=Max("submitted_at"))
        .values_list("case_id", "at")
    )
    consensus = {
        row.case_id: row
        for row in CaseConsensus.objects.filter(case__task=task, is_current=True)
        .annotate(n_lesions=Count("lesions", filter=Q(lesions__accepted=True)))
        .order_by("case_id", "computed_at")
    }
    progress = []
    for case in Case.objects.filter(task=task).order_by("id"):
        result = consensus.get(case.id)
        if result is None:
            status = "none"
        elif latest_read.get(case.id) and latest_read[case.id] > result.computed_at:
            status = "stale"
        else:
            status = "current"
        done = reads.get(case.id, 0)
        progress.append(
            CaseProgress(
                id=case.id,
                label=str(case),
                is_gold=case.is_gold,
                reads=done,
                target=read_target(case=case, task=task),
                complete=done >= read_target(case=case, task=task),
                consensus=status,
                low_agreement=bool(result and result.low_agreement),
                lesions=result.n_lesions if result else None,
                read_decision=(result.summary.get("adaptive") or {}).get("message", "") if result else "",
            )
        )
    return progress


def gold_cases_with_answer_keys(task: Task) -> list[Case]:
    """Return the task's gold cases, each with `has_answer_key` (an admin's answer-key read exists)."""
    answer_keys = Read.all_objects.filter(case=OuterRef("pk"), is_answer_key=True)
    return list(task.cases.filter(is_gold=True).annotate(has_answer_key=Exists(answer_keys)).order_by("id"))


def reads_per_hour(task: Task, *, hours: int = READS_PER_HOUR_WINDOW_H) -> list[dict]:
    """Return [{"hour": iso start, "reads": n}] for the last `hours` hours, oldest first, empty hours included."""
    now = timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    buckets = {start + timedelta(hours=h): 0 for h in range(hours)}
    # Bucketing in Python keeps this identical on SQLite and PostgreSQL; a day of reads is small.
    for submitted_at in Read.objects.filter(case__task=task, submitted_at__gte=start).values_list(
        "submitted_at", flat=True
    ):
        bucket = submitted_at.astimezone(start.tzinfo).replace(minute=0, second=0, microsecond=0)
        if bucket in buckets:
            buckets[bucket] += 1
    return [{"hour": hour.isoformat(), "reads": n} for hour, n in buckets.items()]


def active_readers(task: Task) -> int:
    """Return how many readers hold a live lease or submitted a read in the last ten minutes."""
    now = timezone.now()
    leasing = set(Lease.objects.filter(case__task=task, expires_at__gt=now).values_list("reader_id", flat=True))
    reading = set(
        Read.objects.filter(case__task=task, submitted_at__gte=now - ACTIVE_WINDOW).values_list("reader_id", flat=True)
    )
    return len(leasing | reading)


def task_dashboard(*, task: Task) -> dict:
    """Return the live dashboard figures of one task as JSON-ready data."""
    cases = case_progress(task)
    reads_total = Read.objects.filter(case__task=task).count()
    histogram: dict[int, int] = {}
    for case in cases:
        histogram[case.reads] = histogram.get(case.reads, 0) + 1
    consensus_counts = {"current": 0, "stale": 0, "none": 0}
    for case in cases:
        consensus_counts[case.consensus] += 1
    return {
        "task": {"id": task.id, "name": task.name, "is_open": task.is_open, "reads_per_case": task.reads_per_case},
        "generated_at": timezone.now().isoformat(),
        "cases_total": len(cases),
        "cases_complete": sum(1 for case in cases if case.complete),
        "reads_total": reads_total,
        "reads_counted": sum(case.reads for case in cases),
        # With adaptive reads, each case's current target (it grows while the case is uncertain).
        "reads_needed": sum(case.target for case in cases),
        "readers_total": Read.objects.filter(case__task=task).values("reader_id").distinct().count(),
        "active_readers": active_readers(task),
        "reads_per_hour": reads_per_hour(task),
        "reads_per_case_histogram": [{"reads": k, "cases": v} for k, v in sorted(histogram.items())],
        "consensus": consensus_counts,
        "low_agreement": [asdict(case) for case in cases if case.low_agreement],
        "cases": [asdict(case) for case in cases],
    }


def task_summaries() -> list[dict]:
    """Return one row per task for the console's task list: progress and state."""
    tasks = Task.objects.annotate(n_cases=Count("cases", distinct=True)).order_by("-is_open", "-created_at")
    rows = []
    for task in tasks:
        counted = counted_reads_per_case(task)
        # Adaptive reads: each case has its own target (one query more, for adaptive tasks only).
        targets = (
            {case.pk: read_target(case=case, task=task) for case in Case.objects.filter(task=task)}
            if task.adaptive_reads
            else {}
        )
        rows.append(
            {
                "task": task,
                "cases": task.n_cases,
                "complete": sum(1 for pk, n in counted.items() if n >= targets.get(pk, task.reads_per_case)),
                "reads": sum(counted.values()),
                "needed": sum(targets.values()) if targets else task.n_cases * task.reads_per_case,
            }
        )
    return rows


def collection_summaries() -> list[dict]:
    """Return every collection (and the uncollected studies) with study, series and instance counts."""
    rows = []
    for collection in Collection.objects.annotate(
        n_studies=Count("studies", distinct=True),
        n_series=Count("studies__series", distinct=True),
        n_instances=Count("studies__series__instances", distinct=True),
    ).order_by("name"):
        rows.append(
            {
                "id": collection.id,
                "name": collection.name,
                "description": collection.description,
                "studies": collection.n_studies,
                "series": collection.n_series,
                "instances": collection.n_instances,
            }
        )
    loose = Series.objects.filter(study__collection__isnull=True)
    if loose.exists():
        rows.append(
            {
                "id": 0,
                "name": "Not in a collection",
                "description": "",
                "studies": loose.values("study_id").distinct().count(),
                "series": loose.count(),
                "instances": Instance.objects.filter(series__in=loose).count(),
            }
        )
    return rows


def series_in_collection(collection_id: int) -> list[dict]:
    """Return the series of a collection (0: of no collection) with a middle instance for the thumbnail."""
    series_qs = (
        Series.objects.filter(study__collection__isnull=True)
        if collection_id == 0
        else Series.objects.filter(study__collection_id=collection_id)
    )
    series_qs = series_qs.select_related("study").annotate(n_instances=Count("instances"))
    rows = []
    for series in series_qs.order_by("study__patient_id", "study__study_date", "series_number", "id"):
        middle = middle_instance(series)
        rows.append({"series": series, "instances": series.n_instances, "thumbnail_instance": middle})
    return rows


def middle_instance(series: Series) -> Instance | None:
    """Return the instance in the middle of the series' reading order (a representative thumbnail)."""
    ordered = Instance.objects.filter(series=series).order_by("sort_position_mm", "instance_number", "id")
    count = ordered.count()
    return ordered[count // 2] if count else None


def prediction_models(*, task: Task) -> list[dict]:
    """Return each model with predictions of the task's cases: {"model_name", "cases", "lesion_voxels", "shown"}."""
    rows = (
        ModelPrediction.objects.filter(case__task=task)
        .values("model_name")
        .annotate(cases=Count("id"), lesion_voxels=Sum("voxel_count"))
        .order_by("model_name")
    )
    return [{**row, "shown": row["model_name"] == task.suggestion_model} for row in rows]
