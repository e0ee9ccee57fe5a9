"""Locust scenario: booth readers doing the full reading loop against a running Readerboard.

Each simulated reader signs up (from its own client address, as booth tablets would, sent as
X-Forwarded-For to a server started with proxy headers trusted), lists the open tasks, then loops:
next case, the series metadata, about 100 frames scrolled one by one with short pauses (the viewer's
image path), a think pause, and a valid read document (one long
axis across the middle slice, its length computed from the pixel spacing as the page does). When the
task has nothing left for it, the next visitor signs up in its place (so the load stays at the asked
number of readers and sign-ups continue through the run). Every submit the server acknowledges (2xx) is
appended to the JSON-lines file named by READERBOARD_LOAD_ACK_LOG, so benchmarks/load/run_load.py can
check afterwards that each of them is in the database exactly once.

    locust -f benchmarks/load/locustfile.py --host http://127.0.0.1:8000 --headless -u 200 -r 20 -t 60s

Only ever pointed at a deployment made for the load test: it creates readers and reads.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from locust import HttpUser, between, task
from locust.exception import StopUser

ACK_LOG = os.environ.get("READERBOARD_LOAD_ACK_LOG", "")
FRAMES_PER_CASE = int(os.environ.get("READERBOARD_LOAD_FRAMES_PER_CASE", "100"))
THINK_S = (
    float(os.environ.get("READERBOARD_LOAD_THINK_MIN_S", "2")),
    float(os.environ.get("READERBOARD_LOAD_THINK_MAX_S", "6")),
)
# A reader scrolls at about 10 to 30 slices a second.
SCROLL_S = (
    float(os.environ.get("READERBOARD_LOAD_SCROLL_MIN_S", "0.03")),
    float(os.environ.get("READERBOARD_LOAD_SCROLL_MAX_S", "0.1")),
)
# What the viewer's Cornerstone WADO-RS loader sends on this branch (issue 13 may negotiate a compressed
# transfer syntax; change this to match the viewer when it does).
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

_numbers = itertools.count(1)
_ack_lock = threading.Lock()


def record_ack(entry: dict) -> None:
    if not ACK_LOG:
        return
    with _ack_lock, open(ACK_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def read_document(case: dict, started_at: str) -> dict:
    """A valid read: one horizontal long axis through the centre of the case's middle instance."""
    instance = case["instances"][len(case["instances"]) // 2]
    rows, columns = instance["rows"], instance["columns"]
    column_spacing = instance["pixel_spacing_mm"][1]
    row = rows / 2
    start, end = [columns * 0.3, row], [columns * 0.6, row]
    return {
        "client_uuid": str(uuid.uuid4()),
        "case": case["id"],
        "started_at": started_at,
        "duration_s": 4.2,
        "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": [
            {
                "lesion": 1,
                "long_axis": {
                    "sop_instance_uid": instance["sop_instance_uid"],
                    "frame": 1,
                    "start": start,
                    "end": end,
                    "length_mm": round((end[0] - start[0]) * column_spacing, 3),
                },
            }
        ],
    }


class BoothReader(HttpUser):
    wait_time = between(*THINK_S)

    def on_start(self) -> None:
        self.client.trust_env = False  # loopback only, whatever proxy the environment names
        self.sign_up_as_a_new_visitor()

    def sign_up_as_a_new_visitor(self) -> None:
        self.client.cookies.clear()
        self.number = next(_numbers)
        self.display_name = f"Load reader {self.number} {secrets.token_hex(2)}"
        csrf = secrets.token_hex(16)
        self.client.cookies.set("csrftoken", csrf, domain=urlsplit(self.host).hostname)
        # One address per simulated tablet (rate limits are per address), and the double-submit CSRF pair.
        self.headers = {
            "X-CSRFToken": csrf,
            "Referer": self.host + "/",
            "X-Forwarded-For": f"10.{self.number // 65536 % 256}.{self.number // 256 % 256}.{self.number % 256}",
        }
        signup = {
            "display_name": self.display_name,
            "pin": f"{1000 + self.number % 9000}",
            "role": "trainee",
            "years_experience": self.number % 20,
            "consent": True,
        }
        with self.client.post("/api/signup/", json=signup, headers=self.headers, catch_response=True) as answer:
            if answer.status_code != 201:
                answer.failure(f"sign-up answered {answer.status_code}: {answer.text[:200]}")
                raise StopUser()
        # Signing in rotates the CSRF secret (Django does, against session fixation); send the new one.
        self.headers["X-CSRFToken"] = self.client.cookies.get("csrftoken")
        tasks = self.client.get("/api/tasks/", headers=self.headers).json()
        self.task_id = tasks[self.number % len(tasks)]["id"]

    @task
    def read_one_case(self) -> None:
        with self.client.post(
            f"/api/tasks/{self.task_id}/next-case/",
            headers=self.headers,
            name="/api/tasks/[id]/next-case/",
            catch_response=True,
        ) as offered:
            if offered.status_code == 204:
                offered.success()
                # This reader has read everything it may: the next visitor steps up to the booth, so the
                # number of readers stays what the run asked for.
                self.sign_up_as_a_new_visitor()
                return
            if offered.status_code != 200:
                offered.failure(f"next-case answered {offered.status_code}: {offered.text[:200]}")
                return
            case = offered.json()
        started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        series_path = f"/dicomweb/studies/{case['study_instance_uid']}/series/{case['series_instance_uid']}"
        self.client.get(
            f"{series_path}/metadata",
            headers={**self.headers, "Accept": "application/dicom+json"},
            name="/dicomweb/.../series/[uid]/metadata",
        )
        instances = case["instances"]
        middle = len(instances) // 2
        # The reader scrolls through FRAMES_PER_CASE slices around the middle of the case, one at a time.
        for instance in instances[max(0, middle - FRAMES_PER_CASE // 2) : middle + (FRAMES_PER_CASE + 1) // 2]:
            self.client.get(
                f"{series_path}/instances/{instance['sop_instance_uid']}/frames/1",
                headers={**self.headers, "Accept": FRAME_ACCEPT},
                name="/dicomweb/.../instances/[uid]/frames/1",
            )
            time.sleep(random.uniform(*SCROLL_S))
        self.wait()  # the reader measures the lesion
        document = read_document(case, started_at)
        with self.client.post(
            "/api/reads/", json=document, headers=self.headers, name="/api/reads/", catch_response=True
        ) as saved:
            if saved.status_code in (200, 201):
                body = saved.json()
                record_ack(
                    {
                        "client_uuid": document["client_uuid"],
                        "case": case["id"],
                        "reader": self.display_name,
                        "read_id": body["read"]["id"],
                        "status": saved.status_code,
                    }
                )
            else:
                saved.failure(f"submit answered {saved.status_code}: {saved.text[:200]}")
