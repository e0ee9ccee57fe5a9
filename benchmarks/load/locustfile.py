"""Locust scenario: booth readers doing the full reading loop against a running Readerboard.

Each simulated reader signs up (from its own client address, as booth tablets would, sent as
X-Forwarded-For to a server started with proxy headers trusted), lists the open tasks, then loops:
next case, the series metadata, about 100 frames scrolled one by one with short pauses (the viewer's
image path, negotiated as the viewer negotiates it: JPEG-LS lossless), a think pause while the reader
measures, and a valid read document (one long axis across the middle slice, its length computed from the
pixel spacing as the page does).

Two paces (READERBOARD_LOAD_PACE):
- `booth` (the default): a case takes about a minute, as the Crowds Cure Cancer booth told its readers
  ("any individual case will probably take you less than a minute or two"): after scrolling, 20-60 s
  of looking and measuring before the submit;
- `stress`: 2-6 s between scrolling and submitting, a case every 10 s or so: six times faster than any
  reader measures, to find where the box saturates. When the
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
from http.cookiejar import Cookie
from urllib.parse import urlsplit

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

ACK_LOG = os.environ.get("READERBOARD_LOAD_ACK_LOG", "")
FRAMES_PER_CASE = int(os.environ.get("READERBOARD_LOAD_FRAMES_PER_CASE", "100"))
# Seconds between the last frame and the submit (looking, measuring), per pace.
PACES = {"booth": (20.0, 60.0), "stress": (2.0, 6.0)}
_pace = PACES[os.environ.get("READERBOARD_LOAD_PACE", "booth")]
THINK_S = (
    float(os.environ.get("READERBOARD_LOAD_THINK_MIN_S", _pace[0])),
    float(os.environ.get("READERBOARD_LOAD_THINK_MAX_S", _pace[1])),
)
# A reader scrolls at about 10 to 30 slices a second.
SCROLL_S = (
    float(os.environ.get("READERBOARD_LOAD_SCROLL_MIN_S", "0.03")),
    float(os.environ.get("READERBOARD_LOAD_SCROLL_MAX_S", "0.1")),
)
# What the viewer's Cornerstone WADO-RS loader sends: the server chooses, and answers JPEG-LS lossless
# (encoded once when the task opens; run_load.py warms the series as opening a task does).
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

STATUS_LOG = os.environ.get("READERBOARD_LOAD_STATUS_LOG", "")
# A busy server answers 503 with Retry-After; like the reading page's outbox, a reader waits and retries.
BUSY_RETRIES = 5

_numbers = itertools.count(1)
_ack_lock = threading.Lock()
_status_counts: dict[str, dict[str, int]] = {}


@events.request.add_listener
def count_status(request_type, name, response, exception, **_kwargs) -> None:
    """Responses per endpoint and status (503s past saturation are not errors, 500s are)."""
    status = str(getattr(response, "status_code", 0) or ("exception" if exception else 0))
    per_name = _status_counts.setdefault(f"{request_type} {name}", {})
    per_name[status] = per_name.get(status, 0) + 1


@events.quitting.add_listener
def write_status_counts(**_kwargs) -> None:
    if STATUS_LOG:
        with open(STATUS_LOG, "w", encoding="utf-8") as log:
            json.dump(_status_counts, log)


def retry_after_s(response) -> float:
    try:
        return float(response.headers.get("Retry-After", "5"))
    except (TypeError, ValueError):
        return 5.0


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


def set_cookie(jar, name: str, value: str, domain: str) -> None:
    jar.set_cookie(
        Cookie(0, name, value, None, False, domain, False, False, "/", True, False, None, False, None, None, {})
    )


def cookie_value(jar, name: str) -> str | None:
    return next((cookie.value for cookie in jar if cookie.name == name), None)


class BoothReader(FastHttpUser):
    # geventhttpclient, not python-requests: the load generator shares the box it measures, so its own
    # CPU per request must stay small.
    # Between a submit and the next case: the press of "Submit, next" (the thinking is inside the task).
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.sign_up_as_a_new_visitor()

    def sign_up_as_a_new_visitor(self) -> None:
        self.client.cookiejar.clear()
        self.number = next(_numbers)
        self.display_name = f"Load reader {self.number} {secrets.token_hex(2)}"
        csrf = secrets.token_hex(16)
        set_cookie(self.client.cookiejar, "csrftoken", csrf, urlsplit(self.host).hostname)
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
        if not self.post_until_admitted("/api/signup/", name="/api/signup/", judge=self.judge_signup, json=signup):
            raise StopUser()
        # Signing in rotates the CSRF secret (Django does, against session fixation); send the new one.
        self.headers["X-CSRFToken"] = cookie_value(self.client.cookiejar, "csrftoken")
        tasks = self.client.get("/api/tasks/", headers=self.headers).json()
        self.task_id = tasks[self.number % len(tasks)]["id"]

    @staticmethod
    def judge_signup(answer) -> bool:
        if answer.status_code != 201:
            answer.failure(f"sign-up answered {answer.status_code}: {answer.text[:200]}")
            return False
        return True

    def post_until_admitted(self, path: str, *, name: str, judge, **kwargs):
        """POST, waiting out 503 + Retry-After as the reading page does; return judge(final response).

        `judge` runs inside locust's response context, so it marks the answer a success or a failure.
        """
        for attempt in range(BUSY_RETRIES + 1):
            with self.client.post(path, headers=self.headers, name=name, catch_response=True, **kwargs) as answer:
                if answer.status_code != 503 or attempt == BUSY_RETRIES:
                    return judge(answer)
                answer.success()  # counted per status in the status log; the retry is what the reader sees
                wait_s = retry_after_s(answer)
            time.sleep(wait_s)
        return None

    @staticmethod
    def judge_offer(offered) -> tuple[int, dict | None]:
        """(status, the case offered by next-case or None); 204 means this reader has nothing left."""
        if offered.status_code == 204:
            offered.success()
            return 204, None
        if offered.status_code != 200:
            offered.failure(f"next-case answered {offered.status_code}: {offered.text[:200]}")
            return offered.status_code, None
        return 200, offered.json()

    @task
    def read_one_case(self) -> None:
        status, case = self.post_until_admitted(
            f"/api/tasks/{self.task_id}/next-case/", name="/api/tasks/[id]/next-case/", judge=self.judge_offer
        )
        if status == 204:
            # This reader has read everything it may: the next visitor steps up to the booth, so the
            # number of readers stays what the run asked for.
            self.sign_up_as_a_new_visitor()
            return
        if case is None:
            return
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
        time.sleep(random.uniform(*THINK_S))  # the reader looks and measures (gevent-patched sleep)
        document = read_document(case, started_at)
        # A retry after 503 resends the same document (same client_uuid), as the reading page's outbox does.
        self.post_until_admitted(
            "/api/reads/",
            name="/api/reads/",
            judge=lambda saved: self.judge_submit(saved, document, case),
            json=document,
        )

    def judge_submit(self, saved, document: dict, case: dict) -> None:
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
