"""Model predictions in (NIfTI on the exported grid) and the model-vs-crowd report of the console."""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotations.core import mask_rle
from annotations.exports import export_to_path
from annotations.models import Lease, ModelPrediction
from annotations.predictions.selectors import model_summaries, model_vs_crowd
from annotations.predictions.services import PredictionError, import_predictions, store_prediction
from annotations.reading.submission import submit_read
from tests.annotations.export_data import build_scene
from tests.factories import ReaderFactory, TaskFactory, researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def exported_label(scene, folder: Path) -> Path:
    """The case's consensus label map from the nnunet export, as a model trained on it would predict it."""
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="nnunet", out=folder).path) as archive:
        archive.extractall(folder / "dataset")
    return folder / "dataset" / "labelsTr" / f"case_{scene.case.pk:05d}.nii.gz"


def test_a_prediction_equal_to_the_consensus_has_dice_one(scene, tmp_path):
    results = import_predictions(task=scene.task, model_name="nnunet-3d", paths=[exported_label(scene, tmp_path)])

    assert [result.error for result in results] == [""]
    rows = model_vs_crowd(task=scene.task)
    assert len(rows) == 1 and rows[0].dice_crowd == pytest.approx(1.0)
    assert rows[0].voxels == rows[0].crowd_voxels == int(sum(mask.sum() for mask in scene.masks.values()))
    assert rows[0].dice_answer_key is None
    assert model_summaries(rows)[0].mean_dice_crowd == pytest.approx(1.0)


def test_a_prediction_in_another_axis_order_lands_on_the_same_pixels(scene, tmp_path):
    label = nib.load(exported_label(scene, tmp_path))
    flipped = label.as_reoriented(np.array([[0, -1], [1, 1], [2, -1]]))  # LAS, slices reversed (I)
    path = tmp_path / f"case_{scene.case.pk}.nii.gz"
    nib.save(flipped, path)

    prediction = store_prediction(case=scene.case, model_name="m", path=path)

    assert model_vs_crowd(task=scene.task)[0].dice_crowd == pytest.approx(1.0)
    assert prediction.voxel_count == int(np.asarray(label.dataobj).sum())


def test_a_prediction_off_the_cases_grid_is_refused(scene, tmp_path):
    label = nib.load(exported_label(scene, tmp_path))
    path = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 9), np.uint8), label.affine), path)

    with pytest.raises(PredictionError, match="not on the case's grid"):
        store_prediction(case=scene.case, model_name="m", path=path)
    assert not ModelPrediction.objects.exists()


def test_the_command_names_files_that_are_not_cases_of_the_task(scene, tmp_path):
    good = exported_label(scene, tmp_path)
    stray = tmp_path / "dataset" / "labelsTr" / "case_99999.nii.gz"
    stray.write_bytes(good.read_bytes())
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 of 2 predictions refused"):
        call_command("import_predictions", str(good.parent), "--task", scene.task.name, "--model", "m", stderr=err)
    assert "case 99999 is not in task" in err.getvalue()
    assert ModelPrediction.objects.filter(case=scene.case, model_name="m").exists()


def test_the_results_page_shows_the_model_against_the_crowd(scene, tmp_path, client):
    import_predictions(task=scene.task, model_name="nnunet-3d", paths=[exported_label(scene, tmp_path)])
    client.force_login(researcher_user())

    page = client.get(reverse("console:task-results", args=[scene.task.pk])).content.decode()

    assert "Model vs crowd" in page and "nnunet-3d" in page and "1.000" in page


def test_a_dicom_seg_prediction_finds_its_case_by_series_and_matches_the_consensus(scene, tmp_path):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="seg", out=tmp_path).path) as archive:
        seg = tmp_path / "model-output.dcm"
        seg.write_bytes(archive.read(f"seg/case-{scene.case.pk}/consensus.dcm"))

    results = import_predictions(task=scene.task, model_name="seg-model", paths=[seg])

    assert [result.error for result in results] == [""]
    (row,) = model_vs_crowd(task=scene.task)
    assert row.case_id == scene.case.pk and row.dice_crowd == pytest.approx(1.0)


def test_a_dicom_seg_of_a_series_outside_the_task_is_refused(scene, tmp_path):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="seg", out=tmp_path).path) as archive:
        seg = tmp_path / "model-output.dcm"
        seg.write_bytes(archive.read(f"seg/case-{scene.case.pk}/consensus.dcm"))

    (result,) = import_predictions(task=TaskFactory(), model_name="seg-model", paths=[seg])

    assert "is not a case of task" in result.error and not ModelPrediction.objects.exists()


# --- "check the model" tasks: readers start from the model's masks ----------------------------------------


def next_case_body(task):
    client = APIClient()
    client.force_login(ReaderFactory().user)
    response = client.post(f"/api/tasks/{task.pk}/next-case/")
    assert response.status_code == 200
    return response.json()


def test_readers_of_a_check_the_model_task_get_the_models_masks_as_lesions(scene, tmp_path):
    out = io.StringIO()
    call_command(
        "import_predictions",
        str(exported_label(scene, tmp_path)),
        "--task",
        str(scene.task.pk),
        "--model",
        "nnunet-3d",
        "--show-to-readers",
        stdout=out,
    )

    suggestion = next_case_body(scene.task)["suggestion"]

    assert "now start from nnunet-3d" in out.getvalue()
    assert suggestion["model_name"] == "nnunet-3d"
    assert len(suggestion["lesions"]) == 1  # the two painted slices touch: one component
    slices = suggestion["lesions"][0]["mask"]["slices"]
    painted = sum(int(mask_rle.decode(entry["counts"], rows=64, columns=64).sum()) for entry in slices)
    assert painted == int(sum(mask.sum() for mask in scene.masks.values()))


def test_a_suggestion_submitted_as_it_is_is_a_valid_read(scene, tmp_path):
    import_predictions(task=scene.task, model_name="m", paths=[exported_label(scene, tmp_path)])
    scene.task.suggestion_model = "m"
    scene.task.save()
    suggestion = next_case_body(scene.task)["suggestion"]
    reader = ReaderFactory()
    Lease.objects.create(case=scene.case, reader=reader, expires_at=timezone.now() + dt.timedelta(minutes=5))

    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": scene.case.pk,
        "started_at": timezone.now().isoformat(),
        "duration_s": 3,
        "flags": {},
        "lesions": suggestion["lesions"],
    }
    result = submit_read(reader=reader, document=document)

    assert result.created and result.read.mask_slices.count() == 2


def test_ordinary_tasks_never_show_a_model_to_readers(scene, tmp_path):
    import_predictions(task=scene.task, model_name="nnunet-3d", paths=[exported_label(scene, tmp_path)])

    assert "suggestion" not in next_case_body(scene.task)


def test_the_report_counts_what_readers_latest_reads_made_of_each_suggested_lesion(scene, tmp_path, client):
    import_predictions(task=scene.task, model_name="m", paths=[exported_label(scene, tmp_path)])
    scene.task.suggestion_model = "m"
    scene.task.save(update_fields=["suggestion_model"])
    # The scene's reads predate the suggestion: only reads submitted now are reviewed. One reader keeps the
    # lesion, then corrects it to nothing there (no lesion); only that latest version counts.
    keeper = ReaderFactory()
    Lease.objects.create(case=scene.case, reader=keeper, expires_at=timezone.now() + dt.timedelta(minutes=5))
    lesions = next_case_body(scene.task)["suggestion"]["lesions"]
    envelope = {"case": scene.case.pk, "started_at": timezone.now().isoformat(), "duration_s": 3}
    kept = {**envelope, "flags": {}, "lesions": lesions}
    submit_read(reader=keeper, document={**kept, "client_uuid": str(uuid.uuid4())})
    changed = ReaderFactory()
    Lease.objects.create(case=scene.case, reader=changed, expires_at=timezone.now() + dt.timedelta(minutes=5))
    submit_read(
        reader=changed, document={**envelope, "client_uuid": str(uuid.uuid4()), "flags": {}, "lesions": lesions}
    )
    no_lesion = {**envelope, "client_uuid": str(uuid.uuid4()), "flags": {"no_lesion": True}, "lesions": []}
    submit_read(reader=changed, document=no_lesion)

    (row,) = model_vs_crowd(task=scene.task)
    client.force_login(researcher_user())
    page = client.get(reverse("console:task-results", args=[scene.task.pk])).content.decode()

    assert row.verdicts == {"accepted": 1, "edited": 0, "rejected": 1, "added": 0}
    assert "1 / 0 / 1 / 0" in page and "accepted 1 · edited 0 · rejected 1 · added 0" in page
