"""Fuzzing the API from its own OpenAPI schema (drf-spectacular) as a signed-in reader, bounded for CI.

Schemathesis generates requests for every operation of /api/schema/, valid and invalid, and sends
them in-process (WSGI) with a reader's token. No answer may be a 500, and every answer must be one
the schema declares, with the declared content type and a body that matches the declared shape.
The full run is the same test with READERBOARD_FUZZ_EXAMPLES raised (e.g. 200).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import CaseFactory, ReaderFactory, TaskFactory
from tests.security.fuzz_counts import record

MAX_EXAMPLES = int(os.environ.get("READERBOARD_FUZZ_EXAMPLES", "12"))
CSRF_SECRET = "k" * 32
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# CI's budget is a few minutes; `make fuzz` raises the example counts and so this bound.
pytestmark = pytest.mark.timeout(int(os.environ.get("READERBOARD_FUZZ_TIMEOUT_S", "600")))
PER_OPERATION_RUN = {"calls": 0}


@pytest.fixture
def api_schema(db):
    """The schema, loaded and exercised through Django's WSGI handler in this test's transaction."""
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    # As Django's test client does: a request must not close the connection that holds the test transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def reader_token(db, small_ct_series, settings) -> str:
    """A reader with an open task to read, authenticated by token (no cookie, so no CSRF)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fuzz"}}
    task = TaskFactory(tools=["long_axis", "bidirectional", "mask", "no_lesion", "skip", "quality_problem"])
    CaseFactory(task=task, series=small_ct_series)
    reader = ReaderFactory()
    return Token.objects.create(user=reader.user).key


def routable(case) -> bool:
    """False for negative integer path ids: Django's <int:> converter matches digits only, so such a URL never
    reaches the API and gets Django's HTML 404 (the schema does not say minimum: 0; reported to the API's owner)."""
    return not any(isinstance(value, int) and value < 0 for value in (case.path_parameters or {}).values())


def test_no_operation_answers_500_or_breaks_its_schema(api_schema, reader_token):
    # Each operation gets its own bounded hypothesis run (schemathesis' pytest plugin does not load under pytest 9).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9, [operation.label for operation in operations]
    failures = {}
    for operation in operations:

        @given(case=operation.as_strategy().filter(routable))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=10_000,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case):
            PER_OPERATION_RUN["calls"] += 1
            # The CSRF pair lets sign-up and sign-in bodies reach validation instead of stopping at the CSRF check.
            case.call_and_validate(
                headers={"Authorization": f"Token {reader_token}", "X-CSRFToken": CSRF_SECRET},
                cookies={"csrftoken": CSRF_SECRET},
                checks=CHECKS,
            )

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - one report for every operation
            failures[operation.label] = f"{type(error).__name__}: {str(error)[:1500]}"
    record(
        "schemathesis_per_operation",
        {**PER_OPERATION_RUN, "operations": len(operations), "failing_operations": sorted(failures)},
    )
    assert failures == {}, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


# --- stateful: sequences of calls that follow the API's links ---------------------------------------

STATEFUL_SCENARIOS = int(os.environ.get("READERBOARD_FUZZ_STATEFUL_EXAMPLES", "40"))
STATEFUL_STEPS = int(os.environ.get("READERBOARD_FUZZ_STATEFUL_STEPS", "8"))
# The reading flow as a reader walks it: a task list, the next case of a task, then its lease and its read.
READING_LINKS = {
    ("/api/tasks/{task_id}/next-case/", "post", "200"): {
        "RenewLease": {"operationId": "cases_lease_create", "parameters": {"case_id": "$response.body#/id"}},
        "SaveRead": {"operationId": "reads_create", "requestBody": {"case": "$response.body#/id"}},
        "AnswerKey": {"operationId": "cases_answer_key_retrieve", "parameters": {"case_id": "$response.body#/id"}},
    },
    ("/api/tasks/", "get", "200"): {
        "NextCase": {"operationId": "tasks_next_case_create", "parameters": {"task_id": "$response.body#/0/id"}},
        "UpcomingCase": {
            "operationId": "tasks_upcoming_case_retrieve",
            "parameters": {"task_id": "$response.body#/0/id"},
        },
    },
}
# Counted by `make fuzz` (benchmarks/results/fuzz.json): scenarios and calls the stateful run made.
STATEFUL_RUN = {"scenarios": 0, "calls": 0, "server_errors": 0}
STATEFUL_STATUSES: dict[str, int] = {}


def _linked_schema(app):
    """The served schema with the reading flow's OpenAPI links added (drf-spectacular does not write links)."""
    from django.test import Client

    raw = Client().get("/api/schema/?format=json").json()
    operation_ids = {
        operation["operationId"]
        for item in raw["paths"].values()
        for operation in item.values()
        if "operationId" in operation
    }
    for (path, method, status), links in READING_LINKS.items():
        response = raw["paths"][path][method]["responses"][status]
        response["links"] = {name: link for name, link in links.items() if link["operationId"] in operation_ids}
    schema = schemathesis.openapi.from_dict(raw)
    schema.app, schema.location = app, "/api/schema/"
    return schema


# transaction=True: on PostgreSQL the server's pooled connection can be handed back mid-sequence, and Django
# cannot reopen one inside the test's atomic block; outside it, each call commits as in production.
@pytest.mark.django_db(transaction=True)
def test_no_sequence_of_reading_calls_answers_500(api_schema, reader_token):
    from django.core.wsgi import get_wsgi_application

    schema = _linked_schema(get_wsgi_application())
    headers = {"Authorization": f"Token {reader_token}", "X-CSRFToken": CSRF_SECRET}

    class ReadingFlow(schema.as_state_machine()):
        def setup(self) -> None:
            STATEFUL_RUN["scenarios"] += 1

        def get_call_kwargs(self, case):
            return {"headers": headers, "cookies": {"csrftoken": CSRF_SECRET}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # The oracle is "no 5xx"; the per-operation test above checks conformance.
            STATEFUL_RUN["calls"] += 1
            key = f"{case.operation.label} {response.status_code}"
            STATEFUL_STATUSES[key] = STATEFUL_STATUSES.get(key, 0) + 1
            if response.status_code >= 500:
                STATEFUL_RUN["server_errors"] += 1
            case.validate_response(response, checks=[not_a_server_error], transport_kwargs=kwargs)

    ReadingFlow.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
    )
    record("schemathesis_stateful", {**STATEFUL_RUN, "responses": dict(sorted(STATEFUL_STATUSES.items()))})
    assert STATEFUL_RUN["calls"] > STATEFUL_SCENARIOS
