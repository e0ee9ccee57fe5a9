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
from django.db.models import Count, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from annotations.models import Case, Lease, Read, Reader, Task


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
    skipped: list[int] = []
    # First pass: never waits for a lock (SKIP LOCKED), so it needs no savepoints: a case that turns out
    # full stays locked only until this short transaction commits, and a transaction that waits for
    # nothing cannot close a deadlock.
    with transaction.atomic():
        held = _renew_held_lease(reader=reader, task=task, now=now)
        if held is not None:
            return held
        for case_id in _candidates_in_order(reader=reader, task=task, now=now, rng=rng, preferred=preferred_case_id):
            lease = _try_take(case_id=case_id, reader=reader, now=now, skip_locked=True)
            if isinstance(lease, Lease):
                return lease
            if lease is _LOCKED:
                skipped.append(case_id)
    if not skipped:
        return None
    # Rows another transaction held may still have room once it commits: wait for them in turn, each
    # attempt in a savepoint whose rollback releases a full case before waiting for the next one.
    with transaction.atomic():
        held = _renew_held_lease(reader=reader, task=task, now=now)
        if held is not None:  # the reader's other next-case call took one meanwhile
            return held
        for case_id in skipped:
            savepoint = transaction.savepoint()
            lease = _try_take(case_id=case_id, reader=reader, now=now, skip_locked=False)
            if isinstance(lease, Lease):
                transaction.savepoint_commit(savepoint)
                return lease
            transaction.savepoint_rollback(savepoint)
    return None


def _renew_held_lease(*, reader: Reader, task: Task, now: datetime) -> Lease | None:
    """Renew and return the reader's live lease on an unread case of the task, if they hold one.

    Locks the reader's row first, so the same reader's simultaneous next-case calls (two tabs, a
    double tap, a script) run one after the other and the later one finds the lease the first took:
    without it each call saw no lease and leased a case of its own, and a reader could hoard cases.
    Called inside the caller's transaction; SQLite's BEGIN IMMEDIATE already serialises writers.
    """
    if connection.features.has_select_for_update:
        # NO KEY UPDATE: a submit's insert of a read (a key share on the reader) does not wait for it.
        list(Reader.objects.select_for_update(no_key=True).filter(pk=reader.pk).values_list("pk", flat=True))
    held = (
        Lease.objects.filter(reader=reader, case__task=task, case__task__is_open=True, expires_at__gt=now)
        .exclude(case__reads__reader=reader)
        .select_related(*(f"case__{name}" for name in CASE_FOR_READING))
        .order_by("created_at")
        .first()
    )
    if held is None:
        return None
    lock_cases([held.case_id], skip_locked=False)
    held.expires_at = now + timedelta(seconds=lease_seconds())
    held.save(update_fields=["expires_at"])
    held.reader = reader
    return held


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
    """Extend the reader's lease on a case next-case gave them; a lapsed one is retaken while the case has room.

    A lease only ever comes from assignment, one case per task at a time: raises LeaseLost (409) for a case
    the reader holds no lease on (whatever case it is, gold included), a case they already read (a new
    version needs no lease), a lapsed lease on a full case, or a lapsed lease while they hold a live one on
    another case of the task. Renewing a live lease, the timer's usual call, costs no extra query.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = lock_case_for_reader(case.pk, reader=reader, now=now, skip_locked=False)
        if locked is None or not locked.task.is_open:
            raise LeaseLost("the task is closed")
        if locked.latest_read_id is not None:
            raise LeaseLost("this case has already been read by you; a new version of your read needs no lease")
        if locked.own_lease_id is None:
            raise LeaseLost("this case was not given to you; ask for the next case")
        if not locked.own_lease_live:
            if not has_room_locked(locked):
                raise LeaseLost("the lease ran out and the case has all the reads it needs")
            if _holds_another_case(reader=reader, case=locked, now=now):
                raise LeaseLost("the lease ran out and you now hold another case of this task; read that one")
        return _write_lease(locked, reader=reader, expires_at=now + timedelta(seconds=lease_seconds()))


def _holds_another_case(*, reader: Reader, case: Case, now: datetime) -> bool:
    """True when the reader holds a live lease on another case of the case's task."""
    return (
        Lease.objects.filter(reader=reader, case__task_id=case.task_id, expires_at__gt=now)
        .exclude(case_id=case.pk)
        .exists()
    )


def release_lease(*, reader: Reader, case: Case) -> None:
    """Give the case back without reading it (idempotent)."""
    with transaction.atomic():
        lock_cases([case.pk], skip_locked=False)
        Lease.objects.filter(case=case, reader=reader).delete()


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
        .filter(task__is_open=True)
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
    """Lease the case if it still has room for this reader: a Lease, None (read or full), or _LOCKED.

    The check runs under the case lock (another reader may have taken the last slot since the
    candidate query), on what lock_case_for_reader brought with the lock.
    """
    case = lock_case_for_reader(case_id, reader=reader, now=now, skip_locked=skip_locked, related=CASE_FOR_READING)
    if case is None:
        return _LOCKED
    if case.latest_read_id is not None or not has_room_locked(case):
        return None
    return _write_lease(case, reader=reader, expires_at=now + timedelta(seconds=lease_seconds()))


def _write_lease(case: Case, *, reader: Reader, expires_at: datetime) -> Lease:
    """Create or extend the reader's lease on a case from lock_case_for_reader, whose row lock the caller holds.

    The row lock serialises every lease writer of the case, so writing what the locking statement read is
    safe here, and costs one statement where update_or_create's savepoints cost six.
    """
    if case.own_lease_id is None:
        return Lease.objects.create(case=case, reader=reader, expires_at=expires_at)
    Lease.objects.filter(pk=case.own_lease_id).update(expires_at=expires_at)
    return Lease(pk=case.own_lease_id, case=case, reader=reader, expires_at=expires_at)


def lock_case_for_reader(
    case_id: int, *, reader: Reader, now: datetime, skip_locked: bool, related: tuple[str, ...] = ("task",)
) -> Case | None:
    """Lock one case row, then read in one statement what a lease or read decision needs about this reader.

    The case (with `related` loaded) carries: `latest_read_id` and `latest_read_version` (the reader's
    newest crowd read of it, or None), `own_lease_id` (the reader's lease, or None), `own_lease_live`
    (that lease has not expired) and `other_live_leases` (other readers' unexpired leases). None when
    `skip_locked` and another transaction holds the row.

    Two round trips where separate queries cost four. The state is read in a statement of its own,
    after the lock is held: subqueries of the locking statement would see the database as it was when
    that statement started, before a concurrent writer it waited for committed (READ COMMITTED).
    """
    locked = list(_lockable(Case.objects.filter(pk__in=[case_id]).select_related(*related), skip_locked=skip_locked))
    if not locked:
        return None
    case = locked[0]
    with connection.cursor() as cursor:
        cursor.execute(
            _READER_STATE_SQL.format(**_table_names()),
            {"case": case.pk, "reader": reader.pk, "now": connection.ops.adapt_datetimefield_value(now)},
        )
        (
            case.latest_read_id,
            case.latest_read_version,
            case.own_lease_id,
            own_lease_live,
            case.other_live_leases,
        ) = cursor.fetchone()
    case.own_lease_live = bool(own_lease_live)
    return case


# Scalar subqueries in one SELECT (ORM-built, they cost more CPU to compile than the round trips they save).
_READER_STATE_SQL = """SELECT
    (SELECT r.id FROM {reads} r WHERE r.case_id = %(case)s AND r.reader_id = %(reader)s AND NOT r.is_answer_key
     ORDER BY r.version DESC LIMIT 1),
    (SELECT r.version FROM {reads} r WHERE r.case_id = %(case)s AND r.reader_id = %(reader)s AND NOT r.is_answer_key
     ORDER BY r.version DESC LIMIT 1),
    (SELECT l.id FROM {leases} l WHERE l.case_id = %(case)s AND l.reader_id = %(reader)s),
    (SELECT CASE WHEN l.expires_at > %(now)s THEN 1 ELSE 0 END FROM {leases} l
     WHERE l.case_id = %(case)s AND l.reader_id = %(reader)s),
    (SELECT COUNT(*) FROM {leases} l
     WHERE l.case_id = %(case)s AND l.expires_at > %(now)s AND l.reader_id <> %(reader)s)"""


def _table_names() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {"reads": quote(Read._meta.db_table), "leases": quote(Lease._meta.db_table)}


def has_room_locked(case: Case) -> bool:
    """True when a case from lock_case_for_reader is short of its read target, counting other readers' live leases."""
    return case.reads_done + case.other_live_leases < read_target(case=case, task=case.task)


def lock_cases(case_ids: list[int], *, skip_locked: bool, related: tuple[str, ...] = ("task",)) -> list[Case]:
    """Lock and return the case rows (with `related` loaded); SQLite's IMMEDIATE transactions already serialise."""
    return list(_lockable(Case.objects.filter(pk__in=case_ids).select_related(*related), skip_locked=skip_locked))


def _lockable(cases: QuerySet[Case], *, skip_locked: bool) -> QuerySet[Case]:
    """The case rows, locked FOR NO KEY UPDATE (skipping rows others hold when `skip_locked`) where the database can."""
    if not connection.features.has_select_for_update:
        return cases
    of = ("self",) if connection.features.has_select_for_update_of else ()
    skip = skip_locked and connection.features.has_select_for_update_skip_locked
    # FOR NO KEY UPDATE: inserting a Lease or Read takes a key-share lock on the case row,
    # which a plain FOR UPDATE would block.
    return cases.select_for_update(skip_locked=skip, of=of, no_key=connection.vendor == "postgresql")
