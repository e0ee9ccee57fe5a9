"""`manage.py import_nifti_labels --task TASK IMAGE LABEL_MAP [IMAGE LABEL_MAP ...] [--modality CT|MR]`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations.models import Task
from annotations.reading.documents import ReadValidationError
from annotations.reading.kinds import NotGoldCase
from annotations.reading.label_maps import LESIONS_BY, import_label_map_answer_key
from readerboard.command_logging import quiet_library_logs


class Command(BaseCommand):
    help = (
        "Import NIfTI volumes with their label maps as answer keys of gold cases of a task: each IMAGE is imported "
        "as import_dicom would (same options, same series), becomes a gold case of TASK if it is not a case yet, "
        "and its LABEL_MAP is stored as the case's answer key (a mask per lesion), checked like any read."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("pairs", nargs="+", type=Path, metavar="IMAGE LABEL_MAP", help="image, label map, ...")
        parser.add_argument("--task", required=True, help="task id or exact name")
        parser.add_argument("--labels-as", choices=["answer-key"], default="answer-key", help="what the labels become")
        parser.add_argument("--modality", "--nifti-modality", choices=["CT", "MR"], default="MR")
        parser.add_argument("--patient-id", help="Patient ID of the converted series (default: the image's stem)")
        parser.add_argument(
            "--lesions",
            choices=LESIONS_BY,
            default="components",
            help="a lesion per connected component of the labels (default) or per label value",
        )
        parser.add_argument("--user", help="username recorded as the answer key's author (default: none)")

    def handle(self, *args, **options) -> None:
        quiet_library_logs(options["verbosity"])
        pairs = options["pairs"]
        if len(pairs) % 2:
            raise CommandError("give an IMAGE and its LABEL_MAP for every volume (an even number of paths)")
        task = self._task(options["task"])
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        failures = 0
        for image, label_map in zip(pairs[::2], pairs[1::2], strict=True):
            try:
                result = import_label_map_answer_key(
                    task=task,
                    image_path=image,
                    label_path=label_map,
                    user=user,
                    modality=options["modality"],
                    patient_id=options["patient_id"],
                    lesions_by=options["lesions"],
                )
            except (OSError, ValueError, NotGoldCase, ReadValidationError) as error:
                failures += 1
                self.stderr.write(f"{label_map}: refused: {error}")
                continue
            read = result.submission.read
            self.stdout.write(
                f"{label_map}: answer key v{read.version} of {'new ' if result.created_case else ''}gold case "
                f"{result.case.pk} ({result.lesions} lesion{'s' if result.lesions != 1 else ''})"
            )
        if failures:
            raise CommandError(f"{failures} of {len(pairs) // 2} label maps refused")

    def _task(self, ref: str) -> Task:
        task = Task.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        task = task or Task.objects.filter(name=ref).first()
        if task is None:
            raise CommandError(f"no task with id or name {ref!r}")
        return task
