"""Answer-key reads: an admin's reference read of a gold case, drawn and answered on the reading page.

An answer key is stored as a Read with is_answer_key=True and no reader (answered_by names
the admin), validated exactly like a crowd read against the task's tools, the series'
geometry and the current question version. The newest answer key of a case supersedes the
older ones. Answer keys never count as crowd reads: `Read.objects` leaves them out, they
have no reader (so no leaderboard or "cases read" join sees them), they take no lease and
never change Case.reads_done. This module must never store an answer key for a case that
is not gold, nor touch a crowd read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from annotations import background
from annotations.models import Case, Read
from annotations.reading.submission import (
    ReadConflict,
    ReadValidationError,
    read_envelope,
    read_fields,
    rules_for_case,
    store_marks,
    validate_read_document,
)


class NotGoldCase(Exception):
    """Answer keys belong to gold cases only."""


@dataclass(frozen=True)
class AnswerKeySaved:
    read: Read
    created: bool


def answer_key_read(*, case: Case) -> Read | None:
    """Return the case's current answer key (the newest), or None."""
    return Read.all_objects.filter(case=case, is_answer_key=True).order_by("-version", "-id").first()


def answer_keys_of_task(*, task_id: int) -> dict[int, Read]:
    """Return the current answer key of every gold case of the task that has one, by case id."""
    keys: dict[int, Read] = {}
    for read in Read.all_objects.filter(case__task_id=task_id, case__is_gold=True, is_answer_key=True).order_by(
        "case_id", "version", "id"
    ):
        keys[read.case_id] = read  # the last one per case wins
    return keys


def submit_answer_key(*, user, case: Case, document: Any, now: datetime | None = None) -> AnswerKeySaved:
    """Store the document as the case's new answer key, or return the one stored under its client_uuid.

    Raises NotGoldCase, ReadValidationError (400: same rules as a crowd read) or ReadConflict (409).
    """
    if not case.is_gold:
        raise NotGoldCase(f"case {case.pk} is not a gold case; mark it gold in the task first")
    client_uuid, case_id = read_envelope(document)
    if case_id != case.pk:
        raise ReadValidationError({"case": [f"this answer key is for case {case.pk}, not case {case_id}"]})
    existing = _stored_retry(client_uuid=client_uuid, case=case, document=document)
    if existing is not None:
        return AnswerKeySaved(read=existing, created=False)
    rules = rules_for_case(case)
    parsed = validate_read_document(document, rules=rules)
    instance_pks = {uid: geometry.pk for uid, geometry in rules.instances.items()}
    try:
        with transaction.atomic():
            previous = (
                Read.all_objects.select_for_update()
                .filter(case=case, is_answer_key=True)
                .order_by("-version", "-id")
                .first()
            )
            read = Read.all_objects.create(
                case=case,
                reader=None,
                answered_by=user,
                is_answer_key=True,
                version=previous.version + 1 if previous else 1,
                supersedes=previous,
                **read_fields(parsed=parsed, document=document, question_set_id=rules.question_set_id),
            )
            store_marks(read=read, parsed=parsed, instance_pks=instance_pks)
    except IntegrityError:
        existing = _stored_retry(client_uuid=client_uuid, case=case, document=document)
        if existing is None:
            raise
        return AnswerKeySaved(read=existing, created=False)
    case_id = case.pk
    # Gold figures (reader accuracy per question) come with the case's consensus.
    background.on_commit_soon(lambda: _queue_consensus(case_id=case_id))
    return AnswerKeySaved(read=read, created=True)


def _stored_retry(*, client_uuid, case: Case, document: dict) -> Read | None:
    stored = Read.all_objects.filter(client_uuid=client_uuid).first()
    if stored is None:
        return None
    if not stored.is_answer_key or stored.case_id != case.pk or stored.document != document:
        raise ReadConflict("this client_uuid is already stored with a different read")
    return stored


def _queue_consensus(*, case_id: int) -> None:
    from annotations.consensus.tasks import compute_case_consensus

    compute_case_consensus.delay(case_id)


def answer_key_meta(read: Read | None) -> dict | None:
    """Return who stored the answer key, when, and its id and version (None without an answer key)."""
    if read is None:
        return None
    return {
        "id": read.pk,
        "version": read.version,
        "answered_by": read.answered_by.get_username() if read.answered_by else None,
        "submitted_at": read.submitted_at,
    }
