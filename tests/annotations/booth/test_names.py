"""One reader, one name: display and team names normalised, look-alike names refused (annotations.booth.names)."""

from __future__ import annotations

from functools import partial
from importlib import import_module

import pytest
from django.apps import apps
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from annotations.booth import names, readers, teams
from annotations.models import Reader, Team
from tests.concurrency import require_postgresql, run_at_once

pytestmark = pytest.mark.django_db

ZERO_WIDTH_SPACE = "\u200b"
CYRILLIC_O = "\u043e"
SIGNUP = {"pin": "1234", "role": "student", "years_experience": 0, "consent": True}


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def sign_up(display_name: str, **fields):
    return APIClient().post("/api/signup/", {**SIGNUP, "display_name": display_name, **fields}, format="json")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Dr Ada Demo" + ZERO_WIDTH_SPACE, "Dr Ada Demo"),
        ("Dr\u200dAda\u2060 Demo", "DrAda Demo"),
        ("\u202eDr Ada Demo\u202c", "Dr Ada Demo"),
        ("\uff24r\u00a0Ada   Demo", "Dr Ada Demo"),  # full-width D, no-break space
        ("Rene\u0301e", "Ren\u00e9e"),  # decomposed accent composed
        ("Re\u200bne\u0301e", "Ren\u00e9e"),
    ],
)
def test_names_are_stored_in_one_normal_form(typed, stored):
    assert names.normalise_name(typed) == stored


def test_look_alike_names_share_a_skeleton_and_different_names_do_not():
    demo = names.name_skeleton("Dr Ada Demo")

    assert names.name_skeleton("Dr Ada Dem" + CYRILLIC_O) == demo
    assert names.name_skeleton("DR ADA DEM0") == demo
    assert names.name_skeleton("Dr Ada Demo" + ZERO_WIDTH_SPACE) == demo
    assert names.name_skeleton("Dr Ada Dema") != demo
    assert names.name_skeleton("Dr Ada Démo") != demo


def test_a_zero_width_copy_of_a_name_is_refused_naming_the_field():
    assert sign_up("Dr Ada Demo").status_code == 201

    response = sign_up("Dr Ada Demo" + ZERO_WIDTH_SPACE)

    assert response.status_code == 400
    assert "is taken" in response.json()["errors"]["display_name"][0]
    assert Reader.objects.count() == 1


def test_a_cyrillic_homoglyph_of_a_name_is_refused_naming_the_field():
    assert sign_up("Dr Ada Demo").status_code == 201

    response = sign_up("Dr Ada Dem" + CYRILLIC_O)

    assert response.status_code == 400
    message = response.json()["errors"]["display_name"][0]
    assert "looks like the name of another reader" in message and "'Dr Ada Demo'" in message
    assert list(Reader.objects.values_list("display_name", flat=True)) == ["Dr Ada Demo"]


def test_the_sign_up_page_refuses_a_look_alike_name_on_its_field():
    readers.register_reader(display_name="Dr Ada Demo", pin="1111", role="attending")

    page = Client().post(
        "/signup/",
        {"display_name": "Dr Ad\u0430 Demo", "pin": "2222", "role": "trainee", "years_experience": 1, "consent": "on"},
    )

    assert page.status_code == 200 and "looks like the name of another reader" in page.content.decode()
    assert Reader.objects.count() == 1


def test_sign_in_by_name_uses_the_normal_form():
    reader = readers.register_reader(display_name="Dr Ada Demo", pin="1111", role="attending")

    assert readers.authenticate_reader(display_name="\uff24r Ada" + ZERO_WIDTH_SPACE + " Demo", pin="1111") == reader


def test_a_new_reader_stores_the_skeleton_of_the_name():
    reader = readers.register_reader(display_name="Dr Ada Demo", pin="1111", role="attending")

    assert reader.name_skeleton == names.name_skeleton("Dr Ada Demo") == "dr ada demo"


def test_a_look_alike_team_name_is_refused_and_the_same_name_joins_the_team():
    first = sign_up("First Person", team="Mass General")
    same = sign_up("Second Person", team="mass general" + ZERO_WIDTH_SPACE)
    look_alike = sign_up("Third Person", team="M\u0430ss General")  # Cyrillic a

    assert first.status_code == 201 and same.status_code == 201
    assert look_alike.status_code == 400
    assert "looks like the existing team 'Mass General'" in look_alike.json()["errors"]["team"][0]
    assert Team.objects.count() == 1 and Team.objects.get().readers.count() == 2
    assert not Reader.objects.filter(display_name="Third Person").exists()


def test_team_for_name_refuses_a_look_alike_of_an_existing_team():
    teams.team_for_name("County Hospital")

    with pytest.raises(teams.TeamNameError, match="looks like the existing team"):
        teams.team_for_name("C0unty Hospital")


def test_the_data_migration_gives_existing_rows_their_skeletons_and_normal_forms():
    reader = readers.register_reader(display_name="Ben Other", pin="1111", role="attending")
    Reader.objects.filter(pk=reader.pk).update(display_name="Ben" + ZERO_WIDTH_SPACE + " Other", name_skeleton="")
    reader.user.username = "reader:ben\u200b other"
    reader.user.save()
    team = Team.objects.create(name="Old Team", name_key="old team")
    migration = import_module("annotations.migrations.0007_name_skeletons")

    migration.fill_skeletons(apps, None)

    reader.refresh_from_db()
    team.refresh_from_db()
    assert (reader.display_name, reader.name_skeleton) == ("Ben Other", "ben other")
    assert readers.authenticate_reader(display_name="Ben Other", pin="1111") == reader
    assert team.name_skeleton == "old team"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_sign_ups_with_look_alike_names_let_only_one_in():
    require_postgresql()
    spellings = ["Dr Ada Demo", "DR ADA DEM0", f"Dr Ada Dem{CYRILLIC_O}", "dr ada demo"]

    outcomes = run_at_once(
        [partial(readers.register_reader, display_name=name, pin="1234", consented=True) for name in spellings]
    )

    registered = [outcome for outcome in outcomes if isinstance(outcome, Reader)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, readers.RegistrationError)]
    assert len(registered) == 1 and len(refused) == len(spellings) - 1, outcomes
    assert Reader.objects.count() == 1
