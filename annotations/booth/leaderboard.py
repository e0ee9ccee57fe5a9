"""The leaderboard: readers ranked by the cases they have read, teams by their readers' reads, and its broadcast.

Ranks are competition ranks (1, 2, 2, 4). A team's reads are the sum of its readers' counted reads (a case
two team-mates read counts twice: each read is work done). Entries carry display names, roles and team
names only: never marks,
pseudonym-to-name links or anything a reader drew. Broadcasting must never fail a saved read, so
channel layer errors are logged, not raised.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from dataclasses import asdict, dataclass, field

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from annotations.models import Reader
from annotations.models.tasks import ReaderRole
from annotations.selectors import readers_by_reads, reads_of_reader

logger = logging.getLogger(__name__)

LEADERBOARD_GROUP = "leaderboard"
DEFAULT_SIZE = 25
DEFAULT_TEAM_SIZE = 10


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    display_name: str
    role: str
    role_label: str
    reads: int
    # "" for a reader without a team.
    team: str = ""


@dataclass(frozen=True)
class TeamEntry:
    rank: int
    name: str
    readers: int
    reads: int


@dataclass(frozen=True)
class Leaderboard:
    entries: list[LeaderboardEntry]
    total_reads: int
    readers: int
    teams: list[TeamEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Standing:
    reads_count: int
    # None until the reader has a counted read.
    rank: int | None


def leaderboard(*, size: int = DEFAULT_SIZE, team_size: int = DEFAULT_TEAM_SIZE) -> Leaderboard:
    """Return the top `size` readers and `team_size` teams by reads (ties share a rank) and the total of reads."""
    rows = list(readers_by_reads().values_list("display_name", "role", "cases_read", "team__name"))
    entries = []
    for rank, (display_name, role, reads, team) in _competition_ranks(rows, reads_of=lambda row: row[2])[:size]:
        entries.append(
            LeaderboardEntry(
                rank=rank,
                display_name=display_name,
                role=role,
                role_label=_role_label(role),
                reads=reads,
                team=team or "",
            )
        )
    return Leaderboard(
        entries=entries,
        total_reads=sum(row[2] for row in rows),
        readers=len(rows),
        teams=_team_entries(rows, size=team_size),
    )


def _team_entries(rows: list[tuple], *, size: int) -> list[TeamEntry]:
    """Teams ranked by the summed reads of their readers (ties broken by fewer readers, then name)."""
    reads_of: dict[str, int] = {}
    readers_of: dict[str, int] = {}
    for _, _, reads, team in rows:
        if team:
            reads_of[team] = reads_of.get(team, 0) + reads
            readers_of[team] = readers_of.get(team, 0) + 1
    ordered = sorted(reads_of, key=lambda team: (-reads_of[team], readers_of[team], team.casefold()))
    return [
        TeamEntry(rank=rank, name=team, readers=readers_of[team], reads=reads_of[team])
        for rank, team in _competition_ranks(ordered, reads_of=reads_of.__getitem__)[:size]
    ]


def _competition_ranks(items: list, *, reads_of) -> list[tuple[int, object]]:
    """Pair items (already sorted by reads, most first) with competition ranks: 1, 2, 2, 4."""
    ranked = []
    previous_reads, rank = None, 0
    for position, item in enumerate(items, start=1):
        reads = reads_of(item)
        if reads != previous_reads:
            rank, previous_reads = position, reads
        ranked.append((rank, item))
    return ranked


def standing(*, reader: Reader) -> Standing:
    """Return the reader's count of read cases (exact) and rank (against others' counts at most a moment old).

    Every submit and every page load answers with it. Counting the readers ahead exactly means
    aggregating every read of the campaign each time (6 ms at 28,000 reads, growing with them), so the
    others' counts come from a per-process snapshot refreshed at most every STANDING_REFRESH_SECONDS
    (2 s by default): the reader's own count is always current, other readers' up to that old.
    """
    reads = reads_of_reader(reader)
    if not reads:
        return Standing(reads_count=0, rank=None)
    return Standing(reads_count=reads, rank=_others_ahead(reader_id=reader.pk, reads=reads) + 1)


@dataclass(frozen=True)
class _ReadCounts:
    taken_at: float
    ascending: list[int]
    by_reader: dict[int, int]


_read_counts: dict[str, _ReadCounts] = {}
_read_counts_lock = threading.Lock()


def _others_ahead(*, reader_id: int, reads: int) -> int:
    """Readers other than this one with more than `reads` read cases, by the current snapshot."""
    counts = _current_read_counts()
    ahead = len(counts.ascending) - bisect_right(counts.ascending, reads)
    # The reader's own entry in the snapshot may be older than `reads`; it never counts against them.
    return ahead - (1 if counts.by_reader.get(reader_id, 0) > reads else 0)


def _current_read_counts() -> _ReadCounts:
    from viewer.dicomweb.access import cache_scope  # memos are per served store, like the image memos

    scope, now = cache_scope(), time.monotonic()
    refresh_s = float(settings.READERBOARD.get("STANDING_REFRESH_SECONDS", 2.0))
    counts = _read_counts.get(scope)
    if counts is not None and now - counts.taken_at < refresh_s:
        return counts
    with _read_counts_lock:  # one refresh at a time; the others wait for it rather than run it again
        counts = _read_counts.get(scope)
        if counts is None or time.monotonic() - counts.taken_at >= refresh_s:
            by_reader = dict(readers_by_reads().order_by().values_list("pk", "cases_read"))
            counts = _ReadCounts(taken_at=time.monotonic(), ascending=sorted(by_reader.values()), by_reader=by_reader)
            _read_counts[scope] = counts
        return counts


def leaderboard_message(*, size: int = DEFAULT_SIZE, team_size: int = DEFAULT_TEAM_SIZE) -> dict:
    """Return the WebSocket message: {"type": "leaderboard", "entries": [...], "teams": [...], "total_reads": N,
    "readers": N}, both boards in one message so a page never shows one board newer than the other."""
    board = leaderboard(size=size, team_size=team_size)
    return {
        "type": "leaderboard",
        "entries": [asdict(entry) for entry in board.entries],
        "teams": [asdict(team) for team in board.teams],
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
