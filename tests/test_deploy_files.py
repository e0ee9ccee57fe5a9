"""The deployment files: compose file, Dockerfile and their documentation agree with each other and with settings.

`docker compose config` validates the compose file when a Docker CLI with the compose plugin is
installed; otherwise (and always, for what compose cannot know) the YAML is checked here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
QUEUES = {"default", "import", "images", "consensus", "export"}
APP_SERVICES = ("web", "worker", "beat")
COMPOSE_TEST_ENV = {"SECRET_KEY": "x" * 60, "POSTGRES_PASSWORD": "compose-config-check"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def stages(dockerfile: str) -> list[tuple[str, str, list[str]]]:
    """Return (base image, stage name, instruction lines) for each FROM of a Dockerfile."""
    lines = re.sub(r"\\\n\s*", " ", dockerfile).splitlines()
    result: list[tuple[str, str, list[str]]] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            result.append((match.group(1), match.group(2) or "", []))
        elif result:
            result[-1][2].append(line)
    return result


def compose_cli() -> list[str] | None:
    """The compose command if one is installed and working, else None."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_passes_docker_compose_config_when_compose_is_installed():
    command = compose_cli()
    if command is None:
        pytest.skip("no docker compose CLI here; the YAML checks below stand in for it")
    result = subprocess.run(
        [*command, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **COMPOSE_TEST_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret_key():
    command = compose_cli()
    if command is None:
        pytest.skip("no docker compose CLI here")
    result = subprocess.run(
        [*command, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "compose-config-check"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_compose_runs_web_worker_beat_postgres_and_redis_with_health_checks(compose):
    services = compose["services"]

    for name in (*APP_SERVICES, "postgres", "redis", "proxy"):
        assert name in services, name
        check = services[name].get("healthcheck", {})
        assert not check.get("disable") and check.get("test"), f"{name} has no health check"


def test_app_services_wait_for_healthy_database_redis_and_finished_migrations(compose):
    for name in APP_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_worker_can_be_scaled_and_serves_every_queue(compose):
    worker = compose["services"]["worker"]

    # A fixed container name or host port would make `--scale worker=N` fail.
    assert "container_name" not in worker and "ports" not in worker
    queues = worker["environment"]["CELERY_QUEUES"]
    assert set(re.sub(r"\$\{CELERY_QUEUES:-(.*)\}", r"\1", queues).split(",")) == QUEUES
    assert worker["command"] == ["worker"]


def test_only_the_proxy_publishes_ports(compose):
    published = {name for name, service in compose["services"].items() if service.get("ports")}

    assert published == {"proxy"}


def test_app_services_share_production_settings_from_the_environment(compose):
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")  # compose refuses to start without one
        assert environment["READERBOARD_PRODUCTION"] == "${READERBOARD_PRODUCTION:-1}"


def test_data_lives_on_named_volumes(compose):
    declared = set(compose["volumes"])
    mounts = {
        name: {volume.split(":")[0] for volume in service.get("volumes", [])}
        for name, service in compose["services"].items()
    }

    assert {"data", "postgres-data", "redis-data"} <= declared
    assert "postgres-data" in mounts["postgres"] and "redis-data" in mounts["redis"]
    for name in APP_SERVICES:
        assert "data" in mounts[name]
    used = set().union(*mounts.values())
    assert declared <= used, f"declared but unused volumes: {declared - used}"


def test_redis_keeps_broker_messages_across_restarts(compose):
    command = compose["services"]["redis"]["command"]

    assert "--appendonly" in command and command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_dockerfile_builds_the_viewer_in_a_node_stage_and_runs_python_slim_as_non_root(dockerfile):
    built = stages(dockerfile)
    node_stage = next(stage for stage in built if stage[0] == "${NODE_IMAGE}")
    runtime = built[-1]

    assert any("npm ci" in line for line in node_stage[2])
    assert any("npm run build" in line for line in node_stage[2])
    assert runtime[0] == "${PYTHON_IMAGE}"
    # By default the official images, which is what a user with Docker Hub gets.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG NODE_IMAGE=node:22-bookworm-slim$", dockerfile, re.MULTILINE)
    assert any(line.startswith("COPY --from=viewer") and "static/viewer" in line for line in runtime[2])
    users = [line.split()[1] for line in runtime[2] if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK") for line in runtime[2])
    assert any("collectstatic" in line for line in runtime[2])


def test_dockerfile_builds_offline_without_a_frontend_image(dockerfile):
    # A `# syntax=` directive makes BuildKit pull the Dockerfile frontend from Docker Hub.
    assert not re.search(r"^#\s*syntax\s*=", dockerfile, re.MULTILINE | re.IGNORECASE)


def test_image_installs_the_locked_python_dependencies_with_their_hashes(dockerfile):
    deps_stage = next(stage for stage in stages(dockerfile) if stage[1] == "python-deps")

    assert any(line.startswith("COPY requirements/runtime.txt") for line in deps_stage[2])
    assert any("pip install --require-hashes -r" in line for line in deps_stage[2])
    assert "pyproject.toml" not in " ".join(line for line in deps_stage[2] if "pip install" in line)


def test_the_build_ca_secret_is_only_mounted_never_copied_or_kept_in_the_environment(dockerfile):
    instructions = [line for stage in stages(dockerfile) for line in stage[2]]
    installs = [line for line in instructions if "npm ci" in line or "pip install" in line]

    assert installs and all("--mount=type=secret,id=ca" in line for line in installs)
    for line in instructions:
        if line.startswith(("ENV ", "ARG ", "COPY ", "ADD ")):
            assert not re.search(r"PIP_CERT|NODE_EXTRA_CA_CERTS|SSL_CERT|/run/secrets|ca-certificates\.crt", line), line


def test_dockerignore_admits_every_file_the_dockerfile_copies(dockerfile):
    rules = [r for r in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    admitted = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    sources = [
        source.rstrip("/")
        for line in re.sub(r"\\\n\s*", " ", dockerfile).splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]

    for source in sources:
        assert any(source == allowed or source.startswith(allowed + "/") for allowed in admitted), source


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    rules = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()

    assert rules[next(i for i, r in enumerate(rules) if not r.startswith("#"))] == "**"  # allow-list
    assert not any(
        rule.startswith("!") and rule.strip("!/") in {"var", ".env", "docker/.env", ".venv"} for rule in rules
    )


def test_entrypoint_knows_every_role_compose_uses(compose):
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    roles = {service["command"][0] for service in compose["services"].values() if "build" in service}

    for role in roles:
        assert re.search(rf"^\s*{role}\)", entrypoint, re.MULTILINE), role


def test_every_environment_variable_is_documented():
    readme = (DOCKER / "README.md").read_text()
    settings_source = (ROOT / "readerboard" / "settings.py").read_text()
    from_settings = set(
        re.findall(r'(?:env_bool|env_int|env_list|environ\.get|environ\[)\(?\s*"([A-Z0-9_]+)"', settings_source)
    )
    from_compose = set(re.findall(r"\$\{([A-Z0-9_]+)", (DOCKER / "compose.yaml").read_text()))
    from_entrypoint = set(re.findall(r"\$\{([A-Z0-9_]+)", (DOCKER / "entrypoint.sh").read_text()))

    missing = sorted(name for name in from_settings | from_compose | from_entrypoint if f"`{name}`" not in readme)

    assert not missing, f"docker/README.md does not document: {missing}"


# --- the offline override ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline() -> dict:
    return yaml.safe_load((DOCKER / "compose.offline.yaml").read_text())


def test_offline_override_passes_compose_config_together_with_the_compose_file():
    command = compose_cli()
    if command is None:
        pytest.skip("no docker compose CLI here; the YAML checks below stand in for it")
    result = subprocess.run(
        [*command, "-f", str(DOCKER / "compose.yaml"), "-f", str(DOCKER / "compose.offline.yaml"), "config"],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **COMPOSE_TEST_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    for name in APP_SERVICES:
        service = merged["services"][name]
        assert service["network_mode"] == "host"
        assert service["build"]["args"]["PYTHON_IMAGE"] == "readerboard-ci/python:bookworm"
        assert service["environment"]["DATABASE_URL"].startswith("postgres://postgres@127.0.0.1:5432/")
        assert service["environment"]["REDIS_URL"].startswith("redis://127.0.0.1:6379/")


def test_offline_override_builds_from_local_bases_on_host_networking_and_migrates_from_web(offline):
    services = offline["services"]

    for name in (*APP_SERVICES, "migrate"):
        assert services[name]["network_mode"] == "host"
        assert services[name]["build"]["args"]["NODE_IMAGE"].startswith("${READERBOARD_NODE_IMAGE:-readerboard-ci/")
    # compose.yaml leaves migrations to its migrate service; offline, web (started with --no-deps) applies them.
    assert services["web"]["environment"]["READERBOARD_MIGRATE_ON_START"] == "1"
    assert services["worker"]["environment"]["READERBOARD_MIGRATE_ON_START"] == "0"
    # With host networking anyone reaching the port could forge X-Forwarded-For: trust loopback only.
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == "127.0.0.1"


# --- the entry point, run on this machine without Docker ----------------------------------------


def run_entrypoint(tmp_path: Path, role: str, **env: str) -> subprocess.CompletedProcess:
    """docker/entrypoint.sh with the image's helper commands on PATH, this venv's Python and the repository."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for helper in ("preflight", "healthcheck"):
        link = bin_dir / f"readerboard-{helper}"
        if not link.exists():
            link.symlink_to(DOCKER / f"{helper}.py")
    base = {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "READERBOARD_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "readerboard.settings",
    }
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), role],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("role", ["web", "worker", "migrate"])
def test_entrypoint_refuses_production_without_a_strong_secret_key(tmp_path, role):
    result = run_entrypoint(
        tmp_path, role, READERBOARD_PRODUCTION="1", SECRET_KEY="changeme", ALLOWED_HOSTS="reader.example.org"
    )

    assert result.returncode == 78
    assert "refusing to start: SECRET_KEY is too weak for production" in result.stderr
    assert "Traceback" not in result.stderr


def test_entrypoint_waits_for_an_unreachable_database_with_a_log_line_per_attempt_then_gives_up(tmp_path):
    port = closed_port()
    result = run_entrypoint(
        tmp_path, "worker", DATABASE_URL=f"postgres://readerboard:hunter2@127.0.0.1:{port}/readerboard",
        READERBOARD_WAIT_S="3",
    )  # fmt: skip

    assert result.returncode == 69
    waits = [line for line in result.stderr.splitlines() if "waiting for PostgreSQL 127.0.0.1" in line]
    assert len(waits) >= 2, result.stderr
    assert "giving up" in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the Python lock --------------------------------------------------------------------------------


def locked_versions(path: Path) -> dict[str, str]:
    """{normalised name: version} of a requirements file, asserting every pin carries hashes."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    pins = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith(" "):
            continue
        match = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", line)
        assert match, f"{path.name}: not an exact pin: {line[:80]}"
        assert "--hash=sha256:" in line, f"{path.name}: {match.group(1)} has no hash"
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_lock_pins_every_dependency_of_pyproject_with_hashes_and_one_version_each():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = locked_versions(ROOT / "requirements" / "runtime.txt")
    dev = locked_versions(ROOT / "requirements" / "dev.txt")

    def name(spec: str) -> str:
        return re.sub(r"[-_.]+", "-", Requirement(spec).name).lower()

    for spec in project["dependencies"]:
        assert name(spec) in runtime, f"{spec} is not in requirements/runtime.txt: run make lock"
        assert Requirement(spec).specifier.contains(runtime[name(spec)], prereleases=True), spec
    for spec in [*project["optional-dependencies"]["test"], *project["optional-dependencies"]["dev"]]:
        assert name(spec) in dev, f"{spec} is not in requirements/dev.txt: run make lock"
    # The image and the test venv run the same versions of everything they share.
    assert {package: dev.get(package) for package in runtime} == runtime
