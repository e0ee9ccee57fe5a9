"""The demo: synthetic CT patients with known lesions, the "Odd DICOM" corpus, a task and accounts.

Runs without any network. Idempotent: a second run finds what the first made.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotations.booth.readers import register_reader
from annotations.booth.roles import ADMIN, RESEARCHER, ensure_role_groups
from annotations.demo.common import (
    DEMO_ADMIN,
    DEMO_RESEARCHER,
    demo_lesion_questions,
    ensure_demo_user,
    store_reference_lesions,
)
from annotations.demo.follow_up_demo import make_follow_up_demo
from annotations.demo.reader_study import simulate_reader_study, store_answer_keys
from annotations.models import Case, Reader, Task
from annotations.questions.services import save_questions
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticPatient, demo_patients, write_series

DEMO_COLLECTION = "Demo CT"
ODD_COLLECTION = "Odd DICOM"
DEMO_TASK = "Demo: RECIST target lesions"
DEMO_INSTRUCTIONS = """\
Measure every **target lesion** (at least 10 mm) on the slice where it is largest:

1. Scroll to the lesion's largest cross-section.
2. Draw its **long axis** (and the short axis if asked) with the line tool.
3. Optionally paint the lesion mask with the brush.
4. Submit. If there is nothing measurable, press *No measurable lesion*.
"""
DEMO_READERS = [
    ("Dr Ada Demo", "1111", "attending", "Abdominal", 12),
    ("Ben Resident", "2222", "trainee", "Body", 2),
    ("Cy Student", "3333", "student", "", 0),
]


@dataclass
class DemoSummary:
    created: bool
    series: list[str] = field(default_factory=list)
    task_id: int | None = None
    logins: list[str] = field(default_factory=list)


def demo_exists() -> bool:
    return Task.objects.filter(name=DEMO_TASK).exists()


def make_demo(
    *,
    patients: list[SyntheticPatient] | None = None,
    include_odd_dicom: bool = True,
    simulated_study: bool = True,
    follow_up: bool = True,
    booth_questions: bool = False,
    nifti: bool = False,
) -> DemoSummary:
    """Create the demo data and accounts unless they exist; return what is there.

    With nifti an ATLAS-like MR task comes from NIfTI volumes whose label maps are its answer keys
    (annotations/demo/nifti_demo.py). With booth_questions the booth task asks lesion type and site (as
    `manage.py make_demo` does) and its gold case gets an answer key; off by default so callers that read
    with a page that predates questions still work. The simulated study always asks them.
    """
    if demo_exists():
        return DemoSummary(created=False, task_id=Task.objects.get(name=DEMO_TASK).pk, logins=_logins())
    ensure_role_groups()
    patients = patients if patients is not None else demo_patients()
    out_root = settings.DATA_DIR / "demo-source"
    series_uids = []
    for patient in patients:
        written = write_series(patient, out_root / patient.patient_id)
        import_paths(written.files, collection_name=DEMO_COLLECTION)
        series_uids.append(written.series_instance_uid)
        store_reference_lesions(patient, written.series_instance_uid, written.sop_instance_uids, written.slice_z_mm)
    if include_odd_dicom:
        import_odd_dicom()
    if follow_up:
        # Made before the booth task so that one stays first on the reader's list (newest first).
        make_follow_up_demo(simulated_study=simulated_study)
    if nifti:
        from annotations.demo.nifti_demo import make_nifti_demo

        # Also before the booth task, for the same reason; its answer keys are the admin's.
        make_nifti_demo(user=ensure_demo_user(*DEMO_ADMIN, role=ADMIN, superuser=True))
    with transaction.atomic():
        admin_user = ensure_demo_user(*DEMO_ADMIN, role=ADMIN, superuser=True)
        ensure_demo_user(*DEMO_RESEARCHER, role=RESEARCHER)
        task = Task.objects.create(
            name=DEMO_TASK, instructions_md=DEMO_INSTRUCTIONS, reads_per_case=3, created_by=admin_user
        )
        for index, uid in enumerate(series_uids):
            series = Series.objects.get(series_instance_uid=uid)
            Case.objects.create(task=task, series=series, label=f"Demo case {index + 1}", is_gold=index == 0)
        if booth_questions:
            save_questions(task=task, lesion=demo_lesion_questions(), case=[], user=admin_user)
        for display_name, pin, role, subspecialty, years in DEMO_READERS:
            if not Reader.objects.filter(display_name=display_name).exists():
                register_reader(
                    display_name=display_name, pin=pin, role=role, subspecialty=subspecialty, years_experience=years
                )
    if booth_questions:
        store_answer_keys(task=task, user=admin_user)
    if simulated_study:
        simulate_reader_study(
            series=list(Series.objects.filter(series_instance_uid__in=series_uids)), answer_key_by=admin_user
        )
    return DemoSummary(created=True, series=series_uids, task_id=task.pk, logins=_logins())


def import_odd_dicom() -> None:
    """Import pydicom's bundled test images as the "Odd DICOM" collection (MR, compressed, multi-frame)."""
    import pydicom

    # The files pydicom ships; get_testdata_files would try to download more.
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
        import_paths([folder], collection_name=ODD_COLLECTION)


def _logins() -> list[str]:
    lines = [
        f"admin:      {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}",
        f"researcher: {DEMO_RESEARCHER[0]} / {DEMO_RESEARCHER[1]}",
    ]
    lines += [f"reader:     {name} / PIN {pin}" for name, pin, *_ in DEMO_READERS]
    return lines
