"""The leaderboard: readers ranked by the cases they have read, and its live broadcast.

Ranks are competition ranks (1, 2, 2, 4). Entries carry display names and roles only: never marks,
pseudonym-to-name links or anything a reader drew. Broadcasting must never fail a saved read, so
channel layer errors are logged, not raised.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from annotations.models import Reader
from annotations.models.tasks import ReaderRole
from annotations.selectors import readers_by_reads, readers_with_more_reads, reads_of_reader

logger = logging.getLogger(__name__)

LEADERBOARD_GROUP = "leaderboard"
DEFAULT_SIZE = 25


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    display_name: str
    role: str
    role_label: str
    reads: int


@dataclass(frozen=True)
class Leaderboard:
    entries: list[LeaderboardEntry]
    total_reads: int
    readers: int


@dataclass(frozen=True)
class Standing:
    reads_count: int
    # None until the reader has a counted read.
    rank: int | None


def leaderboard(*, size: int = DEFAULT_SIZE) -> Leaderboard:
    """Return the top `size` readers by reads (ties share a rank) and the total of counted reads."""
    rows = list(readers_by_reads().values_list("display_name", "role", "cases_read"))
    entries = []
    previous_reads = None
    rank = 0
    for position, (display_name, role, reads) in enumerate(rows, start=1):
        if reads != previous_reads:
            rank, previous_reads = position, reads
        if position > size:
            break
        entries.append(
            LeaderboardEntry(rank=rank, display_name=display_name, role=role, role_label=_role_label(role), reads=reads)
        )
    return Leaderboard(entries=entries, total_reads=sum(reads for *_, reads in rows), readers=len(rows))


def standing(*, reader: Reader) -> Standing:
    """Return the reader's count of read cases and rank."""
    reads = reads_of_reader(reader)
    return Standing(reads_count=reads, rank=readers_with_more_reads(reads) + 1 if reads else None)


def leaderboard_message(*, size: int = DEFAULT_SIZE) -> dict:
    """Return the WebSocket message: {"type": "leaderboard", "entries": [...], "total_reads": N, "readers": N}."""
    board = leaderboard(size=size)
    return {
        "type": "leaderboard",
        "entries": [asdict(entry) for entry in board.entries],
        "total_reads": board.total_reads,
        "readers": board.readers,
    }


def broadcast_leaderboard() -> None:
    """Send the current leaderboard to every connected /ws/leaderboard/ socket."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            LEADERBOARD_GROUP, {"type": "leaderboard.update", "message": leaderboard_message()}
        )
    except Exception:  # a down Redis must not fail the read that was just saved
        logger.exception("leaderboard broadcast failed")


def _role_label(role: str) -> str:
    try:
        return ReaderRole(role).label
    except ValueError:
        return role
