"""NIfTI volumes uploaded through the console take the admin's modality and patient, as `import_dicom` does."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from django.urls import reverse

from tests.annotations.console.test_console_upload import upload
from viewer.models import ImportJob, Series


def small_nifti_bytes(seed: int = 3) -> bytes:
    """A gzipped 12 x 10 x 4 NIfTI volume at 1 x 1 x 3 mm, as a research dataset would hand it over."""
    data = np.random.default_rng(seed).integers(0, 800, size=(12, 10, 4), dtype=np.int16)
    image = nib.Nifti1Image(data, np.diag([1.0, 1.0, 3.0, 1.0]))
    return gzip.compress(image.to_bytes())


def create_job(client, **fields):
    return client.post(
        reverse("console:api-import-create"), {"collection": "NIfTI uploads", **fields}, content_type="application/json"
    )


@pytest.mark.django_db
def test_an_uploaded_nifti_is_stored_with_the_modality_and_patient_the_admin_gave(admin_api):
    job = create_job(admin_api, nifti_modality="MR", patient_id="ATLAS-0042", patient_name="Atlas^Case42").json()

    upload(admin_api, job["id"], "atlas/sub-42_T1w.nii.gz", small_nifti_bytes(), chunk=1024)
    admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    done = admin_api.get(reverse("console:api-import", args=[job["id"]])).json()
    assert done["status"] == "done" and done["summary"]["imported"] == 4, done
    assert done["nifti_options"] == {"modality": "MR", "patient_id": "ATLAS-0042", "patient_name": "Atlas^Case42"}
    series = Series.objects.select_related("study").get(study__collection__name="NIfTI uploads")
    assert series.modality == "MR"
    assert (series.study.patient_id, series.study.patient_name) == ("ATLAS-0042", "Atlas^Case42")
    assert "ATLAS-0042" in admin_api.get(reverse("console:import-detail", args=[job["id"]])).content.decode()


@pytest.mark.django_db
def test_a_ct_nifti_upload_becomes_a_ct_series(admin_api):
    job = create_job(admin_api, nifti_modality="CT").json()

    upload(admin_api, job["id"], "ct.nii.gz", small_nifti_bytes(seed=4), chunk=4096)
    admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    assert Series.objects.get(study__collection__name="NIfTI uploads").modality == "CT"


@pytest.mark.django_db
def test_without_options_a_nifti_upload_is_mr_as_the_command_line_defaults(admin_api):
    job = create_job(admin_api).json()

    upload(admin_api, job["id"], "plain.nii.gz", small_nifti_bytes(seed=5), chunk=4096)
    admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    assert job["nifti_options"] == {"modality": "MR", "patient_id": None, "patient_name": None}
    assert Series.objects.get(study__collection__name="NIfTI uploads").modality == "MR"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"patient_id": "A\\B"}, "patient_id", "backslash"),
        ({"patient_id": "X" * 65}, "patient_id", "at most 64"),
        ({"patient_id": "bad\x07id"}, "patient_id", "control character"),
        ({"patient_name": "Doe\r\nJane"}, "patient_name", "line break"),
        ({"nifti_modality": "PET"}, "nifti_modality", "not one of the available choices"),
        ({"patient_id": 42}, "patient_id", "must be a string"),
    ],
)
def test_a_bad_nifti_option_is_refused_naming_its_field_and_opens_no_job(admin_api, fields, field, words):
    answer = create_job(admin_api, **fields)

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == [field]
    assert words in " ".join(answer.json()["errors"][field])
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_the_upload_page_offers_the_nifti_options_with_their_help(admin_api):
    page = admin_api.get(reverse("console:upload")).content.decode()

    assert 'id="nifti-modality"' in page and 'id="nifti-patient-id"' in page and 'id="nifti-patient-name"' in page
    assert "apply only to NIfTI volumes" in page
    assert '<option value="MR" selected>' in page
