"""Forms of the reader pages (the API has its own serializers; both call services.readers)."""

from __future__ import annotations

from django import forms

from annotations.booth.readers import MAX_YEARS_EXPERIENCE
from annotations.booth.teams import MAX_TEAM_NAME
from annotations.core.field_checks import text_problem
from annotations.models.tasks import ReaderRole


def storable_text(value: str) -> None:
    """Refuse text that cannot be stored and exported (NUL, unpaired surrogates, control characters)."""
    if problem := text_problem(value):
        raise forms.ValidationError(f"This field {problem}.")


class SignupForm(forms.Form):
    display_name = forms.CharField(
        label="Display name",
        min_length=2,
        max_length=80,
        validators=[storable_text],
        help_text="Shown on the leaderboard. Use a nickname if you prefer.",
        widget=forms.TextInput(attrs={"autocomplete": "nickname", "autofocus": True, "autocapitalize": "words"}),
    )
    pin = forms.RegexField(
        label="PIN",
        regex=r"^\d{4,8}$",
        error_messages={"invalid": "PIN must be 4 to 8 digits."},
        help_text="4 to 8 digits, to sign in again later.",
        widget=forms.PasswordInput(
            attrs={"inputmode": "numeric", "autocomplete": "new-password", "pattern": r"\d{4,8}", "maxlength": 8}
        ),
    )
    role = forms.ChoiceField(label="Role", choices=ReaderRole.choices, initial=ReaderRole.ATTENDING)
    subspecialty = forms.CharField(
        label="Subspecialty",
        required=False,
        max_length=80,
        validators=[storable_text],
        widget=forms.TextInput(attrs={"placeholder": "e.g. Body"}),
    )
    years_experience = forms.IntegerField(
        label="Years of experience",
        min_value=0,
        max_value=MAX_YEARS_EXPERIENCE,
        initial=0,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    team = forms.CharField(
        label="Team or institution",
        required=False,
        max_length=MAX_TEAM_NAME,
        validators=[storable_text],
        help_text="Optional: your residency program or hospital, for the team board. Pick a suggestion to join it.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "organization",
                "placeholder": "e.g. Mass General",
                "role": "combobox",
                "aria-autocomplete": "list",
                "aria-expanded": "false",
                "aria-controls": "team-suggestions",
            }
        ),
    )
    email = forms.EmailField(
        label="Email",
        required=False,
        help_text="Optional: only to tell you about results.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    consent = forms.BooleanField(
        label="I agree that my anonymised measurements are used for research and shared in exports under a pseudonym.",
        error_messages={"required": "Consent is required to take part."},
    )
    booth_mode = forms.BooleanField(
        label="Shared booth machine: sign me out when I finish or step away", required=False
    )


class LoginForm(forms.Form):
    display_name = forms.CharField(
        label="Display name",
        max_length=80,
        validators=[storable_text],
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    pin = forms.CharField(
        label="PIN",
        max_length=16,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "current-password"}),
    )
    booth_mode = forms.BooleanField(
        label="Shared booth machine: sign me out when I finish or step away", required=False
    )
