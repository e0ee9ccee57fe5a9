"""Whole-task consensus speed: 2,000 synthetic cases x 5 reads through recompute_task_consensus.

Run: .venv/bin/python benchmarks/bench_consensus.py [--cases 2000] [--workers 2]
Builds a throw-away SQLite database under /tmp (tables from the models), fills it with
synthetic series geometry and reads (lines on every read, STAPLE masks on a quarter of
the cases, some extra and missed lesions, some "no lesion" votes), times a first full
recompute and a second, idempotent one, and writes benchmarks/results/consensus.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"


def setup_django(db_path: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
    os.environ.setdefault("READERBOARD_DATA_DIR", str(db_path.parent / "data"))
    import django
    from django.conf import settings

    django.setup()
    settings.MIGRATION_MODULES = {app.label: None for app in django.apps.apps.get_app_configs()}
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def build(n_cases: int, reads_per_case: int, seed: int = 1):
    import numpy as np
    from django.contrib.auth import get_user_model

    from annotations.core import mask_rle
    from annotations.models import Case, Mark, MaskSlice, Read, Reader, Task
    from viewer.models import Collection, Instance, Series, Study

    rng = np.random.default_rng(seed)
    rows = cols = 128
    n_slices = 12
    task = Task.objects.create(name="Benchmark task", reads_per_case=reads_per_case)
    users = get_user_model().objects.bulk_create(get_user_model()(username=f"bench{i}") for i in range(12))
    readers = Reader.objects.bulk_create(
        Reader(user=u, display_name=u.username, pseudonym=f"R-B{i:04d}") for i, u in enumerate(users)
    )
    study = Study.objects.create(study_instance_uid="2.25.1", collection=Collection.objects.create(name="Bench"))
    series = Series.objects.bulk_create(
        Series(series_instance_uid=f"2.25.1.{i}", study=study, modality="CT") for i in range(n_cases)
    )
    Instance.objects.bulk_create(
        (
            Instance(
                sop_instance_uid=f"2.25.1.{s.pk}.{k}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                series=s,
                rows=rows,
                columns=cols,
                pixel_spacing_mm=[0.8, 0.8],
                slice_thickness_mm=2.5,
                image_position_patient=[-51.0, -51.0, 2.5 * k],
                image_orientation_patient=[1, 0, 0, 0, 1, 0],
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                file_path="none",
                file_size=0,
                sort_position_mm=2.5 * k,
                instance_number=k + 1,
            )
            for s in series
            for k in range(n_slices)
        ),
        batch_size=2000,
    )
    instance_ids = {}
    for pk, series_id, uid in Instance.objects.values_list("pk", "series_id", "sop_instance_uid"):
        instance_ids[(series_id, int(uid.rsplit(".", 1)[1]))] = pk
    cases = Case.objects.bulk_create(Case(task=task, series=s, label=f"case {i}") for i, s in enumerate(series))
    yy, xx = np.mgrid[0:rows, 0:cols]
    reads, marks, masks = [], [], []
    plans = []
    for case in cases:
        chosen = rng.choice(len(readers), size=reads_per_case, replace=False)
        lesions = [
            (rng.uniform(30, 98, 2), int(rng.integers(3, 9)), float(rng.uniform(12, 40)))
            for _ in range(int(rng.integers(1, 3)))
        ]
        painted = rng.random() < 0.25
        for reader_index in chosen:
            no_lesion = rng.random() < 0.08
            read = Read(
                client_uuid=uuid.uuid4(),
                case=case,
                reader=readers[reader_index],
                no_lesion=no_lesion,
                duration_s=float(rng.uniform(20, 90)),
                document={},
            )
            reads.append(read)
            plans.append(
                (read, case, [] if no_lesion else [lesion for lesion in lesions if rng.random() > 0.1], painted)
            )
    Read.objects.bulk_create(reads, batch_size=2000)
    for read, case, lesions, painted in plans:
        for number, (centre, slice_index, length_px) in enumerate(lesions, start=1):
            k = int(np.clip(slice_index + rng.choice([-1, 0, 0, 0, 1]), 0, n_slices - 1))
            length = length_px * rng.normal(1.0, 0.08)
            cx, cy = centre + rng.normal(0, 1.0, 2)
            angle = rng.uniform(0, np.pi)
            dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
            instance = instance_ids[(case.series_id, k)]
            marks.append(
                Mark(
                    read=read,
                    lesion_index=number,
                    kind="long_axis",
                    instance_id=instance,
                    start_col=cx - dx,
                    start_row=cy - dy,
                    end_col=cx + dx,
                    end_row=cy + dy,
                    length_mm=0.8 * length,
                )
            )
            if painted:
                for dk in (-1, 0, 1):
                    kk = k + dk
                    if not 0 <= kk < n_slices:
                        continue
                    radius = length / 2 * (0.7 if dk else 1.0)
                    bitmap = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
                    counts = mask_rle.encode(bitmap)
                    masks.append(
                        MaskSlice(
                            read=read,
                            lesion_index=number,
                            instance_id=instance_ids[(case.series_id, kk)],
                            counts=counts,
                            pixel_count=int(bitmap.sum()),
                        )
                    )
    Mark.objects.bulk_create(marks, batch_size=2000)
    MaskSlice.objects.bulk_create(masks, batch_size=1000)
    return task, {"cases": len(cases), "reads": len(reads), "marks": len(marks), "mask_slices": len(masks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb-bench-") as tmp:
        setup_django(Path(tmp) / "bench.sqlite3")
        from annotations.consensus.case_consensus import recompute_task_consensus
        from annotations.models import CaseConsensus

        started = time.perf_counter()
        task, counts = build(args.cases, args.reads)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        first = recompute_task_consensus(task=task, workers=args.workers)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = recompute_task_consensus(task=task, workers=args.workers)
        second_s = time.perf_counter() - started
        stored = CaseConsensus.objects.count()
    result = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "data": counts,
        "build_s": round(build_s, 2),
        "first_recompute_s": round(first_s, 2),
        "second_recompute_s": round(second_s, 2),
        "first": first.__dict__,
        "second": second.__dict__,
        "consensus_rows": stored,
        "target_s": 30,
    }
    print(
        f"{counts['cases']} cases x {args.reads} reads ({counts['marks']} lines,"
        f" {counts['mask_slices']} mask slices), {args.workers} workers"
    )
    print(f"  first recompute : {first_s:6.2f} s  ({first.computed} computed, {first.low_agreement} flagged)")
    print(f"  second (no-op)  : {second_s:6.2f} s  ({second.unchanged} unchanged)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"consensus_{args.workers}workers.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
