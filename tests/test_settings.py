"""Settings behaviour under different environments, each evaluated in a fresh interpreter.

settings.py reads the environment once at import, so every case runs in a subprocess with
exactly the variables it names (plus PATH/HOME), never the caller's DATABASE_URL or REDIS_URL.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Variables a developer or CI may have set that would change what settings.py decides.
SETTINGS_VARIABLES = {
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "READERBOARD_PRODUCTION",
    "READERBOARD_S3_BUCKET",
    "READERBOARD_SQLITE_PATH",
    "READERBOARD_TEST_DB_NAME",
    "DJANGO_SETTINGS_MODULE",
}
PRODUCTION_KEY = secrets.token_urlsafe(50)

REPORT_SETTINGS = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
import django
django.setup()
from django.conf import settings
from django.core.files.storage import storages
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "db_name": db["NAME"],
    "db_options": {k: v for k, v in db.get("OPTIONS", {}).items()},
    "test_name": db.get("TEST", {}).get("NAME"),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "result_backend": settings.CELERY_RESULT_BACKEND,
    "channel_backend": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "channel_hosts": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "cache_backend": settings.CACHES["default"]["BACKEND"],
    "secret_key": settings.SECRET_KEY,
    "debug": settings.DEBUG,
    "production": settings.PRODUCTION,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "hsts_seconds": settings.SECURE_HSTS_SECONDS,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "storages": {name: type(storages[name]).__name__ for name in ("default", "dicom", "exports")},
    "dicom_location": getattr(storages["dicom"], "location", None),
    "s3_bucket": getattr(storages["dicom"], "bucket_name", None),
    "s3_private": [getattr(storages[name], "default_acl", "n/a") for name in ("dicom", "exports")],
    "routes": settings.CELERY_TASK_ROUTES,
}))
"""


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run `code` (or manage.py with `args` when code is empty) in a fresh interpreter with only `env` set."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and not k.startswith("READERBOARD_")}
    command = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def settings_under(env: dict[str, str]) -> dict:
    """Return the settings report for `env`; fail with the child's stderr if it crashed."""
    result = run_python(REPORT_SETTINGS, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def production_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "READERBOARD_DATA_DIR": str(data_dir),
        "READERBOARD_PRODUCTION": "1",
        "SECRET_KEY": PRODUCTION_KEY,
        "ALLOWED_HOSTS": "readerboard.example.org",
        **extra,
    }


def test_embedded_default_uses_sqlite_in_wal_mode_with_immediate_transactions(data_dir):
    report = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})

    assert report["engine"] == "django.db.backends.sqlite3"
    assert report["db_name"] == str(data_dir.resolve() / "readerboard.sqlite3")
    assert report["db_options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in report["db_options"]["init_command"]


def test_sqlite_database_really_switches_to_wal_journal(data_dir):
    code = REPORT_SETTINGS.split("print(")[0] + (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])\n"
    )
    result = run_python(code, {"READERBOARD_DATA_DIR": str(data_dir)})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "wal"


def test_without_redis_celery_runs_eagerly_and_channels_stay_in_memory(data_dir):
    report = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})

    assert report["eager"] is True
    assert report["broker"] == "memory://"
    assert report["channel_backend"] == "channels.layers.InMemoryChannelLayer"
    assert report["cache_backend"] == "django.core.cache.backends.locmem.LocMemCache"


def test_database_and_redis_urls_switch_to_postgres_redis_broker_and_channels_redis(data_dir):
    report = settings_under(
        {
            "READERBOARD_DATA_DIR": str(data_dir),
            "DATABASE_URL": "postgres://rb:pw@db.internal:5432/readerboard",
            "REDIS_URL": "redis://cache.internal:6379/2",
        }
    )

    assert report["engine"] == "django.db.backends.postgresql"
    assert report["db_name"] == "readerboard"
    assert report["eager"] is False
    assert report["broker"] == "redis://cache.internal:6379/2"
    assert report["result_backend"] == "redis://cache.internal:6379/2"
    assert report["channel_backend"] == "channels_redis.core.RedisChannelLayer"
    assert report["channel_hosts"] == ["redis://cache.internal:6379/2"]
    assert report["cache_backend"] == "django.core.cache.backends.redis.RedisCache"


def test_parallel_test_runs_can_name_their_own_test_database(data_dir):
    report = settings_under(
        {
            "READERBOARD_DATA_DIR": str(data_dir),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/readerboard",
            "READERBOARD_TEST_DB_NAME": "test_rb_someone",
        }
    )

    assert report["test_name"] == "test_rb_someone"


def test_heavy_work_is_routed_to_queues_that_scale_separately(data_dir):
    from celery.app.routes import MapRoute

    routes = MapRoute(settings_under({"READERBOARD_DATA_DIR": str(data_dir)})["routes"])

    assert routes("viewer.tasks.import_job")["queue"] == "import"
    assert routes("viewer.tasks.warm_series_cache")["queue"] == "images"
    assert routes("annotations.consensus.tasks.compute_case_consensus")["queue"] == "consensus"
    assert routes("annotations.exports.tasks.run_export")["queue"] == "export"
    assert routes("annotations.tasks.unrelated") is None  # falls to the "default" queue


def test_beat_schedule_names_tasks_the_workers_know(data_dir):
    code = (
        "import json, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'readerboard.settings')\n"
        "import django; django.setup()\n"
        "from readerboard.celery import app\n"
        "app.loader.import_default_modules()\n"
        "print(json.dumps({'scheduled': [e['task'] for e in app.conf.beat_schedule.values()],"
        " 'known': sorted(app.tasks)}))\n"
    )
    result = run_python(code, {"READERBOARD_DATA_DIR": str(data_dir), "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert "annotations.consensus.tasks.sweep_stale_consensus" in report["scheduled"]
    assert set(report["scheduled"]) <= set(report["known"])


def test_booth_secret_key_is_generated_once_and_reused(data_dir):
    first = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})["secret_key"]
    second = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})["secret_key"]

    assert first == second
    assert len(first) >= 50
    assert (data_dir / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_each_data_dir_gets_its_own_secret_key(tmp_path):
    first = settings_under({"READERBOARD_DATA_DIR": str(tmp_path / "a")})["secret_key"]
    second = settings_under({"READERBOARD_DATA_DIR": str(tmp_path / "b")})["secret_key"]

    assert first != second


def test_production_refuses_to_start_without_a_secret_key(data_dir):
    env = production_env(data_dir)
    del env["SECRET_KEY"]

    result = run_python(REPORT_SETTINGS, env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "ImproperlyConfigured" in result.stderr
    assert not (data_dir / "secret_key").exists()


def test_production_refuses_a_short_secret_key(data_dir):
    result = run_python(REPORT_SETTINGS, production_env(data_dir, SECRET_KEY="changeme"))

    assert result.returncode != 0
    assert "too weak" in result.stderr


def test_production_reads_the_secret_key_from_a_mounted_file(data_dir, tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(PRODUCTION_KEY + "\n")
    env = production_env(data_dir, SECRET_KEY_FILE=str(key_file))
    del env["SECRET_KEY"]

    assert settings_under(env)["secret_key"] == PRODUCTION_KEY


def test_production_refuses_debug(data_dir):
    result = run_python(REPORT_SETTINGS, production_env(data_dir, DEBUG="1"))

    assert result.returncode != 0
    assert "DEBUG must be off" in result.stderr


def test_production_requires_allowed_hosts(data_dir):
    env = production_env(data_dir)
    del env["ALLOWED_HOSTS"]

    result = run_python(REPORT_SETTINGS, env)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_turns_on_https_only_cookies_hsts_and_ssl_redirect(data_dir):
    report = settings_under(production_env(data_dir))

    assert report["production"] is True and report["debug"] is False
    assert report["ssl_redirect"] is True
    assert report["hsts_seconds"] >= 31_536_000
    assert report["session_cookie_secure"] is True and report["csrf_cookie_secure"] is True
    assert report["allowed_hosts"] == ["readerboard.example.org"]


def test_booth_default_keeps_plain_http_working(data_dir):
    report = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})

    assert report["debug"] is False  # DEBUG is off unless asked for
    assert report["ssl_redirect"] is False
    assert report["session_cookie_secure"] is False


def test_deploy_check_is_clean_with_production_environment(data_dir):
    # Production runs with Redis (the check only reads the settings; nothing connects to it).
    env = production_env(data_dir, REDIS_URL="redis://127.0.0.1:6379/15")

    result = run_python("", env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_deploy_check_fails_in_production_without_a_shared_cache_for_the_sign_in_limits(data_dir):
    result = run_python("", production_env(data_dir), "check", "--deploy")

    assert result.returncode != 0
    assert "readerboard.E001" in result.stderr and "Set REDIS_URL" in result.stderr, result.stdout + result.stderr


def test_the_booth_default_passes_the_ordinary_check_without_redis(data_dir):
    result = run_python("", {"READERBOARD_DATA_DIR": str(data_dir)}, "check")

    assert result.returncode == 0, result.stdout + result.stderr


def test_files_stay_under_the_data_dir_by_default(data_dir):
    report = settings_under({"READERBOARD_DATA_DIR": str(data_dir)})

    assert report["storages"] == {"default": "DataDirStorage", "dicom": "DataDirStorage", "exports": "DataDirStorage"}
    assert report["dicom_location"] == str(data_dir.resolve())


def test_s3_bucket_switches_dicom_and_exports_to_private_object_storage(data_dir):
    report = settings_under(
        {
            "READERBOARD_DATA_DIR": str(data_dir),
            "READERBOARD_S3_BUCKET": "rb-study",
            "READERBOARD_S3_ENDPOINT_URL": "http://minio.internal:9000",
            "READERBOARD_S3_PREFIX": "site-a",
        }
    )

    assert report["storages"] == {"default": "S3Storage", "dicom": "S3Storage", "exports": "S3Storage"}
    assert report["s3_bucket"] == "rb-study"
    assert report["s3_private"] == [None, None]  # no public-read ACL on images or exports
