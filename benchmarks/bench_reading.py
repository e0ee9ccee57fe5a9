"""Benchmark: reading a real-size CT in Chromium over emulated booth Wi-Fi, side by side in one run.

One 600-slice 512 x 512 synthetic CT at 1 mm is served by Readerboard (uvicorn, one process per
core, SQLite in a temporary data dir, frames encoded once when the task opens) and by Orthanc with
its DICOMweb plugin. Debian's chromium opens the reading page with Playwright in a fresh browser
context per run (empty HTTP cache), with the DevTools protocol emulating 50 Mbit/s down and 20 ms
round trip (and on loopback). Three ways to read the same case:

- `readerboard`: JPEG-LS lossless frames, interaction-first prefetch (what readers get);
- `baseline`: native frames and Cornerstone's context prefetch (the behaviour before issue 13);
- `orthanc`: the same viewer reading from Orthanc's DICOMweb, which transcodes to JPEG-LS at ingest.

Reported per run: case open -> first image; slider jumps to seeded random slices -> that slice
drawn (p50, p95); case open -> every slice in Cornerstone's cache; frame bytes on the wire per
slice; JS heap and Cornerstone cache size at the end. JSON goes to benchmarks/results/.

    .venv/bin/python benchmarks/bench_reading.py [--slices 600] [--jumps 12] [--no-orthanc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_dicomweb import Orthanc, Readerboard  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CHROMIUM = "/usr/bin/chromium"
WIFI = {"name": "wifi-50mbit-20ms", "megabits_per_s": 50.0, "latency_ms": 20.0}
LOOPBACK = {"name": "loopback", "megabits_per_s": None, "latency_ms": 0.0}
JLS_SYNTAX = "1.2.840.10008.1.2.4.80"
READY = "() => window.readerboardViewer && window.readerboardViewer.ready()"
PIN = "48213"


def write_ct(workdir: Path, *, slices: int) -> list[Path]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
    from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

    patient = SyntheticPatient(
        patient_id="RB-BENCH-READ",
        patient_name="Bench^Reading",
        lesions=[SyntheticLesion(center_mm=(-60.0, 40.0, 20.0), diameters_mm=(28.0, 19.0, 22.0), hu=20.0)],
        slices=slices,
        slice_spacing_mm=1.0,
        seed=13,
    )
    return write_series(patient, workdir / "dicom", uid_seed=f"bench-reading-{slices}").files


def prepare_task(server: Readerboard) -> dict:
    """Open a task on the imported series and encode its frames (the work done when a task opens)."""
    script = """
import django, json, time
django.setup()
from django.core.management import call_command
from annotations.models import Case, Task
from viewer.dicomweb.delivery import warm_series
call_command("collectstatic", interactive=False, verbosity=0)  # the server runs with DEBUG off
from viewer.models import Series
series = Series.objects.get()
task = Task.objects.create(name="Bench: reading", instructions_md="Benchmark", reads_per_case=1000)
Case.objects.create(task=task, series=series, label="Real-size case")
started = time.perf_counter()
built = warm_series(series)
print(json.dumps({"task_id": task.pk, "encode_s": time.perf_counter() - started, "built": built}))
"""
    output = subprocess.run(
        [sys.executable, "-c", script], env=server.env, cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def read_once(browser, *, base_url: str, task_id: int, mode: str, condition: dict, targets: list[int], extra: str):
    """Sign up a new reader, open the case, jump around, wait until the series is cached; return figures."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    if condition["megabits_per_s"]:
        rate = condition["megabits_per_s"] * 1e6 / 8
        session.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": condition["latency_ms"],
                "downloadThroughput": rate,
                "uploadThroughput": rate,
            },
        )
    frame_requests: dict[str, bool] = {}
    frame_bytes = [0]

    def on_response(event):
        if "/frames/" in event["response"]["url"]:
            frame_requests[event["requestId"]] = True

    def on_finished(event):
        if frame_requests.pop(event["requestId"], False):
            frame_bytes[0] += event["encodedDataLength"]

    session.on("Network.responseReceived", on_response)
    session.on("Network.loadingFinished", on_finished)
    try:
        page.goto(f"{base_url}/signup/?next={quote(f'/read/{task_id}/{extra}', safe='')}")
        page.get_by_label("Display name").fill(f"Bench {mode} {condition['name']} {time.monotonic_ns() % 10**9}")
        page.get_by_label("PIN").fill(PIN)
        page.get_by_label("Role").select_option("trainee")
        page.get_by_label("Subspecialty").fill("Body")
        page.get_by_label("Years of experience").fill("3")
        page.locator("[name=consent]").check()
        page.get_by_role("button", name="Start reading").click()
        try:
            page.wait_for_function(READY, timeout=120_000)
        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "readerboard-reading-failed.png"))
            raise RuntimeError(f"reading page never got ready at {page.url}: {errors[:3]}") from None
        opened = page.evaluate(
            """() => {
                const open = performance.getEntriesByName('readerboard-case-open').at(-1).startTime;
                const first = performance.getEntriesByName('readerboard-first-image').at(-1).startTime;
                return { open, firstImageMs: first - open };
            }"""
        )
        jumps = []
        for target in targets:
            page.wait_for_timeout(1500)  # the reader looks at the slice; prefetch runs meanwhile
            jumps.append(
                page.evaluate(
                    """async (target) => {
                        const element = document.querySelector('#viewport');
                        const slider = document.querySelector('#slice-slider');
                        const started = performance.now();
                        const drawn = new Promise((resolve) => {
                            const listener = (event) => {
                                if (event.detail.imageIdIndex !== target) return;
                                element.removeEventListener('CORNERSTONE_STACK_NEW_IMAGE', listener);
                                resolve(performance.now() - started);
                            };
                            element.addEventListener('CORNERSTONE_STACK_NEW_IMAGE', listener);
                        });
                        slider.value = String(target + 1);
                        slider.dispatchEvent(new Event('input', { bubbles: true }));
                        return drawn;
                    }""",
                    target,
                )
            )
        page.wait_for_function("() => window.readerboardViewer.cachedFraction() >= 1", timeout=300_000, polling=200)
        finished = page.evaluate(
            """(open) => ({
                allCachedMs: performance.now() - open,
                heapBytes: performance.memory ? performance.memory.usedJSHeapSize : null,
                cacheBytes: window.readerboardViewer.cacheBytes(),
                slices: window.readerboardViewer.imageIds().length,
            })""",
            opened["open"],
        )
        return {
            "mode": mode,
            "condition": condition["name"],
            "first_image_ms": round(opened["firstImageMs"], 1),
            "jump_ms": [round(value, 1) for value in jumps],
            "jump_p50_ms": round(statistics.median(jumps), 1),
            "jump_p95_ms": round(percentile(jumps, 0.95), 1),
            "all_cached_s": round(finished["allCachedMs"] / 1000, 2),
            "frame_bytes_per_slice": round(frame_bytes[0] / finished["slices"]),
            "heap_mb": round(finished["heapBytes"] / 2**20, 1) if finished["heapBytes"] else None,
            "cornerstone_cache_mb": round(finished["cacheBytes"] / 2**20, 1),
            "page_errors": errors[:5],
        }
    finally:
        page.goto("about:blank")
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--jumps", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--conditions", default="wifi,loopback")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="rb-bench-reading-"))
    servers = []
    try:
        started = time.perf_counter()
        files = write_ct(workdir, slices=args.slices)
        write_s = time.perf_counter() - started
        readerboard = Readerboard(workdir, server="uvicorn", workers=os.cpu_count() or 2)
        prepared = readerboard.prepare(files)
        task = prepare_task(readerboard)
        readerboard.start()
        servers.append(readerboard)
        orthanc = None
        if not args.no_orthanc and shutil.which("Orthanc"):
            orthanc = Orthanc(workdir)
            # Orthanc 1.10's DICOMweb plugin will not transcode uncompressed frames on retrieval
            # ("Cannot specify a transfer syntax ... for default Little Endian uncompressed pixel
            # data"), so it stores JPEG-LS at ingest and serves that for transfer-syntax=*.
            orthanc.extra_config = {"IngestTranscoding": JLS_SYNTAX}
            orthanc.start()
            servers.append(orthanc)
            orthanc.upload(files, prepared["instances"])
        native_bytes = 512 * 512 * 2
        rng = random.Random(args.seed)
        targets = [rng.randrange(args.slices) for _ in range(args.jumps)]
        base_url = f"http://127.0.0.1:{readerboard.port}"
        modes = {"readerboard": "", "baseline": "?bench-transfer=native&bench-prefetch=context"}
        if orthanc is not None:
            modes["orthanc"] = f"?bench-wadors={quote(f'http://127.0.0.1:{orthanc.port}/dicom-web', safe='')}"
        conditions = [c for c in (WIFI, LOOPBACK) if c["name"].split("-")[0] in args.conditions.split(",")]
        runs = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--enable-precise-memory-info",
                    # The orthanc mode reads images from another origin; Orthanc sends no CORS headers.
                    "--disable-web-security",
                ],
            )
            for condition in conditions:
                for mode, extra in modes.items():
                    print(f"{condition['name']:>18} {mode:>12} ...", flush=True)
                    try:
                        run = read_once(
                            browser,
                            base_url=base_url,
                            task_id=task["task_id"],
                            mode=mode,
                            condition=condition,
                            targets=targets,
                            extra=extra,
                        )
                    except Exception as error:  # noqa: BLE001 - a peer that cannot do it is a result too
                        run = {"mode": mode, "condition": condition["name"], "error": str(error)[:300]}
                    run["bytes_vs_native"] = (
                        round(run["frame_bytes_per_slice"] / native_bytes, 3)
                        if "frame_bytes_per_slice" in run
                        else None
                    )
                    print(json.dumps(run), flush=True)
                    runs.append(run)
            browser.close()
        result = {
            "benchmark": "reading",
            "slices": args.slices,
            "rows_columns": 512,
            "jump_targets": targets,
            "seed": args.seed,
            "write_series_s": round(write_s, 1),
            "encode_series_s": round(task["encode_s"], 1),
            "server": f"uvicorn x{os.cpu_count()}",
            "runs": runs,
            "machine": {"cpus": os.cpu_count()},
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"reading-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2))
        print_table(runs)
        print(f"written {out}")
        return 0
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(runs: list[dict]) -> None:
    print(
        f"{'condition':>18} {'mode':>12} {'first':>8} {'jump p50':>9} {'jump p95':>9} {'all cached':>11} {'bytes':>7}"
    )
    for run in runs:
        if "error" in run:
            print(f"{run['condition']:>18} {run['mode']:>12} error: {run['error'][:60]}")
            continue
        print(
            f"{run['condition']:>18} {run['mode']:>12} {run['first_image_ms']:>6.0f}ms {run['jump_p50_ms']:>7.0f}ms "
            f"{run['jump_p95_ms']:>7.0f}ms {run['all_cached_s']:>10.1f}s {run['bytes_vs_native']:>7.1%}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
