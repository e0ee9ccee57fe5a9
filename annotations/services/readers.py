"""Reader accounts: booth sign-up with a display name and a short PIN.

The PIN is the Django user's password, so it is hashed by Django's hashers;
this module must never store or log it in clear.
"""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from annotations.models import Reader
from annotations.services.roles import READER, grant_role

PIN_PATTERN = re.compile(r"^\d{4,8}$")


def username_for(display_name: str) -> str:
    """Return the internal username of a display name (case- and space-insensitive)."""
    return "reader:" + re.sub(r"\s+", " ", display_name.strip()).casefold()


@transaction.atomic
def register_reader(
    *,
    display_name: str,
    pin: str,
    role: str = "other",
    email: str = "",
    subspecialty: str = "",
    years_experience: int = 0,
    consented: bool = True,
) -> Reader:
    """Create a user and reader profile; raise ValueError naming what is wrong."""
    name = re.sub(r"\s+", " ", display_name.strip())
    if not 2 <= len(name) <= 80:
        raise ValueError("display_name must be 2 to 80 characters")
    if not PIN_PATTERN.match(pin):
        raise ValueError("pin must be 4 to 8 digits")
    if not consented:
        raise ValueError("consent is required to take part")
    User = get_user_model()
    username = username_for(name)
    if User.objects.filter(username=username).exists() or Reader.objects.filter(display_name__iexact=name).exists():
        raise ValueError(f"the name {name!r} is taken; choose another or sign in")
    user = User.objects.create_user(username=username, email=email, password=pin)
    grant_role(user, READER)
    return Reader.objects.create(
        user=user,
        display_name=name,
        email=email,
        role=role,
        subspecialty=subspecialty,
        years_experience=years_experience,
        consented_at=timezone.now() if consented else None,
    )
