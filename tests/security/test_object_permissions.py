"""Nobody sees what they should not: every URL of the URLconf, probed by an anonymous visitor and a reader.

The URL list is not written here: it is walked from Django's resolvers (HTTP) and the Channels
routes (WebSocket), so an endpoint added later is probed automatically, and the test fails until
it is either refused to these actors or named in an explicit allow-list with the reason it is public.
Every probe fills the URL's parameters with the ids and UIDs of objects the actor must not reach
(another reader's case in a closed task, its series, the researcher's export, the admin's import),
and no answer of any status may carry another reader's words, identity or any consensus figure.

Also here: CSRF on session writes, sign-in and sign-up rate limits, hashed PINs, no secrets in
tracked files, DEBUG off by default, and the upload limits and zip defences through the console API.
"""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from annotations.consensus import case_consensus as consensus
from annotations.console import uploads
from annotations.exports import run_export
from annotations.models import ExportJob, Lease, PredictionImportJob, Task
from annotations.reading.submission import submit_read
from tests.conftest import small_patient
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    TaskFactory,
    admin_user,
    read_document,
    researcher_user,
)
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import write_series

ROOT = Path(__file__).resolve().parents[2]
SECRET_COMMENT = "other-reader-secret-remark-7f3a"

# Anyone may load these; each line says why it is public.
PUBLIC_ROUTES = {
    "healthz": "load balancer probe; answers check names only",
    "openapi-schema": "the API's shape is public documentation, not data",
    "api-docs": "Swagger UI over that schema",
    "api:signup": "how a booth visitor becomes a reader",
    "api:login": "sign-in (rate limited)",
    "api:logout": "ending a session needs no rights",
    "api:leaderboard": "the booth's big screen: names, roles, counts",
    "api:teams": "team names for the sign-up form (the same names the public board shows)",
    "annotations:home": "landing page",
    "annotations:signup": "sign-up page",
    "annotations:login": "sign-in page",
    "annotations:logout": "sign-out form",
    "annotations:leaderboard": "the big-screen page",
    "console:login": "staff sign-in page",
    "console:logout": "staff sign-out",
    "console:invite": "invitation links carry their own signed token",
    "admin:login": "Django admin's own sign-in page",
    "admin:logout": "Django admin's sign-out",
    "admin:jsi18n": "admin's translation catalogue (static strings)",
}
# What a signed-in reader may additionally get a 2xx from, given the hostile parameters below.
READER_ROUTES = {
    "api:me": "their own standing",
    "api:tasks": "open tasks and their own counts",
    "dicomweb:studies": "QIDO search, filtered to series of open tasks",
    "dicomweb:all-series": "QIDO search, filtered to series of open tasks",
    "dicomweb:all-instances": "QIDO search, filtered to series of open tasks",
    "api:lease DELETE": "giving a case back is idempotent (204 held or not) and only drops the caller's own lease",
}
PUBLIC_WEBSOCKETS = {"ws/leaderboard/": "the booth's big screen"}
# Parameter names of the URLconf and the probe value for each; a new parameter name fails the test
# until a hostile sample is chosen for it here.
PARAMETERS = {
    "task_id": "closed_task",
    "case_id": "closed_case",
    "series_id": "closed_series_pk",
    "collection_id": "closed_collection_pk",
    "user_id": "other_user_pk",
    "id": "other_user_pk",
    "object_id": "other_read_pk",
    "content_type_id": "read_content_type",
    "upload_id": "upload_id",
    "name": "plot_name",
    "uidb64": "uidb64",
    "token": "token",
    "study_uid": "closed_study_uid",
    "series_uid": "closed_series_uid",
    "sop_uid": "closed_sop_uid",
    "patient_id": "closed_patient_id",
    "frame_list": "frame_list",
    "tag": "tag",
    "app_label": "app_label",
    "url": "catch_all",
    "job_id": None,  # an export job under exports:, an import job under console:
    "prediction_import_id": "prediction_import",
}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    path: str


def _routes(patterns, prefix: str = "", namespace: str | None = None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) if pattern.namespace else namespace
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            assert isinstance(pattern, URLPattern)
            name = f"{namespace}:{pattern.name}" if namespace else str(pattern.name)
            yield name, prefix + str(pattern.pattern)


def concrete_path(name: str, pattern: str, values: dict[str, str]) -> str:
    """The URL of `pattern` with every parameter replaced by the hostile sample for its name."""

    def value_for(param: str) -> str:
        assert param in PARAMETERS, f"{name} ({pattern}): choose a hostile sample for new URL parameter {param!r}"
        if param == "job_id":
            return values["export_job" if name.startswith("exports:") else "import_job"]
        return values[PARAMETERS[param]]

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: value_for(m.group(1)), pattern)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value_for(m.group(1)), path)
    return "/" + path.replace("^", "").replace("$", "")


def every_route(values: dict[str, str]) -> list[Route]:
    routes = [
        Route(name, pattern, concrete_path(name, pattern, values))
        for name, pattern in _routes(get_resolver().url_patterns)
    ]
    for route in routes:
        # The probe must hit the pattern it was made for, not a neighbour.
        match = resolve(route.path)
        if not route.name.endswith("None"):
            assert match.view_name == route.name, (route, match.view_name)
    return routes


# --- the world: two readers, an open and a closed task, consensus, an export and an upload --------


@pytest.fixture
def world(small_ct_series, tmp_path, settings, django_capture_on_commit_callbacks) -> dict:
    written = write_series(small_patient("RB-SEC-CLOSED", seed=5), tmp_path / "closed")
    import_paths(written.files, collection_name="Closed study")
    closed_series = Series.objects.get(series_instance_uid=written.series_instance_uid)
    tools = ["long_axis", "bidirectional", "mask", "no_lesion", "skip", "quality_problem"]
    open_task = TaskFactory(name="Open study", tools=tools, reads_per_case=3)
    closed_task = TaskFactory(name="Closed study", tools=tools, reads_per_case=3)
    open_case = CaseFactory(task=open_task, series=small_ct_series)
    closed_case = CaseFactory(task=closed_task, series=closed_series)
    me, other = ReaderFactory(display_name="Probing Reader"), ReaderFactory(display_name="Other Reader")
    other_reads = []
    with django_capture_on_commit_callbacks(execute=True):
        for case in (open_case, closed_case):
            LeaseFactory(case=case, reader=other)
            other_reads.append(submit_read(reader=other, document=read_document(case, comment=SECRET_COMMENT)).read)
    for case in (open_case, closed_case):
        assert consensus.compute_case_consensus(case=case) is not None
    researcher, admin = researcher_user(), admin_user()
    export = ExportJob.objects.create(task=closed_task, format="csv", requested_by=researcher, pseudonymise=False)
    run_export(job=export)
    # Control: the secrets are really there to be leaked (the researcher's export carries the comment).
    assert SECRET_COMMENT in (Path(settings.DATA_DIR) / export.file_path).read_text()
    job = uploads.create_import_job(user=admin, collection_name="Admin uploads")
    upload = uploads.register_upload(job=job, name="scan.dcm", size=10)
    prediction_import = PredictionImportJob.objects.create(task=closed_task, created_by=admin, model_name="probe")
    Task.objects.filter(pk=closed_task.pk).update(is_open=False)
    from django.contrib.contenttypes.models import ContentType

    closed_instance = closed_series.instances.first()
    values = {
        "closed_task": str(closed_task.pk),
        "closed_case": str(closed_case.pk),
        "closed_series_pk": str(closed_series.pk),
        "closed_collection_pk": str(closed_series.study.collection_id),
        "other_user_pk": str(other.user_id),
        "other_read_pk": str(other_reads[1].pk),
        "read_content_type": str(ContentType.objects.get_for_model(type(other_reads[1])).pk),
        "upload_id": upload.upload_id,
        "plot_name": "bland-altman",
        "uidb64": "MQ",
        "token": "guessed-token",
        "closed_study_uid": closed_series.study.study_instance_uid,
        "closed_series_uid": closed_series.series_instance_uid,
        "closed_sop_uid": closed_instance.sop_instance_uid,
        "closed_patient_id": closed_series.study.patient_id,
        "frame_list": "1",
        "tag": "7FE00010",
        "app_label": "annotations",
        "catch_all": "annotations/read/",
        "export_job": str(export.pk),
        "import_job": str(job.pk),
        "prediction_import": str(prediction_import.pk),
    }
    secrets_of_others = [
        SECRET_COMMENT,
        other.pseudonym,
        *(str(read.client_uuid) for read in other_reads),
        closed_series.series_instance_uid,
        closed_instance.sop_instance_uid,
        # Field names that only consensus and reader-quality payloads carry.
        "support_fraction",
        "inputs_hash",
        "low_agreement",
    ]
    return {
        "values": values,
        "me": me,
        "other": other,
        "open_task": open_task,
        "open_case": open_case,
        "closed_case": closed_case,
        "secrets": secrets_of_others,
    }


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def probe(client: Client, route: Route, method: str, login=None):
    if login is not None:
        client.force_login(login)
    return getattr(client, method)(route.path)


def leaks(body: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in body]


# --- blind reads, every URL -----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_anonymous_visitor_gets_nothing_but_the_public_pages_from_any_url(world):
    client = Client()
    opened = []
    for route in every_route(world["values"]):
        methods = ("get", "post") if route.name.startswith("admin:") else ("get", "post", "put", "delete")
        for method in methods:
            response = probe(client, route, method)
            unsent = [secret for secret in world["secrets"] if secret not in route.path]
            assert not leaks(body_of(response), unsent), (route.name, method, response.status_code)
            if 200 <= response.status_code < 300 and route.name not in PUBLIC_ROUTES:
                opened.append((route.name, method, response.status_code))
            if response.status_code in (301, 302):
                assert route.name in PUBLIC_ROUTES or "login" in response["Location"], (
                    route.name,
                    response["Location"],
                )
    assert opened == []


@pytest.mark.django_db
def test_a_reader_guessing_ids_and_uids_gets_no_other_readers_marks_consensus_exports_or_closed_images(world):
    client = Client()
    me = world["me"].user
    opened, leaked = [], []
    routes = every_route(world["values"])
    for route in routes:
        methods = ("get", "post") if route.name.startswith("admin:") else ("get", "post", "put", "delete")
        for method in methods:
            response = probe(client, route, method, login=me)
            # An error may echo the UID the reader sent; anything else it names is a leak.
            found = leaks(body_of(response), [s for s in world["secrets"] if s not in route.path])
            if found:
                leaked.append((route.name, method, response.status_code, found))
            allowed = {route.name, f"{route.name} {method.upper()}"} & (set(PUBLIC_ROUTES) | set(READER_ROUTES))
            if 200 <= response.status_code < 300 and not allowed:
                opened.append((route.name, method, response.status_code))
    assert leaked == []
    assert opened == []
    # The probe covered the endpoints that hold answers, not a subset that happened to be easy.
    names = {route.name for route in routes}
    assert {
        "exports:download",
        "console:case",
        "api:lease",
        "dicomweb:frames",
        "admin:annotations_read_change",
    } <= names


@pytest.mark.django_db
def test_a_reader_reads_their_own_case_and_still_sees_nothing_of_the_other_readers_read(world):
    client = Client()
    client.force_login(world["me"].user)
    offered = client.post(f"/api/tasks/{world['open_task'].pk}/next-case/")
    assert offered.status_code == 200
    case = offered.json()
    assert case["id"] == world["open_case"].pk
    metadata = client.get(
        f"/dicomweb/studies/{case['study_instance_uid']}/series/{case['series_instance_uid']}/metadata"
    )
    assert metadata.status_code == 200
    for body in (offered.content.decode(), body_of(metadata), client.get("/api/me/").content.decode()):
        assert not leaks(body, world["secrets"][:2])


@pytest.mark.django_db
def test_a_reader_cannot_take_a_lease_on_a_case_of_a_closed_task_by_its_id(world):
    client = Client()
    client.force_login(world["me"].user)
    answer = client.post(f"/api/cases/{world['closed_case'].pk}/lease/", {}, content_type="application/json")
    assert answer.status_code in (404, 409)
    assert not Lease.objects.filter(reader=world["me"], case=world["closed_case"]).exists()


@pytest.mark.django_db(transaction=True)
def test_every_websocket_but_the_leaderboard_refuses_a_reader(small_ct_series):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from readerboard.asgi import application
    from readerboard.routing import websocket_urlpatterns

    task = TaskFactory(is_open=True)
    reader = ReaderFactory()
    client = Client()
    client.force_login(reader.user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def connects(path: str) -> bool:
        communicator = WebsocketCommunicator(
            application,
            path,
            headers=[(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie)],
        )
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    probed = {}
    for pattern in websocket_urlpatterns:
        route = str(pattern.pattern)
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", str(task.pk), route)
        probed[route] = async_to_sync(connects)(path)
    assert {route for route, connected in probed.items() if connected} == set(PUBLIC_WEBSOCKETS)


# --- CSRF -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_session_authenticated_writes_without_a_csrf_token_are_refused(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["me"].user)
    case = world["open_case"]
    writes = [
        ("post", f"/api/tasks/{world['open_task'].pk}/next-case/", {}),
        ("post", f"/api/cases/{case.pk}/lease/", {}),
        ("delete", f"/api/cases/{case.pk}/lease/", None),
        ("post", "/api/reads/", read_document(case)),
        ("post", "/api/logout/", {}),
    ]
    for method, url, body in writes:
        response = getattr(client, method)(url, body, content_type="application/json")
        assert response.status_code == 403, (url, response.status_code)
        assert "CSRF" in response.content.decode(), url
    assert client.get("/api/me/").status_code == 200, "the refused logout must not have ended the session"


@pytest.mark.django_db
def test_sign_up_and_sign_in_need_a_csrf_token_even_without_a_session():
    client = Client(enforce_csrf_checks=True)
    signup = {"display_name": "Forged", "pin": "4821", "role": "trainee", "years_experience": 1, "consent": True}
    assert client.post("/api/signup/", signup, content_type="application/json").status_code == 403
    assert (
        client.post("/api/login/", {"display_name": "x", "pin": "1234"}, content_type="application/json").status_code
        == 403
    )
    client.get("/signup/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    ok = client.post("/api/signup/", signup, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 201


@pytest.mark.django_db
def test_a_staff_page_form_post_without_a_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user())
    response = client.post("/console/tasks/new/", {"name": "Forged task"})
    assert response.status_code == 403
    assert not Task.objects.filter(name="Forged task").exists()


# --- authentication ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pin_guessing_from_one_address_is_stopped_with_429_and_retry_after(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pin"}}
    reader = ReaderFactory(display_name="Target Reader")
    reader.user.set_password("4821")
    reader.user.save()
    client = Client()
    answers = [
        client.post(
            "/api/login/", {"display_name": "Target Reader", "pin": f"{pin:04d}"}, content_type="application/json"
        )
        for pin in range(30)
    ]
    codes = [answer.status_code for answer in answers]
    assert set(codes[:10]) == {400}
    assert codes[-1] == 429 and int(answers[-1]["Retry-After"]) > 0
    # Even the right PIN is refused while the limit holds, so guessing cannot be confirmed.
    right = client.post(
        "/api/login/", {"display_name": "Target Reader", "pin": "4821"}, content_type="application/json"
    )
    assert right.status_code == 429


@pytest.mark.django_db
def test_mass_sign_up_from_one_address_is_rate_limited(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "signup"}}
    client = Client()
    codes = []
    for number in range(25):
        body = {
            "display_name": f"Bot {number}",
            "pin": "4821",
            "role": "trainee",
            "years_experience": 1,
            "consent": True,
        }
        codes.append(client.post("/api/signup/", body, content_type="application/json").status_code)
        client.logout()
    assert codes.count(201) == 20 and codes[-1] == 429


@pytest.mark.django_db
def test_pins_are_stored_as_keyed_hashes_and_staff_passwords_as_strong_django_hashes():
    client = Client()
    body = {"display_name": "Hashed Reader", "pin": "583920", "role": "trainee", "years_experience": 1, "consent": True}
    assert client.post("/api/signup/", body, content_type="application/json").status_code == 201
    from annotations.models import Reader

    stored = Reader.objects.get(display_name="Hashed Reader").user.password
    assert "583920" not in stored
    # A PIN has 10^8 values at most: its hash is keyed with a secret outside the database (docs/security.md).
    assert identify_hasher(stored).algorithm == "rb_pin_hmac"
    staff = admin_user()
    assert identify_hasher(staff.password).algorithm in {"pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt"}


# --- configuration ----------------------------------------------------------------------------------

KEY_LIKE = [
    ("private key block", re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")),
    ("AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}")),
    ("Django SECRET_KEY literal", re.compile(r"SECRET_KEY\s*=\s*['\"][^'\"]{20,}['\"]")),
    (
        "password in a URL",
        re.compile(r"\b(?:postgres|postgresql|redis|rediss|amqp|mysql)://[^:/\s'\"]+:[^@/\s'\"]{3,}@"),
    ),
    (
        "assigned secret",
        re.compile(r"(?i)\b(?:aws_secret_access_key|api_key|secret_access_key)\s*[=:]\s*['\"]?[A-Za-z0-9/+]{20,}"),
    ),
]
# Strings that look like secrets but are documented placeholders.
PLACEHOLDERS = ("change-me", "example", "<", "${", "xxxxx", "your-", ":password@", "secret-pw", "dummy", "fake")


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_key_like_secret_is_in_any_file_of_the_repository():
    found = []
    for path in tracked_files():
        if (
            path.suffix in {".dcm", ".png", ".jpg", ".svg", ".wasm", ".ico", ".gz", ".zip"}
            or path.stat().st_size > 2_000_000
        ):
            continue
        text = path.read_text(errors="ignore")
        for label, pattern in KEY_LIKE:
            for match in pattern.finditer(text):
                if not any(placeholder in match.group(0).lower() for placeholder in PLACEHOLDERS):
                    found.append((str(path.relative_to(ROOT)), label, match.group(0)[:40]))
    assert found == []
    assert not any(path.name in {".env", "secret_key", "id_rsa"} for path in tracked_files())


def test_debug_is_off_when_the_environment_says_nothing(tmp_path):
    import json
    import os
    import sys

    env = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    }
    env["READERBOARD_DATA_DIR"] = str(tmp_path)
    code = (
        "import os, json; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'readerboard.settings');"
        "import django; django.setup(); from django.conf import settings;"
        "print(json.dumps([settings.DEBUG, settings.SESSION_COOKIE_HTTPONLY, settings.X_FRAME_OPTIONS]))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == [False, True, "DENY"]


@pytest.mark.django_db
def test_an_unknown_url_answers_a_plain_404_without_the_debug_page(client):
    response = client.get("/api/no-such-endpoint/")
    assert response.status_code == 404
    assert b"URLconf" not in response.content and b"Traceback" not in response.content


# --- uploads ----------------------------------------------------------------------------------------


def zip_bytes(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name) if name.startswith("/") else name, content)
    return buffer.getvalue()


def upload_and_import(client, name: str, content: bytes) -> dict:
    job = client.post("/api/console/imports/", {"collection": "Hostile"}, content_type="application/json").json()
    registered = client.post(
        f"/api/console/imports/{job['id']}/files/",
        {"name": name, "size": len(content)},
        content_type="application/json",
    )
    assert registered.status_code == 201, registered.content
    url = f"/api/console/imports/{job['id']}/files/{registered.json()['upload_id']}/"
    assert client.put(f"{url}?offset=0", content, content_type="application/octet-stream").status_code == 200
    assert client.post(f"/api/console/imports/{job['id']}/start/").status_code == 202
    return client.get(f"/api/console/imports/{job['id']}/").json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "members",
    [
        {"../../escaped.dcm": b"DICM"},
        {"/etc/escaped.dcm": b"DICM"},
        {"C:/escaped.dcm": b"DICM"},
    ],
    ids=["dot-dot", "absolute", "drive-letter"],
)
def test_a_zip_whose_members_would_escape_the_folder_is_refused_and_writes_nothing(
    admin_api, isolated_data_dir, members
):
    report = upload_and_import(admin_api, "hostile.zip", zip_bytes(members))
    assert report["summary"]["imported"] == 0
    assert any("unsafe zip" in row["reason"] for row in report["report"]), report["report"]
    assert not list(isolated_data_dir.parent.rglob("escaped.dcm"))
    assert not Path("/etc/escaped.dcm").exists()


@pytest.mark.django_db
def test_a_zip_bomb_is_refused_before_it_is_expanded(admin_api, isolated_data_dir, settings):
    settings.READERBOARD = {**settings.READERBOARD, "ZIP_MAX_RATIO": 200}
    bomb = zip_bytes({"bomb.dcm": b"\0" * 20_000_000})
    assert len(bomb) < 100_000
    report = upload_and_import(admin_api, "bomb.zip", bomb)
    assert report["summary"]["imported"] == 0
    assert any("zip bomb" in row["reason"] or "unsafe zip" in row["reason"] for row in report["report"])
    assert sum(path.stat().st_size for path in isolated_data_dir.rglob("bomb.dcm")) == 0


@pytest.mark.django_db
def test_a_zip_with_more_members_than_allowed_is_refused(admin_api, settings):
    settings.READERBOARD = {**settings.READERBOARD, "ZIP_MAX_FILES": 5}
    report = upload_and_import(admin_api, "many.zip", zip_bytes({f"f{i}.dcm": b"x" for i in range(6)}))
    assert report["summary"]["imported"] == 0
    assert any("unsafe zip" in row["reason"] for row in report["report"]), report["report"]


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_refused_at_registration(admin_api, settings):
    settings.READERBOARD = {**settings.READERBOARD, "UPLOAD_MAX_BYTES": 1000}
    job = admin_api.post("/api/console/imports/", {"collection": "Big"}, content_type="application/json").json()
    answer = admin_api.post(
        f"/api/console/imports/{job['id']}/files/", {"name": "big.dcm", "size": 1001}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert "limit" in answer.json()["detail"]


@pytest.mark.django_db
def test_an_upload_holds_at_most_the_allowed_number_of_files(admin_api, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_FILES_PER_JOB", 3)
    job = admin_api.post("/api/console/imports/", {"collection": "Many"}, content_type="application/json").json()
    codes = [
        admin_api.post(
            f"/api/console/imports/{job['id']}/files/",
            {"name": f"f{i}.dcm", "size": 1},
            content_type="application/json",
        ).status_code
        for i in range(4)
    ]
    assert codes == [201, 201, 201, 400]


@pytest.mark.django_db
def test_files_that_are_not_dicom_are_rejected_one_by_one(admin_api):
    report = upload_and_import(admin_api, "page.html", b"<html><script>alert(1)</script></html>")
    assert report["summary"]["imported"] == 0 and report["summary"]["rejected"] == 1
    assert report["report"][0]["reason"].startswith("not DICOM")
