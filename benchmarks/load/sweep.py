"""How many readers does one box hold: run_load.py at several reader counts, p99 per endpoint plotted.

Each point is a complete run of benchmarks/load/run_load.py (fresh database and Redis, seed, servers,
locust, audit). Writes benchmarks/results/sweep-<label>.json with every run and a PNG of p99 per
endpoint against readers (log scale), with the targets of issue 14 drawn in.

    .venv/bin/python benchmarks/load/sweep.py --users 25 50 100 200 400 --duration-s 90 --label booth
    .venv/bin/python benchmarks/load/sweep.py --users 50 100 200 --server-cpus 0 --web 1 --label 1core
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.load.run_load import print_report, run_load  # noqa: E402 - after the path is set

RESULTS = ROOT / "benchmarks" / "results"
# Issue 14's p99 targets in ms (2-core reference machine, 200 readers).
TARGETS_MS = {
    "POST /api/reads/": 150,
    "POST /api/tasks/[id]/next-case/": 150,
    "GET /api/tasks/": 100,
    "GET /dicomweb/.../series/[uid]/metadata": 100,
    "POST /api/signup/": 300,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    parser.add_argument("--duration-s", type=int, default=60)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--reads-per-case", type=int, default=5)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--pace", choices=("booth", "stress"), default="booth")
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    parser.add_argument("--server-cpus", default="", help="pin web and worker processes to these CPUs")
    parser.add_argument("--locust-cpus", default="", help="pin the load generator to these CPUs")
    parser.add_argument("--label", default="2web")
    parser.add_argument("--profile-at", type=int, default=0, help="py-spy the first web process at this many readers")
    parser.add_argument("--replot", default="", metavar="TITLE", help="only redraw the PNG of an earlier sweep")
    return parser.parse_args(argv)


def plot(runs: list[dict], path: Path, title: str) -> None:
    """Write a PNG of p99 (ms, log scale) per endpoint against readers."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    readers = [run["setup"]["users"] for run in runs]
    names = sorted({name for run in runs for name in run["endpoints"]})
    for name in names:
        p99 = [run["endpoints"].get(name, {}).get("p99_ms") for run in runs]
        points = [(r, v) for r, v in zip(readers, p99, strict=True) if v]
        if points:
            line = axes.plot(*zip(*points, strict=True), marker="o", label=name.replace("/dicomweb/.../", "…/"))[0]
            if name in TARGETS_MS:
                axes.axhline(TARGETS_MS[name], color=line.get_color(), linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(readers, [str(r) for r in readers])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("simulated readers")
    axes.set_ylabel("p99 latency (ms); dotted: issue 14 targets")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = []
    out = RESULTS / f"sweep-{args.label}.json"
    if args.replot:
        runs = json.loads(out.read_text())
        setup = runs[0]["setup"]
        plot(runs, out.with_suffix(".png"), args.replot)
        print(f"replotted {out.with_suffix('.png')} ({len(runs)} runs, {setup['web_processes']} web processes)")
        return 0
    for users in args.users:
        result = run_load(
            users=users,
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
            profile=users == args.profile_at,
            profile_out=RESULTS / f"profile-{args.label}-{users}.txt",
        )
        print_report(result)
        runs.append(result)
        out.write_text(json.dumps(runs, indent=2) + "\n")
        cores = f"CPUs {args.server_cpus}" if args.server_cpus else f"{runs[0]['machine']['cpus']} cores"
        title = (
            f"{args.web} {args.server} + {args.workers} Celery on {cores}, load generator included;\n"
            f"{args.pace} pace, {args.series} series {args.rows}x{args.rows}x{args.slices}, "
            f"{args.frames} JPEG-LS frames/case, {args.duration_s} s"
        )
        plot(runs, out.with_suffix(".png"), title)
    print(f"written to {out} and {out.with_suffix('.png')}")
    return 0 if all(run["audit"]["passed"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
