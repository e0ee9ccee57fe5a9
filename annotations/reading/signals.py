"""Signals the reading package sends, so packages that build on reads hear of them without reading importing them.

`read_stored` is sent inside the storing transaction, right after a crowd read and its marks and masks are
stored (never for a retried submit that found its read, never for an answer key), with `read` and `case` (its
task loaded). A receiver may add rows beside the read in the same transaction; it must never change the read,
and anything it raises undoes the read with it. Receivers must be cheap for the tasks they do not concern.
"""

from __future__ import annotations

from django.dispatch import Signal

read_stored = Signal()
