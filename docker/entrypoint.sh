#!/bin/sh
# Readerboard container entry point: the first argument names the role.
#   web      ASGI server (uvicorn, WEB_CONCURRENCY processes) on $PORT
#   worker   Celery worker for $CELERY_QUEUES (scale with `docker compose up --scale worker=N`)
#   beat     Celery beat (periodic sweeps); run exactly one
#   migrate  apply database migrations, create the first admin if DJANGO_SUPERUSER_* are set
#   demo     load the synthetic demo task and accounts (never on a public deployment)
#   manage   any manage.py command, e.g. `manage import_dicom /data/incoming`
#
# Before web, worker, beat, migrate and demo, readerboard-preflight (docker/preflight.py) refuses a
# configuration that must not start (e.g. production without a strong SECRET_KEY: exit 78) and waits,
# one log line per attempt, for PostgreSQL and Redis (up to READERBOARD_WAIT_S seconds, default 300).
# The web role then applies migrations unless READERBOARD_MIGRATE_ON_START=0 (compose leaves them to
# its one-shot migrate service).
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
  web|worker|beat|migrate|demo)
    readerboard-preflight
    ;;
esac
case "$role" in
  web)
    if [ "${READERBOARD_MIGRATE_ON_START:-1}" = "1" ]; then
      python manage.py migrate --noinput
    fi
    # --proxy-headers: the TLS proxy's X-Forwarded-For/-Proto are trusted only from FORWARDED_ALLOW_IPS.
    exec uvicorn readerboard.asgi:application \
      --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-$(nproc)}" \
      --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" \
      --lifespan on --no-server-header \
      --timeout-graceful-shutdown "${WEB_GRACEFUL_TIMEOUT_S:-20}" \
      --log-level "$(echo "${LOG_LEVEL:-info}" | tr '[:upper:]' '[:lower:]')" "$@"
    ;;
  worker)
    exec celery -A readerboard worker \
      -Q "${CELERY_QUEUES:-default,import,images,consensus,export}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" \
      --hostname "${CELERY_WORKER_NAME:-worker}@%h" \
      --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    exec celery -A readerboard beat --schedule /data/celerybeat-schedule --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  migrate)
    python manage.py migrate --noinput
    if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ] && [ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]; then
      python manage.py createsuperuser --noinput --email "${DJANGO_SUPERUSER_EMAIL:-admin@localhost}" 2>/dev/null \
        || echo "admin ${DJANGO_SUPERUSER_USERNAME} already exists"
    fi
    ;;
  demo)
    exec python manage.py make_demo "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
