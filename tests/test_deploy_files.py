"""The deployment files: compose file, Dockerfile and their documentation agree with each other and with settings.

`docker compose config` validates the compose file when a Docker CLI with the compose plugin is
installed; otherwise (and always, for what compose cannot know) the YAML is checked here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
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
    node_stage = next(stage for stage in built if stage[0].startswith("node:"))
    runtime = built[-1]

    assert any("npm ci" in line for line in node_stage[2])
    assert any("npm run build" in line for line in node_stage[2])
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim", runtime[0])
    assert re.search(r"ARG PYTHON_VERSION=3\.11", dockerfile)
    assert any(line.startswith("COPY --from=viewer") and "static/viewer" in line for line in runtime[2])
    users = [line.split()[1] for line in runtime[2] if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK") for line in runtime[2])
    assert any("collectstatic" in line for line in runtime[2])


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
