"""Accounts from the console: invite a colleague with a role, promote or demote users.

An invitation is an account without a usable password plus a one-time link to
choose one (Django's password-reset token, so it expires and dies once used).
This module must never let an admin remove their own admin role (the booth would
lose its last way in) and never touches superusers' roles implicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from annotations.booth.roles import ADMIN, ALL_ROLES, ensure_role_groups, grant_role, user_roles


@dataclass(frozen=True)
class Invitation:
    user: object
    set_password_path: str


def set_password_path(user) -> str:
    """Return the one-time path where the user chooses a password."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"/console/invite/{uid}/{default_token_generator.make_token(user)}/"


@transaction.atomic
def invite_user(*, username: str, email: str, role: str) -> Invitation:
    """Create an account holding one role and return the link that lets its owner set a password."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise ValueError(f"the username {username!r} is taken")
    user = User.objects.create_user(username=username, email=email)
    user.set_unusable_password()
    user.save()
    grant_role(user, role)
    return Invitation(user=user, set_password_path=set_password_path(user))


@transaction.atomic
def set_roles(*, user, roles: set[str], acting_user) -> set[str]:
    """Make the user's console roles exactly `roles`; return them. Raise ValueError on a self-demotion."""
    unknown = roles - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
    if user.pk == acting_user.pk and ADMIN not in roles and not user.is_superuser:
        raise ValueError("you cannot remove your own admin role; ask another admin")
    groups = ensure_role_groups()
    for role in ALL_ROLES:
        if role in roles:
            grant_role(user, role)
        else:
            user.groups.remove(groups[role])
    if hasattr(user, "_readerboard_roles"):
        del user._readerboard_roles
    return user_roles(user)


def people() -> list[dict]:
    """Return every account with its roles and reader profile, admins first."""
    User = get_user_model()
    role_groups = {group.id: group.name for group in Group.objects.filter(name__in=ALL_ROLES)}
    rows = []
    for user in User.objects.prefetch_related("groups").select_related("reader").order_by("username"):
        roles = {role_groups[g.id] for g in user.groups.all() if g.id in role_groups}
        if user.is_superuser:
            roles.add(ADMIN)
        reader = getattr(user, "reader", None)
        rows.append(
            {
                "user": user,
                "roles": sorted(roles),
                "display_name": reader.display_name if reader else "",
                "pseudonym": reader.pseudonym if reader else "",
                "has_password": user.has_usable_password(),
            }
        )
    rows.sort(key=lambda row: (ADMIN not in row["roles"], "researcher" not in row["roles"], row["user"].username))
    return rows
