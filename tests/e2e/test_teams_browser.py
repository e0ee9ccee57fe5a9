"""Teams in a real headless Chromium: sign up picking a suggested team, then see the team board."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reader_picks_a_suggested_team_at_sign_up_and_the_team_board_counts_them(live_server, browser_page):
    from playwright.sync_api import expect

    from annotations.booth.teams import team_for_name
    from annotations.models import Reader
    from tests.factories import ReaderFactory, ReadFactory, TaskFactory, bare_cases

    cases = bare_cases(TaskFactory(reads_per_case=5), 3)
    general = team_for_name("Mass General")
    colleague = ReaderFactory(display_name="Dr Colleague", team=general)
    ReadFactory(case=cases[0], reader=colleague)
    rival = ReaderFactory(display_name="Dr Rival", team=team_for_name("County Hospital"))
    for case in cases[:2]:
        ReadFactory(case=case, reader=rival)
    page = browser_page.page

    page.goto(f"{live_server.url}/signup/")
    page.get_by_label("Display name").fill("Dr Browser Team")
    page.get_by_label("PIN").fill("4821")
    page.get_by_label("Years of experience").fill("2")
    team_input = page.get_by_label("Team or institution")
    team_input.click()
    team_input.press_sequentially("mass  gen", delay=30)
    suggestions = page.get_by_test_id("team-suggestions").get_by_role("option")
    # County Hospital does not match what was typed; the list settles on the one team that does.
    expect(suggestions).to_have_count(1)
    suggestion = suggestions.first
    expect(suggestion).to_contain_text("Mass General")
    expect(suggestion).to_contain_text("1 reader")
    browser_page.screenshot("signup-team-suggestion.png")
    suggestion.click()
    assert team_input.input_value() == "Mass General"
    assert "You will join Mass General" in page.locator("#team-status").text_content()
    page.locator("[name=consent]").check()
    page.get_by_role("button", name="Start reading").click()
    page.wait_for_url(f"{live_server.url}/")

    reader = Reader.objects.select_related("team").get(display_name="Dr Browser Team")
    assert reader.team == general
    for case in cases:
        ReadFactory(case=case, reader=reader)

    page.goto(f"{live_server.url}/leaderboard/")
    teams_board = page.get_by_test_id("team-leaderboard")
    rows = teams_board.locator(".lb-row")
    assert rows.count() == 2
    assert "Mass General" in rows.nth(0).text_content() and "4" in rows.nth(0).text_content()
    assert "2 readers" in rows.nth(0).text_content()
    assert "County Hospital" in rows.nth(1).text_content()
    # The reader's own team is highlighted, like their own row on the reader board.
    assert "lb-me" in rows.nth(0).get_attribute("class")
    assert "Mass General" in page.get_by_test_id("leaderboard").locator(".lb-me").text_content()
    browser_page.screenshot("leaderboard-teams.png")

    page.goto(f"{live_server.url}/leaderboard/?display=booth")
    booth_board = page.get_by_test_id("team-leaderboard")
    assert booth_board.is_visible() and "Mass General" in booth_board.text_content()
    browser_page.screenshot("leaderboard-booth-teams.png")
    assert browser_page.errors == [] or all("WebSocket" in error for error in browser_page.errors), browser_page.errors
