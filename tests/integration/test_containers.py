"""The built image, run as an admin would: web, worker and beat containers on host networking against the
machine's PostgreSQL and a private Redis.

Run by scripts/container-smoke.sh (from .ci/run), which installs Docker, builds the image and names it in
READERBOARD_CONTAINER_IMAGE; skipped without it. A reader signs up and submits a read through the web
container, the worker container computes the consensus, an SR export passes dciodvfy, and restarting
the web container loses nothing. Faults: a weak SECRET_KEY in production is refused with a readable
error, a web container started before its database exists waits and says so, and the health check
turns unhealthy when the database goes away. The build's CA secret is nowhere in the image.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.annotations.export_data import dicom_tool_errors
from tests.integration.processes import (
    POSTGRES_ADMIN_URL,
    ReaderClient,
    free_port,
    line_read_document,
    loopback_session,
    private_redis,
    sql_rows,
)
from tests.integration.test_scale_out import SEED_SCRIPT

pytestmark = pytest.mark.containers

IMAGE = os.environ.get("READERBOARD_CONTAINER_IMAGE", "")
DOCKER = os.environ.get("DOCKER", "docker")
DATABASE = "rb_container_smoke"
CA_BUNDLE = os.environ.get("READERBOARD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")

if not IMAGE:
    pytest.skip("READERBOARD_CONTAINER_IMAGE is not set: run scripts/container-smoke.sh", allow_module_level=True)


def docker(*args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(statement)


def wait_for(condition, *, timeout_s: float, what: str, logs_of: str | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcome = condition()
        if outcome:
            return outcome
        time.sleep(1)
    logs = docker("logs", "--tail", "60", logs_of, check=False) if logs_of else None
    raise AssertionError(
        f"timed out after {timeout_s:.0f} s waiting for {what}"
        + (f"\n--- {logs_of} ---\n{logs.stdout}{logs.stderr}" if logs else "")
    )


@dataclass
class Stack:
    """Containers of one smoke run; every name carries the run's suffix so parallel runs cannot clash."""

    suffix: str
    env: dict[str, str]
    port: int
    database_url: str
    containers: list[str] = field(default_factory=list)

    @property
    def volume(self) -> str:
        return f"rb-smoke-data-{self.suffix}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def name(self, role: str) -> str:
        return f"rb-smoke-{role}-{self.suffix}"

    def start(self, role: str, **extra_env: str) -> str:
        name = self.name(role)
        env_args = [arg for key, value in {**self.env, **extra_env}.items() for arg in ("-e", f"{key}={value}")]
        docker(
            "run", "--detach", "--name", name, "--network", "host", "--init",
            "--label", "readerboard-smoke=1",
            "--volume", f"{self.volume}:/data",
            # The image says every 30 s; the smoke test does not want to wait that long to see a state.
            "--health-interval", "3s", "--health-start-period", "60s", "--health-retries", "2",
            *env_args, IMAGE, role,
        )  # fmt: skip
        self.containers.append(name)
        return name

    def health(self, role: str) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.name(role)).stdout.strip()

    def healthz(self) -> int | None:
        try:
            return loopback_session().get(self.base_url + "/healthz", timeout=5).status_code
        except OSError:
            return None

    def logs(self, role: str) -> str:
        result = docker("logs", self.name(role), check=False)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """web (started before its database exists), worker and beat, migrated by web's entry point."""
    suffix = f"{os.getpid()}-{secrets.token_hex(2)}"
    admin_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    with private_redis(tmp_path_factory.mktemp("redis")) as redis:
        port = free_port()
        stack = Stack(
            suffix=suffix,
            port=port,
            database_url=database_url,
            env={
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "SECRET_KEY": secrets.token_urlsafe(50),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PORT": str(port),
                "WEB_CONCURRENCY": "1",
                "CELERY_CONCURRENCY": "1",
                "READERBOARD_DB_POOL_MAX": "4",
                "READERBOARD_WAIT_S": "120",
            },
        )
        try:
            stack.start("web")
            yield stack
        finally:
            for name in stack.containers:
                docker("rm", "--force", "--volumes", name, check=False)
            docker("volume", "rm", "--force", stack.volume, check=False)
            admin_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def test_production_without_a_strong_secret_key_refuses_to_start_and_says_why():
    result = docker(
        "run", "--rm", "--network", "host",
        "-e", "READERBOARD_PRODUCTION=1", "-e", "SECRET_KEY=changeme", "-e", "ALLOWED_HOSTS=reader.example.org",
        IMAGE, "web",
        check=False,
    )  # fmt: skip

    assert result.returncode == 78, result.stdout + result.stderr
    assert "refusing to start: SECRET_KEY is too weak for production" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_image_holds_nothing_of_the_build_ca_secret():
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE).stdout
    listing = docker("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "ls -A /run/secrets 2>/dev/null; true")

    assert "BEGIN CERTIFICATE" not in history
    assert listing.stdout.strip() == "", listing.stdout
    # The certificates the build's bundle has beyond Debian's own (a proxy's CA, where there is one) must
    # appear in no layer of the saved image, deleted files included.
    extra = extra_ca_fingerprints()
    if extra:
        assert not layers_contain(extra), "a certificate of the build secret is in the image"


def extra_ca_fingerprints() -> list[bytes]:
    """A line from the middle of each certificate in the build's CA bundle that the image's own bundle lacks."""
    if not Path(CA_BUNDLE).is_file():
        return []
    image_bundle = docker(
        "run", "--rm", "--network", "none", IMAGE, "cat", "/etc/ssl/certs/ca-certificates.crt", check=False
    ).stdout
    blocks = re.findall(
        r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", Path(CA_BUNDLE).read_text(), re.S
    )
    image_blocks = set(re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", image_bundle, re.S))
    # A whole 64-character base64 line of the body: unique to that certificate, and how PEM stores it.
    return [block.splitlines()[4].encode() for block in blocks if block not in image_blocks and block.count("\n") > 5]


def layers_contain(needles: list[bytes]) -> bool:
    """Whether any needle occurs in `docker save` of the image (every layer, uncompressed)."""
    save = subprocess.Popen([DOCKER, "save", IMAGE], stdout=subprocess.PIPE)
    overlap = max(len(needle) for needle in needles)
    tail = b""
    found = False
    assert save.stdout is not None
    while chunk := save.stdout.read(8 << 20):
        window = tail + chunk
        if any(needle in window for needle in needles):
            found = True
            break
        tail = window[-overlap:]
    save.kill()
    save.wait()
    return found


def test_containers_serve_a_reading_session_end_to_end_and_survive_a_web_restart(stack: Stack, tmp_path):
    # 1. web was started before its database exists: it waits, saying so, instead of crashing.
    wait_for(
        lambda: "waiting for PostgreSQL" in stack.logs("web"),
        timeout_s=90,
        what="web's wait line",
        logs_of=stack.name("web"),
    )
    assert docker("inspect", "-f", "{{.State.Running}}", stack.name("web")).stdout.strip() == "true"
    admin_sql(f'CREATE DATABASE "{DATABASE}"')
    wait_for(
        lambda: stack.healthz() == 200,
        timeout_s=240,
        what="web to migrate and answer /healthz",
        logs_of=stack.name("web"),
    )
    stack.start("worker")
    stack.start("beat")
    for role in ("web", "worker", "beat"):
        wait_for(
            lambda role=role: stack.health(role) == "healthy",
            timeout_s=120,
            what=f"{role} healthy",
            logs_of=stack.name(role),
        )

    for role in ("web", "worker", "beat"):
        # The app user can write what it must (data volume, Matplotlib's cache) and nothing else.
        assert "Permission denied" not in stack.logs(role), stack.logs(role)[-2000:]

    # 2. a task with one case, seeded through the web container's own Python.
    seeded = docker("exec", stack.name("web"), "python", "-c", SEED_SCRIPT, "1", timeout_s=300)
    seed = json.loads(seeded.stdout.splitlines()[-1])
    case = seed["cases"][0]

    # 3. a reader signs up and submits a read through the web container.
    reader = ReaderClient([stack.base_url])
    assert reader.sign_up("Container Reader", pin="5150").status_code == 201
    offered, _ = reader.request("POST", f"/api/tasks/{seed['task']}/next-case/")
    assert offered.status_code == 200, offered.text
    case = next(entry for entry in seed["cases"] if entry["id"] == offered.json()["id"])
    saved, _ = reader.request("POST", "/api/reads/", json=line_read_document(case))
    assert saved.status_code == 201, saved.text

    # 4. the worker container computes the case's consensus.
    consensus = wait_for(
        lambda: sql_rows(
            stack.database_url,
            "SELECT n_reads FROM annotations_caseconsensus WHERE is_current AND case_id = %s",
            case["id"],
        ),
        timeout_s=120,
        what="the consensus from the worker container",
        logs_of=stack.name("worker"),
    )
    assert consensus[0][0] >= 1

    # 5. an SR export, made by the worker and downloaded through web, passes dciodvfy.
    archive = export_through_api(stack, token=seed["researcher_token"], task_id=seed["task"], fmt="sr")
    sr_files = {name: data for name, data in archive.items() if name.endswith(".dcm")}
    assert sr_files, sorted(archive)
    if shutil.which("dciodvfy"):
        for name, data in sr_files.items():
            path = tmp_path / name.replace("/", "_")
            path.write_bytes(data)
            assert dicom_tool_errors(["dciodvfy"], path) == [], name
    elif os.environ.get("CI"):
        pytest.fail("dciodvfy (dicom3tools) is missing on a CI machine")

    # 6. stopping and restarting web loses nothing: the reader, the read and the export are still there.
    docker("stop", "--time", "20", stack.name("web"), timeout_s=60)
    assert stack.healthz() is None
    docker("start", stack.name("web"))
    wait_for(lambda: stack.healthz() == 200, timeout_s=120, what="web after a restart", logs_of=stack.name("web"))
    # A restart puts Docker's health back to "starting", and failures inside the start period do not
    # count; the unhealthy check below is only meaningful once a probe has passed again.
    wait_for(lambda: stack.health("web") == "healthy", timeout_s=90, what="web healthy after a restart")
    again = ReaderClient([stack.base_url])
    login, _ = again.request("POST", "/api/login/", json={"display_name": "Container Reader", "pin": "5150"})
    assert login.status_code == 200, login.text
    assert login.json()["reader"]["reads_count"] == 1
    assert (
        export_through_api(stack, token=seed["researcher_token"], task_id=seed["task"], fmt="sr").keys()
        == archive.keys()
    )

    # 7. the database goes away: web's health check says unhealthy (and /healthz answers 503).
    admin_sql(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
    probe = docker("exec", stack.name("web"), "readerboard-healthcheck", check=False)
    assert probe.returncode == 1, probe.stdout + probe.stderr
    assert "web unhealthy" in probe.stderr
    wait_for(lambda: stack.health("web") == "unhealthy", timeout_s=90, what="web reported unhealthy")


def export_through_api(stack: Stack, *, token: str, task_id: int, fmt: str) -> dict[str, bytes]:
    """Ask web for an export as the researcher, wait for the worker to finish it, return the zip's members."""
    session = loopback_session()
    headers = {"Authorization": f"Token {token}"}
    created = session.post(
        f"{stack.base_url}/api/exports/", json={"task": task_id, "format": fmt}, headers=headers, timeout=30
    )
    assert created.status_code in (200, 201, 202), created.text
    export_id = created.json()["id"]

    def finished() -> dict | None:
        body = session.get(f"{stack.base_url}/api/exports/{export_id}/", headers=headers, timeout=30).json()
        assert body["status"] != "failed", body
        return body if body["status"] == "done" else None

    wait_for(finished, timeout_s=120, what=f"export {export_id}", logs_of=stack.name("worker"))
    download = session.get(f"{stack.base_url}/api/exports/{export_id}/download/", headers=headers, timeout=60)
    assert download.status_code == 200, download.text[:500]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
