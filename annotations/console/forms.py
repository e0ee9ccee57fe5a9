"""Console forms: parse and validate what an admin typed; the services do the work."""

from __future__ import annotations

import json

from django import forms
from django.contrib.auth import get_user_model

from annotations.booth.roles import ALL_ROLES
from annotations.console.task_setup import TASK_FIELDS, ReferenceAnswer
from annotations.core.answers import QuestionDefinitionError, validate_questions
from annotations.core.field_checks import text_problem
from annotations.models import Task
from annotations.models.tasks import Tool
from viewer.models import Collection, Series
from viewer.nifti.importing import NiftiOptions
from viewer.nifti.to_dicom import DEFAULT_MODALITY, MODALITIES


def series_label(series: Series) -> str:
    study = series.study
    return f"{study.patient_id or 'no patient id'} · {series.modality} {series.series_description or ''} (#{series.id})"


class SeriesChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, series: Series) -> str:
        return series_label(series)


class SingleSeriesChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, series: Series) -> str:
        return series_label(series)


class StorableTextForm:
    """Refuses typed text no store or export can keep (NUL, unpaired surrogates, control characters), by field.

    `multiline_fields` also take line breaks and tabs; every other text field is one line.
    """

    multiline_fields: tuple[str, ...] = ()

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, str) and (problem := text_problem(value, multiline=name in self.multiline_fields)):
                self.add_error(name, f"This field {problem}.")
        return cleaned


class TaskForm(StorableTextForm, forms.ModelForm):
    tools = forms.MultipleChoiceField(choices=Tool.choices, widget=forms.CheckboxSelectMultiple)
    consensus_method = forms.ChoiceField(choices=Task.ConsensusMethod.choices, widget=forms.RadioSelect)
    reads_per_case = forms.IntegerField(
        min_value=1, max_value=50, help_text="With adaptive reads, the most reads a case may get."
    )
    adaptive_reads = forms.BooleanField(
        required=False,
        label="Adaptive reads",
        help_text="Each case starts with the minimum reads and gets more only while readers disagree.",
    )
    min_reads = forms.IntegerField(
        min_value=1,
        max_value=50,
        initial=2,
        required=False,
        label="Minimum reads",
        help_text="Reads every case gets (adaptive).",
    )
    min_support = forms.IntegerField(
        min_value=1, max_value=50, required=False, help_text="Readers who must agree on a lesion. Empty: a majority."
    )
    max_lesions_per_case = forms.IntegerField(min_value=1, max_value=50, required=False, help_text="Empty: no limit.")
    collections = forms.ModelMultipleChoiceField(
        queryset=Collection.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple
    )
    series = SeriesChoiceField(
        queryset=Series.objects.select_related("study").order_by("study__patient_id", "series_number", "id"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    gold_series = SeriesChoiceField(
        queryset=Series.objects.select_related("study").order_by("study__patient_id", "series_number", "id"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Cases with a known answer; readers' accuracy is measured on them.",
    )

    kind = forms.ChoiceField(
        choices=Task.Kind.choices,
        initial=Task.Kind.SINGLE,
        required=False,
        widget=forms.RadioSelect,
        help_text="Follow-up: each case is one patient. Tick the series of each study to follow yourself, or "
        "only the baseline series and the rule adds one series per later study of the patient (same modality, "
        "closest description).",
    )
    baseline_source = forms.ChoiceField(
        choices=Task.BaselineSource.choices,
        initial=Task.BaselineSource.ANSWER_KEY,
        required=False,
        help_text="Follow-up tasks: the lesions readers follow.",
    )
    baseline_task = forms.ModelChoiceField(
        queryset=Task.objects.filter(kind=Task.Kind.SINGLE).order_by("name"),
        required=False,
        help_text="Follow-up tasks with a consensus or own-read baseline: the task that read the baselines.",
    )
    questions_json = forms.CharField(
        required=False,
        label="Questions (JSON)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text='{"lesion": [questions asked per lesion], "case": [questions asked once per read]}',
    )

    multiline_fields = ("instructions_md",)

    class Meta:
        model = Task
        fields = list(TASK_FIELDS)
        widgets = {"instructions_md": forms.Textarea(attrs={"rows": 10})}
        labels = {"instructions_md": "Instructions (Markdown)", "is_open": "Open for reading"}

    def clean_kind(self):
        return self.cleaned_data.get("kind") or self.instance.kind or Task.Kind.SINGLE

    def clean_baseline_source(self):
        return self.cleaned_data.get("baseline_source") or Task.BaselineSource.ANSWER_KEY

    def clean_questions_json(self) -> tuple[list[dict], list[dict]]:
        """Return (lesion questions, case questions) checked and normalised (docs/read-format.md)."""
        text = (self.cleaned_data.get("questions_json") or "").strip()
        if not text:
            return [], []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error.msg} (line {error.lineno}).") from None
        if not isinstance(value, dict) or set(value) - {"lesion", "case"}:
            raise forms.ValidationError('Expected {"lesion": [...], "case": [...]}.')
        try:
            return validate_questions(value.get("lesion", []), value.get("case", []))
        except QuestionDefinitionError as error:
            raise forms.ValidationError(
                [f"{path}: {message}" for path, messages in error.errors.items() for message in messages]
            ) from None

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("series") and not cleaned.get("collections"):
            self.add_error("series", "Pick at least one series or collection.")
        reads, support = cleaned.get("reads_per_case"), cleaned.get("min_support")
        if reads and support and support > reads:
            self.add_error("min_support", f"At most the reads per case ({reads}).")
        if cleaned.get("min_reads") is None:
            cleaned["min_reads"] = self.instance.min_reads or 2
        minimum = cleaned["min_reads"]
        if cleaned.get("adaptive_reads") and reads and minimum and minimum > reads:
            self.add_error("min_reads", f"At most the reads per case ({reads}).")
        return cleaned


class ReferenceAnswerForm(StorableTextForm, forms.Form):
    series = SingleSeriesChoiceField(queryset=Series.objects.select_related("study").order_by("id"), label="Gold case")
    label = forms.CharField(max_length=64, required=False)
    long_axis_mm = forms.FloatField(min_value=0.1, max_value=1000, label="Long axis (mm)")
    short_axis_mm = forms.FloatField(min_value=0.1, max_value=1000, required=False, label="Short axis (mm)")
    sop_instance_uid = forms.CharField(max_length=64, required=False, label="Slice (SOP Instance UID)")

    def clean(self):
        cleaned = super().clean()
        long_axis, short_axis = cleaned.get("long_axis_mm"), cleaned.get("short_axis_mm")
        if long_axis and short_axis and short_axis > long_axis:
            self.add_error("short_axis_mm", "The short axis cannot be longer than the long axis.")
        return cleaned

    def answer(self) -> ReferenceAnswer:
        data = self.cleaned_data
        return ReferenceAnswer(
            series_id=data["series"].id,
            long_axis_mm=data["long_axis_mm"],
            short_axis_mm=data.get("short_axis_mm"),
            label=data.get("label") or "",
            sop_instance_uid=data.get("sop_instance_uid") or "",
        )


ReferenceAnswerFormSet = forms.formset_factory(ReferenceAnswerForm, extra=0, can_delete=True, max_num=500)


class InviteForm(StorableTextForm, forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=[(role, role.title()) for role in ALL_ROLES])

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.")
        return username


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=[(role, role.title()) for role in ALL_ROLES], required=False, widget=forms.CheckboxSelectMultiple
    )


# Patient ID is a DICOM LO and each patient name component at most 64 characters; a backslash separates values.
DICOM_LO_CHARS = 64


class NiftiOptionsForm(StorableTextForm, forms.Form):
    """How an upload's NIfTI volumes become DICOM: their modality and, optionally, one patient for all of them."""

    nifti_modality = forms.ChoiceField(
        label="NIfTI modality",
        choices=[(name, name) for name in sorted(MODALITIES)],
        initial=DEFAULT_MODALITY,
        required=False,
        help_text="CT volumes must hold Hounsfield units.",
    )
    patient_id = forms.CharField(
        label="Patient ID",
        max_length=DICOM_LO_CHARS,
        required=False,
        help_text="Default: each file's name without .nii / .nii.gz.",
    )
    patient_name = forms.CharField(
        label="Patient name",
        max_length=DICOM_LO_CHARS,
        required=False,
        help_text="DICOM style, e.g. Doe^Jane; default: the patient ID.",
    )

    def _clean_dicom_text(self, name: str) -> str:
        value = self.cleaned_data[name]
        if "\\" in value:
            raise forms.ValidationError("A backslash separates DICOM values; leave it out.")
        return value

    def clean_patient_id(self) -> str:
        return self._clean_dicom_text("patient_id")

    def clean_patient_name(self) -> str:
        return self._clean_dicom_text("patient_name")

    def nifti_options(self) -> NiftiOptions:
        """The validated options (call after is_valid())."""
        data = self.cleaned_data
        return NiftiOptions(
            modality=data["nifti_modality"] or DEFAULT_MODALITY,
            patient_id=data["patient_id"] or None,
            patient_name=data["patient_name"] or None,
        )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files at once (Django's documented pattern) and cleans to a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".nii,.nii.gz,.gz,.dcm,.csv,.zip"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(one, initial) for one in data]
        return [super().clean(data, initial)]


class PredictionImportForm(forms.Form):
    """A model's prediction files for the task's cases; prediction_uploads checks the names, kinds and sizes."""

    model_name = forms.CharField(max_length=64, help_text="e.g. nnunet-3d-fold0; a re-import replaces its cases.")
    files = MultipleFileField(
        help_text="NIfTI label maps named case_<id>.nii.gz, DICOM SEG or TID 1500 SR (.dcm), DeepLesion-style "
        "CSV (.csv), or a .zip of them.",
    )
    show_to_readers = forms.BooleanField(required=False, label="Show to readers (check the model)")
