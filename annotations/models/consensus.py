"""Consensus results: stored with algorithm version, parameters and an inputs hash so reruns are harmless."""

from __future__ import annotations

from django.db import models

from annotations.models.tasks import Case, Reader, Task


class CaseConsensus(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="consensus_results")
    algorithm_version = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    inputs_hash = models.CharField(max_length=64)
    n_reads = models.PositiveIntegerField(default=0)
    # Case-level figures: agreement, no-lesion votes, flags for expert review.
    summary = models.JSONField(default=dict)
    low_agreement = models.BooleanField(default=False)
    # Consensus answers to the task's questions per case and per consensus lesion, low-agreement flags and,
    # on gold cases, agreement with the answer key (docs/consensus.md, "Answers"); {} without questions.
    answers = models.JSONField(default=dict, blank=True)
    is_current = models.BooleanField(default=True, db_index=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "inputs_hash", "algorithm_version"], name="unique_consensus_per_inputs"
            ),
        ]

    def __str__(self) -> str:
        return f"consensus of case {self.case_id} ({self.algorithm_version})"


class ConsensusLesion(models.Model):
    consensus = models.ForeignKey(CaseConsensus, on_delete=models.CASCADE, related_name="lesions")
    lesion_index = models.PositiveSmallIntegerField()
    support = models.PositiveSmallIntegerField()
    support_fraction = models.FloatField()
    accepted = models.BooleanField(default=True, help_text="Enough support to count as a consensus lesion.")
    # Medoid lines: {"sop_instance_uid", "frame", "start": [c, r], "end": [c, r], "length_mm"}.
    long_axis = models.JSONField(null=True, blank=True)
    short_axis = models.JSONField(null=True, blank=True)
    long_axis_median_mm = models.FloatField(null=True, blank=True)
    long_axis_iqr_mm = models.FloatField(null=True, blank=True)
    long_axis_cv = models.FloatField(null=True, blank=True)
    short_axis_median_mm = models.FloatField(null=True, blank=True)
    # Consensus mask as [{"sop_instance_uid", "frame", "counts"}] run lengths; STAPLE or majority label.
    mask_slices = models.JSONField(null=True, blank=True)
    mask_method = models.CharField(max_length=16, blank=True)
    # Which marks formed this lesion: [{"read_id", "reader_id", "lesion_index"}].
    members = models.JSONField(default=list)
    statistics = models.JSONField(default=dict)

    class Meta:
        ordering = ["consensus_id", "lesion_index"]

    def __str__(self) -> str:
        return f"lesion {self.lesion_index} of consensus {self.consensus_id}"


class ReaderQuality(models.Model):
    """Per-task figures for one reader: accuracy on gold cases, STAPLE sensitivity/specificity, weight."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="reader_quality")
    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="quality")
    n_reads = models.PositiveIntegerField(default=0)
    mean_time_s = models.FloatField(null=True, blank=True)
    gold_mean_abs_error_mm = models.FloatField(null=True, blank=True)
    sensitivity = models.FloatField(null=True, blank=True)
    specificity = models.FloatField(null=True, blank=True)
    weight = models.FloatField(default=1.0)
    figures = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "reader"], name="unique_quality_per_task_reader")]

    def __str__(self) -> str:
        return f"quality of reader {self.reader_id} in task {self.task_id}"
