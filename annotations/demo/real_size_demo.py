"""The demo's real-size CT: 520 slices of 512 x 512 at 1 mm with one lesion of known size, its own task.

Real chest/abdomen CT series are 300 to 800 slices; the small demo series hide what reading one
over booth Wi-Fi costs. This set-up is slow (about 270 MB of DICOM written, imported and encoded
for the wire), so `make run` starts it in the background after the server is up, and it is
idempotent: UIDs are derived from a fixed seed, so an interrupted run is finished, not doubled.
It must never touch the small demo's task or readers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from annotations.demo.common import DEMO_ADMIN, store_reference_lesions
from annotations.models import Case, Task
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series
from viewer.tasks import warm_series_cache

REAL_SIZE_COLLECTION = "Real-size CT"
REAL_SIZE_TASK = "Demo: real-size CT (520 slices)"
REAL_SIZE_SLICES = 520
REAL_SIZE_SLICE_SPACING_MM = 1.0
REAL_SIZE_INSTRUCTIONS = """\
A full-length CT of 520 slices at 1 mm, as a real chest/abdomen scan is. One liver lesion lies
somewhere in the middle third: find it, and draw its **longest axial diameter** where it is largest.
"""


def real_size_patient(*, slices: int = REAL_SIZE_SLICES, size: int = 512) -> SyntheticPatient:
    """The real-size demo patient: one 28 x 19 mm hypodense liver lesion, centred on a slice."""
    # Below the middle: the synthetic liver fills the slices at negative z.
    centre_slice = slices // 2 - slices // 9
    z_centre = -(slices - 1) * REAL_SIZE_SLICE_SPACING_MM / 2.0 + centre_slice * REAL_SIZE_SLICE_SPACING_MM
    return SyntheticPatient(
        patient_id="RB-REAL-001",
        patient_name="Demo^RealSize",
        lesions=[SyntheticLesion(center_mm=(-60.0, 40.0, z_centre), diameters_mm=(28.0, 19.0, 22.0), hu=20.0)],
        rows=size,
        columns=size,
        slices=slices,
        pixel_spacing_mm=0.7,
        slice_spacing_mm=REAL_SIZE_SLICE_SPACING_MM,
        sex="F",
        seed=520,
    )


def make_real_size_demo(*, slices: int = REAL_SIZE_SLICES, size: int = 512) -> Task:
    """Create (or finish creating) the real-size series, its task and case; queue its frame encoding."""
    existing = Task.objects.filter(name=REAL_SIZE_TASK).first()
    if existing is not None:
        return existing
    patient = real_size_patient(slices=slices, size=size)
    written = write_series(
        patient,
        settings.DATA_DIR / "demo-source" / patient.patient_id,
        study_description="CT CHEST ABDOMEN PELVIS",
        uid_seed=f"readerboard-real-size-demo-{slices}-{size}",
    )
    import_paths(written.files, collection_name=REAL_SIZE_COLLECTION)
    series = Series.objects.get(series_instance_uid=written.series_instance_uid)
    with transaction.atomic():
        if not series.reference_lesions.exists():
            store_reference_lesions(patient, written.series_instance_uid, written.sop_instance_uids, written.slice_z_mm)
        task = Task.objects.create(
            name=REAL_SIZE_TASK,
            instructions_md=REAL_SIZE_INSTRUCTIONS,
            reads_per_case=5,
            created_by=_demo_admin(),
        )
        Case.objects.create(task=task, series=series, label="Real-size case 1")
        # Encode every frame for the wire once, before the first reader asks (eager on a booth laptop).
        transaction.on_commit(lambda: warm_series_cache.delay(series.pk), robust=True)
    return task


def _demo_admin():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username=DEMO_ADMIN[0]).first()
