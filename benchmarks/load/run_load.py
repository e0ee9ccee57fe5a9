"""Load test with an audit: many booth readers against uvicorn + Celery + PostgreSQL + Redis on loopback.

Makes a fresh PostgreSQL database and starts a private redis-server (never the machine's shared
one), migrates, seeds open tasks whose cases are real-size synthetic CT series (512x512x200 by default,
a few series shared by the tasks, warmed as opening a task does), starts the web server as the
container does (`uvicorn --workers`, `--web` of them; or `--server daphne`: `--web` Daphne processes on
one socket), trusting X-Forwarded-For for client addresses as behind the booth's proxy, and `--workers`
Celery workers for consensus, then runs benchmarks/load/locustfile.py headless for a bounded time at the
booth's pace (or `--pace stress`), sampling the CPU seconds of every process it started (the load
generator's included).

Afterwards it AUDITS the database:
- every submit acknowledged to a client (2xx, logged by the locust users with its client_uuid) is
  stored exactly once, for that reader and case;
- no case has more counted reads than its task's target;
- no reader read a case twice;
and waits (bounded) until Celery has a current consensus for every read case. It prints throughput,
p50/p99 latency per endpoint and the error rate, and writes everything to JSON.

    .venv/bin/python benchmarks/load/run_load.py --spawn-rate 4          # 200 readers, 180 s
    .venv/bin/python benchmarks/load/run_load.py --users 20 --duration-s 20 --out /tmp/load.json

Exit status 0 only when the audit passes. Everything started or created is stopped and dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.processes import (  # noqa: E402 - after the path is set for a direct run
    BIN,
    PYTHON,
    Deployment,
    deployment_env,
    fresh_postgres_database,
    loopback_listener,
    private_redis,
    sql_rows,
)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
TIMED_APP = "benchmarks.load.timed_asgi:application"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "load.json"
# Synthetic series written by earlier runs (deterministic per patient number and size), reused.
SERIES_CACHE = Path(os.environ.get("READERBOARD_LOAD_SERIES_CACHE", Path(tempfile.gettempdir()) / "rb-load-series"))

SEED_SCRIPT = r"""
import json, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from annotations.models import Case, Task
from annotations.booth.roles import ensure_role_groups
from viewer.dicomweb.delivery import warm_series
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

cases, reads_per_case = int(sys.argv[1]), int(sys.argv[2])
rows, slices, series_count = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ensure_role_groups()
# Real-size series are large (512x512x200 is 100 MB), so a few are written and shared: every task has
# each series as one case, and there are as many tasks as it takes to make `cases` cases.
all_series = []
for number in range(1, series_count + 1):
    lesion = SyntheticLesion(center_mm=(-8.0, 6.0, 0.0), diameters_mm=(16.0, 10.0, 12.0))
    spacing = 350.0 / rows if rows >= 256 else 1.0
    patient = SyntheticPatient(patient_id=f"RB-LOAD-{number:04d}", patient_name="Load^Test", lesions=[lesion],
                               rows=rows, columns=rows, slices=slices, pixel_spacing_mm=spacing,
                               slice_spacing_mm=1.25, seed=number)
    # Writing a real-size series takes minutes; a sweep writes each once (files cached outside the run).
    folder = Path(sys.argv[6]) / f"{patient.patient_id}-{rows}x{slices}"
    if not (folder / "series.json").exists():
        written = write_series(patient, folder)
        (folder / "series.json").write_text(json.dumps({"uid": written.series_instance_uid}))
    import_paths(sorted(folder.glob("*.dcm")), collection_name="Load test")
    uid = json.loads((folder / "series.json").read_text())["uid"]
    series = Series.objects.get(series_instance_uid=uid)
    warm_series(series)  # what opening a task does: frames JPEG-LS encoded once, metadata built
    all_series.append(series)
tasks, made = [], 0
while made < cases:
    task = Task.objects.create(name=f"Load study {len(tasks) + 1}", reads_per_case=reads_per_case,
                               tools=["long_axis", "bidirectional", "no_lesion", "skip"])
    tasks.append(task.pk)
    for series in all_series[: cases - made]:
        Case.objects.create(task=task, series=series, label=f"Load case {made + 1}")
        made += 1
print(json.dumps({"tasks": tasks, "cases": cases, "reads_per_case": reads_per_case}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="simulated readers (default 200)")
    parser.add_argument("--spawn-rate", type=float, default=20, help="readers started per second (default 20)")
    parser.add_argument("--duration-s", type=int, default=180, help="bounded run time in seconds (default 180)")
    parser.add_argument("--web", type=int, default=2, help="ASGI server processes sharing the socket (default 2)")
    parser.add_argument("--cases", type=int, default=60, help="cases in the task (default 60)")
    parser.add_argument("--reads-per-case", type=int, default=5, help="read target per case (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (default 1)")
    parser.add_argument("--rows", type=int, default=512, help="rows (= columns) of each series (default 512)")
    parser.add_argument("--slices", type=int, default=200, help="slices of each series (default 200)")
    parser.add_argument("--series", type=int, default=4, help="distinct series, shared by the tasks (default 4)")
    parser.add_argument("--frames", type=int, default=100, help="frames each reader scrolls per case (default 100)")
    parser.add_argument(
        "--pace",
        choices=("booth", "stress"),
        default="booth",
        help="booth: a case in about a minute, as readers read (default); stress: a case every ~10 s",
    )
    parser.add_argument(
        "--server", choices=("uvicorn", "daphne"), default="uvicorn", help="ASGI server (default: uvicorn, as deployed)"
    )
    parser.add_argument("--server-cpus", default="", help="pin web and worker processes to these CPUs (taskset list)")
    parser.add_argument("--locust-cpus", default="", help="pin the load generator to these CPUs (taskset list)")
    parser.add_argument(
        "--no-access-log", action="store_true", help="uvicorn without its access log (the proxy writes one)"
    )
    parser.add_argument(
        "--timing", action="store_true", help="time every request inside the server too (timed_asgi.py)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the first web process (collapsed stacks)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    return parser.parse_args(argv)


def run_load(
    *,
    users: int,
    spawn_rate: float,
    duration_s: int,
    web: int = 2,
    cases: int = 60,
    reads_per_case: int = 5,
    workers: int = 1,
    rows: int = 512,
    slices: int = 200,
    series: int = 4,
    frames: int = 100,
    pace: str = "booth",
    server: str = "uvicorn",
    server_cpus: str = "",
    locust_cpus: str = "",
    profile: bool = False,
    profile_out: Path | None = None,
    timing: bool = False,
    access_log: bool = True,
    log=print,
) -> dict:
    """Run the whole load test and audit; return the results (see the module docstring)."""
    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="rb-load-") as scratch:
        base = Path(scratch)
        (base / "logs").mkdir()
        with fresh_postgres_database("rb_load") as database_url, private_redis(base / "redis") as redis:
            env = deployment_env(database_url=database_url, redis_url=redis.url, data_dir=base / "data")
            if timing:
                (base / "timing").mkdir()
                env["READERBOARD_TIMING_DIR"] = str(base / "timing")
            deployment = Deployment(env=env, data_dir=base / "data", database_url=database_url, logs=base / "logs")
            listener = loopback_listener()
            try:
                log("migrating and seeding ...")
                deployment.run(PYTHON, "manage.py", "migrate", "--noinput", "-v", "0", timeout_s=300)
                seed = json.loads(
                    deployment.run(
                        PYTHON,
                        "-c",
                        SEED_SCRIPT,
                        *map(str, (cases, reads_per_case, rows, slices, series, SERIES_CACHE)),
                        timeout_s=1800,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                if server == "uvicorn":
                    base_url = deployment.start_uvicorn(
                        "web",
                        workers=web,
                        proxy_headers=True,
                        cpus=server_cpus,
                        app=TIMED_APP if timing else "readerboard.asgi:application",
                        access_log=access_log,
                    )
                else:
                    for number in range(web):
                        base_url = deployment.start_web(
                            f"web-{number}", listener=listener, proxy_headers=True, cpus=server_cpus
                        )
                for number in range(workers):
                    deployment.start_worker(f"worker-{number}", "default,consensus", cpus=server_cpus)
                log(
                    f"{web} {server} process(es) on {base_url}, {workers} Celery worker(s); "
                    f"{users} readers for {duration_s} s ..."
                )
                profiler = None
                if profile:
                    profiler = deployment.start(
                        "py-spy",
                        [
                            str(BIN / "py-spy"),
                            "record",
                            "--pid",
                            str(deployment.service("web" if server == "uvicorn" else "web-0").process.pid),
                            "--subprocesses",
                            "--gil",  # samples of threads running Python: where the CPU goes, not who waits
                            "--rate",
                            "50",
                            "--format",
                            "raw",
                            "--output",
                            str(base / "profile.txt"),
                            "--duration",
                            str(duration_s),
                        ],
                    )
                acks_path = base / "acks.jsonl"
                acks_path.touch()
                started = time.monotonic()
                locust = deployment.start(
                    "locust",
                    [
                        *(["taskset", "-c", locust_cpus] if locust_cpus else []),
                        str(BIN / "locust"),
                        "-f",
                        str(LOCUSTFILE),
                        "--headless",
                        "--host",
                        base_url,
                        "-u",
                        str(users),
                        "-r",
                        str(spawn_rate),
                        "-t",
                        f"{duration_s}s",
                        "--stop-timeout",
                        "15",
                        "--csv",
                        str(base / "locust"),
                        "--only-summary",
                        "--loglevel",
                        "WARNING",
                    ],
                    env={
                        "READERBOARD_LOAD_ACK_LOG": str(acks_path),
                        "READERBOARD_LOAD_FRAMES_PER_CASE": str(frames),
                        "READERBOARD_LOAD_PACE": pace,
                        "READERBOARD_LOAD_STATUS_LOG": str(base / "statuses.json"),
                    },
                )
                # CPU seconds of each of our processes (with children), sampled to the end: the load
                # generator's own share is part of the result, not hidden in the server's figures.
                cpu_s: dict[str, float] = {}
                while locust.process.poll() is None and time.monotonic() - started < duration_s + 120:
                    cpu_s.update(cpu_seconds(deployment))
                    time.sleep(1)
                locust.process.wait(timeout=10)
                wall_s = time.monotonic() - started
                if profiler is not None:
                    profiler.process.wait(timeout=60)
                    if profile_out is not None and (base / "profile.txt").exists():
                        profile_out.write_text((base / "profile.txt").read_text())
                stats = read_locust_stats(base / "locust_stats.csv")
                statuses = json.loads((base / "statuses.json").read_text()) if (base / "statuses.json").exists() else {}
                if not stats:
                    raise RuntimeError("locust wrote no statistics\n" + locust.log_tail())
                acks = [json.loads(line) for line in acks_path.read_text().splitlines() if line.strip()]
                audit = audit_database(database_url, acks)
                settled_s = wait_for_consensus(database_url, timeout_s=180)
                for service in deployment.services:
                    if service.name not in ("locust", "py-spy"):
                        service.assert_running()
                failures = (base / "locust_failures.csv").read_text() if (base / "locust_failures.csv").exists() else ""
                server_errors = exception_lines(deployment)
                server_timing = summarise_server_timing(base / "timing", started_at=started) if timing else None
            finally:
                deployment.stop_all()
                listener.close()
    aggregated = stats.pop("Aggregated")
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "setup": {
            "users": users,
            "spawn_rate": spawn_rate,
            "duration_s": duration_s,
            "web_processes": web,
            "uvicorn_access_log": access_log,
            "server": server,
            "pace": pace,
            "server_cpus": server_cpus or "any",
            "locust_cpus": locust_cpus or "any",
            "celery_workers": workers,
            "cases": seed["cases"],
            "tasks": len(seed["tasks"]),
            "reads_per_case": seed["reads_per_case"],
            "series": f"{series} synthetic CT series of {rows}x{rows}x{slices}, shared by the tasks",
            "frames_per_case": frames,
            "frame_request": "WADO-RS frames, Accept: multipart/related; type=application/octet-stream; "
            "transfer-syntax=* (as the viewer asks; answered JPEG-LS lossless, encoded when the series was warmed)",
        },
        "cpu_s": {name: round(value, 1) for name, value in sorted(cpu_s.items())},
        "wall_s": round(wall_s, 1),
        "requests": aggregated["requests"],
        "failures": aggregated["failures"],
        # Responses per endpoint and status: 503 (busy, retried after Retry-After) is shedding, not an error.
        "statuses": statuses,
        "busy_503": sum(per_name.get("503", 0) for per_name in statuses.values()),
        "server_errors_5xx": sum(
            count
            for per_name in statuses.values()
            for status, count in per_name.items()
            if status.startswith("5") and status != "503"
        ),
        "error_rate": aggregated["failures"] / aggregated["requests"] if aggregated["requests"] else 0.0,
        "throughput_rps": aggregated["rps"],
        "acknowledged_reads": len(acks),
        "reads_per_s": round(len(acks) / duration_s, 2),
        "latency_ms": {"all": {"p50": aggregated["p50_ms"], "p99": aggregated["p99_ms"]}}
        | {name: {"p50": row["p50_ms"], "p99": row["p99_ms"]} for name, row in stats.items()},
        "endpoints": stats,
        "audit": audit,
        "consensus_settled_s": settled_s,
        "failure_examples": failures.splitlines()[:10],
        "server_errors": server_errors,
    } | ({"server_timing": server_timing} if server_timing is not None else {})


def machine_description() -> dict:
    """CPUs, model and a speed figure, so runs on different machines (or VMs) are not compared blind.

    `python_loop_ms` is the best of three runs of a fixed pure-Python loop, taken before the load starts:
    the server's work is Python, so it scales the run's CPU seconds between machines.
    """
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        sum(number * number for number in range(2_000_000))
        timings.append(time.perf_counter() - started)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python_loop_ms": round(min(timings) * 1000, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summarise_server_timing(timing_dir: Path, *, started_at: float) -> dict:
    """Per endpoint, p50/p99 of the time inside the server process; the event loop's lag (timed_asgi.py)."""
    import numpy as np

    per_endpoint: dict[str, list[float]] = {}
    views: dict[str, dict[str, list[float]]] = {}
    lags: list[float] = []
    for path in sorted(timing_dir.glob("timing-*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["t"] < started_at:
                continue  # warm-up before the load started
            if record["kind"] == "lag":
                lags.append(record["ms"])
            elif record["kind"] == "view":
                view = views.setdefault(record["endpoint"], {"wall": [], "cpu": [], "db": [], "waiting": []})
                view["wall"].append(record["ms"])
                view["cpu"].append(record["cpu_ms"])
                view["db"].append(record["db_ms"])
                view["waiting"].append(max(0.0, record["ms"] - record["cpu_ms"] - record["db_ms"]))
            else:
                per_endpoint.setdefault(record["endpoint"], []).append(record["ms"])

    def percentiles(values: list[float]) -> dict:
        return {"count": len(values), "p50": round(float(np.percentile(values, 50)), 1),
                "p99": round(float(np.percentile(values, 99)), 1), "max": round(max(values), 1)}  # fmt: skip

    return {
        "in_process_ms": {name: percentiles(values) for name, values in sorted(per_endpoint.items())},
        # Inside the view: the thread's own CPU, time in database calls, and the rest (waiting for the GIL,
        # a core or a pooled connection).
        "in_view_ms": {
            name: {part: percentiles(values) for part, values in parts.items()} for name, parts in sorted(views.items())
        },
        "event_loop_lag_ms": percentiles(lags) if lags else None,
    }


def cpu_seconds(deployment: Deployment) -> dict[str, float]:
    """CPU seconds (user + system) of each running service, its child processes included."""
    import psutil

    seconds = {}
    for service in deployment.services:
        if service.process.poll() is not None:
            continue
        try:
            root = psutil.Process(service.process.pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
        seconds[service.name] = total
    return seconds


def exception_lines(deployment: Deployment) -> dict[str, int]:
    """The exceptions the servers logged (class and message), with how often each occurred."""
    counts: dict[str, int] = {}
    for service in deployment.services:
        if service.name == "locust":
            continue
        for line in service.log_text().splitlines():
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Refused|Timeout)\b.*:", line):
                key = f"{service.name}: {line[:200]}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:20])


def read_locust_stats(path: Path) -> dict[str, dict]:
    """Per endpoint (and "Aggregated"): requests, failures, requests/s, p50/p99 in ms, from locust's CSV."""
    if not path.exists():
        return {}
    rows = {}
    with path.open(newline="") as stats:
        for row in csv.DictReader(stats):
            name = row["Name"] if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
            rows[name] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 2),
                "p50_ms": _number(row["50%"]),
                "p99_ms": _number(row["99%"]),
                "max_ms": _number(row["Max Response Time"]),
            }
    return rows


def _number(text: str) -> float | None:
    try:
        return round(float(text), 1)
    except ValueError:
        return None


def audit_database(database_url: str, acks: list[dict]) -> dict:
    """Check the acknowledged submits against the database; return the figures and a list of problems."""
    stored = {
        client_uuid: (case_id, display_name)
        for client_uuid, case_id, display_name in sql_rows(
            database_url,
            "SELECT r.client_uuid::text, r.case_id, p.display_name "
            "FROM annotations_read r JOIN annotations_reader p ON p.id = r.reader_id",
        )
    }
    problems = []
    acked_uuids = [ack["client_uuid"] for ack in acks]
    if len(set(acked_uuids)) != len(acked_uuids):
        problems.append("a client_uuid was acknowledged twice")
    missing = [ack for ack in acks if ack["client_uuid"] not in stored]
    problems += [f"acknowledged read {ack['client_uuid']} is not in the database" for ack in missing[:20]]
    wrong = [
        ack
        for ack in acks
        if ack["client_uuid"] in stored and stored[ack["client_uuid"]] != (ack["case"], ack["reader"])
    ]
    problems += [f"read {ack['client_uuid']} is stored for another case or reader" for ack in wrong[:20]]
    # client_uuid is unique in the schema; count anyway, so a dropped constraint would show here.
    duplicated = sql_rows(
        database_url,
        "SELECT client_uuid::text, COUNT(*) FROM annotations_read GROUP BY client_uuid HAVING COUNT(*) > 1",
    )
    problems += [f"client_uuid {uuid} is stored {count} times" for uuid, count in duplicated]
    over_target = sql_rows(
        database_url,
        """
        SELECT c.id, t.reads_per_case, c.reads_done, COUNT(DISTINCT r.reader_id) FILTER (WHERE NOT r.skip)
        FROM annotations_case c JOIN annotations_task t ON t.id = c.task_id
        LEFT JOIN annotations_read r ON r.case_id = c.id
        GROUP BY c.id, t.reads_per_case, c.reads_done
        HAVING COUNT(DISTINCT r.reader_id) FILTER (WHERE NOT r.skip) > t.reads_per_case
            OR c.reads_done > t.reads_per_case
        """,
    )
    problems += [
        f"case {case} has {readers} readers (reads_done {done}) for a target of {target}"
        for case, target, done, readers in over_target
    ]
    twice = sql_rows(
        database_url,
        "SELECT case_id, reader_id, COUNT(*) FROM annotations_read GROUP BY case_id, reader_id HAVING COUNT(*) > 1",
    )
    problems += [f"reader {reader} read case {case} {count} times" for case, reader, count in twice]
    (full_cases,) = sql_rows(
        database_url,
        "SELECT COUNT(*) FROM annotations_case c JOIN annotations_task t ON t.id = c.task_id "
        "WHERE c.reads_done >= t.reads_per_case",
    )[0]
    return {
        "passed": not problems,
        "acknowledged": len(acks),
        "stored_reads": len(stored),
        # Stored but never acknowledged: the client's answer was lost (its retry would get the stored read).
        "stored_not_acknowledged": len(set(stored) - set(acked_uuids)),
        "cases_at_target": full_cases,
        "problems": problems,
    }


def wait_for_consensus(database_url: str, *, timeout_s: float) -> float | None:
    """Seconds until every read case has a current consensus newer than its newest read (None if not in time)."""
    started = time.monotonic()

    def settled() -> bool:
        (stale,) = sql_rows(
            database_url,
            """
            SELECT COUNT(*) FROM (
                SELECT r.case_id, MAX(r.submitted_at) AS newest FROM annotations_read r GROUP BY r.case_id
            ) latest
            LEFT JOIN annotations_caseconsensus c ON c.case_id = latest.case_id AND c.is_current
            WHERE c.id IS NULL OR c.computed_at < latest.newest
            """,
        )[0]
        return stale == 0

    while time.monotonic() - started < timeout_s:
        if settled():
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def print_report(result: dict) -> None:
    setup, audit = result["setup"], result["audit"]
    print(
        f"\n{setup['users']} readers ({setup['pace']} pace), {setup['duration_s']} s, "
        f"{setup['web_processes']} {setup['server']} + "
        f"{setup['celery_workers']} Celery worker(s), "
        f"{result['machine']['cpus']} CPUs"
    )
    print(
        f"requests {result['requests']}, {result['throughput_rps']} req/s, error rate {result['error_rate']:.2%}, "
        f"503 busy (retried) {result['busy_503']}, 5xx errors {result['server_errors_5xx']}"
    )
    print("CPU seconds: " + ", ".join(f"{name} {value}" for name, value in result["cpu_s"].items()))
    print(
        f"acknowledged reads {result['acknowledged_reads']} ({result['reads_per_s']}/s); "
        f"consensus settled {result['consensus_settled_s']} s after the run"
    )
    print(f"{'endpoint':<52} {'requests':>8} {'fail':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in result["endpoints"].items():
        print(f"{name:<52} {row['requests']:>8} {row['failures']:>5} {row['p50_ms']!s:>8} {row['p99_ms']!s:>8}")
    print(
        f"audit: {'PASSED' if audit['passed'] else 'FAILED'}: {audit['acknowledged']} acknowledged, "
        f"{audit['stored_reads']} stored, {audit['cases_at_target']} cases at target"
    )
    for problem in audit["problems"]:
        print("  -", problem)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_load(
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration_s=args.duration_s,
        web=args.web,
        cases=args.cases,
        reads_per_case=args.reads_per_case,
        workers=args.workers,
        rows=args.rows,
        slices=args.slices,
        series=args.series,
        frames=args.frames,
        pace=args.pace,
        server=args.server,
        server_cpus=args.server_cpus,
        locust_cpus=args.locust_cpus,
        profile=args.profile,
        profile_out=args.out.with_suffix(".profile.txt") if args.profile else None,
        timing=args.timing,
        access_log=not args.no_access_log,
    )
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0 if result["audit"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
