"""Teams: one team per name whatever its case and spacing, sign-up by API and page, and suggestions."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotations.booth import readers, teams
from annotations.models import Reader, Team
from tests.factories import ReaderFactory

pytestmark = pytest.mark.django_db

SIGNUP = {
    "display_name": "Dr Team Player",
    "pin": "4321",
    "role": "trainee",
    "years_experience": 2,
    "consent": True,
}


def test_spellings_that_differ_in_case_and_spacing_are_one_team():
    first = teams.team_for_name("Mass General ")
    second = teams.team_for_name("mass  general")
    third = teams.team_for_name("\tMASS General\n")

    assert first.pk == second.pk == third.pk
    assert Team.objects.get().name == "Mass General"


def test_a_blank_team_name_is_no_team():
    assert teams.team_for_name("   ") is None
    assert not Team.objects.exists()


def test_a_team_name_longer_than_the_limit_is_refused():
    with pytest.raises(ValueError, match="2 to 80"):
        teams.team_for_name("x" * 81)


def test_register_reader_joins_the_existing_team_and_keeps_its_first_spelling():
    readers.register_reader(display_name="First Person", pin="1234", team="St. Elsewhere")

    second = readers.register_reader(display_name="Second Person", pin="1234", team="  st.  ELSEWHERE ")

    assert second.team.name == "St. Elsewhere"
    assert Team.objects.count() == 1 and second.team.readers.count() == 2


def test_register_reader_names_the_team_field_when_it_is_too_short():
    with pytest.raises(readers.RegistrationError) as error:
        readers.register_reader(display_name="Short Team", pin="1234", team=" x ")

    assert error.value.field == "team"
    assert not Reader.objects.exists()


def test_suggestions_put_prefix_matches_first_then_bigger_teams():
    general = teams.team_for_name("Mass General")
    ReaderFactory(team=general)
    ReaderFactory(team=teams.team_for_name("General Hospital of Lyon"))
    for _ in range(3):
        ReaderFactory(team=teams.team_for_name("Boston General"))
    teams.team_for_name("Cardiology Crew")

    names = [team.name for team in teams.suggest_teams(typed="  GENERAL")]

    assert names == ["General Hospital of Lyon", "Boston General", "Mass General"]


def test_signup_api_with_a_team_puts_the_reader_in_it():
    ReaderFactory(team=teams.team_for_name("Mass General"))
    api = APIClient()

    response = api.post("/api/signup/", {**SIGNUP, "team": "mass  general "}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["reader"]["team"] == "Mass General"
    assert Reader.objects.get(display_name="Dr Team Player").team.name == "Mass General"
    assert api.get("/api/me/").json()["team"] == "Mass General"


def test_signup_api_without_a_team_leaves_the_reader_teamless():
    response = APIClient().post("/api/signup/", SIGNUP, format="json")

    assert response.status_code == 201
    assert response.json()["reader"]["team"] == ""
    assert not Team.objects.exists()


def test_signup_api_names_a_too_long_team():
    response = APIClient().post("/api/signup/", {**SIGNUP, "team": "y" * 81}, format="json")

    assert response.status_code == 400
    assert "team" in response.json()["errors"]
    assert not Reader.objects.exists()


def test_team_suggestions_api_is_public_and_matches_ignoring_case_and_spacing():
    ReaderFactory(team=teams.team_for_name("Mass General"))
    teams.team_for_name("County Hospital")

    body = APIClient().get("/api/teams/", {"q": "MASS  gen"}).json()

    assert body == [{"name": "Mass General", "readers": 1}]


def test_the_signup_page_offers_the_team_field_and_joins_the_team():
    teams.team_for_name("Radiology Residents")
    client = Client()
    assert 'id="team-suggestions"' in client.get("/signup/").content.decode()

    response = client.post(
        "/signup/",
        {
            "display_name": "Dr Page Team",
            "pin": "97531",
            "role": "trainee",
            "years_experience": "3",
            "consent": "on",
            "team": "radiology residents",
        },
    )

    assert response.status_code == 302
    assert Reader.objects.get(display_name="Dr Page Team").team.name == "Radiology Residents"
