"""Celery tasks of the annotations app (thin: load ids, call a service). Autodiscovered as `annotations.tasks`."""

from annotations.console.tasks import *  # noqa: F403
from annotations.tasks.consensus import *  # noqa: F403
from annotations.tasks.exports import *  # noqa: F403
