"""Case assignment: which case a reader reads next, held by a lease so a last needed read is not given twice.

Rules: never a case the reader has already read (any version, skips included); never a case whose
counted reads plus other readers' live leases already reach its read target (the task's reads_per_case;
with adaptive reads the case's own target, from min_reads up to reads_per_case while its consensus is
uncertain, see docs/consensus.md); with adaptive reads, cases that are past their minimum and still
uncertain first; then the least-read cases, randomised among ties. All of it runs in one transaction that
holds the case row lock (select_for_update(skip_locked) on PostgreSQL; SQLite serialises writers with
BEGIN IMMEDIATE), and every writer that changes a case's leases or reads takes the same lock. This module
must never read or expose marks, and must never hand out a case of a closed task.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import Count, F, IntegerField, Q, Value, When
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from annotations.models import Case, Lease, Reader, Task


class LeaseLost(Exception):
    """The reader's lease ran out and the case has meanwhile reached its read target."""


def lease_seconds() -> int:
    return int(settings.READERBOARD.get("LEASE_SECONDS", 300))


def next_case(
    *,
    reader: Reader,
    task: Task,
    now: datetime | None = None,
    rng: random.Random | None = None,
    preferred_case_id: int | None = None,
) -> Case | None:
    """Return the case this reader should read next in the task, leased to them; None when nothing is left."""
    lease = take_next_case(reader=reader, task=task, now=now, rng=rng, preferred_case_id=preferred_case_id)
    return lease.case if lease is not None else None


def take_next_case(
    *,
    reader: Reader,
    task: Task,
    now: datetime | None = None,
    rng: random.Random | None = None,
    preferred_case_id: int | None = None,
) -> Lease | None:
    """Lease the case this reader should read next in the task; return the lease (its case, task, series
    and study loaded), or None when nothing is left.

    A reader who already holds a live lease on an unread case of the task gets that case back
    (a reload does not burn a second case). `preferred_case_id` is the upcoming case the page has
    already fetched images of (upcoming_case): it is given when it still ranks with the best candidates.
    """
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, is_open=True).exists():
            return None
        held = (
            Lease.objects.filter(reader=reader, case__task=task, expires_at__gt=now)
            .exclude(case__reads__reader=reader)
            .select_related(*(f"case__{name}" for name in CASE_FOR_READING))
            .order_by("created_at")
            .first()
        )
        if held is not None:
            lock_cases([held.case_id], skip_locked=False)
            held.expires_at = now + timedelta(seconds=lease_seconds())
            held.save(update_fields=["expires_at"])
            held.reader = reader
            return held
        skipped: list[int] = []
        for case_id in _candidates_in_order(reader=reader, task=task, now=now, rng=rng, preferred=preferred_case_id):
            lease = _try_take(case_id=case_id, reader=reader, now=now, skip_locked=True)
            if isinstance(lease, Lease):
                return lease
            if lease is _LOCKED:
                skipped.append(case_id)
        # Rows another transaction held may still have room once it commits: wait for them in turn.
        for case_id in skipped:
            lease = _try_take(case_id=case_id, reader=reader, now=now, skip_locked=False)
            if isinstance(lease, Lease):
                return lease
    return None


def upcoming_case(*, reader: Reader, task: Task, now: datetime | None = None, rng: random.Random | None = None):
    """Return the case next_case would most likely give after the ones the reader holds; no lease is taken.

    A hint, so the page can fetch the first slices of the next case while the reader finishes this one;
    next_case honours it (preferred_case_id) while it is still among the best candidates.
    """
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    if not task.is_open:
        return None
    held = Lease.objects.filter(reader=reader, case__task=task, expires_at__gt=now).values("case_id")
    rows = list(_open_cases(reader=reader, task=task, now=now).exclude(pk__in=held))
    ordered = _rank(rows, rng=rng)
    if not ordered:
        return None
    return Case.objects.select_related("series__study").get(pk=ordered[0])


def renew_lease(*, reader: Reader, case: Case, now: datetime | None = None) -> Lease:
    """Extend (or retake) the reader's lease on a case; raise LeaseLost when it lapsed and the case is full."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = lock_cases([case.pk], skip_locked=False)
        if not locked or not Task.objects.filter(pk=case.task_id, is_open=True).exists():
            raise LeaseLost("the task is closed")
        locked_case = locked[0]
        lease = Lease.objects.filter(case=locked_case, reader=reader).first()
        expires_at = now + timedelta(seconds=lease_seconds())
        if lease is not None and lease.expires_at > now:
            lease.expires_at = expires_at
            lease.save(update_fields=["expires_at"])
            return lease
        if locked_case.reads.filter(reader=reader).exists():
            raise LeaseLost("this case has already been read by you")
        if not has_room(case=locked_case, reader=reader, now=now):
            raise LeaseLost("the lease ran out and the case has all the reads it needs")
        return _hold_lease(case=locked_case, reader=reader, expires_at=expires_at)


def release_lease(*, reader: Reader, case: Case) -> None:
    """Give the case back without reading it (idempotent)."""
    with transaction.atomic():
        lock_cases([case.pk], skip_locked=False)
        Lease.objects.filter(case=case, reader=reader).delete()


def has_room(*, case: Case, reader: Reader, now: datetime | None = None) -> bool:
    """Return True when counted reads plus other readers' live leases are short of the task's target.

    Call it holding the case row lock, with `case.reads_done` read under that lock.
    """
    now = now or timezone.now()
    other_live = Lease.objects.filter(case=case, expires_at__gt=now).exclude(reader=reader).count()
    return case.reads_done + other_live < read_target(case=case, task=case.task)


def read_target(*, case: Case, task: Task) -> int:
    """Return the reads this case should get: reads_per_case, or with adaptive reads its own target.

    An adaptive case's target is what its last consensus decided (Case.reads_target), never
    below the task's min_reads nor above its reads_per_case.
    """
    if not task.adaptive_reads:
        return task.reads_per_case
    low, high = min(task.min_reads, task.reads_per_case), task.reads_per_case
    return max(low, min(high, case.reads_target if case.reads_target is not None else low))


@dataclass(frozen=True)
class TaskProgress:
    my_reads: int
    cases_remaining_for_me: int


def task_progress(*, reader: Reader, task: Task, now: datetime | None = None) -> TaskProgress:
    """Return how many cases of the task this reader has read and how many they could still be given."""
    return progress_by_task(reader=reader, tasks=[task], now=now)[task.pk]


def progress_by_task(*, reader: Reader, tasks: list[Task], now: datetime | None = None) -> dict[int, TaskProgress]:
    """Return task_progress for each task, keyed by task id, in two queries whatever the number of tasks."""
    now = now or timezone.now()
    task_ids = [task.pk for task in tasks]
    my_reads = dict(
        Case.objects.filter(task_id__in=task_ids, reads__reader=reader)
        .values("task_id")
        .annotate(cases=Count("id", distinct=True))
        .values_list("task_id", "cases")
    )
    # The reader's own lease is left out of a case's load, so a case they hold counts as open for them.
    # One row per open case (its task id), counted here: grouping again in SQL would regroup the lease counts.
    remaining = Counter(
        _open_cases_of_tasks(reader=reader, task_ids=task_ids, now=now).values_list("task_id", flat=True)
    )
    return {
        task_id: TaskProgress(my_reads=my_reads.get(task_id, 0), cases_remaining_for_me=remaining.get(task_id, 0))
        for task_id in task_ids
    }


_LOCKED = object()
# What the reading page's case document needs besides the case row, loaded with it.
CASE_FOR_READING = ("task", "series__study")


def _target_expression():
    """The SQL form of read_target, from each case's own task (so it also serves queries over several tasks)."""
    integer = IntegerField()
    low = Least(F("task__min_reads"), F("task__reads_per_case"), output_field=integer)
    adaptive = Greatest(
        low,
        Least(F("task__reads_per_case"), Coalesce(F("reads_target"), low, output_field=integer), output_field=integer),
        output_field=integer,
    )
    return SqlCase(
        When(task__adaptive_reads=True, then=adaptive), default=F("task__reads_per_case"), output_field=integer
    )


def _uncertain_expression():
    """1 for adaptive cases past their minimum (still open, so their consensus asked for more reads), else 0."""
    return SqlCase(
        When(task__adaptive_reads=True, reads_done__gte=F("task__min_reads"), then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


def _open_cases(*, reader: Reader, task: Task, now: datetime):
    """Cases of the task not read by this reader with room for one more read, as (pk, load, uncertain) rows.

    `uncertain` (adaptive reads only) marks cases past the task's minimum whose consensus asked for more reads.
    """
    return (
        _open_cases_of_tasks(reader=reader, task_ids=[task.pk], now=now)
        .annotate(uncertain=_uncertain_expression())
        .values_list("pk", "load", "uncertain")
    )


def _open_cases_of_tasks(*, reader: Reader, task_ids: list[int], now: datetime):
    """Cases of these tasks not read by this reader with room for one more read (its own target), with `load`."""
    return (
        Case.objects.filter(task_id__in=task_ids)
        .exclude(reads__reader=reader)
        .annotate(
            live_leases=Count(
                "leases",
                filter=Q(leases__expires_at__gt=now) & ~Q(leases__reader=reader),
                distinct=True,
            )
        )
        .annotate(load=F("reads_done") + F("live_leases"), target=_target_expression())
        .filter(load__lt=F("target"))
    )


def _candidates_in_order(
    *, reader: Reader, task: Task, now: datetime, rng: random.Random, preferred: int | None = None
) -> list[int]:
    return _rank(list(_open_cases(reader=reader, task=task, now=now)), rng=rng, preferred=preferred)


def _rank(rows: list[tuple[int, int, int]], *, rng: random.Random, preferred: int | None = None) -> list[int]:
    """Order (pk, load, uncertain) rows: uncertain first, then least loaded, random among ties.

    Uncertain cases (adaptive reads) come first, so a case that asked for another read gets it before
    fresh cases are opened. A preferred case goes first only when it ties with the best row, so a hint
    never bends those rules.
    """
    # Random among ties: shuffle, then a stable sort keeps ties shuffled.
    rng.shuffle(rows)
    rows.sort(key=lambda row: (-row[2], row[1]))
    if preferred is not None and rows:
        best = (-rows[0][2], rows[0][1])
        rows.sort(key=lambda row: 0 if row[0] == preferred and (-row[2], row[1]) == best else 1)
    return [pk for pk, _, _ in rows]


def _try_take(*, case_id: int, reader: Reader, now: datetime, skip_locked: bool):
    # Each attempt runs in a savepoint: rolling it back releases the row lock of a case that turned
    # out full, so a transaction never holds one case while waiting for another (no deadlocks).
    savepoint = transaction.savepoint()
    locked = lock_cases([case_id], skip_locked=skip_locked, related=CASE_FOR_READING)
    if not locked:
        transaction.savepoint_rollback(savepoint)
        return _LOCKED
    case = locked[0]
    # Re-check under the lock: another reader may have taken the last slot since the candidate query.
    if case.reads.filter(reader=reader).exists() or not has_room(case=case, reader=reader, now=now):
        transaction.savepoint_rollback(savepoint)
        return None
    lease = _hold_lease(case=case, reader=reader, expires_at=now + timedelta(seconds=lease_seconds()))
    transaction.savepoint_commit(savepoint)
    return lease


def _hold_lease(*, case: Case, reader: Reader, expires_at: datetime) -> Lease:
    """Create or extend the reader's lease on a case whose row lock the caller holds.

    The row lock serialises every lease writer of the case, so a read-then-write is safe here and
    costs two statements where update_or_create's savepoints cost six.
    """
    lease = Lease.objects.filter(case=case, reader=reader).first()
    if lease is None:
        return Lease.objects.create(case=case, reader=reader, expires_at=expires_at)
    lease.expires_at = expires_at
    lease.save(update_fields=["expires_at"])
    lease.case = case
    lease.reader = reader
    return lease


def lock_cases(case_ids: list[int], *, skip_locked: bool, related: tuple[str, ...] = ("task",)) -> list[Case]:
    """Lock and return the case rows (with `related` loaded); SQLite's IMMEDIATE transactions already serialise."""
    queryset = Case.objects.filter(pk__in=case_ids).select_related(*related)
    if connection.features.has_select_for_update:
        of = ("self",) if connection.features.has_select_for_update_of else ()
        skip = skip_locked and connection.features.has_select_for_update_skip_locked
        # FOR NO KEY UPDATE: inserting a Lease or Read takes a key-share lock on the case row,
        # which a plain FOR UPDATE would block.
        queryset = queryset.select_for_update(skip_locked=skip, of=of, no_key=connection.vendor == "postgresql")
    return list(queryset)
