"""The reader's hot paths run a bounded number of queries that does not grow with the task.

Next case, submit, the task list and series metadata are what every reader does every minute. Each
is measured on a small task and on one with ten times the cases, series of ten times the slices, and
other readers' reads and leases: the count must be the same, and under a fixed ceiling.
"""

from __future__ import annotations

import itertools
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotations.models import Case, Read, Task
from annotations.reading.kinds import counted_reads
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    ReadFactory,
    SeriesFactory,
    TaskFactory,
    no_lesion_document,
    read_document,
)
from viewer.models import Instance

pytestmark = pytest.mark.django_db

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# What the ceilings hold (the reader signed in through ReaderSessionBackend: session, then user with
# reader and team). Next case, 14: session, user, task, the lock on the reader's own row (PostgreSQL: one
# reader's simultaneous calls take one case), the reader's live lease, the candidates, the
# statement that locks the case and the one that reads the reader's read and lease and the others'
# live leases under that lock, the lease insert, the savepoint pair, and the case document: the series
# version and instance list (only the first time a process serves the series; after that, the
# per-process memo) and the task's question set. Submit, 21: session, user, the retry check, the case,
# its instance list, the question set, the locking statement and the reader's state under the lock, the
# read, its marks and mask slices, the lease delete, the counted reads and the case update, two
# savepoint pairs, the reader's roles and count and, at most every two seconds, the leaderboard
# snapshot their rank is taken from.
NEXT_CASE_MAX_QUERIES = 14
SUBMIT_MAX_QUERIES = 21
TASK_LIST_MAX_QUERIES = 5


def file_less_series(slices: int):
    """A CT series record of `slices` 512x512 instances (no files: these paths never read pixels)."""
    series = SeriesFactory()
    Instance.objects.bulk_create(
        Instance(
            sop_instance_uid=f"{series.series_instance_uid}.{number}",
            sop_class_uid=CT_IMAGE_STORAGE,
            series=series,
            instance_number=number,
            rows=512,
            columns=512,
            pixel_spacing_mm=[0.7, 0.7],
            sort_position_mm=2.5 * number,
            transfer_syntax_uid=EXPLICIT_VR_LITTLE_ENDIAN,
            file_path=f"dicom/{series.series_instance_uid}/{number}.dcm",
            file_size=512 * 512 * 2,
        )
        for number in range(1, slices + 1)
    )
    return series


def busy_task(*, cases: int, slices: int, other_readers: int) -> Task:
    """An open task with other readers' reads (one short of the target) and live leases on its cases."""
    task = TaskFactory(reads_per_case=3, instructions_md="Measure the **largest** lesion.\n\n- one\n- two")
    task_cases = [CaseFactory(task=task, series=file_less_series(slices)) for _ in range(cases)]
    others = itertools.cycle([ReaderFactory() for _ in range(other_readers)])
    for case in task_cases:
        ReadFactory(case=case, reader=next(others))
        case.reads_done = counted_reads(case=case)
        case.save(update_fields=["reads_done"])
    for case in task_cases[: cases // 2]:
        LeaseFactory(case=case, reader=next(others))
    return task


def signed_in_reader():
    # Signed in as sign-up and sign-in do (readers.sign_in), so the session loads its user as in production.
    reader = ReaderFactory()
    client = APIClient()
    client.force_login(reader.user, backend="annotations.auth_backends.ReaderSessionBackend")
    return reader, client


def queries_of(action) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        result = action()
    return len(captured), result


@pytest.fixture
def small_and_large():
    return busy_task(cases=4, slices=20, other_readers=3), busy_task(cases=40, slices=200, other_readers=30)


def test_next_case_runs_the_same_bounded_queries_on_a_small_and_a_ten_times_larger_task(
    small_and_large, django_assert_max_num_queries
):
    counts = []
    for task in small_and_large:
        _, client = signed_in_reader()
        client.get("/api/me/")  # the session and user are loaded once, as on a page that is already open
        with django_assert_max_num_queries(NEXT_CASE_MAX_QUERIES):
            count, answer = queries_of(lambda task=task, client=client: client.post(f"/api/tasks/{task.pk}/next-case/"))
        assert answer.status_code == 200, answer.content
        counts.append(count)

    assert counts[0] == counts[1]


def test_submit_runs_the_same_bounded_queries_on_a_small_and_a_ten_times_larger_task(
    small_and_large, django_assert_max_num_queries, settings
):
    # Each submit refreshes the leaderboard snapshot its rank is taken from: the worst case, every time.
    settings.READERBOARD = {**settings.READERBOARD, "STANDING_REFRESH_SECONDS": 0}
    counts = []
    for task in small_and_large:
        _, client = signed_in_reader()
        offered = client.post(f"/api/tasks/{task.pk}/next-case/").json()
        case = Case.objects.get(pk=offered["id"])
        document = read_document(case)
        with django_assert_max_num_queries(SUBMIT_MAX_QUERIES):
            count, answer = queries_of(
                lambda client=client, document=document: client.post("/api/reads/", document, format="json")
            )
        assert answer.status_code == 201, answer.content
        counts.append(count)

    assert counts[0] == counts[1]


def test_a_retried_submit_is_answered_in_a_few_queries(small_and_large, django_assert_max_num_queries):
    _, client = signed_in_reader()
    task = small_and_large[1]
    case = Case.objects.get(pk=client.post(f"/api/tasks/{task.pk}/next-case/").json()["id"])
    document = no_lesion_document(case)
    client.post("/api/reads/", document, format="json")

    with django_assert_max_num_queries(SUBMIT_MAX_QUERIES):
        answer = client.post("/api/reads/", document, format="json")

    assert answer.status_code == 200
    assert Read.objects.filter(client_uuid=document["client_uuid"]).count() == 1


def test_the_task_list_runs_the_same_queries_for_one_open_task_as_for_twenty(django_assert_max_num_queries):
    reader, client = signed_in_reader()
    one = busy_task(cases=2, slices=1, other_readers=1)
    client.get("/api/me/")
    one_count, _ = queries_of(lambda: client.get("/api/tasks/"))
    for _ in range(19):
        busy_task(cases=2, slices=1, other_readers=1)

    with django_assert_max_num_queries(TASK_LIST_MAX_QUERIES):
        twenty_count, answer = queries_of(lambda: client.get("/api/tasks/"))

    assert len(answer.json()) == 20 and one.pk in [row["id"] for row in answer.json()]
    assert twenty_count == one_count


def test_the_task_list_runs_the_same_bounded_queries_whatever_the_task_size(
    small_and_large, django_assert_max_num_queries
):
    small, large = small_and_large
    reader, client = signed_in_reader()
    client.get("/api/me/")
    Task.objects.filter(pk=large.pk).update(is_open=False)
    small_count, small_answer = queries_of(lambda: client.get("/api/tasks/"))
    Task.objects.filter(pk=large.pk).update(is_open=True)
    Task.objects.filter(pk=small.pk).update(is_open=False)

    with django_assert_max_num_queries(TASK_LIST_MAX_QUERIES):
        large_count, large_answer = queries_of(lambda: client.get("/api/tasks/"))

    assert [row["cases_remaining_for_me"] for row in small_answer.json()] == [4]
    assert [row["cases_remaining_for_me"] for row in large_answer.json()] == [40]
    assert small_count == large_count


def test_next_case_locks_only_the_rows_of_the_case_it_leases(small_and_large):
    """No global lock or serialised section on PostgreSQL: row locks of one case (and the reader's lease on it,
    and the reader's own row, which serialises only that reader's simultaneous calls).

    On SQLite (the booth) IMMEDIATE transactions serialise writers by design and no statement locks rows.
    """
    _, client = signed_in_reader()
    task = small_and_large[1]

    with CaptureQueriesContext(connection) as captured:
        answer = client.post(f"/api/tasks/{task.pk}/next-case/")

    statements = [query["sql"] for query in captured]
    assert answer.status_code == 200
    assert not [sql for sql in statements if re.search(r"LOCK TABLE|ADVISORY", sql, re.IGNORECASE)]
    row_locks = [sql for sql in statements if re.search(r" FOR (NO KEY )?UPDATE", sql)]
    one_case = re.compile(
        r'"annotations_case"\."id" IN \(\d+\)'
        r'|"annotations_lease"\."case_id" = \d+ AND "annotations_lease"\."reader_id" = \d+'
        r'|"annotations_reader"\."id" = \d+'
    )
    assert all(one_case.search(sql) for sql in row_locks), row_locks
    if connection.vendor == "postgresql":
        assert any("FOR NO KEY UPDATE" in sql and "SKIP LOCKED" in sql for sql in row_locks), row_locks


@pytest.fixture
def long_ct_series(db, tmp_path):
    """A synthetic CT of 30 slices (the small one has 9), imported."""
    from tests.conftest import small_patient
    from viewer.models import Series
    from viewer.services.dicom_import import import_paths
    from viewer.services.synthetic_ct import write_series

    patient = small_patient("RB-TEST-LONG", seed=7)
    patient.slices = 30
    written = write_series(patient, tmp_path / "long-ct")
    import_paths(written.files, collection_name="Long CT")
    return Series.objects.get(series_instance_uid=written.series_instance_uid)


def test_series_metadata_runs_the_same_bounded_queries_for_9_and_30_slices(
    small_ct_series, long_ct_series, django_assert_max_num_queries
):
    task = TaskFactory()
    counts = []
    for series in (small_ct_series, long_ct_series):
        CaseFactory(task=task, series=series)
        _, client = signed_in_reader()
        client.get("/api/me/")
        url = f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/metadata"
        with django_assert_max_num_queries(8):
            count, answer = queries_of(
                lambda url=url, client=client: client.get(url, HTTP_ACCEPT="application/dicom+json")
            )
        assert answer.status_code == 200, answer.content[:300]
        assert len(answer.json()) == series.instances.count()
        counts.append(count)

    assert counts[0] == counts[1]


def test_the_upcoming_case_runs_the_same_bounded_queries_on_a_small_and_a_ten_times_larger_task(
    small_and_large, django_assert_max_num_queries
):
    counts = []
    for task in small_and_large:
        _, client = signed_in_reader()
        offered = client.post(f"/api/tasks/{task.pk}/next-case/").json()
        with django_assert_max_num_queries(NEXT_CASE_MAX_QUERIES):
            url = f"/api/tasks/{task.pk}/upcoming-case/"
            count, answer = queries_of(lambda url=url, client=client: client.get(url))
        assert answer.status_code == 200, answer.content
        assert answer.json()["id"] != offered["id"]
        assert "lease_expires_at" not in answer.json()
        counts.append(count)

    assert counts[0] == counts[1]


def test_a_second_next_case_on_the_same_series_loads_no_instance_rows(django_assert_max_num_queries):
    task = busy_task(cases=1, slices=200, other_readers=1)  # one case with room for two more readers
    counts = []
    for _reader in range(2):
        _, client = signed_in_reader()
        client.get("/api/me/")
        with CaptureQueriesContext(connection) as captured:
            answer = client.post(f"/api/tasks/{task.pk}/next-case/")
        assert answer.status_code == 200, answer.content
        assert len(answer.json()["instances"]) == 200
        counts.append(sum("viewer_instance" in query["sql"] for query in captured.captured_queries))

    # The first reader's case loads the series' instances (and its version); the second's comes from the memo.
    assert counts[0] >= 1
    assert counts[1] <= counts[0] - 1


def test_a_signed_up_readers_requests_load_user_profile_and_team_in_one_query():
    client = APIClient()
    signup = {
        "display_name": "Quinn Query",
        "pin": "48213",
        "role": "trainee",
        "years_experience": 2,
        "consent": True,
        "team": "Query Team",
    }
    assert client.post("/api/signup/", signup, format="json").status_code == 201

    with CaptureQueriesContext(connection) as captured:
        me = client.get("/api/me/")

    assert me.status_code == 200 and me.json()["team"] == "Query Team" and me.json()["roles"] == ["reader"]
    user_queries = [query["sql"] for query in captured if 'FROM "auth_user"' in query["sql"]]
    assert len(user_queries) == 1
    assert '"annotations_reader"' in user_queries[0] and '"annotations_team"' in user_queries[0]
    assert not [query["sql"] for query in captured if re.search(r'FROM "annotations_(reader|team)"', query["sql"])]


def test_a_role_granted_between_requests_shows_in_the_next_answer():
    from annotations.booth.roles import RESEARCHER, grant_role
    from annotations.models import Reader

    client = APIClient()
    signup = {"display_name": "Rory Roles", "pin": "48213", "role": "trainee", "years_experience": 2, "consent": True}
    assert client.post("/api/signup/", signup, format="json").status_code == 201
    assert client.get("/api/me/").json()["roles"] == ["reader"]

    grant_role(Reader.objects.get(display_name="Rory Roles").user, RESEARCHER)

    assert client.get("/api/me/").json()["roles"] == ["reader", "researcher"]


def test_a_wrong_console_password_is_checked_by_one_backend_only(monkeypatch):
    from django.contrib.auth import authenticate, get_user_model

    from tests.factories import UserFactory

    UserFactory(username="console-admin", password="right horse battery")
    calls = []
    original = get_user_model().check_password
    monkeypatch.setattr(get_user_model(), "check_password", lambda user, raw: calls.append(raw) or original(user, raw))

    assert authenticate(username="console-admin", password="wrong") is None
    assert len(calls) == 1
