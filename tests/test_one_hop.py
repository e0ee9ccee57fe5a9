"""The reading API's hot paths in one thread hop answer exactly what Django's ASGI handler answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.core.asgi import get_asgi_application

from readerboard import one_hop
from tests.asgi_calls import asgi_request
from tests.factories import TaskFactory

# Views run on the one-hop pool's threads, which must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

CSRF_SECRET = "k" * 32


async def _call(app, path: str, *, method: str = "GET", body: bytes = b"", cookies: dict[str, str] | None = None):
    all_cookies = {"csrftoken": CSRF_SECRET, **(cookies or {})}
    headers = {
        "cookie": "; ".join(f"{name}={value}" for name, value in all_cookies.items()),
        "x-csrftoken": CSRF_SECRET,
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    return await asgi_request(app, path, method=method, headers=headers, body=body)


def call(app, path: str, **kwargs):
    return asyncio.run(_call(app, path, **kwargs))


def session_of(headers: list[tuple[str, str]]) -> str:
    cookie = next(value for name, value in headers if name == "Set-Cookie" and value.startswith("sessionid="))
    return cookie.split(";", 1)[0].removeprefix("sessionid=")


def signup(app, name: str):
    document = {"display_name": name, "pin": "48213", "role": "trainee", "years_experience": 3, "consent": True}
    return call(app, "/api/signup/", method="POST", body=json.dumps(document).encode())


@pytest.fixture
def hops(monkeypatch):
    """The one-hop app over Django's, counting the requests it answered itself."""
    answered = []
    original = one_hop._SyncHandler.respond

    def counting(handler, scope, body_file):
        answered.append(scope["path"])
        return original(handler, scope, body_file)

    monkeypatch.setattr(one_hop._SyncHandler, "respond", counting)
    return one_hop.one_hop_application(get_asgi_application()), answered


def test_a_reader_signs_up_and_lists_tasks_through_one_hop_with_the_answers_django_gives(hops):
    app, answered = hops
    django_app = get_asgi_application()
    TaskFactory(name="Lung nodules")

    status, headers, content = signup(app, "Hop Reader")
    assert status == 201, content
    session = session_of(headers)
    hop_answers = [call(app, path, cookies={"sessionid": session}) for path in ("/api/me/", "/api/tasks/")]
    django_answers = [call(django_app, path, cookies={"sessionid": session}) for path in ("/api/me/", "/api/tasks/")]

    assert answered == ["/api/signup/", "/api/me/", "/api/tasks/"]
    for hop_answer, django_answer in zip(hop_answers, django_answers, strict=True):
        assert hop_answer[0] == django_answer[0] == 200
        assert json.loads(hop_answer[2]) == json.loads(django_answer[2])
        assert dict(hop_answer[1])["Content-Type"] == dict(django_answer[1])["Content-Type"]
    assert json.loads(hop_answers[0][2])["display_name"] == "Hop Reader"
    assert [task["name"] for task in json.loads(hop_answers[1][2])] == ["Lung nodules"]


def test_errors_are_answered_as_django_answers_them(hops):
    app, answered = hops
    django_app = get_asgi_application()
    malformed = json.dumps({"display_name": "X", "pin": "12"}).encode()

    hop = call(app, "/api/signup/", method="POST", body=malformed)
    plain = call(django_app, "/api/signup/", method="POST", body=malformed)
    signed_out = call(app, "/api/me/")

    assert hop[0] == plain[0] == 400
    assert json.loads(hop[2]) == json.loads(plain[2])
    assert set(json.loads(hop[2])["errors"]) >= {"display_name", "pin"}
    assert signed_out[0] == 401 and answered == ["/api/signup/", "/api/me/"]


def test_other_routes_go_to_the_wrapped_application(hops):
    app, answered = hops

    status, _, content = call(app, "/healthz")

    assert status == 200 and answered == []
