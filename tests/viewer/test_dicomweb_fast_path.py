"""The ASGI fast path for DICOMweb reads answers byte for byte what the Django path answers."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.asgi_calls import asgi_request
from tests.factories import UserFactory, admin_user
from viewer.dicomweb import access, asgi_fast
from viewer.services import image_cache

# The fast path runs views on worker threads, which must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


async def _call(app, path: str, *, query: str = "", headers: dict[str, str], method: str = "GET"):
    return await asgi_request(app, path, method=method, query=query, headers=headers)


def get(app, path: str, **kwargs):
    return asyncio.run(_call(app, path, **kwargs))


def without_boundary(headers: list[tuple[str, str]], body: bytes) -> tuple[list, bytes]:
    """Replace the random multipart boundary so two answers can be compared exactly."""
    found = re.search(r'boundary="?([^";]+)"?', dict(headers).get("Content-Type", ""))
    if not found:
        return headers, body
    boundary = found.group(1)
    return (
        [(name, value.replace(boundary, "BOUNDARY")) for name, value in headers],
        body.replace(boundary.encode(), b"BOUNDARY"),
    )


@pytest.fixture
def apps():
    django_app = get_asgi_application()
    return django_app, asgi_fast.fast_path_application(get_asgi_application())


@pytest.fixture
def urls(small_ct_series):
    instance = small_ct_series.instances.order_by("sort_position_mm").first()
    series = (
        f"/dicomweb/studies/{small_ct_series.study.study_instance_uid}/series/{small_ct_series.series_instance_uid}"
    )
    sop = f"{series}/instances/{instance.sop_instance_uid}"
    return {"series": series, "instance": sop}


@pytest.fixture
def token_header():
    return {"Authorization": f"Token {Token.objects.create(user=admin_user()).key}"}


@pytest.fixture
def session_header():
    client = Client()
    client.force_login(admin_user())
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}


@pytest.fixture(autouse=True)
def fresh_memos():
    access.forget_everything()
    image_cache.clear_process_cache()
    yield
    access.forget_everything()


def assert_same_answer(apps, path: str, **kwargs):
    """Compare both paths from the same memo state: first with cold memos, then with warm ones."""
    django_app, fast_app = apps
    access.forget_everything()
    expected = get(django_app, path, **kwargs)
    access.forget_everything()
    actual = get(fast_app, path, **kwargs)
    warm_expected = get(django_app, path, **kwargs)
    warm_actual = get(fast_app, path, **kwargs)
    for ours, theirs in ((actual, expected), (warm_actual, warm_expected)):
        assert ours[0] == theirs[0]
        assert without_boundary(ours[1], ours[2]) == without_boundary(theirs[1], theirs[2])
    return actual


CASES = [
    ("instance", "/frames/1", "", {"Accept": FRAMES_ACCEPT}, 200),
    ("instance", "/frames/1", "", {"Accept": "application/octet-stream"}, 200),
    ("instance", "/frames/1/rendered", "window=40,400,linear", {"Accept": "image/png"}, 200),
    ("instance", "/rendered", "viewport=64,64", {"Accept": "image/jpeg"}, 200),
    ("instance", "/thumbnail", "", {"Accept": "image/jpeg"}, 200),
    ("instance", "/metadata", "", {"Accept": "application/dicom+json"}, 200),
    ("series", "/metadata", "", {"Accept": "application/dicom+json"}, 200),
    ("series", "/thumbnail", "", {"Accept": "image/png"}, 200),
    ("instance", "/frames/99", "", {"Accept": FRAMES_ACCEPT}, 400),
    ("instance", "/frames/0,x", "", {"Accept": FRAMES_ACCEPT}, 400),
    ("instance", "/frames/1/rendered", "window=nonsense", {"Accept": "image/png"}, 400),
    ("instance", "/frames/1", "", {"Accept": "image/gif"}, 406),
    ("instance", "/metadata", "", {"Accept": "image/png"}, 406),
]


@pytest.mark.parametrize("auth", ["token_header", "session_header"])
@pytest.mark.parametrize(("base", "suffix", "query", "headers", "status"), CASES)
def test_fast_path_answers_exactly_like_django(apps, urls, request, auth, base, suffix, query, headers, status):
    auth_headers = request.getfixturevalue(auth)
    answer = assert_same_answer(apps, urls[base] + suffix, query=query, headers={**headers, **auth_headers})
    assert answer[0] == status


@pytest.mark.parametrize("suffix", ["/frames/1", "/frames/1/rendered", "/metadata"])
def test_conditional_request_with_the_etag_gets_304_from_both_paths(apps, urls, token_header, suffix):
    headers = {"Accept": FRAMES_ACCEPT if suffix == "/frames/1" else "*/*", **token_header}
    if suffix == "/metadata":
        headers["Accept"] = "application/dicom+json"
    _, first_headers, _ = get(apps[1], urls["instance"] + suffix, headers=headers)
    etag = dict(first_headers)["ETag"]
    answer = assert_same_answer(apps, urls["instance"] + suffix, headers={**headers, "If-None-Match": etag})
    assert answer[0] == 304
    assert answer[2] == b""


def test_anonymous_request_gets_the_same_401_and_no_pixels(apps, urls):
    status, headers, body = assert_same_answer(apps, urls["instance"] + "/frames/1", headers={"Accept": FRAMES_ACCEPT})
    assert status == 401
    assert dict(headers)["WWW-Authenticate"].startswith("Token")
    assert b"not_authenticated" in body


def test_bad_token_and_bad_session_get_401(apps, urls):
    for headers in ({"Authorization": "Token not-a-token"}, {"Cookie": f"{settings.SESSION_COOKIE_NAME}=nonsense"}):
        status, _, _ = assert_same_answer(apps, urls["instance"] + "/frames/1/rendered", headers=headers)
        assert status == 401


def test_user_without_access_gets_404_and_no_pixels(apps, urls):
    key = Token.objects.create(user=UserFactory()).key
    for suffix in ("/frames/1", "/frames/1/rendered", "/metadata"):
        status, _, body = assert_same_answer(apps, urls["instance"] + suffix, headers={"Authorization": f"Token {key}"})
        assert status == 404
        assert b"not_found" in body
    status, _, _ = assert_same_answer(apps, urls["series"] + "/metadata", headers={"Authorization": f"Token {key}"})
    assert status == 404


def test_unknown_uid_gets_the_same_404(apps, urls, token_header):
    path = urls["series"] + "/instances/1.2.3.999/frames/1"
    status, _, _ = assert_same_answer(apps, path, headers={"Accept": FRAMES_ACCEPT, **token_header})
    assert status == 404


def test_cached_answers_are_served_on_the_event_loop_without_a_thread(apps, urls, token_header, monkeypatch):
    _, fast_app = apps
    path = urls["instance"] + "/frames/1"
    headers = {"Accept": FRAMES_ACCEPT, **token_header}
    first = get(fast_app, path, headers=headers)  # warms user, decision, instance and frame caches

    def no_threads(*args, **kwargs):
        raise AssertionError("a warm read went to a worker thread")

    monkeypatch.setattr(asgi_fast, "sync_to_async", no_threads)
    status, _, body = get(fast_app, path, headers=headers)
    assert (status, len(body)) == (first[0], len(first[2])) == (200, len(first[2]))


def test_head_and_other_routes_go_to_django(apps, urls, token_header):
    for path, method in ((urls["instance"] + "/frames/1", "HEAD"), ("/dicomweb/studies", "GET")):
        assert_same_answer(apps, path, method=method, headers={"Accept": "application/dicom+json", **token_header})


def test_scrolling_a_series_looks_its_instances_up_in_one_query(small_ct_series, django_assert_max_num_queries):
    user = admin_user()
    instances = list(small_ct_series.instances.all())
    study_uid, series_uid = small_ct_series.study.study_instance_uid, small_ct_series.series_instance_uid
    access.visible_instance(
        user=user, study_uid=study_uid, series_uid=series_uid, sop_uid=instances[0].sop_instance_uid
    )
    with django_assert_max_num_queries(0):
        found = [
            access.visible_instance(user=user, study_uid=study_uid, series_uid=series_uid, sop_uid=i.sop_instance_uid)
            for i in instances
        ]
    assert [i.pk for i in found] == [i.pk for i in instances]


def test_a_first_request_keeps_its_jpeg_ls_encoding_but_never_writes_native_slices_to_disk(
    apps, urls, token_header, small_ct_series
):
    from viewer.dicomweb.delivery import LOSSLESS_CACHE, frame_key, warm_series

    instance = small_ct_series.instances.order_by("sort_position_mm").first()
    assert get(apps[1], urls["instance"] + "/frames/1", headers={"Accept": FRAMES_ACCEPT, **token_header})[0] == 200
    assert image_cache.contains(LOSSLESS_CACHE, frame_key(instance, 1))
    warm_series(small_ct_series)
    assert not image_cache.contains("frames", frame_key(instance, 1))


def test_a_frame_not_yet_cached_is_decoded_on_a_worker_thread_not_the_event_loop(
    apps, urls, token_header, small_ct_series, monkeypatch
):
    _, fast_app = apps
    headers = {"Accept": FRAMES_ACCEPT, **token_header}
    assert get(fast_app, urls["instance"] + "/frames/1", headers=headers)[0] == 200  # memos now hold the series
    other = small_ct_series.instances.order_by("sort_position_mm").last()
    threaded = []

    def recording_sync_to_async(function, **kwargs):
        threaded.append(function.__name__)
        return asgi_fast.sync_to_async.__wrapped__(function, **kwargs)

    recording_sync_to_async.__wrapped__ = asgi_fast.sync_to_async
    monkeypatch.setattr(asgi_fast, "sync_to_async", recording_sync_to_async)
    path = f"{urls['series']}/instances/{other.sop_instance_uid}/frames/1/rendered"
    assert get(fast_app, path, headers={**token_header, "Accept": "image/png"})[0] == 200
    assert threaded == ["_answer"]


def test_the_fast_path_stays_on_with_the_projects_middleware():
    # A middleware it does not know turns the fast path off for every request (all frames through Django).
    fast = asgi_fast.fast_path_application(get_asgi_application())

    fast.middleware = fast._load_middleware()

    assert fast.enabled
