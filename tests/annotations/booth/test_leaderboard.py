"""The leaderboard: ranks, what counts as a read, the page with its booth display, and the live WebSocket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from annotations.booth import leaderboard
from annotations.booth.teams import team_for_name
from annotations.reading.submission import submit_read
from readerboard.asgi import application
from tests.factories import LeaseFactory, ReaderFactory, ReadFactory, TaskFactory, bare_cases, no_lesion_document


def give_reads(reader, cases, *, skip: bool = False):
    for case in cases:
        ReadFactory(case=case, reader=reader, skip=skip)


@pytest.fixture
def cases(db):
    return bare_cases(TaskFactory(reads_per_case=5), 4)


def test_ranks_are_competition_ranks(cases):
    alice, bob, cy, dee = (ReaderFactory(display_name=name) for name in ("Alice", "Bob", "Cy", "Dee"))
    give_reads(alice, cases[:3])
    give_reads(bob, cases[:2])
    give_reads(cy, cases[:2])
    give_reads(dee, cases[:1])

    board = leaderboard.leaderboard()

    assert [(entry.rank, entry.display_name, entry.reads) for entry in board.entries] == [
        (1, "Alice", 3),
        (2, "Bob", 2),
        (2, "Cy", 2),
        (4, "Dee", 1),
    ]
    assert board.total_reads == 8
    assert leaderboard.standing(reader=dee) == leaderboard.Standing(reads_count=1, rank=4)


def test_a_readers_own_count_is_current_and_others_are_at_most_the_refresh_interval_old(cases, settings):
    settings.READERBOARD = {**settings.READERBOARD, "STANDING_REFRESH_SECONDS": 600}
    ahead, me = ReaderFactory(display_name="Ahead"), ReaderFactory(display_name="Me")
    give_reads(ahead, cases[:2])
    give_reads(me, cases[:1])
    assert leaderboard.standing(reader=me) == leaderboard.Standing(reads_count=1, rank=2)

    # My new reads count at once, against the others' counts of the snapshot: I pass Ahead (2).
    give_reads(me, cases[1:3])
    assert leaderboard.standing(reader=me) == leaderboard.Standing(reads_count=3, rank=1)
    # Ahead's new reads show only once the snapshot is refreshed.
    give_reads(ahead, cases[2:4])
    assert leaderboard.standing(reader=me).rank == 1

    settings.READERBOARD = {**settings.READERBOARD, "STANDING_REFRESH_SECONDS": 0}
    assert leaderboard.standing(reader=me) == leaderboard.Standing(reads_count=3, rank=2)


def test_skips_and_later_versions_do_not_add_reads(cases):
    reader = ReaderFactory()
    ReadFactory(case=cases[0], reader=reader, version=1)
    ReadFactory(case=cases[0], reader=reader, version=2)
    give_reads(reader, cases[1:3], skip=True)

    assert leaderboard.standing(reader=reader).reads_count == 1


def test_readers_without_reads_are_not_ranked(cases):
    reader = ReaderFactory()

    assert leaderboard.standing(reader=reader).rank is None
    assert leaderboard.leaderboard().entries == []


def test_entries_carry_role_labels_and_never_marks(cases):
    give_reads(ReaderFactory(display_name="Tech Tom", role="technologist"), cases[:1])

    message = leaderboard.leaderboard_message()

    assert message["entries"][0] == {
        "rank": 1,
        "display_name": "Tech Tom",
        "role": "technologist",
        "role_label": "Technologist",
        "reads": 1,
        "team": "",
    }
    assert set(message) == {"type", "entries", "teams", "total_reads", "readers"}


def test_the_leaderboard_page_lists_readers(cases):
    give_reads(ReaderFactory(display_name="Page Reader"), cases[:2])

    page = Client().get("/leaderboard/").content.decode()

    assert "Page Reader" in page and "Booth display" in page


def test_the_booth_display_is_full_screen_without_navigation(cases):
    give_reads(ReaderFactory(display_name="Booth Star"), cases[:1])

    page = Client().get("/leaderboard/?display=booth").content.decode()

    assert "booth-display" in page and "Booth Star" in page and "Walk up" in page


def test_teams_are_ranked_by_the_summed_reads_of_their_readers(cases):
    general, county = team_for_name("Mass General"), team_for_name("County Hospital")
    give_reads(ReaderFactory(display_name="Ann", team=general), cases[:3])
    give_reads(ReaderFactory(display_name="Bea", team=general), cases[:1])
    give_reads(ReaderFactory(display_name="Cal", team=county), cases[:4])
    give_reads(ReaderFactory(display_name="Solo"), cases[:4])
    ReaderFactory(display_name="Idle", team=county)  # no reads: not counted among the team's readers

    board = leaderboard.leaderboard()

    # A tie shares the rank; the team that did it with fewer readers is listed first.
    assert board.teams == [
        leaderboard.TeamEntry(rank=1, name="County Hospital", readers=1, reads=4),
        leaderboard.TeamEntry(rank=1, name="Mass General", readers=2, reads=4),
    ]
    assert {entry.display_name: entry.team for entry in board.entries} == {
        "Ann": "Mass General",
        "Bea": "Mass General",
        "Cal": "County Hospital",
        "Solo": "",
    }


def test_a_team_with_fewer_reads_ranks_below(cases):
    first, second = team_for_name("First Team"), team_for_name("Second Team")
    give_reads(ReaderFactory(team=first), cases[:3])
    give_reads(ReaderFactory(team=second), cases[:1])
    give_reads(ReaderFactory(team=second), cases[:1])

    teams = leaderboard.leaderboard().teams

    assert [(team.rank, team.name, team.reads) for team in teams] == [(1, "First Team", 3), (2, "Second Team", 2)]


def test_inactive_readers_do_not_count_for_their_team(cases):
    team = team_for_name("Quiet Team")
    reader = ReaderFactory(team=team)
    give_reads(reader, cases[:2])
    reader.user.is_active = False
    reader.user.save()

    assert leaderboard.leaderboard().teams == []


def test_the_leaderboard_page_shows_the_team_board_beside_the_readers(cases):
    give_reads(ReaderFactory(display_name="Team Player", team=team_for_name("Radiology Residents")), cases[:2])

    for url in ("/leaderboard/", "/leaderboard/?display=booth"):
        page = Client().get(url).content.decode()

        assert 'data-testid="team-leaderboard"' in page and "Radiology Residents" in page and "Top teams" in page


def test_the_leaderboard_api_carries_both_boards(cases):
    give_reads(ReaderFactory(display_name="Api Reader", team=team_for_name("Api Team")), cases[:1])

    body = Client().get("/api/leaderboard/").json()

    assert body["teams"] == [{"rank": 1, "name": "Api Team", "readers": 1, "reads": 1}]
    assert body["entries"][0]["team"] == "Api Team"


@pytest.mark.django_db(transaction=True)
def test_the_websocket_pushes_the_board_after_a_read_is_saved(monkeypatch):
    import annotations.consensus.tasks as consensus_tasks

    # Consensus is another module's job; here only the broadcast matters.
    monkeypatch.setattr(consensus_tasks, "compute_case_consensus", None, raising=False)
    monkeypatch.delattr(consensus_tasks, "compute_case_consensus")
    (case,) = bare_cases(TaskFactory(), 1)
    reader = ReaderFactory(display_name="Live Reader", role="student", team=team_for_name("Live Team"))
    LeaseFactory(case=case, reader=reader)

    async def scenario():
        communicator = WebsocketCommunicator(
            application, "/ws/leaderboard/", headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")]
        )
        connected, _ = await communicator.connect()
        assert connected
        before = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(submit_read)(reader=reader, document=no_lesion_document(case))
        after = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return before, after

    before, after = async_to_sync(scenario)()

    assert before["type"] == "leaderboard" and before["entries"] == [] and before["teams"] == []
    assert after["entries"][0]["display_name"] == "Live Reader" and after["total_reads"] == 1
    assert after["teams"] == [{"rank": 1, "name": "Live Team", "readers": 1, "reads": 1}]
