"""Teams: the optional team or institution a reader signs up under, and suggestions of existing teams.

Names are normalised (`names.normalise_name`: NFKC, invisible characters removed, spaces collapsed) and
matched case-insensitively ("Mass General " and "mass  general" are one team); the team keeps the
spelling of the reader who created it. A new name that only looks like an existing team's (same TR39
skeleton: a Cyrillic "а", a zero for an "O") is refused, so the team board cannot show two look-alikes.
A team is made by the first sign-up that names it and is never renamed by later ones. Suggestions list
names only (they are public on the leaderboard anyway), never who is in a team.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Count

from annotations.booth import names
from annotations.models import Team

MAX_TEAM_NAME = 80
DEFAULT_SUGGESTIONS = 8


class TeamNameError(ValueError):
    """A team name is too short, too long, or looks like another team's name (the message says which)."""


def normalise_team_name(name: str) -> str:
    """Return the stored form of a team name (NFKC, invisible characters removed, spaces collapsed)."""
    return names.normalise_name(name)


def team_key(name: str) -> str:
    """Return the case- and space-insensitive key two spellings of one team share."""
    return normalise_team_name(name).casefold()


def team_for_name(name: str) -> Team | None:
    """Return the team of this name, creating it on first use; None for a blank name.

    Raises TeamNameError (a ValueError) when the name is longer than MAX_TEAM_NAME or shorter than 2
    characters, or when it is not an existing team's name but looks like one.
    """
    display = normalise_team_name(name)
    if not display:
        return None
    if not 2 <= len(display) <= MAX_TEAM_NAME:
        raise TeamNameError(f"Team name must be 2 to {MAX_TEAM_NAME} characters.")
    key = team_key(display)
    existing = Team.objects.filter(name_key=key).first()
    if existing is not None:
        return existing
    skeleton = names.name_skeleton(display)
    look_alike = Team.objects.filter(name_skeleton=skeleton).first() if skeleton else None
    if look_alike is not None:
        raise TeamNameError(
            f"The team name {display!r} looks like the existing team {look_alike.name!r}; "
            "pick that team from the suggestions, or choose a clearly different name."
        )
    try:
        # A savepoint: two sign-ups naming a new team at once both end up in the one row.
        with transaction.atomic():
            return Team.objects.create(name=display, name_key=key, name_skeleton=skeleton)
    except IntegrityError:
        return Team.objects.get(name_key=key)


def suggest_teams(*, typed: str, limit: int = DEFAULT_SUGGESTIONS) -> list[Team]:
    """Return existing teams whose name contains what was typed (normalised), best first.

    Names starting with the typed text come before names containing it elsewhere; within each,
    teams with more readers come first. A blank `typed` gives the largest teams.
    """
    key = team_key(typed)
    teams = Team.objects.annotate(members=Count("readers"))
    if key:
        teams = teams.filter(name_key__contains=key)
    # Bounded: a booth has tens of teams, and the list only ever shows a few.
    candidates = teams.order_by("-members", "name_key")[:200]
    ranked = sorted(candidates, key=lambda team: (not team.name_key.startswith(key), -team.members, team.name_key))
    return ranked[:limit]
