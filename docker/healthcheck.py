#!/usr/bin/env python3
"""Container health check for every role, found from the running processes; exit 0 when healthy.

- web (uvicorn): GET /healthz on this container must answer 200. Sends the first ALLOWED_HOSTS
  entry as Host, because Django refuses unknown hosts; /healthz is exempt from the HTTPS redirect.
- worker (celery worker): the worker must answer a broker ping addressed to this container's node name.
- beat (celery beat) and one-shot roles: the process is running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path


def running_commands() -> list[list[str]]:
    """Return the argv of every process visible in this container."""
    commands = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            commands.append([part.decode(errors="replace") for part in argv if part])
    return commands


def probe_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def web_is_healthy() -> bool:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    request = urllib.request.Request(url, headers={"Host": probe_host()})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"web unhealthy: {exc}", file=sys.stderr)
        return False


def worker_is_healthy() -> bool:
    node = f"{os.environ.get('CELERY_WORKER_NAME', 'worker')}@{socket.gethostname()}"
    result = subprocess.run(
        ["celery", "-A", "readerboard", "inspect", "ping", "--destination", node, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    if result.returncode != 0 or "pong" not in result.stdout:
        print(f"worker {node} did not answer ping: {result.stdout[-300:]} {result.stderr[-300:]}", file=sys.stderr)
        return False
    return True


def main() -> int:
    commands = [" ".join(argv) for argv in running_commands()]
    if any("uvicorn" in command for command in commands):
        return 0 if web_is_healthy() else 1
    if any("celery" in command and " worker" in command for command in commands):
        return 0 if worker_is_healthy() else 1
    if any("celery" in command and " beat" in command for command in commands):
        return 0
    print("no readerboard process is running", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
