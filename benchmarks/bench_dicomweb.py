"""Benchmark: Readerboard's DICOMweb service against Orthanc's, side by side in one run.

Serves the same synthetic 512x512 CT series from Readerboard (uvicorn or daphne in a
subprocess, a temporary data dir) and from Orthanc with its DICOMweb plugin (Debian
packages `orthanc` + `orthanc-dicomweb`, own config, loopback ports chosen at run
time), then measures at 1, 8 and 32 concurrent clients: requests (frames) per second
and p50/p99 latency for native frames, rendered PNG frames and series metadata, cold
(caches emptied and servers restarted, every URL once, by the asyncio client below)
and warm (after a warm-up, a fixed time of requests cycling over the URLs, by `wrk`
when Debian's wrk is installed, else by the asyncio client). Prints a table with the
Readerboard/Orthanc ratio per row and writes it as JSON to benchmarks/results/.

Only loopback traffic; every request loop is bounded in count and time. Both servers
are stopped at the end, and the temporary directory removed.

    .venv/bin/python benchmarks/bench_dicomweb.py                # full run (~5 min)
    .venv/bin/python benchmarks/bench_dicomweb.py --quick        # smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
# Native frames by name: `transfer-syntax=*` (what the viewer sends) now gets JPEG-LS from Readerboard and the
# stored form from Orthanc, which bench_reading.py compares in the browser.
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
WINDOW = "40,400,linear"
KINDS = ("frames", "rendered", "metadata")


def free_port() -> int:
    """Return a loopback port free right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, headers: dict[str, str], *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up within {timeout_s:.0f} s")


# --- the load generator: one keep-alive HTTP/1.1 connection per client -------------------------


@dataclass
class RunResult:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    bytes_received: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict:
        ordered = sorted(self.latencies_s)
        count = len(ordered)

        def percentile(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(count - 1, max(0, int(round(q * (count - 1)))))] * 1000, 2)

        return {
            "requests": count,
            "errors": self.errors,
            "per_s": round(count / self.wall_s, 1) if self.wall_s else None,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
            "mb_per_s": round(self.bytes_received / self.wall_s / 1e6, 1) if self.wall_s else None,
        }


CLIENT_BUFFER_BYTES = 4 * 1024 * 1024


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    received = 0
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            received += len(await reader.readexactly(size))
            await reader.readline()
    elif length is not None:
        received = len(await reader.readexactly(length))
    return status, received, close


async def _client(port: int, paths: asyncio.Queue, headers: dict, result: RunResult, deadline: float) -> None:
    reader = writer = None
    header_text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    try:
        while time.monotonic() < deadline:
            try:
                path = paths.get_nowait()
            except asyncio.QueueEmpty:
                return
            if writer is None:
                # A buffer bigger than a frame, so the reader never pauses the socket mid-response:
                # with the 64 KiB default the load generator, not the server, caps frames/s.
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CLIENT_BUFFER_BYTES)
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header_text}\r\n".encode())
            try:
                status, received, close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                result.errors += 1
                writer.close()
                reader = writer = None
                continue
            elapsed = time.perf_counter() - started
            if status == 200 and received > 0:
                result.latencies_s.append(elapsed)
                result.bytes_received += received
            else:
                result.errors += 1
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def run_load(port: int, paths: list[str], headers: dict, *, clients: int, time_limit_s: float) -> RunResult:
    """Send every path once, spread over `clients` concurrent connections; stop at the time limit."""

    async def main() -> RunResult:
        queue: asyncio.Queue = asyncio.Queue()
        for path in paths:
            queue.put_nowait(path)
        result = RunResult()
        started = time.perf_counter()
        deadline = time.monotonic() + time_limit_s
        await asyncio.gather(*(_client(port, queue, headers, result, deadline) for _ in range(clients)))
        result.wall_s = time.perf_counter() - started
        return result

    try:
        import uvloop  # the same fast event loop for the load generator whichever server it measures
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


# --- the warm-phase load generator: wrk (C, epoll), so the client takes little of the 2 cores -------

WRK_SCRIPT = r"""
local paths, next_index = {}, 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, \"errors\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def run_wrk(port: int, paths: list[str], headers: dict, *, clients: int, seconds: float, workdir: Path) -> dict:
    """Cycle over `paths` for `seconds` with `clients` keep-alive connections on one wrk thread."""
    script, path_list = workdir / "cycle.lua", workdir / "paths.txt"
    script.write_text(WRK_SCRIPT)
    path_list.write_text("\n".join(paths) + "\n")
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += [f"http://127.0.0.1:{port}", "--", str(path_list)]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK-JSON "))
    raw = json.loads(line.removeprefix("WRK-JSON "))
    wall_s = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"],
        "per_s": round(raw["requests"] / wall_s, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "mb_per_s": round(raw["bytes"] / wall_s / 1e6, 1),
        "client": "wrk",
    }


# --- the two servers ---------------------------------------------------------------------------


class Server:
    name = "server"
    port = 0

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart_cold(self) -> None:
        self.stop()
        self.clear_cache()
        self.start()

    def clear_cache(self) -> None:
        pass

    def start(self) -> None:
        raise NotImplementedError

    headers: dict[str, str] = {}

    def urls(self, kind: str) -> list[str]:
        raise NotImplementedError


class Readerboard(Server):
    name = "readerboard"

    def __init__(self, workdir: Path, *, server: str, workers: int) -> None:
        super().__init__()
        self.data_dir = workdir / "readerboard-data"
        self.server, self.workers = server, workers
        self.env = {
            **os.environ,
            "READERBOARD_DATA_DIR": str(self.data_dir),
            "DJANGO_SETTINGS_MODULE": "readerboard.settings",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        self.log = open(workdir / "readerboard.log", "ab")  # noqa: SIM115 - closed in stop_all
        self.token = ""
        self.paths: dict[str, list[str]] = {}

    def prepare(self, files: list[Path]) -> dict:
        """Migrate a fresh SQLite store, import the series, create an admin token; return the UIDs."""
        script = f"""
import django, json, sys
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from viewer.models import Instance
from viewer.services.dicom_import import import_paths
report = import_paths({[str(f) for f in files]!r}, collection_name="Benchmark")
user = get_user_model().objects.create_superuser("bench", password="bench-pw-123")
token = Token.objects.create(user=user)
instances = list(Instance.objects.select_related("series__study").order_by("series_id", "sort_position_mm"))
print(json.dumps({{"token": token.key, "imported": report.imported, "instances": [
    [i.series.study.study_instance_uid, i.series.series_instance_uid, i.sop_instance_uid] for i in instances]}}))
"""
        output = subprocess.run(
            [sys.executable, "-c", script], env=self.env, cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        prepared = json.loads(output.strip().splitlines()[-1])
        self.token = prepared["token"]
        self.headers = {"Authorization": f"Token {self.token}"}
        self._build_paths(prepared["instances"], root="/dicomweb")
        return prepared

    def _build_paths(self, instances: list[list[str]], *, root: str) -> None:
        self.paths = build_paths(instances, root=root)

    def urls(self, kind: str) -> list[str]:
        return self.paths[kind]

    def clear_cache(self) -> None:
        shutil.rmtree(self.data_dir / "cache", ignore_errors=True)

    def start(self) -> None:
        self.port = free_port()
        if self.server == "uvicorn":
            command = [
                sys.executable, "-m", "uvicorn", "readerboard.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers), "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        else:
            command = [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "readerboard.asgi:application",
            ]
        self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=self.log, stderr=self.log)
        wait_until_up(f"http://127.0.0.1:{self.port}/dicomweb/studies", self.headers)
        # Load code in every worker (URLconf, pydicom, NumPy, Pillow) so "cold" means cold caches, not imports.
        for _ in range(4 * self.workers):
            wait_until_up(f"http://127.0.0.1:{self.port}/dicomweb/studies?limit=1", self.headers)


class Orthanc(Server):
    name = "orthanc"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir / "orthanc"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = open(workdir / "orthanc.log", "ab")  # noqa: SIM115 - closed in stop_all
        self.paths: dict[str, list[str]] = {}
        self.extra_config: dict = {}  # e.g. IngestTranscoding for the reading benchmark

    def start(self) -> None:
        self.port = free_port()
        config = {
            "Name": "ReaderboardBenchmark",
            "StorageDirectory": str(self.workdir / "db"),
            "IndexDirectory": str(self.workdir / "db"),
            "HttpPort": self.port,
            "DicomPort": free_port(),
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "HttpThreadsCount": 50,
            "KeepAlive": True,
            "StorageCompression": False,
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        config.update(self.extra_config)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        self.process = subprocess.Popen(["Orthanc", str(config_path)], stdout=self.log, stderr=self.log)
        wait_until_up(f"http://127.0.0.1:{self.port}/system", {})

    def upload(self, files: list[Path], instances: list[list[str]]) -> None:
        for path in files:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/instances", data=path.read_bytes(), method="POST"
            )
            request.add_header("Content-Type", "application/dicom")
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        self.paths = build_paths(instances, root="/dicom-web")

    def urls(self, kind: str) -> list[str]:
        return self.paths[kind]


def build_paths(instances: list[list[str]], *, root: str) -> dict[str, list[str]]:
    frames = [f"{root}/studies/{st}/series/{se}/instances/{sop}/frames/1" for st, se, sop in instances]
    series = sorted({f"{root}/studies/{st}/series/{se}/metadata" for st, se, _ in instances})
    return {
        "frames": frames,
        "rendered": [f"{url}/rendered?window={WINDOW}" for url in frames],
        "metadata": series,
    }


KIND_HEADERS = {
    "frames": {"Accept": FRAME_ACCEPT},
    "rendered": {"Accept": "image/png"},
    "metadata": {"Accept": "application/dicom+json"},
}


WARM_UP_SECONDS = 2.0


def measure(server: Server, kind: str, clients: int, *, settings: argparse.Namespace, workdir: Path) -> dict:
    """Restart cold and request every distinct URL once (cold); warm up, then measure cycling over them (warm).

    The warm-up matters for a multi-process server: each process keeps its own in-memory tier.
    """
    server.restart_cold()
    headers = {**server.headers, **KIND_HEADERS[kind]}
    urls = server.urls(kind)
    cold = run_load(server.port, urls, headers, clients=clients, time_limit_s=settings.time_limit).summary()
    if settings.wrk:
        run_wrk(server.port, urls, headers, clients=clients, seconds=WARM_UP_SECONDS, workdir=workdir)
        warm = run_wrk(server.port, urls, headers, clients=clients, seconds=settings.warm_seconds, workdir=workdir)
    else:
        run_load(server.port, urls * 3, headers, clients=clients, time_limit_s=settings.time_limit)
        warm_paths = [urls[i % len(urls)] for i in range(max(settings.warm_requests, len(urls)))]
        warm = run_load(server.port, warm_paths, headers, clients=clients, time_limit_s=settings.time_limit).summary()
    return {"cold": {**cold, "client": "asyncio"}, "warm": warm if settings.wrk else {**warm, "client": "asyncio"}}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 2) if ours and theirs else None


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'kind':<9}{'phase':<6}{'clients':>8} | {'RB/s':>8}{'RB p50':>8}{'RB p99':>8} |"
        f" {'Orth/s':>8}{'Or p50':>8}{'Or p99':>8} | {'x/s':>6}{'p99 x':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, theirs = row["readerboard"], row.get("orthanc") or {}

        def cell(stats: dict, key: str) -> str:
            value = stats.get(key)
            return f"{value:>8.1f}" if isinstance(value, int | float) else f"{'-':>8}"

        speedup = row.get("throughput_ratio")
        p99_ratio = row.get("p99_ratio")
        print(
            f"{row['kind']:<9}{row['phase']:<6}{row['clients']:>8} |{cell(ours, 'per_s')}{cell(ours, 'p50_ms')}"
            f"{cell(ours, 'p99_ms')} |{cell(theirs, 'per_s')}{cell(theirs, 'p50_ms')}{cell(theirs, 'p99_ms')} |"
            f" {speedup if speedup is not None else '-':>6}{p99_ratio if p99_ratio is not None else '-':>7}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=64, help="slices of the 512x512 demo series")
    parser.add_argument("--series", type=int, default=4, help="number of demo series (cold requests: series x slices)")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: frames,rendered,metadata")
    parser.add_argument("--warm-seconds", type=float, default=5.0, help="length of each warm measurement with wrk")
    parser.add_argument("--warm-requests", type=int, default=400, help="requests per warm measurement without wrk")
    parser.add_argument("--no-wrk", action="store_true", help="measure warm rows with the asyncio client too")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds at most per measurement")
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="uvicorn worker processes (default: one per core)"
    )
    parser.add_argument("--no-orthanc", action="store_true", help="measure Readerboard alone")
    parser.add_argument("--quick", action="store_true", help="small smoke run: 16 slices, 1 series, short warm rows")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)
    if args.quick:
        args.slices, args.series, args.warm_requests, args.warm_seconds = 16, 1, 80, 2.0
    args.wrk = not args.no_wrk and shutil.which("wrk") is not None
    clients_levels = [int(c) for c in args.clients.split(",")]
    kinds = [kind for kind in args.kinds.split(",") if kind]
    use_orthanc = not args.no_orthanc and shutil.which("Orthanc") is not None

    sys.path.insert(0, str(REPO))
    from viewer.services.synthetic_ct import demo_patients, write_series

    workdir = Path(tempfile.mkdtemp(prefix="rb-bench-dicomweb-"))
    servers: list[Server] = []
    try:
        print(f"writing {args.series} synthetic series of {args.slices} 512x512 slices under {workdir}")
        files: list[Path] = []
        for index, patient in enumerate(demo_patients(count=args.series, slices=args.slices)):
            patient = dataclasses.replace(patient, slices=args.slices)
            files += write_series(patient, workdir / f"series-{index}").files
        readerboard = Readerboard(workdir, server=args.server, workers=args.workers)
        prepared = readerboard.prepare(files)
        servers.append(readerboard)
        print(f"imported {prepared['imported']} instances into Readerboard")
        orthanc = None
        if use_orthanc:
            orthanc = Orthanc(workdir)
            servers.append(orthanc)
            orthanc.start()
            orthanc.upload(files, prepared["instances"])
            print(f"uploaded {len(files)} instances to Orthanc")

        rows = []
        for kind in kinds:
            for clients in clients_levels:
                ours = measure(readerboard, kind, clients, settings=args, workdir=workdir)
                readerboard.stop()
                theirs = None
                if orthanc is not None:
                    theirs = measure(orthanc, kind, clients, settings=args, workdir=workdir)
                    orthanc.stop()
                for phase in ("cold", "warm"):
                    row = {"kind": kind, "phase": phase, "clients": clients, "readerboard": ours[phase]}
                    if theirs is not None:
                        row["orthanc"] = theirs[phase]
                        row["throughput_ratio"] = ratio(ours[phase]["per_s"], theirs[phase]["per_s"])
                        # Above 1 means Readerboard's p99 is lower (better) by that factor.
                        row["p99_ratio"] = ratio(theirs[phase]["p99_ms"], ours[phase]["p99_ms"])
                    rows.append(row)
                    print(f"  {kind} {phase} x{clients}: {json.dumps({k: v for k, v in row.items() if k != 'kind'})}")
        print()
        print_table(rows)
        result = {
            "benchmark": "dicomweb",
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "setup": {
                "series": args.series,
                "slices_per_series": args.slices,
                "frame": "512x512 int16 CT, explicit VR little endian",
                "readerboard_server": f"{args.server} x{args.workers if args.server == 'uvicorn' else 1}",
                "orthanc": orthanc is not None,
                "cold": "caches emptied and server restarted; every distinct URL requested once (asyncio client)",
                "warm": (
                    f"{WARM_UP_SECONDS:g} s warm-up, then {args.warm_seconds:g} s cycling over the URLs (wrk, 1 thread)"
                    if args.wrk
                    else f"3 warm-up passes, then {args.warm_requests} requests cycling over the URLs (asyncio)"
                ),
                "ratios": "throughput_ratio = Readerboard/Orthanc requests per second; "
                "p99_ratio = Orthanc p99 / Readerboard p99 (above 1: Readerboard faster)",
            },
            "rows": rows,
        }
        out = args.out or RESULTS_DIR / "dicomweb.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {out}")
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
            with contextlib.suppress(Exception):
                server.log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
