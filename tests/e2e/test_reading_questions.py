"""Task questions on the reading page in a real headless Chromium: a reader answers the lesion's
type and the case's confidence (one of them with a number key), is stopped by Submit while a
required answer is missing, and the stored read carries the answers; an admin draws a gold case's
answer key in the same viewer."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_reading_page import READY, draw_long_axis_across_lesion, sign_up_and_open_reading

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONFIDENCE = {
    "key": "confidence",
    "kind": "likert",
    "label": "Confidence",
    "help": "How sure are you of your measurements?",
    "required": True,
    "scale": {"min": 1, "max": 5, "min_label": "Unsure", "max_label": "Certain"},
}


@pytest.fixture
def task_with_questions(demo_task):
    """The e2e demo task asking the lesion type preset per lesion and a required confidence per case."""
    from annotations.questions.presets import lesion_type_question
    from annotations.questions.services import save_questions

    save_questions(task=demo_task, lesion=[lesion_type_question()], case=[CONFIDENCE])
    return demo_task


def focused_question(page) -> str | None:
    return page.evaluate("() => document.activeElement.closest('[data-question]')?.dataset.question ?? null")


def test_a_reader_is_stopped_by_a_missing_answer_answers_with_a_number_key_and_the_read_keeps_the_answers(
    live_server, viewer_bundle, task_with_questions, browser_page, tmp_path
):
    from annotations.models import Read

    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, task_with_questions.pk, "Dr Questions")
    case_id = page.evaluate("() => window.readerboardViewer.caseId()")
    case_questions = page.get_by_test_id("case-questions")
    assert case_questions.get_by_text("Confidence").is_visible()
    assert "How sure are you" in case_questions.inner_text()

    draw_long_axis_across_lesion(page)
    lesion_type = page.locator(".lesion-questions [data-question=lesion_type]")
    lesion_type.wait_for()
    assert lesion_type.get_by_text("Liver").is_visible() and lesion_type.get_by_text("Soft tissue").is_visible()

    # Submit with nothing answered: the first missing answer is named and gets the keyboard.
    page.locator("#submit").click()
    message = page.get_by_test_id("form-message")
    assert message.text_content() == "Lesion 1: Lesion type is required (and 1 more)."
    assert focused_question(page) == "lesion_type"

    # "1" on the focused question picks its first option (Lung, where the lesion sits), not the first preset.
    window_before = page.locator("#window-label").text_content()
    page.keyboard.press("1")
    assert lesion_type.get_by_role("radio", name="Lung").is_checked()
    assert page.locator("#window-label").text_content() == window_before
    assert page.evaluate("() => window.readerboardViewer.answers().lesions['1']") == {"lesion_type": "lung"}

    # The answer lives in the draft with the line: a reload brings both back.
    page.wait_for_function(
        "() => Object.keys(localStorage).some((k) => k.startsWith('readerboard:draft:') "
        '&& localStorage.getItem(k).includes(\'"lesion_type":"lung"\'))'
    )
    page.reload()
    page.wait_for_function(READY, timeout=60_000)
    assert page.evaluate("() => window.readerboardViewer.caseId()") == case_id
    lesion_type.wait_for()
    assert lesion_type.get_by_role("radio", name="Lung").is_checked()

    # The case's confidence is still missing: Submit says so, by name, and stores nothing.
    page.locator("#submit").click()
    assert message.text_content() == "Case: Confidence is required."
    assert focused_question(page) == "confidence"
    assert not Read.objects.filter(reader__display_name="Dr Questions").exists()

    case_questions.locator("label.option", has_text="4").click()
    assert message.text_content() == "", "the message goes once the missing answer is given"
    shot = browser_page.screenshot("viewer-questions.png")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "images" / "viewer-questions.png")

    page.locator("#submit").click()
    page.wait_for_function(
        f"() => window.readerboardViewer.ready() && window.readerboardViewer.caseId() !== {case_id}", timeout=60_000
    )
    read = Read.objects.get(reader__display_name="Dr Questions")
    assert read.document["question_version"] == 1
    assert read.document["answers"] == {"confidence": 4}
    assert [lesion["answers"] for lesion in read.document["lesions"]] == [{"lesion_type": "lung"}]
    assert read.answers == {"case": {"confidence": 4}, "lesions": {"1": {"lesion_type": "lung"}}}
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors
    assert_answers_exported(read, tmp_path)


def assert_answers_exported(read, tmp_path) -> None:
    """The reader's answers are in the reads CSV and in the read's TID 1500 SR, as researchers get them."""
    import csv
    import io
    import zipfile

    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from annotations.exports import export_to_path

    task = read.case.task
    with open(export_to_path(task=task, fmt="csv", out=tmp_path / "reads.csv").path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["read_id"] == str(read.pk)]
    assert rows and {row["lesion_answer_lesion_type"] for row in rows if row["lesion_index"]} == {"lung"}
    assert {row["case_answer_confidence"] for row in rows} == {"4"}

    with zipfile.ZipFile(export_to_path(task=task, fmt="sr", out=tmp_path / "sr.zip").path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(f"read-{read.pk}-v1.dcm")]
        sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(archive.read(name))))
    (group,) = sr.content.get_image_measurement_groups()
    assert group.finding_type == codes.SCT.Lung


@pytest.mark.parametrize(("device", "width", "height"), [("phone", 390, 844), ("tablet", 820, 1180)])
def test_on_a_phone_or_tablet_the_missing_answer_is_scrolled_into_the_panel_and_answered_by_touch(
    live_server, viewer_bundle, task_with_questions, chromium, device, width, height
):
    from annotations.models import Read
    from tests.e2e.conftest import _close, _open_page

    opened = _open_page(chromium, width=width, height=height, touch=True)
    try:
        page = opened.page
        sign_up_and_open_reading(opened, live_server.url, task_with_questions.pk, f"{device.title()} Questions")
        assert page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight + 1"), "no page scroll"
        draw_long_axis_across_lesion(page)
        page.locator(".lesion-questions label.option", has_text="Lung").tap()
        page.locator("#submit").tap()
        assert page.get_by_test_id("form-message").text_content() == "Case: Confidence is required."
        # The question sits in the panel's scrolled view, above the pinned Submit, with finger-sized options.
        option = page.get_by_test_id("case-questions").locator("label.option", has_text="5")
        box, submit = option.bounding_box(), page.locator("#submit").bounding_box()
        assert box["y"] >= page.locator(".side-panel").bounding_box()["y"] and box["y"] + box["height"] <= submit["y"]
        assert box["height"] >= 44 and box["width"] >= 44
        shot = opened.screenshot(f"viewer-questions-{device}.png")
        if device == "phone":
            shutil.copyfile(shot, ROOT / "docs" / "images" / "viewer-questions-phone.png")
        option.tap()
        case_id = page.evaluate("() => window.readerboardViewer.caseId()")
        page.locator("#submit").tap()
        page.wait_for_function(f"() => window.readerboardViewer.caseId() !== {case_id}", timeout=60_000)
        read = Read.objects.get(reader__display_name=f"{device.title()} Questions")
        assert read.answers == {"case": {"confidence": 5}, "lesions": {"1": {"lesion_type": "lung"}}}
        assert not [e for e in opened.errors if "pageerror" in e], opened.errors
    finally:
        _close(opened)


EVERY_KIND = [
    {
        "key": "findings",
        "kind": "multiple_choice",
        "label": "Findings",
        "help": "Tick all that apply.",
        "required": False,
        "options": [
            {"value": "calcified", "label": "Calcified", "code": None},
            {"value": "necrotic", "label": "Necrotic", "code": None},
            {"value": "cavitated", "label": "Cavitated", "code": None},
        ],
    },
    {
        "key": "liver_span",
        "kind": "number",
        "label": "Liver span",
        "help": "",
        "required": True,
        "number": {
            "min": 50,
            "max": 300,
            "integer": False,
            "unit": {"value": "mm", "scheme": "UCUM", "meaning": "millimeter"},
        },
    },
    {"key": "contrast", "kind": "yes_no", "label": "Contrast given", "help": "", "required": True},
    {"key": "remark", "kind": "text", "label": "Remark", "help": "", "required": False, "max_length": 200},
]


def test_every_kind_of_case_question_is_answered_through_its_controls(
    live_server, viewer_bundle, demo_task, browser_page
):
    from annotations.models import Read
    from annotations.questions.services import save_questions

    save_questions(task=demo_task, lesion=[], case=[CONFIDENCE, *EVERY_KIND])
    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Every Kind")
    questions = page.get_by_test_id("case-questions")
    assert "(50 to 300 mm)" in questions.inner_text()

    page.get_by_role("button", name="No measurable lesion").click()
    questions.locator("[data-question=confidence] label.option", has_text="3").click()
    # Number keys toggle options of a focused multiple-choice question.
    questions.get_by_role("checkbox", name="Calcified").focus()
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.locator("#submit").click()
    assert page.get_by_test_id("form-message").text_content() == "Case: Liver span is required (and 1 more)."
    page.keyboard.type("400")
    page.locator("#submit").click()
    assert page.get_by_test_id("form-message").text_content() == "Case: Liver span: must be 50 to 300 mm (and 1 more)."
    questions.get_by_role("spinbutton").fill("142.5")
    questions.locator("[data-question=contrast] label.option", has_text="No").click()
    questions.get_by_role("textbox").fill("  fatty liver  ")
    case_id = page.evaluate("() => window.readerboardViewer.caseId()")
    page.locator("#submit").click()
    page.wait_for_function(f"() => window.readerboardViewer.caseId() !== {case_id}", timeout=60_000)

    read = Read.objects.get(reader__display_name="Every Kind")
    assert read.document["answers"] == {
        "confidence": 3,
        "findings": ["calcified", "cavitated"],
        "liver_span": 142.5,
        "contrast": False,
        "remark": "fatty liver",
    }
    assert read.no_lesion
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors


def sign_in_as_admin(browser_page, live_server) -> None:
    """Put a signed-in admin's session cookie into the browser (the console login page is tested elsewhere)."""
    from django.test import Client

    from tests.factories import admin_user

    client = Client()
    client.force_login(admin_user(username="gold-admin"))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_an_admin_draws_a_gold_case_answer_key_in_the_viewer_and_finds_it_again(
    live_server, viewer_bundle, task_with_questions, browser_page
):
    from annotations.models import Read

    page = browser_page.page
    task = task_with_questions
    gold = task.cases.filter(is_gold=True).order_by("id").first()
    sign_in_as_admin(browser_page, live_server)

    page.goto(f"{live_server.url}/console/tasks/{task.pk}/")
    page.get_by_role("link", name="Draw answer key").first.click()
    page.wait_for_url(f"**/read/answer-key/{gold.pk}/")
    page.wait_for_function(READY, timeout=60_000)
    assert page.evaluate("() => window.readerboardViewer.caseId()") == gold.pk
    assert "never counts as a crowd read" in page.get_by_test_id("answer-key-banner").inner_text()
    assert "None stored yet." in page.get_by_test_id("answer-key-banner").inner_text()

    drawn_mm = draw_long_axis_across_lesion(page)
    page.locator(".lesion-questions label.option", has_text="Lung").click()
    page.get_by_test_id("case-questions").locator("label.option", has_text="5").click()
    browser_page.screenshot("answer-key.png")
    page.get_by_role("button", name="Save answer key").click()
    page.wait_for_url(f"**/console/tasks/{task.pk}/")
    assert "answer key drawn" in page.locator("#answer-keys").inner_text()
    page.locator("#answer-keys").scroll_into_view_if_needed()
    browser_page.screenshot("answer-key-dashboard.png")

    key = Read.all_objects.get(case=gold, is_answer_key=True)
    assert key.answers == {"case": {"confidence": 5}, "lesions": {"1": {"lesion_type": "lung"}}}
    assert abs(key.document["lesions"][0]["long_axis"]["length_mm"] - drawn_mm) < 0.1
    assert not Read.objects.filter(case=gold).exists(), "an answer key is never a crowd read"

    # Opening it again shows the stored line and answers for editing.
    page.get_by_role("link", name="Edit answer key").first.click()
    page.wait_for_function(READY, timeout=60_000)
    assert "Stored: version 1 by gold-admin" in page.get_by_test_id("answer-key-banner").inner_text()
    page.locator("[data-testid=long-axis-mm]").first.wait_for()
    assert abs(float(page.locator("[data-testid=long-axis-mm]").first.text_content()) - drawn_mm) < 0.1
    page.locator(".lesion-questions [data-question=lesion_type]").wait_for()
    assert page.locator(".lesion-questions").get_by_role("radio", name="Lung").is_checked()
    assert page.get_by_test_id("case-questions").get_by_role("radio", name="5, Certain").is_checked()
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors
