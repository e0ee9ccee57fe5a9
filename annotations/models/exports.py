"""Export jobs: one requested export, its progress and the finished file."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotations.models.tasks import Task


class ExportJob(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV (reads)"
        CONSENSUS_CSV = "consensus_csv", "CSV (consensus)"
        SR = "sr", "DICOM SR (TID 1500)"
        SEG = "seg", "DICOM SEG"
        BUNDLE = "bundle", "Zip bundle"
        NNUNET = "nnunet", "nnU-Net v2 dataset (NIfTI)"
        MONAI = "monai", "MONAI datalist (NIfTI)"
        DEEPLESION = "deeplesion", "DeepLesion CSV (RECIST)"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=16, choices=Format.choices)
    pseudonymise = models.BooleanField(default=True)
    # Team names instead of team pseudonyms (admins only); implied when pseudonymise is off.
    identify_teams = models.BooleanField(default=False)
    # Formula-like CSV cells exactly as stored, not neutralised with a leading quote (docs/exports.md).
    raw_cells = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    file_path = models.CharField(max_length=500, blank=True, help_text="Relative to READERBOARD_DATA_DIR.")
    error = models.TextField(blank=True)
    # What the export changed or left out to fit its formats, by kind: {"unencodable_text_replaced": 1, ...}.
    warnings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.format} export {self.pk} of task {self.task_id} ({self.status})"
