"""What the demo's parts share: the demo accounts, the lesion questions and the synthetic lesions' ground truth.

Imported by every demo module and importing none of them, so the demo has no import circle.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotations.booth.roles import grant_role
from annotations.models import ReferenceLesion
from annotations.questions.presets import preset_question
from viewer.models import Series
from viewer.services.synthetic_ct import SyntheticPatient, tissue_at

# The demo's lesion questions (presets), and the answers each synthetic tissue makes right.
DEMO_LESION_QUESTIONS = ("lesion_type", "lesion_site")


TISSUE_ANSWERS = {
    "liver": {"lesion_type": "liver", "lesion_site": "liver"},
    "lung": {"lesion_type": "lung", "lesion_site": "lung"},
    "soft_tissue": {"lesion_type": "soft_tissue", "lesion_site": "soft_tissue"},
    "fat": {"lesion_type": "soft_tissue", "lesion_site": "soft_tissue"},
    "bone": {"lesion_type": "bone", "lesion_site": "bone"},
}


DEMO_ADMIN = ("admin", "readerboard-admin")


DEMO_RESEARCHER = ("researcher", "readerboard-research")


def demo_lesion_questions() -> list[dict]:
    """Return the demo's lesion questions: the lesion type and lesion site presets."""
    return [preset_question(key) for key in DEMO_LESION_QUESTIONS]


def store_reference_lesions(patient: SyntheticPatient, series_uid: str, sop_uids: list[str], slice_z: list[float]):
    """Record the patient's synthetic lesions as the series' ground truth (once per series), with the type
    and site answers of the tissue each lesion sits in (as the image shows it, not as placed)."""
    series = Series.objects.get(series_instance_uid=series_uid)
    for index, lesion in enumerate(patient.lesions):
        nearest = min(range(len(slice_z)), key=lambda k: abs(slice_z[k] - lesion.center_mm[2]))
        ReferenceLesion.objects.create(
            series=series,
            source="synthetic",
            label=f"Lesion {index + 1}",
            center_patient_mm=list(lesion.center_mm),
            diameters_mm=list(lesion.diameters_mm),
            long_axis_mm=lesion.long_axis_mm,
            short_axis_mm=lesion.short_axis_mm,
            sop_instance_uid=sop_uids[nearest],
            answers=TISSUE_ANSWERS.get(tissue_at(patient, lesion.center_mm), {}),
        )


def ensure_demo_user(username: str, password: str, *, role: str, superuser: bool = False):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        if superuser:
            user = User.objects.create_superuser(username=username, password=password, email="")
        else:
            user = User.objects.create_user(username=username, password=password, is_staff=False)
    grant_role(user, role)
    return user
