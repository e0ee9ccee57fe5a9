"""The kinds of read, each decided once: a single-time-point read, a follow-up read and an answer key.

`kind_for_task` picks a crowd read's kind from the case's task; an answer key is asked for by its own endpoint.
Each kind object knows how to check its document (`validate`), store it (`store`, inside the caller's
transaction, under the case row lock for crowd reads), find a retried submit (`stored_retry`), what to do after
commit (`after_commit`: queue consensus, broadcast the leaderboard) and what to say about a stored read
(`summarise`). Nothing outside this module asks "which kind is this read?" on the submit path.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from annotations import background
from annotations.assignment import services as assignment
from annotations.consensus.queue import queue_case_consensus
from annotations.models import Case, Lease, Mark, MaskProvenance, MaskSlice, MaskSource, Read, Reader, Task
from annotations.reading import follow_up_reads
from annotations.reading.documents import ParsedRead, ReadValidationError, ValidatedRead, validate_read_document
from annotations.reading.rules import rules_for_case
from annotations.reading.signals import read_stored


class ReadConflict(Exception):
    """The read cannot be stored as sent (409): a lease that ran out, a closed task, a reused client_uuid."""


class TooManyVersions(Exception):
    """Another new version of this read now would exceed the per-minute limit (429 with Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotGoldCase(Exception):
    """An answer key was sent for a case that is not a gold case (404)."""


class ReadKind(Protocol):
    name: str

    def validate(self, *, case: Case, document: Any, submitter: Reader | AbstractBaseUser) -> ValidatedRead: ...

    def stored_retry(
        self, *, client_uuid: uuid.UUID, case: Case | None, submitter: Reader | AbstractBaseUser, document: dict
    ) -> Read | None: ...

    def store(
        self,
        *,
        case: Case,
        validated: ValidatedRead,
        document: dict,
        submitter: Reader | AbstractBaseUser,
        now: datetime,
    ) -> Read: ...

    def after_commit(self, *, read: Read) -> None: ...

    def summarise(self, read: Read) -> dict: ...


class CrowdRead:
    """What every reader's read shares: a lease from assignment, versions per reader, a leaderboard point."""

    name = "crowd"

    def validate(self, *, case: Case, document: Any, submitter: Reader) -> ValidatedRead:
        raise NotImplementedError

    def stored_retry(self, *, client_uuid: uuid.UUID, case: Case | None, submitter: Reader, document: dict):
        stored = Read.objects.filter(client_uuid=client_uuid).first()
        if stored is None:
            return None
        if stored.reader_id != submitter.pk or stored.document != document:
            raise ReadConflict("this client_uuid is already stored with a different read")
        return stored

    def store(self, *, case: Case, validated: ValidatedRead, document: dict, submitter: Reader, now: datetime) -> Read:
        locked = assignment.lock_case_for_reader(case.pk, reader=submitter, now=now, skip_locked=False)
        _check_may_store(locked)
        if locked.latest_read_id is not None:
            _check_version_limits(case=locked, reader=submitter, now=now)
        read = Read.objects.create(
            case=locked,
            reader=submitter,
            version=locked.latest_read_version + 1 if locked.latest_read_id is not None else 1,
            supersedes_id=locked.latest_read_id,
            **read_fields(parsed=validated.parsed, document=document, question_set_id=validated.question_set_id),
        )
        store_marks(read=read, parsed=validated.parsed, instance_pks=validated.instance_pks)
        if validated.store_extra is not None:
            validated.store_extra(read)
        read_stored.send(sender=type(self), read=read, case=case)
        if locked.own_lease_id is not None:
            Lease.objects.filter(pk=locked.own_lease_id).delete()
        locked.reads_done = counted_reads(case=locked)
        locked.save(update_fields=["reads_done"])
        return read

    def after_commit(self, *, read: Read) -> None:
        case_id = read.case_id
        background.on_commit_soon(lambda: queue_case_consensus(case_id=case_id))
        background.on_commit_soon(_broadcast_leaderboard, coalesce_key="leaderboard-broadcast")

    def summarise(self, read: Read) -> dict:
        return {}


class SingleRead(CrowdRead):
    """One series, lesions with lines and masks (docs/read-format.md)."""

    name = "single"

    def validate(self, *, case: Case, document: Any, submitter: Reader) -> ValidatedRead:
        if isinstance(document, dict) and "time_points" in document:
            raise ReadValidationError(
                {"time_points": [f"case {case.pk} is not a follow-up case: send lesions instead"]}
            )
        return _validated_single(case=case, document=document)


class FollowUpRead(CrowdRead):
    """Every baseline lesion measured again at each time point, new lesions added (docs/follow-up.md)."""

    name = "follow_up"

    def validate(self, *, case: Case, document: Any, submitter: Reader) -> ValidatedRead:
        if isinstance(document, dict) and "time_points" not in document and "lesions" in document:
            raise ReadValidationError(
                {"lesions": [f"case {case.pk} is a follow-up case: send time_points instead (docs/follow-up.md)"]}
            )
        return follow_up_reads.validate_for_case(case=case, document=document, reader=submitter)

    def summarise(self, read: Read) -> dict:
        return {"recist": follow_up_reads.read_recist(read)}


class AnswerKey:
    """An admin's reference read of a gold case: no reader, no lease, never counted; the newest one wins."""

    name = "answer_key"

    def check_case(self, *, case: Case, named_case_id: int) -> None:
        """Refuse a case that is not gold (NotGoldCase) or a document naming another case."""
        if not case.is_gold:
            raise NotGoldCase(f"case {case.pk} is not a gold case; mark it gold in the task first")
        if named_case_id != case.pk:
            raise ReadValidationError({"case": [f"this answer key is for case {case.pk}, not case {named_case_id}"]})

    def validate(self, *, case: Case, document: Any, submitter: AbstractBaseUser) -> ValidatedRead:
        return _validated_single(case=case, document=document)

    def stored_retry(self, *, client_uuid: uuid.UUID, case: Case | None, submitter, document: dict):
        stored = Read.all_objects.filter(client_uuid=client_uuid).first()
        if stored is None:
            return None
        if not stored.is_answer_key or case is None or stored.case_id != case.pk or stored.document != document:
            raise ReadConflict("this client_uuid is already stored with a different read")
        return stored

    def store(self, *, case: Case, validated: ValidatedRead, document: dict, submitter, now: datetime) -> Read:
        previous = (
            Read.all_objects.select_for_update()
            .filter(case=case, is_answer_key=True)
            .order_by("-version", "-id")
            .first()
        )
        read = Read.all_objects.create(
            case=case,
            reader=None,
            answered_by=submitter,
            is_answer_key=True,
            version=previous.version + 1 if previous else 1,
            supersedes=previous,
            **read_fields(parsed=validated.parsed, document=document, question_set_id=validated.question_set_id),
        )
        store_marks(read=read, parsed=validated.parsed, instance_pks=validated.instance_pks)
        return read

    def after_commit(self, *, read: Read) -> None:
        # Gold figures (reader accuracy per question) come with the case's consensus.
        case_id = read.case_id
        background.on_commit_soon(lambda: queue_case_consensus(case_id=case_id))

    def summarise(self, read: Read) -> dict:
        return {"answer_key": answer_key_meta(read)}


SINGLE_READ = SingleRead()
FOLLOW_UP_READ = FollowUpRead()
ANSWER_KEY = AnswerKey()


def kind_for_task(task: Task) -> ReadKind:
    """Return the kind of the crowd reads of this task."""
    return FOLLOW_UP_READ if task.is_follow_up else SINGLE_READ


def read_fields(*, parsed: ParsedRead, document: dict, question_set_id: int | None) -> dict:
    """The Read columns a checked document fills (crowd reads and answer keys alike)."""
    return {
        "client_uuid": parsed.client_uuid,
        "no_lesion": parsed.no_lesion,
        "skip": parsed.skip,
        "quality_problem": parsed.quality_problem,
        "comment": parsed.comment,
        "started_at": parsed.started_at,
        "duration_s": parsed.duration_s,
        "document": document,
        "question_set_id": question_set_id,
        "answers": parsed.answers.as_json(),
    }


def store_marks(*, read: Read, parsed: ParsedRead, instance_pks: dict[str, int]) -> None:
    """Store a new read's lines, painted mask slices and masks' provenance (Mark, MaskSlice, MaskProvenance rows)."""
    Mark.objects.bulk_create(
        Mark(
            read=read,
            lesion_index=line.lesion_index,
            kind=line.kind,
            instance_id=instance_pks[line.sop_instance_uid],
            frame=line.frame,
            start_col=line.start[0],
            start_row=line.start[1],
            end_col=line.end[0],
            end_row=line.end[1],
            length_mm=line.length_mm,
        )
        for line in parsed.lines
    )
    MaskSlice.objects.bulk_create(
        MaskSlice(
            read=read,
            lesion_index=mask.lesion_index,
            instance_id=instance_pks[mask.sop_instance_uid],
            frame=mask.frame,
            counts=mask.counts,
            pixel_count=mask.pixel_count,
        )
        for mask in parsed.mask_slices
        if mask.pixel_count > 0
    )
    # A painted mask that started from a proposal records it; a mask without a row was painted by hand, so a
    # hand-made read costs no extra query on the hot submit path.
    painted = {mask.lesion_index for mask in parsed.mask_slices if mask.pixel_count > 0}
    MaskProvenance.objects.bulk_create(
        MaskProvenance(
            read=read,
            lesion_index=provenance.lesion_index,
            source=provenance.source,
            algorithm=provenance.algorithm,
            algorithm_version=provenance.algorithm_version,
            edited=provenance.edited,
            edit_dice=provenance.edit_dice,
            proposal_pixels=provenance.proposal_pixels,
        )
        for provenance in parsed.mask_provenance
        if provenance.source != MaskSource.HAND and provenance.lesion_index in painted
    )


def counted_reads(*, case: Case) -> int:
    """Return the reads that count towards the case's target: readers whose latest version is not a skip."""
    latest: dict[int, bool] = {}
    for reader_id, skip in case.reads.order_by("reader_id", "version").values_list("reader_id", "skip"):
        latest[reader_id] = skip
    return sum(1 for skip in latest.values() if not skip)


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


def _validated_single(*, case: Case, document: Any) -> ValidatedRead:
    rules = rules_for_case(case)
    parsed = validate_read_document(document, rules=rules)
    return ValidatedRead(
        parsed=parsed,
        instance_pks={uid: extent.pk for uid, extent in rules.instances.items()},
        question_set_id=rules.question_set_id,
    )


def _check_may_store(case: Case) -> None:
    # A reader stores a first read only on a case assignment gave them; a new version needs no lease.
    if not case.task.is_open:
        raise ReadConflict("the task is closed")
    if case.latest_read_id is None:
        if case.own_lease_id is None:
            raise ReadConflict("this case was not given to you; ask for the next case")
        if not case.own_lease_live and not assignment.has_room_locked(case):
            raise ReadConflict("your hold on this case ran out and it has all the reads it needs")


def _check_version_limits(*, case: Case, reader: Reader, now: datetime) -> None:
    """Refuse a new version past the cap per case (ReadConflict) or the per-minute rate (TooManyVersions).

    Under the case row lock, so parallel submits of one reader cannot both slip under a limit; a first read
    never gets here, so the hot path pays nothing. One query, for corrections only.
    """
    limits = settings.READERBOARD
    cap = int(limits.get("MAX_READ_VERSIONS", 50))
    if case.latest_read_version >= cap:
        raise ReadConflict(f"a read may have at most {cap} versions; this case already has {cap} of yours")
    per_minute = int(limits.get("READ_VERSIONS_PER_MINUTE", 6))
    window = timedelta(seconds=60)
    recent = list(
        Read.objects.filter(case_id=case.pk, reader=reader, submitted_at__gt=now - window)
        .order_by("-submitted_at")
        .values_list("submitted_at", flat=True)[:per_minute]
    )
    if per_minute > 0 and len(recent) >= per_minute:
        retry_after_s = max(1, math.ceil((recent[-1] + window - now).total_seconds()))
        raise TooManyVersions(
            f"at most {per_minute} versions of a read per minute; try again in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )


def _broadcast_leaderboard() -> None:
    from annotations.booth.leaderboard import broadcast_leaderboard

    broadcast_leaderboard()
