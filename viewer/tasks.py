"""Celery tasks of the image side: warming the image cache so the first reader never waits on a decode.

Thin and idempotent: load the series by id, call viewer.dicomweb.delivery.warm_series
(which skips frames already cached), return counts. Routed to the `images` queue by
the `viewer.tasks.warm_*` rule in settings. Queue it with
`transaction.on_commit(lambda: warm_series_cache.delay(series_id))` when a task opens.
"""

from __future__ import annotations

from celery import shared_task

from viewer.dicomweb.delivery import warm_series
from viewer.models import Series


@shared_task(acks_late=True)
def warm_series_cache(series_id: int) -> dict[str, int]:
    """Decode and cache every frame, the metadata and the thumbnail of a series; return what was built."""
    series = Series.objects.select_related("study").filter(pk=series_id).first()
    if series is None:
        return {"frames": 0, "frames_cached": 0, "thumbnails": 0, "failed": 0, "missing": 1}
    return warm_series(series)
