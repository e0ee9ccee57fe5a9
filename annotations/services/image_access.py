"""Who may see which images: the access policy the DICOMweb service asks before answering.

Admins and researchers see every series; a reader sees the series of cases in open
tasks (the ones he or she may be given to read); anyone else, including anonymous
visitors, sees nothing. `viewer/` reaches this through the setting
READERBOARD["SERIES_ACCESS_POLICY"], so images never depend on annotation internals.
This module must never grant access by default: an unknown kind of user sees nothing.
"""

from __future__ import annotations

from django.db.models import QuerySet

from annotations.services.roles import READER, is_researcher_or_admin, user_roles
from viewer.models import Series


def visible_series(*, user) -> QuerySet[Series]:
    """Return the series this user may load images of."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Series.objects.none()
    if is_researcher_or_admin(user):
        return Series.objects.all()
    if READER in user_roles(user):
        return Series.objects.filter(cases__task__is_open=True).distinct()
    return Series.objects.none()
