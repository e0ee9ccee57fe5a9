"""Case assignment: least-read first, random among ties, never twice, never over target; leases; concurrency."""

from __future__ import annotations

import datetime
import random
from collections import Counter
from functools import partial

import pytest
from django.utils import timezone

from annotations.assignment import services as assignment
from annotations.models import Case, Lease, Read
from annotations.reading.submission import submit_read
from tests.concurrency import exceptions_in, require_postgresql, run_at_once
from tests.factories import LeaseFactory, ReaderFactory, ReadFactory, TaskFactory, bare_cases, no_lesion_document


@pytest.fixture
def task(db):
    return TaskFactory(reads_per_case=2)


def read_case(case: Case, reader, *, skip: bool = False) -> Read:
    read = ReadFactory(case=case, reader=reader, skip=skip)
    case.reads_done = case.reads_done + (0 if skip else 1)
    case.save(update_fields=["reads_done"])
    return read


def test_next_case_favours_the_least_read_case(task):
    busy, quiet = bare_cases(task, 2)
    read_case(busy, ReaderFactory())

    assert assignment.next_case(reader=ReaderFactory(), task=task) == quiet


def test_next_case_counts_other_readers_live_leases_as_load(task):
    leased, free = bare_cases(task, 2)
    LeaseFactory(case=leased)

    assert assignment.next_case(reader=ReaderFactory(), task=task) == free


def test_next_case_picks_randomly_among_equally_read_cases(task):
    cases = bare_cases(task, 3)
    picks = Counter()
    for seed in range(24):
        reader = ReaderFactory()
        picked = assignment.next_case(reader=reader, task=task, rng=random.Random(seed))
        picks[picked.pk] += 1
        Lease.objects.filter(reader=reader).delete()

    assert set(picks) == {case.pk for case in cases}


def test_next_case_never_gives_a_reader_the_same_case_twice(task):
    (case,) = bare_cases(task, 1)
    reader = ReaderFactory()
    read_case(case, reader, skip=True)

    assert assignment.next_case(reader=reader, task=task) is None


def test_next_case_never_exceeds_the_read_target_counting_live_leases(task):
    (case,) = bare_cases(task, 1)
    read_case(case, ReaderFactory())
    LeaseFactory(case=case)

    assert assignment.next_case(reader=ReaderFactory(), task=task) is None


def test_an_expired_lease_returns_the_case(task):
    (case,) = bare_cases(task, 1)
    read_case(case, ReaderFactory())
    LeaseFactory(case=case, expires_at=timezone.now() - datetime.timedelta(seconds=1))

    assert assignment.next_case(reader=ReaderFactory(), task=task) == case


def test_skips_do_not_use_up_the_read_target(task):
    (case,) = bare_cases(task, 1)
    read_case(case, ReaderFactory(), skip=True)
    read_case(case, ReaderFactory(), skip=True)

    assert assignment.next_case(reader=ReaderFactory(), task=task) == case


def test_asking_again_returns_the_case_already_held(task):
    bare_cases(task, 3)
    reader = ReaderFactory()

    first = assignment.next_case(reader=reader, task=task)
    second = assignment.next_case(reader=reader, task=task)

    assert first == second
    assert Lease.objects.filter(reader=reader).count() == 1


def test_a_closed_task_gives_no_case(task):
    bare_cases(task, 1)
    task.is_open = False
    task.save()

    assert assignment.next_case(reader=ReaderFactory(), task=task) is None


def test_a_lease_lasts_the_configured_time(task, settings):
    settings.READERBOARD = {**settings.READERBOARD, "LEASE_SECONDS": 120}
    bare_cases(task, 1)
    now = timezone.now()
    reader = ReaderFactory()

    assignment.next_case(reader=reader, task=task, now=now)

    assert Lease.objects.get(reader=reader).expires_at == now + datetime.timedelta(seconds=120)


def test_renewing_extends_the_lease(task):
    (case,) = bare_cases(task, 1)
    reader = ReaderFactory()
    start = timezone.now()
    assignment.next_case(reader=reader, task=task, now=start)

    lease = assignment.renew_lease(reader=reader, case=case, now=start + datetime.timedelta(seconds=200))

    assert lease.expires_at == start + datetime.timedelta(seconds=200 + assignment.lease_seconds())


def test_renewing_a_lapsed_lease_retakes_the_case_while_there_is_room(task):
    (case,) = bare_cases(task, 1)
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader, expires_at=timezone.now() - datetime.timedelta(minutes=1))

    lease = assignment.renew_lease(reader=reader, case=case)

    assert lease.expires_at > timezone.now()


def test_renewing_a_lapsed_lease_on_a_full_case_fails(task):
    (case,) = bare_cases(task, 1)
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader, expires_at=timezone.now() - datetime.timedelta(minutes=1))
    read_case(case, ReaderFactory())
    LeaseFactory(case=case)

    with pytest.raises(assignment.LeaseLost):
        assignment.renew_lease(reader=reader, case=case)


def test_releasing_gives_the_case_back(task):
    (case,) = bare_cases(task, 1)
    first, second, third = ReaderFactory(), ReaderFactory(), ReaderFactory()
    assignment.next_case(reader=first, task=task)
    assignment.next_case(reader=second, task=task)
    assert assignment.next_case(reader=third, task=task) is None

    assignment.release_lease(reader=first, case=case)

    assert assignment.next_case(reader=third, task=task) == case


def test_task_progress_counts_my_reads_and_what_is_left(task):
    done, open_, full = bare_cases(task, 3)
    reader = ReaderFactory()
    read_case(done, reader)
    read_case(full, ReaderFactory())
    read_case(full, ReaderFactory())

    progress = assignment.task_progress(reader=reader, task=task)

    assert (progress.my_reads, progress.cases_remaining_for_me) == (1, 1)


# --- Concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_readers_never_overfill_a_case_or_read_one_twice():
    require_postgresql()
    task = TaskFactory(reads_per_case=2)
    cases = bare_cases(task, 6)
    readers = [ReaderFactory() for _ in range(10)]

    def read_until_done(reader):
        while (case := assignment.next_case(reader=reader, task=task)) is not None:
            submit_read(reader=reader, document=no_lesion_document(case))

    outcomes = run_at_once([partial(read_until_done, reader) for reader in readers], timeout_s=120)

    assert not exceptions_in(outcomes), outcomes
    per_case = Counter(Read.objects.values_list("case_id", flat=True))
    pairs = list(Read.objects.values_list("case_id", "reader_id"))
    assert len(pairs) == len(set(pairs)), "a reader read a case twice"
    assert all(per_case[case.pk] == 2 for case in cases), per_case
    assert all(case.reads_done == 2 for case in Case.objects.filter(task=task))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_leases_never_exceed_the_read_target():
    require_postgresql()
    task = TaskFactory(reads_per_case=3)
    cases = bare_cases(task, 2)
    readers = [ReaderFactory() for _ in range(12)]

    given = run_at_once([partial(assignment.next_case, reader=reader, task=task) for reader in readers])

    assert not exceptions_in(given), given
    leases = Counter(Lease.objects.values_list("case_id", flat=True))
    assert leases == {cases[0].pk: 3, cases[1].pk: 3}
    assert given.count(None) == 6


@pytest.fixture
def adaptive_task(db):
    return TaskFactory(reads_per_case=5, adaptive_reads=True, min_reads=2)


def test_an_adaptive_case_gets_no_read_beyond_its_target(adaptive_task):
    (case,) = bare_cases(adaptive_task, 1)
    for _ in range(2):
        read_case(case, ReaderFactory())

    assert assignment.next_case(reader=ReaderFactory(), task=adaptive_task) is None


def test_an_adaptive_case_whose_consensus_asks_for_more_reads_is_given_first(adaptive_task):
    uncertain, settled, fresh = bare_cases(adaptive_task, 3)
    for case in (uncertain, settled):
        for _ in range(2):
            read_case(case, ReaderFactory())
    case_ids = [uncertain.pk, settled.pk]
    Case.objects.filter(pk__in=case_ids).update(reads_target=2)
    Case.objects.filter(pk=uncertain.pk).update(reads_target=4)

    picks = [assignment.next_case(reader=ReaderFactory(), task=adaptive_task, rng=random.Random(s)) for s in range(5)]

    # Five new readers: the uncertain case takes its two missing reads before the fresh case gets its
    # minimum of two; the settled case is full, so the fifth reader gets nothing.
    assert picks == [uncertain, uncertain, fresh, fresh, None]


def test_an_adaptive_target_never_exceeds_the_task_maximum(adaptive_task):
    (case,) = bare_cases(adaptive_task, 1)
    case.reads_target = 9

    assert assignment.read_target(case=case, task=adaptive_task) == 5


def test_upcoming_case_is_an_open_case_other_than_the_one_the_reader_holds_and_takes_no_lease(task):
    held, other = bare_cases(task, 2)
    reader = ReaderFactory()
    LeaseFactory(case=held, reader=reader)

    assert assignment.upcoming_case(reader=reader, task=task) == other
    assert not Lease.objects.filter(case=other).exists()


def test_upcoming_case_is_none_when_the_held_case_is_the_last_one(task):
    (only,) = bare_cases(task, 1)
    reader = ReaderFactory()
    LeaseFactory(case=only, reader=reader)

    assert assignment.upcoming_case(reader=reader, task=task) is None


def test_next_case_gives_the_preferred_upcoming_case_among_equally_read_cases(task):
    cases = bare_cases(task, 6)
    for seed, preferred in enumerate(cases):
        reader = ReaderFactory()
        given = assignment.next_case(reader=reader, task=task, rng=random.Random(seed), preferred_case_id=preferred.pk)
        assert given == preferred
        Lease.objects.filter(reader=reader).delete()


def test_a_preferred_case_never_jumps_ahead_of_a_less_read_one(task):
    busy, quiet = bare_cases(task, 2)
    read_case(busy, ReaderFactory())

    given = assignment.next_case(reader=ReaderFactory(), task=task, preferred_case_id=busy.pk)

    assert given == quiet


def test_a_preferred_case_that_was_filled_meanwhile_is_not_given(task):
    full, open_case = bare_cases(task, 2)
    read_case(full, ReaderFactory())
    read_case(full, ReaderFactory())

    given = assignment.next_case(reader=ReaderFactory(), task=task, preferred_case_id=full.pk)

    assert given == open_case


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_readers_simultaneous_next_case_calls_lease_one_case():
    require_postgresql()
    task = TaskFactory(reads_per_case=3)
    bare_cases(task, 8)
    reader = ReaderFactory()

    given = run_at_once([partial(assignment.next_case, reader=reader, task=task) for _ in range(8)])

    assert not exceptions_in(given), given
    assert Lease.objects.filter(reader=reader).count() == 1
    assert len({case.pk for case in given if case}) == 1 and None not in given
