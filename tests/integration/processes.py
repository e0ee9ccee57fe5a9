"""Real server processes for integration tests, fault tests and the load runner: Daphne, Celery, Redis.

Shared by tests/integration/ (scale-out, faults, load audit) and benchmarks/load/run_load.py. Every
process runs in its own session so a stop (or a kill -9) reaches its children; every port is chosen
at run time (a socket bound to port 0, handed to Daphne with --fd), never a fixed one; every
database and Redis this module creates is private to the caller. It must never touch the machine's
shared Redis data beyond a claimed, empty database number, and never a database it did not create.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get("READERBOARD_SCALEOUT_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER_URL = os.environ.get("READERBOARD_SCALEOUT_REDIS", "redis://127.0.0.1:6379")
# Variables of the caller that must not leak into the servers' settings.
SCRUBBED = {
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
}


class HarnessError(RuntimeError):
    """A service did not start, a command failed or a wait timed out (the message carries the log)."""


def _fail(message: str) -> None:
    # Under pytest a failure is a test failure; in the load runner it is an exception with the log.
    try:
        import pytest
    except ImportError:  # pragma: no cover - pytest is a test dependency, the runner may live without it
        raise HarnessError(message) from None
    if "PYTEST_CURRENT_TEST" in os.environ:
        pytest.fail(message)
    raise HarnessError(message)


# --- databases ------------------------------------------------------------------------------------


@contextmanager
def fresh_postgres_database(prefix: str, admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """Create an empty PostgreSQL database named `<prefix>_<pid>_<random>`; yield its URL; drop it afterwards."""
    import psycopg

    admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def sql_rows(database_url: str, query: str, *params: Any) -> list[tuple]:
    """Run one query on the test database (autocommit) and return its rows."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for servers that cannot take a socket, e.g. redis-server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def loopback_listener() -> socket.socket:
    """A listening loopback socket on a port the kernel chose; pass its fd to Daphne with --fd."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    return listener


# --- processes ------------------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """A server process started by the test: its log, and a stop that always ends it and its children."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text()
        return f"--- last lines of {self.name} ({self.log_path}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            _fail(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")

    def kill_hard(self) -> None:
        """SIGKILL the whole process group (a machine losing power, as far as this process is concerned)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 15) -> None:
        if self.process.poll() is not None:
            return
        # Each service runs in its own session, so the signal reaches its children (prefork pools) too.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def deployment_env(*, database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of one deployment: the caller's, minus anything that would change the settings, plus these."""
    env = {
        key: value for key, value in os.environ.items() if key not in SCRUBBED and not key.startswith("READERBOARD_")
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        READERBOARD_DATA_DIR=str(data_dir),
        # Sessions made on one web process are read by the other: one key for the deployment.
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="readerboard.settings",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


@dataclass
class Deployment:
    env: dict[str, str]
    data_dir: Path
    database_url: str
    logs: Path
    services: list[ServiceProcess] = field(default_factory=list)
    # Filled once the deployment is up: what the seed made, the web base URLs, the worker node names.
    seed: dict = field(default_factory=dict)
    web_urls: list[str] = field(default_factory=list)
    worker_nodes: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
        """Run a one-off command (manage.py, a seed script) with the deployment's environment."""
        result = subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if result.returncode != 0:
            _fail(
                f"{' '.join(args[:3])} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def start(
        self, name: str, args: list[str], *, pass_fds: tuple[int, ...] = (), env: dict[str, str] | None = None
    ) -> ServiceProcess:
        log_path = self.logs / f"{name}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )
        log.close()
        service = ServiceProcess(name, process, log_path)
        self.services.append(service)
        return service

    def start_web(
        self, name: str, *, listener: socket.socket | None = None, proxy_headers: bool = False, cpus: str = ""
    ) -> str:
        """Start Daphne on a loopback socket; return its base URL once /healthz is 200.

        Without `listener`, a socket is bound here to a free port and closed once Daphne holds it. With
        one, the caller keeps it open: several Daphne processes can share it, and a Daphne restarted on it
        serves the same URL while connections made in between wait in its backlog. `cpus` pins the process
        to those CPUs (taskset's list syntax).
        """
        own = listener is None
        listener = listener or loopback_listener()
        port = listener.getsockname()[1]
        args = [str(BIN / "daphne"), "--fd", str(listener.fileno()), "-v", "1"]
        if proxy_headers:
            args.append("--proxy-headers")
        if cpus:
            args = ["taskset", "-c", cpus, *args]
        try:
            service = self.start(name, [*args, "readerboard.asgi:application"], pass_fds=(listener.fileno(),))
        finally:
            if own:
                listener.close()  # the child holds its own copy of the descriptor
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthz_ok(base_url), timeout_s=90, what=f"{name} /healthz", service=service)
        return base_url

    def start_uvicorn(
        self,
        name: str,
        *,
        workers: int,
        proxy_headers: bool = False,
        cpus: str = "",
        app: str = "readerboard.asgi:application",
        access_log: bool = True,
    ) -> str:
        """Start uvicorn as docker/entrypoint.sh does (`--workers`, access log on) on a free loopback port.

        It binds the port itself: handed an inherited descriptor (`--fd`), uvicorn takes it for a Unix
        socket and asyncio then leaves TCP_NODELAY off, so every small answer waited ~40 ms for the
        client's delayed ACK (measured: 48 ms for a 404 on an idle server, 1 ms with the port bound).
        """
        port = free_port()
        args = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        args += ["--lifespan", "on", "--no-server-header"]
        if not access_log:
            args += ["--no-access-log"]
        if proxy_headers:
            args += ["--proxy-headers", "--forwarded-allow-ips", "*"]
        if cpus:
            args = ["taskset", "-c", cpus, *args]
        service = self.start(name, [*args, app])
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthz_ok(base_url), timeout_s=90, what=f"{name} /healthz", service=service)
        return base_url

    def start_worker(
        self,
        name: str,
        queues: str,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        cpus: str = "",
    ) -> str:
        """Start a Celery worker consuming `queues` (pinned to `cpus` if given); return its node name once ready."""
        node = f"{name}@rb-{os.getpid()}-{secrets.token_hex(2)}"
        service = self.start(
            name,
            [
                *(["taskset", "-c", cpus] if cpus else []),
                str(BIN / "celery"),
                "-A",
                "readerboard",
                "worker",
                "-Q",
                queues,
                "-n",
                node,
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
        )
        wait_until(lambda: "ready." in service.log_text(), 120, f"{name} ready", service)
        return node

    def service(self, name: str) -> ServiceProcess:
        """The most recently started service of that name."""
        return next(service for service in reversed(self.services) if service.name == name)

    def celery_inspect(self, command: str) -> dict:
        result = self.run(str(BIN / "celery"), "-A", "readerboard", "inspect", command, "--json", "--timeout", "5")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def logs_of_all(self) -> str:
        return "\n".join(service.log_tail(40) for service in self.services)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, service: ServiceProcess | None = None) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` (with the service's log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service is not None:
            service.assert_running()
        outcome = condition()
        if outcome:
            return outcome
        time.sleep(0.25)
    _fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{service.log_tail() if service else ''}")


def loopback_session():
    """A requests session that talks to loopback directly, whatever proxy the environment names."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def healthz_ok(base_url: str) -> bool:
    import requests

    try:
        with loopback_session() as session:
            return session.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


_healthz_ok = healthz_ok


# --- a private Redis --------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence; stop and start it at will."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self.ping, 20, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server at once (an outage, not a clean shutdown); nothing of its data survives."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A running PrivateRedis, killed afterwards."""
    if not shutil.which("redis-server"):
        _fail("redis-server is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(port=free_port(), workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- clients ----------------------------------------------------------------------------------------


class ReaderClient:
    """A reader's browser: one cookie jar, each request sent to the next web process in turn."""

    def __init__(self, web_urls: list[str]) -> None:
        self.session = loopback_session()
        self.web_urls = web_urls
        self.turn = 0
        # Django's double-submit CSRF check accepts any well-formed secret the client holds in its cookie.
        for url in web_urls:
            self.session.cookies.set("csrftoken", secrets.token_hex(16), domain=urlsplit(url).hostname)

    def request(self, method: str, path: str, *, via: int | None = None, **kwargs):
        index = self.turn % len(self.web_urls) if via is None else via
        self.turn += 1
        base_url = self.web_urls[index]
        headers = {"X-CSRFToken": self.session.cookies.get("csrftoken"), "Referer": base_url + "/"}
        kwargs.setdefault("timeout", 30)
        response = self.session.request(method, base_url + path, headers=headers, **kwargs)
        return response, index

    def sign_up(self, display_name: str, *, pin: str = "4821", via: int | None = None):
        """POST /api/signup/ as a trainee who consents; returns the response."""
        response, _ = self.request(
            "POST",
            "/api/signup/",
            via=via,
            json={
                "display_name": display_name,
                "pin": pin,
                "role": "trainee",
                "years_experience": 2,
                "consent": True,
            },
        )
        return response


def line_read_document(case: dict, *, offset_px: float = 0.0) -> dict:
    """A read with one long axis across the seeded case's lesion, shifted by `offset_px` so readers differ a little.

    `case` is a seed entry: {"id", "sop_instance_uid", "center": [column, row], "column_mm"}.
    """
    column, row = case["center"]
    start, end = [column - 6.5 + offset_px, row + offset_px / 2], [column + 6.5 + offset_px, row + offset_px / 2]
    length_mm = ((end[0] - start[0]) ** 2 + (end[1] - start[1]) ** 2) ** 0.5 * case["column_mm"]
    return {
        "client_uuid": str(uuid.uuid4()),
        "case": case["id"],
        "started_at": "2026-11-25T10:31:02.120Z",
        "duration_s": 21.5,
        "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": [
            {
                "lesion": 1,
                "long_axis": {
                    "sop_instance_uid": case["sop_instance_uid"],
                    "frame": 1,
                    "start": start,
                    "end": end,
                    "length_mm": round(length_mm, 2),
                },
            }
        ],
    }


class LeaderboardSocket:
    """A WebSocket on /ws/leaderboard/ of one web process, collecting the pushes it receives (a context manager)."""

    def __init__(self, base_url: str) -> None:
        from websockets.sync.client import connect

        self.connecting = connect(
            base_url.replace("http://", "ws://") + "/ws/leaderboard/", origin=base_url, open_timeout=15, proxy=None
        )

    def __enter__(self) -> LeaderboardSocket:
        self.connection = self.connecting.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.connecting.__exit__(*exc_info)

    def wait_for_total(self, total_reads: int, timeout_s: float = 20) -> dict:
        """Return the first push whose total_reads is at least `total_reads`."""
        deadline = time.monotonic() + timeout_s
        seen = []
        while time.monotonic() < deadline:
            try:
                message = json.loads(self.connection.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                break
            seen.append(message.get("total_reads"))
            if message.get("type") == "leaderboard" and message.get("total_reads", -1) >= total_reads:
                return message
        _fail(f"leaderboard socket never reported {total_reads} reads; it saw totals {seen}")
