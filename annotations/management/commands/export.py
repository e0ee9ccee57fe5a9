"""`manage.py export TASK --format csv|consensus_csv|sr|seg|bundle|nnunet|monai|deeplesion --out PATH`
[--identify-readers|--identify-teams] [--raw-cells]`: one export of a task to a file, with progress.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.exports import export_to_path
from annotations.models import ExportJob, Task
from readerboard.command_logging import quiet_library_logs


class Command(BaseCommand):
    help = (
        "Export a task's reads and consensus as CSV, DICOM SR (TID 1500), DICOM SEG or a zip bundle, or its "
        "masks and measurements as a training dataset (nnunet, monai: NIfTI zips; deeplesion: DL_info.csv). "
        "TASK is a task id or name. Readers are pseudonymised unless --identify-readers is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("task", help="task id or exact name")
        parser.add_argument("--format", required=True, choices=[choice.value for choice in ExportJob.Format])
        parser.add_argument(
            "--out",
            required=True,
            type=Path,
            help="file to write (CSV: csv, consensus_csv, deeplesion; else .zip); a folder gets the default file name",
        )
        parser.add_argument(
            "--identify-readers",
            action="store_true",
            help="name readers by display name instead of pseudonym (the export then identifies people)",
        )
        parser.add_argument(
            "--identify-teams",
            action="store_true",
            help="name teams by their names instead of team pseudonyms (readers stay pseudonymised)",
        )
        parser.add_argument(
            "--raw-cells",
            action="store_true",
            help="write CSV cells exactly as stored: do not neutralise cells a spreadsheet would run as formulas "
            "(=, +, -, @ first) with a leading quote",
        )
        parser.add_argument("--quiet-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, **options) -> None:
        quiet_library_logs(options["verbosity"])
        task = self._task(options["task"])
        # A step is a read or a case consensus; the bar shows on a terminal only (None: tqdm checks for a TTY).
        hidden = True if options["quiet_progress"] or options["verbosity"] == 0 else None
        bar = tqdm(total=0, unit="step", disable=hidden, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            result = export_to_path(
                task=task,
                fmt=options["format"],
                out=options["out"],
                pseudonymise=not options["identify_readers"],
                identify_teams=options["identify_teams"],
                raw_cells=options["raw_cells"],
                progress=progress,
            )
        except (OSError, ValueError) as error:
            raise CommandError(f"export failed: {error}") from error
        finally:
            bar.close()
        details = []
        if result.csv_rows:
            details.append(f"{result.csv_rows} CSV rows")
        if result.dicom_files:
            details.append(f"{result.dicom_files} DICOM files")
        if result.dataset_cases:
            details.append(f"{result.dataset_cases} cases")
        self.stdout.write(f"wrote {result.path} ({', '.join(details) or 'no rows'})")
        if result.warnings:
            # Stored values that did not fit the format as they were: docs/exports.md says what each count means.
            changes = ", ".join(f"{kind}: {count}" for kind, count in result.warnings.items())
            self.stderr.write(f"changed to fit the format: {changes}")

    def _task(self, ref: str) -> Task:
        task = Task.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        task = task or Task.objects.filter(name=ref).first()
        if task is None:
            raise CommandError(f"no task with id or name {ref!r}")
        return task
