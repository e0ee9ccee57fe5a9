"""The queueing API that reading calls: ask for a case's consensus to be computed after a read is stored.

It only queues (a Celery task, or in-process when Celery runs eagerly); it never computes, and never fails a
submit: without the task module the next sweep (`consensus.tasks.sweep_stale_consensus`) computes the case.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def queue_case_consensus(*, case_id: int) -> None:
    """Queue the consensus of one case."""
    try:
        from annotations.consensus.tasks import compute_case_consensus
    except ImportError:
        logger.warning("consensus task not available; case %s will be computed by the next consensus run", case_id)
    else:
        compute_case_consensus.delay(case_id)
