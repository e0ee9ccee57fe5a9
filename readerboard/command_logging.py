"""Log levels for management commands: libraries' INFO lines stay off the terminal unless asked for.

highdicom logs every module it copies ("copy attributes of module ...") and eager Celery every task
it runs ("Task ... succeeded in ...") at INFO, which buries a command's own output; `-v 2` (or more)
brings those lines back for debugging. Celery workers are not management commands: their logs stay.
"""

from __future__ import annotations

import logging

LIBRARY_LOGGERS = ("highdicom", "pydicom", "PIL", "numba", "celery.app.trace")


def quiet_library_logs(verbosity: int) -> None:
    """Set library loggers to WARNING, or to INFO when a command runs with `-v 2` or more."""
    level = logging.INFO if verbosity >= 2 else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
