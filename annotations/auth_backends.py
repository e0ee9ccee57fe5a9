"""The session backend of readers: the user comes with their reader profile and team in one query."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class ReaderSessionBackend(ModelBackend):
    """Loads a reader's session user with the reader profile and team; never checks a password itself.

    Every reading API request reads `request.user.reader` (the permission check, the view) and most
    read the team: joined here, that is one database round trip per request instead of three.
    Passwords stay with ModelBackend (listed first), so a wrong password is hashed once, not twice.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None

    def get_user(self, user_id):
        user = get_user_model()._default_manager.select_related("reader", "reader__team").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None
