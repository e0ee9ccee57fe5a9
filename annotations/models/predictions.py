"""Model predictions: a model's lesion marks of a case, and what readers of a "check the model" task made of them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotations.models.tasks import Case, Task


class ModelPrediction(models.Model):
    """One model's marks of one case: a mask (all its lesions together, run lengths per slice) and/or RECIST lines.

    Re-imports replace it.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="model_predictions")
    model_name = models.CharField(max_length=64)
    source_file = models.CharField(max_length=255, blank=True)
    # [{"sop_instance_uid", "frame", "counts"}], run lengths as in ConsensusLesion.mask_slices; only painted slices.
    mask_slices = models.JSONField(default=list)
    voxel_count = models.PositiveIntegerField(default=0)
    # [{"lesion", "sop_instance_uid", "frame", "long_axis": {"start": [c, r], "end": [c, r]}, "short_axis": same
    #   or None, "box": [c0, r0, c1, r1] or None, "label": str}] in image pixels (read-format.md): RECIST marks
    # from a TID 1500 SR or a DeepLesion-style CSV; empty for a mask-only prediction.
    lesion_marks = models.JSONField(default=list, blank=True)
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "model_name"], name="unique_prediction_per_model")]
        ordering = ["case_id", "model_name"]

    def __str__(self) -> str:
        return f"{self.model_name} prediction of case {self.case_id}"


class SuggestionVerdict(models.TextChoices):
    ACCEPTED = "accepted", "Accepted as the model drew it"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"
    ADDED = "added", "Added by the reader (the model missed it)"


class SuggestionReview(models.Model):
    """What a read in a "check the model" task made of one of the model's lesions, or a lesion the reader added.

    Computed by the server at submit from the suggestion the reader was shown and the submitted read, never
    taken from the page: one row per suggested lesion (accepted, edited or rejected, with the read lesion it
    became) and one per read lesion that matches no suggestion (added).
    """

    read = models.ForeignKey("annotations.Read", on_delete=models.CASCADE, related_name="suggestion_reviews")
    model_name = models.CharField(max_length=64)
    suggested_lesion = models.PositiveSmallIntegerField(null=True, blank=True)
    read_lesion = models.PositiveSmallIntegerField(null=True, blank=True)
    verdict = models.CharField(max_length=8, choices=SuggestionVerdict.choices)
    # Mask Dice between the suggestion and the read lesion (None without masks on both sides).
    mask_dice = models.FloatField(null=True, blank=True)
    # Read long axis minus the suggested one, in mm (None without a line on both sides).
    long_axis_change_mm = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["read_id", "suggested_lesion", "read_lesion"]

    def __str__(self) -> str:
        return f"{self.verdict} suggestion {self.suggested_lesion} in read {self.read_id}"


class PredictionImportJob(models.Model):
    """A model's prediction files uploaded from the console for one task, imported in the background.

    `report` holds one row per prediction the files gave (a CSV gives one per case and one per refused row):
    {"name", "status": "imported" | "refused", "reason", "case", "lesion_voxels", "measured_lesions"}.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="prediction_imports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    model_name = models.CharField(max_length=64)
    # Make the task a "check the model" task once the files are in (predictions.services.show_to_readers).
    show_to_readers = models.BooleanField(default=False)
    # Why the task could not be made a "check the model" task; empty when it was, or was not asked.
    show_to_readers_refusal = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    upload_dir = models.CharField(max_length=500, blank=True, help_text="Relative to READERBOARD_DATA_DIR.")
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_name} predictions import {self.pk} of task {self.task_id} ({self.status})"
