"""The session backend of readers: the user comes with their reader profile, team and roles in one query."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from annotations.services.roles import remember_roles, with_role_flags


class ReaderSessionBackend(ModelBackend):
    """Loads a reader's session user with the reader profile, team and roles; never checks a password itself.

    Every reading API request reads `request.user.reader` (the permission check, the view), most read
    the team and the answers that carry the reader's standing list their roles: joined here, that is one
    database round trip per request instead of four.
    Passwords stay with ModelBackend (listed first), so a wrong password is hashed once, not twice.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None

    def get_user(self, user_id):
        users = get_user_model()._default_manager.select_related("reader", "reader__team").filter(pk=user_id)
        user = with_role_flags(users).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        remember_roles(user)
        return user
