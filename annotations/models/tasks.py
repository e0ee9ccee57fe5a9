"""Readers, tasks, cases, leases and reference (ground-truth) lesions."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from viewer.models import Series


class ReaderRole(models.TextChoices):
    ATTENDING = "attending", "Attending radiologist"
    TRAINEE = "trainee", "Resident / fellow"
    TECHNOLOGIST = "technologist", "Technologist"
    STUDENT = "student", "Student"
    OTHER = "other", "Other"


def new_pseudonym() -> str:
    return "R-" + secrets.token_hex(3).upper()


def new_team_pseudonym() -> str:
    return "T-" + secrets.token_hex(3).upper()


class Team(models.Model):
    """A team or institution readers sign up under (a residency program, a hospital); one team per reader."""

    # Shown on the leaderboard as the first sign-up spelled it (outer space stripped, inner runs collapsed).
    name = models.CharField(max_length=80)
    # The case- and space-insensitive form: "Mass General " and "mass  general" are one team.
    name_key = models.CharField(max_length=80, unique=True)
    # TR39 skeleton (annotations.booth.names): a new team whose name merely looks like this one is refused.
    name_skeleton = models.CharField(max_length=255, blank=True, default="", db_index=True)
    # Stable pseudonym used in exports unless an admin asks for team names.
    pseudonym = models.CharField(max_length=16, unique=True, default=new_team_pseudonym)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name_key"]

    def __str__(self) -> str:
        return self.name


class Reader(models.Model):
    """A person who reads cases; the profile beside a Django user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader")
    display_name = models.CharField(max_length=80, unique=True)
    # TR39 skeleton (annotations.booth.names): a new name that merely looks like this one is refused.
    name_skeleton = models.CharField(max_length=255, blank=True, default="", db_index=True)
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=16, choices=ReaderRole.choices, default=ReaderRole.OTHER)
    subspecialty = models.CharField(max_length=80, blank=True)
    years_experience = models.PositiveSmallIntegerField(default=0)
    consented_at = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="readers")
    # Stable pseudonym used in every export and every view other readers could see.
    pseudonym = models.CharField(max_length=16, unique=True, default=new_pseudonym)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name


class Tool(models.TextChoices):
    LONG_AXIS = "long_axis", "RECIST long axis"
    BIDIRECTIONAL = "bidirectional", "Bidirectional (long + short axis)"
    MASK = "mask", "Lesion mask"
    NO_LESION = "no_lesion", "No measurable lesion"
    SKIP = "skip", "Skip"
    QUALITY = "quality_problem", "Image quality problem"


DEFAULT_TOOLS = [Tool.LONG_AXIS, Tool.BIDIRECTIONAL, Tool.MASK, Tool.NO_LESION, Tool.SKIP, Tool.QUALITY]


def default_tools() -> list[str]:
    return [str(tool) for tool in DEFAULT_TOOLS]


class Task(models.Model):
    class ConsensusMethod(models.TextChoices):
        STAPLE = "staple", "STAPLE"
        MAJORITY = "majority", "Majority vote"

    class Kind(models.TextChoices):
        SINGLE = "single", "Single time point"
        FOLLOW_UP = "follow_up", "Follow-up (baseline and follow-up studies, RECIST 1.1)"

    class BaselineSource(models.TextChoices):
        ANSWER_KEY = "answer_key", "Answer key (known baseline lesions)"
        CONSENSUS = "consensus", "Consensus of the baseline task"
        OWN_READ = "own_read", "The reader's own baseline read"

    name = models.CharField(max_length=200, unique=True)
    instructions_md = models.TextField(blank=True)
    tools = models.JSONField(default=default_tools)
    # With adaptive reads, the most reads a case may get; otherwise the reads every case gets.
    reads_per_case = models.PositiveSmallIntegerField(default=3)
    # Adaptive reads (docs/consensus.md): each case starts with min_reads and gets more only while uncertain.
    adaptive_reads = models.BooleanField(default=False)
    min_reads = models.PositiveSmallIntegerField(default=2)
    max_lesions_per_case = models.PositiveSmallIntegerField(null=True, blank=True)
    is_open = models.BooleanField(default=True)
    consensus_method = models.CharField(max_length=16, choices=ConsensusMethod.choices, default=ConsensusMethod.STAPLE)
    # None means a majority of the case's readers.
    min_support = models.PositiveSmallIntegerField(null=True, blank=True)
    finding = models.CharField(max_length=64, default="Neoplasm")
    # Follow-up tasks (docs/follow-up.md): each case is one patient over time.
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SINGLE)
    baseline_source = models.CharField(max_length=16, choices=BaselineSource.choices, default=BaselineSource.ANSWER_KEY)
    # The single-time-point task whose consensus or reads give the baseline lesions.
    baseline_task = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_up_tasks"
    )
    # "Check the model" tasks: readers start from this model's prediction of each case (ModelPrediction) and
    # keep, edit or erase it; empty for ordinary tasks, whose reads must stay independent of any model.
    suggestion_model = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_follow_up(self) -> bool:
        return self.kind == Task.Kind.FOLLOW_UP


class Case(models.Model):
    """One series to be read within a task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="cases")
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="cases")
    label = models.CharField(max_length=120, blank=True)
    is_gold = models.BooleanField(default=False)
    # Reads that count towards the target (latest version per reader, not skips).
    reads_done = models.PositiveIntegerField(default=0)
    # Adaptive reads: the reads this case needs as its last consensus decided (None: the task's min_reads).
    reads_target = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "series"], name="unique_case_per_task_series")]
        ordering = ["task_id", "id"]

    def __str__(self) -> str:
        return self.label or f"case {self.pk}"


class Lease(models.Model):
    """A reader's hold on a case while reading it, so a last needed read is not given twice."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="leases")
    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="leases")
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "reader"], name="unique_lease_per_case_reader")]
        # Next case looks up the reader's own live lease on every call.
        indexes = [models.Index(fields=["reader", "expires_at"], name="lease_reader_expires_idx")]

    def __str__(self) -> str:
        return f"lease of case {self.case_id} to reader {self.reader_id}"


class ReferenceLesion(models.Model):
    """A known lesion of a series: synthetic ground truth or an admin's gold-standard answer."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="reference_lesions")
    source = models.CharField(max_length=32, default="synthetic")
    label = models.CharField(max_length=64, blank=True)
    center_patient_mm = models.JSONField(help_text="[x, y, z] in patient coordinates (mm).")
    # Full diameters (mm) along the lesion's principal axes; long_axis_mm is the in-plane maximum.
    diameters_mm = models.JSONField(default=list)
    long_axis_mm = models.FloatField()
    short_axis_mm = models.FloatField(null=True, blank=True)
    # The instance where the in-plane long axis is greatest (the lesion's centre slice).
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    # Known answers to lesion questions, e.g. {"lesion_type": "lung", "lesion_site": "lung"} from synthetic anatomy.
    answers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.label or 'reference lesion'} ({self.long_axis_mm:g} mm)"
