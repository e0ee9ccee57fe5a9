"""Task instructions: the console's preview shows exactly the HTML the reading page gives readers."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import ReaderFactory, TaskFactory

INSTRUCTIONS = """\
## Measure the largest lesion

1. Scroll to the **largest** slice
2. Draw the long axis

| tool | key |
| --- | --- |
| line | L |

<script>alert(1)</script> <img src="x" onerror="alert(1)"> [help](https://example.org) [bad](javascript:alert(1))
"""


@pytest.mark.django_db
def test_the_console_preview_is_the_html_readers_see(admin_client):
    task = TaskFactory(instructions_md=INSTRUCTIONS)
    reader_client = APIClient()
    reader_client.force_login(ReaderFactory().user)

    preview = admin_client.post(
        reverse("console:api-markdown"), {"markdown": INSTRUCTIONS}, content_type="application/json"
    ).json()["html"]
    reading = next(t for t in reader_client.get("/api/tasks/").json() if t["id"] == task.pk)["instructions_html"]

    assert preview == reading
    assert "<table>" in reading and "<ol>" in reading
    assert "<script" not in reading and "onerror" not in reading and "javascript:" not in reading
