"""The task builder's questions in Chromium: a preset in one click, a Likert question by hand, saved as version 1."""

from __future__ import annotations

import json
import re

import pytest

from annotations.models import Task
from annotations.questions.services import current_question_set
from tests.factories import admin_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_builds_lesion_and_case_questions_with_a_preset_and_by_hand(
    browser_page, live_server, small_ct_series
):
    admin = admin_user(username="builder-admin")
    admin.set_password("builder-pass-1")
    admin.save()
    page = browser_page.page
    page.goto(f"{live_server.url}/console/login/?next=/console/tasks/new/")
    page.fill('input[name="username"]', "builder-admin")
    page.fill('input[name="password"]', "builder-pass-1")
    page.click('button[type="submit"], input[type="submit"]')
    page.wait_for_selector("#question-builder:not([hidden])")

    page.fill('input[name="name"]', "Builder task")
    page.check(f'input[name="series"][value="{small_ct_series.id}"]')
    page.click('.question-scope[data-scope="lesion"] button[data-preset="lesion_site"]')
    case_scope = page.locator('.question-scope[data-scope="case"]')
    case_scope.locator("button[data-add-kind]").click()
    question = case_scope.locator("li.question").first
    question.get_by_label("Kind").select_option("likert")
    question.get_by_label("Key").fill("confidence")
    question.get_by_label("Label", exact=True).fill("Confidence")
    question.get_by_label("Label at the high end").fill("Certain")
    question.get_by_label("Required").check()
    stored = json.loads(page.locator('textarea[name="questions_json"]').input_value())
    browser_page.screenshot("task-builder-questions.png")
    page.click('.form-actions button[type="submit"]')
    page.wait_for_url(re.compile(r"/console/tasks/\d+/$"))

    question_set = current_question_set(Task.objects.get(name="Builder task"))
    assert question_set.version == 1
    assert [q["key"] for q in question_set.lesion_questions] == ["lesion_site"]
    assert question_set.lesion_questions[0]["options"][0]["code"]["scheme"] == "SCT"
    assert question_set.case_questions == [
        {
            "key": "confidence",
            "kind": "likert",
            "label": "Confidence",
            "help": "",
            "required": True,
            "scale": {"min": 1, "max": 5, "min_label": "", "max_label": "Certain"},
        }
    ]
    assert stored["case"][0]["scale"]["max_label"] == "Certain"
    assert browser_page.errors == []
