"""`manage.py import_dicom PATH... [--collection NAME] [--nifti-modality CT|MR] [--patient-id ID]`: import files,
folders or zips of DICOM, and NIfTI volumes (.nii, .nii.gz) converted to DICOM series on the way in."""

import logging
import warnings
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from readerboard.command_logging import quiet_library_logs
from viewer.nifti.importing import NiftiOptions
from viewer.nifti.to_dicom import DEFAULT_MODALITY, MODALITIES
from viewer.services.dicom_import import IMPORTED, REJECTED, SKIPPED, import_paths


class Command(BaseCommand):
    help = (
        "Import DICOM files, folders (recursively) or .zip archives. NIfTI volumes (.nii, .nii.gz) among them "
        "become one DICOM series each; a <name>_label / <name>_seg NIfTI beside <name>.nii.gz is checked as its "
        "label map, not imported as images."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--collection", default=None, help="Collection to put the studies in.")
        parser.add_argument("--quiet-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--deidentify",
            action="store_true",
            help="Store de-identified copies (DICOM PS3.15 basic profile; UIDs replaced consistently).",
        )
        parser.add_argument(
            "--nifti-modality",
            choices=sorted(MODALITIES),
            default=DEFAULT_MODALITY,
            help=f"Modality of NIfTI volumes (default {DEFAULT_MODALITY}; CT voxels must be in HU).",
        )
        parser.add_argument(
            "--patient-id",
            default=None,
            help="Patient ID (and name) for NIfTI volumes; default: each file's name without .nii/.nii.gz.",
        )

    def handle(self, *args, paths, collection, quiet_progress, deidentify, nifti_modality, patient_id, **options):
        # pydicom warns about every oddity it tolerates; the per-file report is what the user needs.
        warnings.filterwarnings("ignore", module="pydicom")
        quiet_library_logs(options["verbosity"])
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
        bar = tqdm(total=0, unit="file", disable=quiet_progress, file=self.stderr._out)

        shown = set()

        def progress(done: int, total: int, outcome) -> None:
            shown.add(id(outcome))
            bar.total = total
            bar.update(1)
            if outcome.status == REJECTED:
                bar.write(f"rejected {outcome.name}: {outcome.reason}")
            elif outcome.status == IMPORTED and outcome.reason:
                bar.write(f"imported {outcome.name}: {outcome.reason}")

        nifti = NiftiOptions(modality=nifti_modality, patient_id=patient_id)
        report = import_paths(paths, collection_name=collection, progress=progress, deidentify=deidentify, nifti=nifti)
        bar.close()
        # Outcomes decided while the sources were gathered (unsafe zips, refused NIfTI) never reached progress.
        for outcome in report.outcomes:
            if outcome.status == REJECTED and id(outcome) not in shown:
                self.stderr.write(f"rejected {outcome.name}: {outcome.reason}")
            elif outcome.status == SKIPPED:
                self.stdout.write(f"skipped {outcome.name}: {outcome.reason}")
        summary = report.summary()
        skipped = f", skipped {summary['skipped']}" if summary["skipped"] else ""
        self.stdout.write(
            f"imported {summary['imported']}, duplicates {summary['duplicates']}, "
            f"rejected {summary['rejected']}{skipped}"
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
