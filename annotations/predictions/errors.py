"""The one error every prediction reader raises: a file (or a row of it) that cannot be stored, and why."""

from __future__ import annotations


class PredictionError(ValueError):
    """A prediction file that cannot be stored (not a case of the task, not on the case's images or grid)."""
