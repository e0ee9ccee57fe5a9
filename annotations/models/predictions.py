"""Model predictions: a segmentation model's lesion mask of a case, imported to compare with the crowd."""

from __future__ import annotations

from django.db import models

from annotations.models.tasks import Case


class ModelPrediction(models.Model):
    """One model's mask of one case (all its lesions together), as run lengths per slice; re-imports replace it."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="model_predictions")
    model_name = models.CharField(max_length=64)
    source_file = models.CharField(max_length=255, blank=True)
    # [{"sop_instance_uid", "frame", "counts"}], run lengths as in ConsensusLesion.mask_slices; only painted slices.
    mask_slices = models.JSONField(default=list)
    voxel_count = models.PositiveIntegerField(default=0)
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "model_name"], name="unique_prediction_per_model")]
        ordering = ["case_id", "model_name"]

    def __str__(self) -> str:
        return f"{self.model_name} prediction of case {self.case_id}"
