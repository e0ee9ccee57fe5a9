"""The answer-key page (/read/answer-key/<case>/): the reading viewer in answer-key mode, for admins
only, on gold cases only; and the console task page that links to it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import CaseFactory, ReaderFactory, SeriesFactory, TaskFactory, admin_user, researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold_and_plain():
    task = TaskFactory()
    gold = CaseFactory(task=task, series=SeriesFactory(), is_gold=True, label="Gold one")
    plain = CaseFactory(task=task, series=SeriesFactory(), label="Plain one")
    return task, gold, plain


def test_an_admin_gets_the_viewer_in_answer_key_mode_with_the_way_back_to_the_task(client, gold_and_plain):
    task, gold, _ = gold_and_plain
    client.force_login(admin_user())

    response = client.get(reverse("annotations:read-answer-key", args=[gold.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-answer-key-case="{gold.pk}"' in html
    assert f'data-return-url="{reverse("console:task-dashboard", args=[task.pk])}"' in html
    assert 'data-submit-label="Save answer key"' in html
    assert "never counts as a crowd read" in html


def test_researchers_and_readers_are_refused_and_strangers_sent_to_sign_in(client, gold_and_plain):
    _, gold, _ = gold_and_plain
    url = reverse("annotations:read-answer-key", args=[gold.pk])

    assert client.get(url).status_code == 302
    assert client.get(url)["Location"].startswith("/console/login/")
    client.force_login(researcher_user())
    assert client.get(url).status_code == 403
    client.force_login(ReaderFactory().user)
    assert client.get(url).status_code == 403


def test_a_case_that_is_not_gold_has_no_answer_key_page(client, gold_and_plain):
    _, _, plain = gold_and_plain
    client.force_login(admin_user())

    assert client.get(reverse("annotations:read-answer-key", args=[plain.pk])).status_code == 404


def test_the_task_page_links_each_gold_case_to_its_answer_key_for_admins_only(client, gold_and_plain):
    task, gold, plain = gold_and_plain
    link = reverse("annotations:read-answer-key", args=[gold.pk])
    dashboard = reverse("console:task-dashboard", args=[task.pk])

    client.force_login(admin_user())
    html = client.get(dashboard).content.decode()
    assert f'href="{link}">Draw answer key' in html
    assert reverse("annotations:read-answer-key", args=[plain.pk]) not in html

    client.force_login(researcher_user())
    html = client.get(dashboard).content.decode()
    assert "Gold one" in html and link not in html
