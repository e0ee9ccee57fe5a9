"""Consensus Celery tasks: thin wrappers that load ids and call annotations.consensus.case_consensus.

Every task is idempotent (results are keyed by the inputs' hash and the algorithm
version), acknowledged late and retried on transient database errors. The reading
workflow queues `compute_case_consensus.delay(case_id)` after each saved read.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from annotations.consensus import case_consensus as consensus
from annotations.consensus import longitudinal_consensus
from annotations.models import Case, Task

logger = logging.getLogger(__name__)

__all__ = ["compute_case_consensus", "recompute_task_consensus", "sweep_stale_consensus"]

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": TRANSIENT_ERRORS, "retry_backoff": 2, "retry_backoff_max": 120, "max_retries": 5}


@shared_task(acks_late=True, **RETRY)
def compute_case_consensus(case_id: int) -> int | None:
    """Compute the consensus of one case; returns the CaseConsensus id (None without current reads)."""
    case = Case.objects.select_related("task").filter(pk=case_id).first()
    if case is None:
        logger.info("case %s no longer exists; nothing to compute", case_id)
        return None
    if case.task.is_follow_up:
        stored = longitudinal_consensus.compute_follow_up_consensus(case=case)
    else:
        stored = consensus.compute_case_consensus(case=case)
    return stored.pk if stored else None


@shared_task(acks_late=True, **RETRY)
def recompute_task_consensus(task_id: int, use_reader_weights: bool = False) -> dict:
    """Bring every case of a task to a current consensus and refresh its reader quality figures."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return {}
    if task.is_follow_up:
        return {"computed": longitudinal_consensus.recompute_follow_up_task(task=task)}
    return consensus.recompute_task_consensus(task=task, use_reader_weights=use_reader_weights).__dict__


@shared_task(acks_late=True, **RETRY)
def sweep_stale_consensus() -> dict:
    """Recompute cases whose consensus is missing or older than their newest read (for Celery beat)."""
    stale = consensus.stale_case_ids()
    by_task: dict[int, list[int]] = {}
    for case_id, task_id in Case.objects.filter(pk__in=stale).values_list("pk", "task_id"):
        by_task.setdefault(task_id, []).append(case_id)
    done = {}
    for task in Task.objects.filter(pk__in=list(by_task)):
        if task.is_follow_up:
            done[task.pk] = longitudinal_consensus.recompute_follow_up_task(task=task, case_ids=by_task[task.pk])
        else:
            done[task.pk] = consensus.recompute_task_consensus(task=task, case_ids=by_task[task.pk]).computed
    return {"stale": len(stale), "computed": done}
