"""Roles are Django groups; this module creates them and answers who may do what.

It must never grant a role implicitly: only superusers count as admins without
being in the group.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

READER = "reader"
ADMIN = "admin"
RESEARCHER = "researcher"
ALL_ROLES = (READER, ADMIN, RESEARCHER)


def ensure_role_groups() -> dict[str, Group]:
    """Create the role groups if missing; return them by name."""
    return {name: Group.objects.get_or_create(name=name)[0] for name in ALL_ROLES}


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """Return the role names a user holds (cached on the user object for the request)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_readerboard_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._readerboard_roles = cached
    return cached


def is_admin(user) -> bool:
    return ADMIN in user_roles(user)


def is_researcher_or_admin(user) -> bool:
    return bool({ADMIN, RESEARCHER} & user_roles(user))


def grant_role(user, role: str) -> None:
    """Add a role to a user."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ALL_ROLES)}")
    # Only the group granted: creating all three on every sign-up cost two extra round trips.
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    if hasattr(user, "_readerboard_roles"):
        del user._readerboard_roles
