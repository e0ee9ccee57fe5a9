"""Who may see which images: the access policy the DICOMweb service asks before answering.

Admins and researchers see every series; a reader sees the series of cases in open
tasks (the ones he or she may be given to read); anyone else, including anonymous
visitors, sees nothing. `viewer/` reaches this through the setting
READERBOARD["SERIES_ACCESS_POLICY"], so images never depend on annotation internals.
This module must never grant access by default: an unknown kind of user sees nothing.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from annotations.booth.roles import READER, is_researcher_or_admin, user_roles
from annotations.models import CaseTimePoint
from viewer.models import Series


def visible_series(*, user) -> QuerySet[Series]:
    """Return the series this user may load images of."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Series.objects.none()
    if is_researcher_or_admin(user):
        return Series.objects.all()
    if READER in user_roles(user):
        # A follow-up case's later time points are series of the case too, not only its baseline.
        time_points = CaseTimePoint.objects.filter(case__task__is_open=True).values("series_id")
        return Series.objects.filter(Q(cases__task__is_open=True) | Q(pk__in=time_points)).distinct()
    return Series.objects.none()
