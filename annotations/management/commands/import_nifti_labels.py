"""`manage.py import_nifti_labels --task TASK IMAGE LABEL_MAP [...] [--labels-as answer-key|pre-annotation]`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations.models import Task
from annotations.predictions.pre_annotations import DEFAULT_MODEL_NAME, import_label_map_pre_annotation
from annotations.reading.documents import ReadValidationError
from annotations.reading.kinds import NotGoldCase
from annotations.reading.label_maps import LESIONS_BY, import_label_map_answer_key
from readerboard.command_logging import quiet_library_logs


class Command(BaseCommand):
    help = (
        "Import NIfTI volumes with their label maps: each IMAGE is imported as import_dicom would (same options, "
        "same series). As answer keys (the default), it becomes a gold case of TASK if it is not a case yet and "
        "its LABEL_MAP is stored as the case's answer key (a mask per lesion), checked like any read. As "
        "pre-annotations, it becomes an ordinary case and its LABEL_MAP is shown to the readers as a model's "
        "marks to accept, edit or reject (a check-the-model task; --model-name names it)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("pairs", nargs="+", type=Path, metavar="IMAGE LABEL_MAP", help="image, label map, ...")
        parser.add_argument("--task", required=True, help="task id or exact name")
        parser.add_argument(
            "--labels-as",
            choices=["answer-key", "pre-annotation"],
            default="answer-key",
            help="what the labels become: the gold case's reference (default) or marks readers start from",
        )
        parser.add_argument(
            "--model-name",
            default=DEFAULT_MODEL_NAME,
            help=f"pre-annotations only: the name readers and the results page see (default {DEFAULT_MODEL_NAME})",
        )
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
            if options["labels_as"] == "pre-annotation":
                failures += not self._pre_annotation(task, image, label_map, options)
                continue
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

    def _pre_annotation(self, task: Task, image: Path, label_map: Path, options: dict) -> bool:
        try:
            result = import_label_map_pre_annotation(
                task=task,
                image_path=image,
                label_path=label_map,
                model_name=options["model_name"],
                modality=options["modality"],
                patient_id=options["patient_id"],
            )
        except (OSError, ValueError) as error:  # PredictionError, LabelMapError and NiftiError are ValueErrors
            self.stderr.write(f"{label_map}: refused: {error}")
            return False
        self.stdout.write(
            f"{label_map}: pre-annotation {result.prediction.model_name!r} of {'new ' if result.created_case else ''}"
            f"case {result.case.pk} ({result.prediction.voxel_count} voxels), shown to the readers of task {task.pk}"
        )
        return True

    def _task(self, ref: str) -> Task:
        task = Task.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        task = task or Task.objects.filter(name=ref).first()
        if task is None:
            raise CommandError(f"no task with id or name {ref!r}")
        return task
