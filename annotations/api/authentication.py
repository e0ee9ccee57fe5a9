"""Authentication and permissions of the reading API."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission


class ReaderSessionAuthentication(SessionAuthentication):
    """Session authentication that answers 401 (not 403) to a request without a session, so the page can
    tell "signed out" (booth timeout) from "not allowed"."""

    def authenticate_header(self, request) -> str:
        return 'Session realm="readerboard"'


class IsReader(BasePermission):
    """The user has a Reader profile (admins and researchers without one cannot read)."""

    message = "Only readers can do this; sign up as a reader first."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "reader"))


class ReaderSessionScheme(SessionScheme):
    """Describes ReaderSessionAuthentication in the OpenAPI schema as the cookie session it is."""

    target_class = ReaderSessionAuthentication
