"""Reads and their marks: immutable records of what one reader saw in one case.

The submitted JSON document (docs/read-format.md) is kept verbatim on the Read;
Mark and MaskSlice rows are its parsed, queryable form. A correction is a new
Read with a higher version, never an update.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from annotations.models.questions import QuestionSet
from annotations.models.tasks import Case, Reader
from viewer.models import Instance


class CrowdReadManager(models.Manager):
    """Reads by the crowd: answer-key reads are left out, so no count, board or consensus can take them in."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(is_answer_key=False)


class Read(models.Model):
    client_uuid = models.UUIDField(unique=True, default=uuid.uuid4, help_text="Idempotency key sent by the page.")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reads")
    # None only on answer-key reads, which an admin (answered_by) makes, not a reader.
    reader = models.ForeignKey(Reader, null=True, blank=True, on_delete=models.PROTECT, related_name="reads")
    version = models.PositiveIntegerField(default=1)
    supersedes = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    no_lesion = models.BooleanField(default=False)
    skip = models.BooleanField(default=False)
    quality_problem = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(auto_now_add=True, db_index=True)
    duration_s = models.FloatField(null=True, blank=True)
    document = models.JSONField()
    # The question version the read answered (None: the task had no questions then).
    question_set = models.ForeignKey(QuestionSet, null=True, blank=True, on_delete=models.PROTECT, related_name="reads")
    # The answers of the document, parsed: {"case": {key: value}, "lesions": {"<lesion number>": {key: value}}}.
    # A copy, so consensus and exports need not load documents full of mask run lengths.
    answers = models.JSONField(default=dict, blank=True)
    # An admin's reference read of a gold case (docs/read-format.md): never a crowd read.
    is_answer_key = models.BooleanField(default=False)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # `objects` leaves answer-key reads out everywhere by default (counts, boards, consensus, exports);
    # `all_objects` sees them too, for the answer-key service alone.
    all_objects = models.Manager()
    objects = CrowdReadManager()

    class Meta:
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["case", "reader", "version"], name="unique_read_version"),
            # A crowd read always has its reader; an answer key never has one (it is nobody's crowd read).
            models.CheckConstraint(
                condition=models.Q(is_answer_key=False, reader__isnull=False)
                | models.Q(is_answer_key=True, reader__isnull=True),
                name="read_reader_unless_answer_key",
            ),
        ]
        # Hot filters by reader: "cases this reader has read" (next case, task progress) and the
        # leaderboard's distinct counted cases per reader, answered from the index alone.
        indexes = [models.Index(fields=["reader", "skip", "case"], name="read_reader_skip_case_idx")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"read {self.pk} of case {self.case_id} by {self.reader_id} v{self.version}"


class MarkKind(models.TextChoices):
    LONG_AXIS = "long_axis", "Long axis"
    SHORT_AXIS = "short_axis", "Short axis"


class Mark(models.Model):
    """One line drawn on one frame, in image coordinates (column, row) of that frame."""

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="marks")
    lesion_index = models.PositiveSmallIntegerField(help_text="The reader's own lesion number, from 1.")
    kind = models.CharField(max_length=16, choices=MarkKind.choices)
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    frame = models.PositiveIntegerField(default=1)
    start_col = models.FloatField()
    start_row = models.FloatField()
    end_col = models.FloatField()
    end_row = models.FloatField()
    length_mm = models.FloatField()

    class Meta:
        ordering = ["read_id", "lesion_index", "kind"]

    def __str__(self) -> str:
        return f"{self.kind} of lesion {self.lesion_index} in read {self.read_id}"


class MaskSlice(models.Model):
    """One frame of a lesion mask as run lengths over the row-major bitmap, starting with a run of zeros."""

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="mask_slices")
    lesion_index = models.PositiveSmallIntegerField()
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    frame = models.PositiveIntegerField(default=1)
    counts = models.JSONField()
    pixel_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["read_id", "lesion_index", "id"]

    def __str__(self) -> str:
        return f"mask of lesion {self.lesion_index} in read {self.read_id}, frame {self.frame}"


class MaskSource(models.TextChoices):
    HAND = "hand", "Painted by hand"
    LINE = "line", "Proposed from a line"
    TAP = "tap", "Proposed from a tap"


class MaskProvenance(models.Model):
    """How one lesion's mask in a read was proposed, and how much the reader changed the proposal.

    Only masks that started from a proposal have a row: a painted mask without one was made by hand. The
    proposal itself stays in the read's verbatim document; `edit_dice` (proposal vs submitted mask) and
    `edited` are computed by the server from both, never taken from the page.
    """

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="mask_provenances")
    lesion_index = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=8, choices=MaskSource.choices)
    algorithm = models.CharField(max_length=128, blank=True)
    algorithm_version = models.CharField(max_length=128, blank=True)
    edited = models.BooleanField(null=True, blank=True)
    edit_dice = models.FloatField(null=True, blank=True)
    proposal_pixels = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["read_id", "lesion_index"]
        constraints = [
            models.UniqueConstraint(fields=["read", "lesion_index"], name="unique_mask_provenance_per_lesion")
        ]

    def __str__(self) -> str:
        return f"{self.source} mask of lesion {self.lesion_index} in read {self.read_id}"
