"""Answer-key reads: an admin's reference read of a gold case, drawn and answered on the reading page.

An answer key is stored as a Read with is_answer_key=True and no reader (answered_by names
the admin), validated exactly like a crowd read against the task's tools, the series'
geometry and the current question version. The newest answer key of a case supersedes the
older ones. Answer keys never count as crowd reads: `Read.objects` leaves them out, they
have no reader (so no leaderboard or "cases read" join sees them), they take no lease and
never change Case.reads_done. This module must never store an answer key for a case that
is not gold, nor touch a crowd read. Storing is `reading.submission.submit_answer_key` with the
`reading.kinds.AnswerKey` kind; this module finds stored answer keys.
"""

from __future__ import annotations

from annotations.models import Case, Read
from annotations.reading.kinds import NotGoldCase, answer_key_meta

__all__ = ["NotGoldCase", "answer_key_meta", "answer_key_read", "answer_keys_of_task"]


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
