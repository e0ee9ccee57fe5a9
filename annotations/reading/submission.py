"""Saving a read of any kind: idempotent by client_uuid, versioned, its kind decided once.

`submit_read` stores a reader's read of the case its document names, with the kind of that case's task;
`submit_answer_key` stores an admin's answer key of a gold case. Both walk the same path: find a retried
submit, let the kind check the document, store it in one transaction, then after commit let the kind queue
consensus. This module must never update or delete a saved Read (a correction is a new version), and must
never accept a read for a case the reader was not given (the kind checks that under the case row lock).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.models import Case, Read, Reader
from annotations.reading.documents import ReadValidationError, read_envelope
from annotations.reading.kinds import ANSWER_KEY, ReadKind, kind_for_task


@dataclass(frozen=True)
class SubmissionResult:
    read: Read
    created: bool
    # What the read's kind says about it in the answer (e.g. a follow-up read's RECIST response).
    summary: dict = field(default_factory=dict)


def submit_read(*, reader: Reader, document: Any, now: datetime | None = None) -> SubmissionResult:
    """Store the read document as a new Read of this reader, or return the one stored under its client_uuid.

    The read's kind comes from the task of the case the document names. Raises ReadValidationError (400) or
    ReadConflict (409).
    """
    client_uuid, case_id = read_envelope(document)
    case = Case.objects.select_related("task", "series").filter(pk=case_id).first()
    if case is None:
        raise ReadValidationError({"case": [f"there is no case {case_id}"]})
    return _submit(
        kind=kind_for_task(case.task), case=case, submitter=reader, document=document, client_uuid=client_uuid, now=now
    )


def submit_answer_key(
    *, user: AbstractBaseUser, case: Case, document: Any, now: datetime | None = None
) -> SubmissionResult:
    """Store the document as the case's new answer key, or return the one stored under its client_uuid.

    Raises NotGoldCase (404), ReadValidationError (400: same rules as a crowd read) or ReadConflict (409).
    """
    client_uuid, case_id = read_envelope(document)
    ANSWER_KEY.check_case(case=case, named_case_id=case_id)
    return _submit(kind=ANSWER_KEY, case=case, submitter=user, document=document, client_uuid=client_uuid, now=now)


def _submit(
    *, kind: ReadKind, case: Case, submitter, document: Any, client_uuid: uuid.UUID, now: datetime | None
) -> SubmissionResult:
    now = now or timezone.now()
    existing = kind.stored_retry(client_uuid=client_uuid, case=case, submitter=submitter, document=document)
    if existing is not None:
        return SubmissionResult(read=existing, created=False, summary=kind.summarise(existing))
    validated = kind.validate(case=case, document=document, submitter=submitter)
    try:
        with transaction.atomic():
            read = kind.store(case=case, validated=validated, document=document, submitter=submitter, now=now)
    except IntegrityError:
        # A concurrent retry of the same submit won the race on client_uuid.
        existing = kind.stored_retry(client_uuid=client_uuid, case=case, submitter=submitter, document=document)
        if existing is None:
            raise
        return SubmissionResult(read=existing, created=False, summary=kind.summarise(existing))
    kind.after_commit(read=read)
    return SubmissionResult(read=read, created=True, summary=kind.summarise(read))
