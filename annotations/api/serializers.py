"""Serializers of the reading API: input checks for sign-up and sign-in, and the shapes of every answer.

The read document itself is validated by services.read_submission (field-path errors);
ReadDocumentSerializer only describes it for the OpenAPI schema.
"""

from __future__ import annotations

from rest_framework import serializers

from annotations.booth.readers import MAX_YEARS_EXPERIENCE
from annotations.booth.teams import MAX_TEAM_NAME
from annotations.core.answers import KINDS
from annotations.core.field_checks import BIG_INT_MAX, text_problem
from annotations.models.tasks import ReaderRole, Task, Tool


def storable_text(value: str) -> None:
    """Refuse text that cannot be stored and exported (NUL, unpaired surrogates, control characters)."""
    if problem := text_problem(value):
        raise serializers.ValidationError(f"This field {problem}.")


STORABLE = [storable_text]


class SignupSerializer(serializers.Serializer):
    display_name = serializers.CharField(min_length=2, max_length=80, validators=STORABLE)
    pin = serializers.RegexField(r"^\d{4,8}$", error_messages={"invalid": "PIN must be 4 to 8 digits."})
    email = serializers.EmailField(required=False, allow_blank=True, default="", validators=STORABLE)
    role = serializers.ChoiceField(choices=ReaderRole.choices)
    subspecialty = serializers.CharField(
        required=False, allow_blank=True, max_length=80, default="", validators=STORABLE
    )
    years_experience = serializers.IntegerField(min_value=0, max_value=MAX_YEARS_EXPERIENCE)
    consent = serializers.BooleanField()
    booth_mode = serializers.BooleanField(required=False, default=False)
    team = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEAM_NAME,
        default="",
        validators=STORABLE,
        help_text="Optional team or institution; joins the existing team of that name, ignoring case and spacing.",
    )

    def validate_consent(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("Consent is required to take part.")
        return value


class LoginSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=80, validators=STORABLE)
    pin = serializers.CharField(max_length=16, validators=STORABLE)
    booth_mode = serializers.BooleanField(required=False, default=False)


class LeaseRenewSerializer(serializers.Serializer):
    active = serializers.BooleanField(
        required=False,
        default=False,
        help_text="True when the reader touched the page since the last renewal; keeps a booth session alive.",
    )


class MeSerializer(serializers.Serializer):
    display_name = serializers.CharField()
    pseudonym = serializers.CharField()
    role = serializers.ChoiceField(choices=ReaderRole.choices)
    role_label = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    reads_count = serializers.IntegerField(help_text="Distinct cases read, skips not counted; always current.")
    rank = serializers.IntegerField(
        allow_null=True,
        help_text="Competition rank by reads_count, null before the first counted read; other readers' counts "
        "are at most READERBOARD_STANDING_REFRESH_S (2 s) old.",
    )
    booth_mode = serializers.BooleanField()
    booth_idle_seconds = serializers.IntegerField()
    team = serializers.CharField(help_text='The reader\'s team name, "" without one.')


class ReaderEnvelopeSerializer(serializers.Serializer):
    reader = MeSerializer()


class TaskForReaderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    instructions_html = serializers.CharField()
    tools = serializers.ListField(child=serializers.ChoiceField(choices=Tool.choices))
    reads_per_case = serializers.IntegerField(help_text="With adaptive reads, the most reads a case may get.")
    adaptive_reads = serializers.BooleanField(
        help_text="Cases start with min_reads and get more, up to reads_per_case, only while uncertain."
    )
    min_reads = serializers.IntegerField(help_text="With adaptive reads, the reads every case gets.")
    max_lesions_per_case = serializers.IntegerField(allow_null=True)
    my_reads = serializers.IntegerField()
    cases_remaining_for_me = serializers.IntegerField()


class CodeSerializer(serializers.Serializer):
    value = serializers.CharField()
    scheme = serializers.CharField(help_text='Coding scheme designator, e.g. "SCT" or "UCUM".')
    meaning = serializers.CharField()


class QuestionOptionSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()
    code = CodeSerializer(allow_null=True)


class LikertScaleSerializer(serializers.Serializer):
    min = serializers.IntegerField()
    max = serializers.IntegerField()
    min_label = serializers.CharField(allow_blank=True)
    max_label = serializers.CharField(allow_blank=True)


class NumberRuleSerializer(serializers.Serializer):
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    integer = serializers.BooleanField()
    unit = CodeSerializer(allow_null=True)


class QuestionSerializer(serializers.Serializer):
    """One task question (docs/read-format.md); keys that do not apply to its kind are omitted."""

    key = serializers.RegexField(r"^[a-z][a-z0-9_]{0,39}$")
    kind = serializers.ChoiceField(choices=KINDS)
    label = serializers.CharField()
    help = serializers.CharField(allow_blank=True)
    required = serializers.BooleanField()
    options = QuestionOptionSerializer(many=True, required=False, help_text="Choice kinds only.")
    scale = LikertScaleSerializer(required=False, help_text="Likert only.")
    number = NumberRuleSerializer(required=False, help_text="Number only.")
    max_length = serializers.IntegerField(required=False, help_text="Text only.")


class QuestionsSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        allow_null=True, help_text="The question_version a read must send; null when the task has no questions."
    )
    lesion = QuestionSerializer(many=True, help_text="Asked for every lesion.")
    case = QuestionSerializer(many=True, help_text="Asked once per read.")


class TaskBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    tools = serializers.ListField(child=serializers.ChoiceField(choices=Tool.choices))
    max_lesions_per_case = serializers.IntegerField(allow_null=True)
    instructions_html = serializers.CharField()
    kind = serializers.ChoiceField(choices=Task.Kind.choices, help_text="follow_up: see docs/follow-up.md.")
    questions = QuestionsSerializer()


class InstanceForReadingSerializer(serializers.Serializer):
    sop_instance_uid = serializers.CharField()
    frames = serializers.IntegerField()
    rows = serializers.IntegerField()
    columns = serializers.IntegerField()
    pixel_spacing_mm = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class WindowPresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    center = serializers.FloatField()
    width = serializers.FloatField()


class _LineRefSerializer(serializers.Serializer):
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField(min_value=1)
    start = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, help_text="[column, row]")
    end = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, help_text="[column, row]")
    length_mm = serializers.FloatField(min_value=0)


class TimePointInstanceSerializer(InstanceForReadingSerializer):
    image_position_patient = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    image_orientation_patient = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class TimePointSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0 is the baseline.")
    label = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    study_time = serializers.CharField(allow_blank=True, help_text="DICOM TM (HHMMSS[.ffffff]) or empty.")
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    modality = serializers.CharField()
    frame_of_reference_uid = serializers.CharField(allow_blank=True)
    instances = TimePointInstanceSerializer(many=True)
    window_presets = WindowPresetSerializer(many=True)


class BaselineLesionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The lesion's identity at every time point, e.g. B1.")
    label = serializers.CharField()
    site = serializers.CharField(allow_null=True)
    is_node = serializers.BooleanField()
    long_axis = _LineRefSerializer(allow_null=True)
    short_axis = _LineRefSerializer(allow_null=True)
    center_patient_mm = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class FollowUpSerializer(serializers.Serializer):
    baseline_source = serializers.ChoiceField(choices=Task.BaselineSource.choices)
    time_points = TimePointSerializer(many=True)
    baseline_lesions = BaselineLesionSerializer(many=True)


class CaseForReadingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    task = TaskBriefSerializer()
    lease_expires_at = serializers.DateTimeField()
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    modality = serializers.CharField()
    wadors_root = serializers.CharField()
    instances = InstanceForReadingSerializer(many=True)
    window_presets = WindowPresetSerializer(many=True)
    follow_up = FollowUpSerializer(required=False, help_text="Only for cases of follow-up tasks.")
    suggestion = serializers.DictField(
        required=False,
        help_text=(
            "Only in tasks that check a model: the model's prediction of the case as a read document "
            "({model_name, lesions with masks and/or long and short axes, flags, comment}); the page draws it as "
            "editable masks and lines."
        ),
    )


class UpcomingCaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Send back as prefer_case when asking for the next case.")
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    wadors_root = serializers.CharField()
    instances = InstanceForReadingSerializer(many=True)


class NextCaseRequestSerializer(serializers.Serializer):
    prefer_case = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=BIG_INT_MAX,
        help_text="The upcoming case whose images the page already fetched.",
    )


class AnswerKeyMetaSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    answered_by = serializers.CharField(allow_null=True)
    submitted_at = serializers.DateTimeField()


class AnswerKeyCaseSerializer(CaseForReadingSerializer):
    lease_expires_at = serializers.DateTimeField(allow_null=True, help_text="Always null: answer keys take no lease.")
    answer_key = serializers.DictField(allow_null=True, help_text="The current answer-key read document, or null.")
    answer_key_saved = AnswerKeyMetaSerializer(allow_null=True)


class AnswerKeySavedSerializer(serializers.Serializer):
    answer_key = AnswerKeyMetaSerializer()


class LeaseSerializer(serializers.Serializer):
    lease_expires_at = serializers.DateTimeField()


class _LineSerializer(serializers.Serializer):
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField(min_value=1)
    start = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, help_text="[column, row]")
    end = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, help_text="[column, row]")
    length_mm = serializers.FloatField(min_value=0)


class _MaskSliceSerializer(serializers.Serializer):
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField(min_value=1)
    counts = serializers.ListField(
        child=serializers.IntegerField(min_value=0), help_text="Row-major run lengths, zeros first."
    )


class _ProposalSerializer(serializers.Serializer):
    slices = _MaskSliceSerializer(many=True)


class _MaskProvenanceSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["hand", "line", "tap"])
    algorithm = serializers.CharField(required=False, max_length=128, help_text="Proposed masks only.")
    algorithm_version = serializers.CharField(required=False, max_length=128, help_text="Proposed masks only.")
    proposal = _ProposalSerializer(
        required=False, help_text="The proposal's slices as the mask-proposals endpoint returned them."
    )


class _MaskSerializer(serializers.Serializer):
    slices = _MaskSliceSerializer(many=True)
    provenance = _MaskProvenanceSerializer(
        required=False, help_text="How the mask was made; the server computes the edit Dice itself."
    )


class _TapSerializer(serializers.Serializer):
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField(min_value=1)
    point = serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, help_text="[column, row] inside the lesion"
    )


class MaskProposalRequestSerializer(serializers.Serializer):
    """One prompt: a long axis (and optionally its short axis), a tap, or a corrected slice to propagate from."""

    long_axis = _LineSerializer(required=False, help_text="A RECIST long axis as in the read document.")
    short_axis = _LineSerializer(required=False, allow_null=True, help_text="Its short axis, if drawn.")
    tap = _TapSerializer(required=False, help_text="A tap inside the lesion (no line drawn).")
    seed_mask = _MaskSliceSerializer(
        required=False, help_text="A slice the reader corrected: the proposal is propagated again from it."
    )
    propagate = serializers.BooleanField(
        required=False, default=True, help_text="false: the prompt's slice only, no neighbouring slices."
    )

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        prompts = [name for name in ("long_axis", "tap", "seed_mask") if attrs.get(name) is not None]
        if len(prompts) != 1:
            raise serializers.ValidationError({"long_axis": ["send exactly one of long_axis, tap or seed_mask"]})
        if attrs.get("short_axis") is not None and "long_axis" not in attrs:
            raise serializers.ValidationError({"short_axis": ["a short_axis needs a long_axis"]})
        return attrs


class MaskProposalSerializer(serializers.Serializer):
    prompt = serializers.ChoiceField(choices=["line", "tap", "seed_mask"], help_text="What the proposal started from.")
    algorithm = serializers.CharField()
    algorithm_version = serializers.CharField()
    mask = _MaskSerializer(help_text="The proposal as the read document's mask: one slice per frame it covers.")
    seed = serializers.DictField(help_text="sop_instance_uid and frame of the prompt's slice.")
    largest = serializers.DictField(help_text="sop_instance_uid and frame of the slice of largest area.")
    long_axis = _LineSerializer(help_text="RECIST long axis of the mask on its largest slice.")
    short_axis = _LineSerializer(allow_null=True, help_text="RECIST short axis there (null for a sliver).")
    volume_mm3 = serializers.FloatField()
    stopped = serializers.DictField(
        child=serializers.CharField(), help_text='Why propagation ended each way ("up" = later in reading order).'
    )
    elapsed_s = serializers.FloatField()


ANSWERS_HELP = (
    "Answers by question key: an option value, a list of option values, an integer, a number, true/false "
    "or text, as the question's kind says (docs/read-format.md)."
)


class _LesionSerializer(serializers.Serializer):
    lesion = serializers.IntegerField(min_value=1)
    long_axis = _LineSerializer(required=False)
    short_axis = _LineSerializer(required=False)
    mask = _MaskSerializer(required=False)
    answers = serializers.DictField(required=False, help_text=ANSWERS_HELP)


class _FlagsSerializer(serializers.Serializer):
    no_lesion = serializers.BooleanField(required=False, default=False)
    skip = serializers.BooleanField(required=False, default=False)
    quality_problem = serializers.BooleanField(required=False, default=False)


class _FollowUpLesionSerializer(serializers.Serializer):
    lesion = serializers.IntegerField(min_value=1, help_text="Unique within the whole read.")
    baseline_lesion = serializers.CharField(required=False, help_text="The baseline lesion's id, e.g. B1.")
    new = serializers.BooleanField(required=False, default=False)
    status = serializers.ChoiceField(choices=["measured", "disappeared", "not_evaluable"])
    long_axis = _LineSerializer(required=False)
    short_axis = _LineSerializer(required=False)
    site = serializers.CharField(required=False, max_length=64)


class _FollowUpTimePointSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=1)
    lesions = _FollowUpLesionSerializer(many=True)


class ReadDocumentSerializer(serializers.Serializer):
    """The read document of docs/read-format.md, or of docs/follow-up.md for follow-up cases (schema only)."""

    client_uuid = serializers.UUIDField()
    case = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_s = serializers.FloatField(min_value=0, max_value=86_400)
    flags = _FlagsSerializer()
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    lesions = _LesionSerializer(many=True, required=False, help_text="Single-time-point cases (required there).")
    time_points = _FollowUpTimePointSerializer(
        many=True, required=False, help_text="Follow-up cases instead of lesions (docs/follow-up.md)."
    )
    question_version = serializers.IntegerField(
        required=False, allow_null=True, help_text="The task's current question version (task.questions.version)."
    )
    answers = serializers.DictField(required=False, help_text=ANSWERS_HELP)


class ReadRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    case = serializers.IntegerField()


class RecistResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    sum_mm = serializers.FloatField(allow_null=True)
    baseline_sum_mm = serializers.FloatField()
    nadir_sum_mm = serializers.FloatField()
    change_from_baseline_pct = serializers.FloatField(allow_null=True)
    change_from_nadir_pct = serializers.FloatField(allow_null=True)
    new_lesions = serializers.IntegerField()
    response = serializers.ChoiceField(choices=["CR", "PR", "SD", "PD", "NE"])


class ReadSavedSerializer(serializers.Serializer):
    read = ReadRefSerializer()
    me = MeSerializer()
    recist = RecistResultSerializer(many=True, required=False, help_text="Follow-up reads: RECIST per time point.")


class LeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    display_name = serializers.CharField()
    role = serializers.ChoiceField(choices=ReaderRole.choices)
    role_label = serializers.CharField()
    reads = serializers.IntegerField()
    team = serializers.CharField(help_text='"" for a reader without a team.')


class TeamEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField()
    readers = serializers.IntegerField(help_text="Team members with at least one counted read.")
    reads = serializers.IntegerField(help_text="The sum of the members' counted reads.")


class LeaderboardSerializer(serializers.Serializer):
    entries = LeaderboardEntrySerializer(many=True)
    teams = TeamEntrySerializer(many=True)
    total_reads = serializers.IntegerField()
    readers = serializers.IntegerField()


class TeamSuggestionSerializer(serializers.Serializer):
    name = serializers.CharField()
    readers = serializers.IntegerField(help_text="Readers who signed up under this team.")


class ErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
