"""`manage.py import_predictions --task TASK --model NAME PATH...`: a model's masks or RECIST lines of its cases."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Task
from annotations.predictions.services import PredictionError, import_predictions, show_to_readers
from readerboard.command_logging import quiet_library_logs


class Command(BaseCommand):
    help = (
        "Import a model's predictions of a task's cases: masks as NIfTI label maps named case_<id>.nii.gz "
        "(as nnU-Net names predictions of our nnunet export) on the grid of the exported images or as DICOM SEG "
        "(.dcm) on a case's series; RECIST lines as a TID 1500 measurement report SR (.dcm) on a case's images "
        "or a DeepLesion-style CSV (.csv, DL_info.csv columns as our deeplesion export writes). PATH is a file "
        "or a folder of them. The console's results page then compares them with the crowd and answer keys."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--task", required=True, help="task id or exact name")
        parser.add_argument("--model", required=True, help="the model's name, e.g. nnunet-3d-fold0")
        parser.add_argument(
            "--show-to-readers",
            action="store_true",
            help="make TASK a 'check the model' task: readers start from this model's masks and lines and keep, "
            "edit or erase them (use a task of its own: such reads are not independent of the model)",
        )

    def handle(self, *args, **options) -> None:
        quiet_library_logs(options["verbosity"])
        ref = options["task"]
        task = Task.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        task = task or Task.objects.filter(name=ref).first()
        if task is None:
            raise CommandError(f"no task with id or name {ref!r}")
        results = import_predictions(task=task, model_name=options["model"], paths=options["paths"])
        if not results:
            raise CommandError("no prediction files found (.nii, .nii.gz, .dcm, .csv)")
        for result in results:
            if result.error:
                self.stderr.write(f"{result.path.name}: refused: {result.error}")
            else:
                p = result.prediction
                self.stdout.write(
                    f"{result.path.name}: case {p.case_id}, {p.voxel_count} lesion voxels, "
                    f"{len(p.lesion_marks)} measured lesions"
                )
        if options["show_to_readers"]:
            try:
                show_to_readers(task=task, model_name=options["model"])
            except PredictionError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"readers of task {task.pk} now start from {options['model']}'s predictions")
        refused = sum(1 for result in results if result.error)
        if refused:
            raise CommandError(f"{refused} of {len(results)} predictions refused")
