"""The one export service: the command line, the Celery task and the API all call it.

`export_to_path` writes one format of a task to a file; `run_export` does the same
for an ExportJob row, recording status and progress on it, and keeps the finished file
in `storages["exports"]`. Files are written under a temporary name in the target folder
and renamed into place only when complete, so a crash never leaves a half file that looks
finished. On the filesystem default the job's file is built directly where the store keeps
it (no second copy); on object storage it is built in a temporary folder and uploaded only
once complete. This module must never
decide who may export (the API and the command line do) and never name readers
unless asked to with pseudonymise=False (nor teams, unless asked with identify_teams=True).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.utils import timezone

from annotations.exports import bundle, csv_export, deeplesion_export, follow_up_export, nifti_dataset, sanitise
from annotations.models import ExportJob, Task

logger = logging.getLogger(__name__)

Format = ExportJob.Format
ProgressCallback = Callable[[int, int], None]
JobProgressCallback = Callable[[ExportJob], None]

EXTENSIONS = {
    Format.CSV: "csv",
    Format.CONSENSUS_CSV: "csv",
    Format.SR: "zip",
    Format.SEG: "zip",
    Format.BUNDLE: "zip",
    Format.NNUNET: "zip",
    Format.MONAI: "zip",
    Format.DEEPLESION: "csv",
}
# Training-ready datasets of a task's masks, written as one archive each (not bundle parts).
DATASET_FORMATS = {Format.NNUNET: "nnunet", Format.MONAI: "monai"}
# Formats a follow-up task can give: no masks (so no SEG or datasets), no consensus RECIST rows.
FOLLOW_UP_FORMATS = (Format.CSV, Format.CONSENSUS_CSV, Format.SR, Format.BUNDLE)
# Saving progress on every tick would cost a write per read; a few a second is what a page shows.
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    csv_rows: int
    dicom_files: int
    # Cases (image + label map) in a training dataset (nnunet, monai).
    dataset_cases: int = 0
    # What the export changed or left out to fit its format (sanitise's counts), e.g. {"formula_cells_neutralised": 2}.
    warnings: dict[str, int] = field(default_factory=dict)


def export_filename(*, task: Task, fmt: str) -> str:
    """The file name of a task's export, e.g. `task-3-liver-lesions-sr.zip`."""
    slug = re.sub(r"[^a-z0-9]+", "-", task.name.casefold()).strip("-")[:60] or "task"
    return f"task-{task.pk}-{slug}-{Format(fmt).value.replace('_', '-')}.{EXTENSIONS[Format(fmt)]}"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` only if the block completes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


class _Counter:
    """Counts progress steps and reports them to the callback."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.done, self.total, self._callback = 0, total, callback

    def tick(self, steps: int = 1) -> None:
        self.done += steps
        if self._callback:
            self._callback(self.done, self.total)


def _ticking(rows: Iterable[dict], *, key: str, counter: _Counter, tally: list[int]) -> Iterator[dict]:
    """Pass rows through, ticking once per new `key` value (a read, a case) and counting rows."""
    last = object()
    for row in rows:
        tally[0] += 1
        if row[key] != last:
            last = row[key]
            counter.tick()
        yield row


def check_exportable(*, task: Task, fmt: str) -> None:
    """Raise ValueError saying why when this export of the task would be empty (a dataset without masks).

    The API calls it to answer 400 before queueing a job; `export_to_path` calls it before writing anything.
    """
    fmt = Format(fmt)
    if fmt in DATASET_FORMATS:
        nifti_dataset.check_has_labels(task)
    elif fmt == Format.DEEPLESION:
        deeplesion_export.check_has_lesions(task)


def _steps(task: Task, fmt: Format) -> dict[str, int]:
    """Progress steps per part: reads for the reads CSV, cases for the consensus, documents for DICOM."""
    if fmt in DATASET_FORMATS:
        return {"dataset": len(nifti_dataset.labelled_cases(task))}
    if fmt == Format.DEEPLESION:
        return {"deeplesion": len(deeplesion_export.measured_consensus(task))}
    parts = {
        Format.CSV: ["csv"],
        Format.CONSENSUS_CSV: ["consensus_csv"],
        Format.SR: ["sr"],
        Format.SEG: ["seg"],
        Format.BUNDLE: ["csv", "consensus_csv", "sr", "seg"],
    }[fmt]
    steps = {}
    if task.is_follow_up:
        # Follow-up tasks: lesion and response CSVs, SRs per time point; no masks, so no SEG.
        counts = {
            "csv": csv_export.reads_for_export(task).count(),
            "consensus_csv": task.cases.count(),
            "sr": follow_up_export.sr_steps(task),
            "seg": 0,
        }
        return {part: counts[part] for part in parts}
    for part in parts:
        if part == "csv":
            steps[part] = csv_export.reads_for_export(task).count()
        elif part == "consensus_csv":
            steps[part] = csv_export.current_consensus(task).values("case_id").distinct().count()
        else:
            steps[part] = bundle.dicom_steps(task, part)
    return steps


def export_to_path(
    *,
    task: Task,
    fmt: str,
    out: Path,
    pseudonymise: bool = True,
    identify_teams: bool = False,
    raw_cells: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write one export of a task to `out` (a file, or a folder to put the default file name in).

    Readers and teams appear as pseudonyms; pseudonymise=False names both, identify_teams=True names teams only.
    CSV cells that a spreadsheet would run as formulas are neutralised unless `raw_cells`. Stored values that
    do not fit a format are replaced or left out, never fatal, and counted in the result's `warnings`.
    """
    fmt = Format(fmt)
    out = Path(out)
    if out.is_dir():
        out = out / export_filename(task=task, fmt=fmt)
    check_exportable(task=task, fmt=fmt)
    steps = _steps(task, fmt)
    counter = _Counter(sum(steps.values()), progress)
    if progress:
        progress(0, counter.total)
    with atomic_path(out) as temporary, sanitise.counting() as warnings:
        cases = 0
        if fmt in DATASET_FORMATS:
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
                cases = nifti_dataset.write_dataset(archive, task=task, layout=DATASET_FORMATS[fmt], tick=counter.tick)
            csv_rows, dicom_files = 0, 0
        elif fmt in (Format.CSV, Format.CONSENSUS_CSV, Format.DEEPLESION):
            csv_rows = _write_csv_file(
                temporary,
                task=task,
                fmt=fmt,
                pseudonymise=pseudonymise,
                identify_teams=identify_teams,
                raw_cells=raw_cells,
                counter=counter,
            )
            dicom_files = 0
        else:
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
                csv_rows, dicom_files = _write_archive(
                    archive,
                    task=task,
                    parts=list(steps),
                    pseudonymise=pseudonymise,
                    identify_teams=identify_teams,
                    raw_cells=raw_cells,
                    counter=counter,
                )
    if warnings:
        logger.warning("export of task %s (%s) changed stored values to fit: %s", task.pk, fmt.value, dict(warnings))
    return ExportResult(
        path=out,
        format=fmt.value,
        csv_rows=csv_rows,
        dicom_files=dicom_files,
        dataset_cases=cases,
        warnings=dict(sorted(warnings.items())),
    )


def _csv_rows(
    *,
    task: Task,
    part: str,
    pseudonymise: bool,
    identify_teams: bool,
    raw_cells: bool,
    counter: _Counter,
    tally: list[int],
) -> Iterator[str]:
    if part == Format.DEEPLESION:
        rows = deeplesion_export.iter_deeplesion_rows(task=task)
        ticked = _ticking(rows, key="case_id", counter=counter, tally=tally)
        rows_only = ({k: v for k, v in row.items() if k != "case_id"} for row in ticked)
        return csv_export.iter_csv_lines(rows_only, columns=deeplesion_export.DEEPLESION_COLUMNS)
    if task.is_follow_up and part == "csv":
        rows = follow_up_export.iter_lesion_rows(task=task, pseudonymise=pseudonymise)
        columns, key = follow_up_export.LESION_COLUMNS, "read_id"
    elif task.is_follow_up:
        rows = follow_up_export.iter_response_rows(task=task, pseudonymise=pseudonymise)
        columns, key = follow_up_export.RESPONSE_COLUMNS, "case_id"
    elif part == "csv":
        rows = csv_export.iter_read_rows(task=task, pseudonymise=pseudonymise, identify_teams=identify_teams)
        columns, key = csv_export.read_columns(task), "read_id"
    else:
        rows = csv_export.iter_consensus_rows(task=task, pseudonymise=pseudonymise)
        columns, key = csv_export.consensus_columns(task), "case_id"
    return csv_export.iter_csv_lines(
        _ticking(rows, key=key, counter=counter, tally=tally), columns=columns, raw_cells=raw_cells
    )


def _write_csv_file(
    path: Path,
    *,
    task: Task,
    fmt: Format,
    pseudonymise: bool,
    identify_teams: bool,
    raw_cells: bool,
    counter: _Counter,
) -> int:
    tally = [0]
    lines = _csv_rows(
        task=task,
        part=fmt.value,
        pseudonymise=pseudonymise,
        identify_teams=identify_teams,
        raw_cells=raw_cells,
        counter=counter,
        tally=tally,
    )
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for line in lines:
            handle.write(line)
    return tally[0]


def _write_archive(
    archive: zipfile.ZipFile,
    *,
    task: Task,
    parts: list[str],
    pseudonymise: bool,
    identify_teams: bool,
    raw_cells: bool,
    counter: _Counter,
) -> tuple[int, int]:
    counts: dict[str, int] = {}
    entries: list[bundle.ManifestEntry] = []
    # SR lesions point at their SEG segments only when the archive holds the SEGs too.
    links = bundle.SegmentLinks() if {"sr", "seg"} <= set(parts) else None
    for part in parts:
        if part in ("csv", "consensus_csv"):
            tally = [0]
            name = bundle.csv_entry_name(task, part)
            lines = _csv_rows(
                task=task,
                part=part,
                pseudonymise=pseudonymise,
                identify_teams=identify_teams,
                raw_cells=raw_cells,
                counter=counter,
                tally=tally,
            )
            bundle.write_csv_entry(archive, name, lines)
            counts[part] = tally[0]
        elif task.is_follow_up:
            written = []
            if part == "sr":
                for entry, ds in follow_up_export.iter_follow_up_srs(
                    task=task, pseudonymise=pseudonymise, tick=counter.tick
                ):
                    if bundle.write_dicom_entry(archive, entry, ds):
                        written.append(entry)
        else:
            written = bundle.write_dicom_set(
                archive, task=task, kind=part, pseudonymise=pseudonymise, tick=counter.tick, links=links
            )
        if part not in ("csv", "consensus_csv"):
            entries += written
            counts[part] = len(written)
    if entries:
        bundle.write_csv_entry(archive, "manifest.csv", bundle.manifest_lines(entries, raw_cells=raw_cells))
    if "csv" in parts and not task.is_follow_up and csv_export.has_model_reviews(task):
        # Check-the-model tasks: every verdict, rejected suggestions included (they have no row in reads.csv).
        rows = csv_export.iter_model_review_rows(task=task, pseudonymise=pseudonymise)
        counts["model_review"] = 0

        def counted(rows=rows):
            for row in rows:
                counts["model_review"] += 1
                yield row

        bundle.write_csv_entry(
            archive,
            "model_review.csv",
            csv_export.iter_csv_lines(counted(), columns=csv_export.MODEL_REVIEW_COLUMNS, raw_cells=raw_cells),
        )
    readme = bundle.readme_text(
        task=task, parts=parts, pseudonymise=pseudonymise, counts=counts, identify_teams=identify_teams
    )
    archive.writestr("README.txt", readme)
    return counts.get("csv", 0) + counts.get("consensus_csv", 0), len(entries)


def job_file_name(job: ExportJob) -> str:
    """A job's file inside the exports store: `exports/job-<id>/<file name>`."""
    return f"exports/job-{job.pk}/{export_filename(task=job.task, fmt=job.format)}"


def job_output_path(job: ExportJob) -> Path:
    """Where a job's file lives on the filesystem store: <store root>/exports/job-<id>/<file name>."""
    store = storages["exports"]
    if not isinstance(store, FileSystemStorage):
        raise ValueError("the exports store is not on the local filesystem")
    return Path(store.path(job_file_name(job)))


def job_file_exists(job: ExportJob) -> bool:
    """Whether a job's recorded file is in the exports store."""
    return bool(job.file_path) and storages["exports"].exists(job.file_path)


def _build_and_store(job: ExportJob, *, on_progress: ProgressCallback) -> tuple[str, dict[str, int]]:
    """Build the job's file and keep it in the exports store; return its name there and the export's warnings."""
    store = storages["exports"]
    name = job_file_name(job)
    options = dict(
        task=job.task,
        fmt=job.format,
        pseudonymise=job.pseudonymise,
        identify_teams=job.identify_teams,
        raw_cells=job.raw_cells,
        progress=on_progress,
    )
    if isinstance(store, FileSystemStorage):
        # Built in place: the atomic rename is the store's write, so there is no second copy.
        result = export_to_path(out=job_output_path(job), **options)
        return name, result.warnings
    with tempfile.TemporaryDirectory(prefix="readerboard-export-") as folder:
        result = export_to_path(out=Path(folder), **options)
        if store.exists(name):  # a rerun after a crash between upload and save: replace the orphan
            store.delete(name)
        with open(result.path, "rb") as handle:
            return store.save(name, File(handle, name=result.path.name)), result.warnings


def run_export(*, job: ExportJob, progress: JobProgressCallback | None = None) -> ExportJob:
    """Run an export job: status, progress and file path are saved on the row; a rerun of a done job is a no-op.

    `progress(job)` is called after each saved progress update and at the end (e.g. to
    broadcast to a page). An error marks the job failed with the message and is re-raised.
    """
    if job.status == ExportJob.Status.DONE and job_file_exists(job):
        return job
    job.status, job.error, job.progress_done = ExportJob.Status.RUNNING, "", 0
    job.save(update_fields=["status", "error", "progress_done"])
    last_saved = 0.0

    def on_progress(done: int, total: int) -> None:
        nonlocal last_saved
        job.progress_done, job.progress_total = done, total
        now = time.monotonic()
        if now - last_saved >= PROGRESS_INTERVAL_S or done == 0:
            last_saved = now
            job.save(update_fields=["progress_done", "progress_total"])
            if progress:
                progress(job)

    try:
        stored_name, warnings = _build_and_store(job, on_progress=on_progress)
    except Exception as error:
        logger.exception("export job %s failed", job.pk)
        job.status, job.error, job.finished_at = (
            ExportJob.Status.FAILED,
            f"{type(error).__name__}: {error}",
            timezone.now(),
        )
        job.save(update_fields=["status", "error", "finished_at", "progress_done", "progress_total"])
        if progress:
            progress(job)
        raise
    job.status, job.finished_at = ExportJob.Status.DONE, timezone.now()
    job.progress_done = job.progress_total
    job.file_path, job.warnings = stored_name, warnings
    job.save(update_fields=["status", "finished_at", "progress_done", "progress_total", "file_path", "warnings"])
    if progress:
        progress(job)
    return job
