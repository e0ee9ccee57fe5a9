"""Follow-up cases: a patient's ordered time points, the baseline lesions to follow, and follow-up measurements.

A follow-up case (Task.kind == "follow_up") keeps its baseline series in Case.series (time point 0);
CaseTimePoint rows give every time point in StudyDate + StudyTime order. docs/follow-up.md.
"""

from __future__ import annotations

from django.db import models

from annotations.models.reads import Read
from annotations.models.tasks import Case
from viewer.models import Series


class CaseTimePoint(models.Model):
    """One time point of a follow-up case: the series read at that study; index 0 is the baseline."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="time_points")
    index = models.PositiveSmallIntegerField()
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=64, blank=True)
    # Copied from the study (DICOM DA / TM strings) so the order is visible without joins.
    study_date = models.CharField(max_length=8, blank=True)
    study_time = models.CharField(max_length=16, blank=True)
    # Answer key: how many new lesions this time point really has (None: unknown), for reader accuracy.
    new_lesions_truth = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "index"], name="unique_time_point_index"),
            models.UniqueConstraint(fields=["case", "series"], name="unique_time_point_series"),
        ]
        ordering = ["case_id", "index"]

    def __str__(self) -> str:
        return f"time point {self.index} of case {self.case_id}"


class BaselineLesion(models.Model):
    """A lesion to follow in a follow-up case; `key` is its identity at every time point."""

    class Source(models.TextChoices):
        ANSWER_KEY = "answer_key", "Answer key"
        CONSENSUS = "consensus", "Consensus of the baseline task"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="baseline_lesions")
    key = models.CharField(max_length=16)
    label = models.CharField(max_length=64, blank=True)
    site = models.CharField(max_length=64, blank=True)
    is_node = models.BooleanField(default=False)
    # Lines on the baseline series: {"sop_instance_uid", "frame", "start": [c, r], "end": [c, r], "length_mm"}.
    long_axis = models.JSONField(null=True, blank=True)
    short_axis = models.JSONField(null=True, blank=True)
    center_patient_mm = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ANSWER_KEY)
    # The known size at each follow-up time point ({"1": {"status", "long_axis_mm", "short_axis_mm"}}):
    # the answer key of the follow-up reads (demo truth, or an admin's), not shown to readers.
    follow_up_truth = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "key"], name="unique_baseline_lesion_key")]
        ordering = ["case_id", "id"]

    def __str__(self) -> str:
        return f"{self.key} of case {self.case_id}"


class FollowUpStatus(models.TextChoices):
    MEASURED = "measured", "Measured"
    DISAPPEARED = "disappeared", "Disappeared"
    NOT_EVALUABLE = "not_evaluable", "Not evaluable"


class FollowUpMeasurement(models.Model):
    """One lesion of a follow-up read at one time point; its lines are the read's Mark rows of lesion_index."""

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="follow_up_measurements")
    time_point = models.PositiveSmallIntegerField(help_text="CaseTimePoint.index (1..n).")
    lesion_index = models.PositiveSmallIntegerField()
    baseline_key = models.CharField(max_length=16, blank=True, help_text="BaselineLesion.key; blank for new.")
    is_new = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=FollowUpStatus.choices)
    site = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["read", "lesion_index"], name="unique_follow_up_lesion_per_read"),
        ]
        ordering = ["read_id", "time_point", "lesion_index"]

    def __str__(self) -> str:
        return f"{self.baseline_key or 'new'} at time point {self.time_point} in read {self.read_id}"
