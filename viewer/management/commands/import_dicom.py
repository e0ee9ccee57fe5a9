"""`manage.py import_dicom PATH... [--collection NAME]`: import files, folders or zips."""

import logging
import warnings
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from readerboard.command_logging import quiet_library_logs
from viewer.services.dicom_import import IMPORTED, REJECTED, import_paths


class Command(BaseCommand):
    help = "Import DICOM files, folders (recursively) or .zip archives."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--collection", default=None, help="Collection to put the studies in.")
        parser.add_argument("--quiet-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--deidentify",
            action="store_true",
            help="Store de-identified copies (DICOM PS3.15 basic profile; UIDs replaced consistently).",
        )

    def handle(self, *args, paths, collection, quiet_progress, deidentify, **options):
        # pydicom warns about every oddity it tolerates; the per-file report is what the user needs.
        warnings.filterwarnings("ignore", module="pydicom")
        quiet_library_logs(options["verbosity"])
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
        bar = tqdm(total=0, unit="file", disable=quiet_progress, file=self.stderr._out)

        def progress(done: int, total: int, outcome) -> None:
            bar.total = total
            bar.update(1)
            if outcome.status == REJECTED:
                bar.write(f"rejected {outcome.name}: {outcome.reason}")
            elif outcome.status == IMPORTED and outcome.reason:
                bar.write(f"imported {outcome.name}: {outcome.reason}")

        report = import_paths(paths, collection_name=collection, progress=progress, deidentify=deidentify)
        bar.close()
        for outcome in report.outcomes:
            if outcome.status == REJECTED and not bar.n:
                self.stderr.write(f"rejected {outcome.name}: {outcome.reason}")
        summary = report.summary()
        self.stdout.write(
            f"imported {summary['imported']}, duplicates {summary['duplicates']}, rejected {summary['rejected']}"
        )
        for reason, count in sorted(summary["rejected_by_reason"].items()):
            self.stdout.write(f"  rejected ({reason}): {count}")
        if summary["phi"] and not deidentify:
            self.stdout.write(
                "identifying attributes present (files): "
                + ", ".join(f"{name} ({count})" for name, count in sorted(summary["phi"].items()))
            )
            self.stdout.write("  use --deidentify to store de-identified copies before showing them at a public booth")
        if summary["imported"] == 0 and summary["duplicates"] == 0:
            raise CommandError("nothing was imported")
