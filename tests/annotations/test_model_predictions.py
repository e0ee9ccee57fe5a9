"""Model predictions in (NIfTI on the exported grid) and the model-vs-crowd report of the console."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotations.exports import export_to_path
from annotations.models import ModelPrediction
from annotations.predictions.selectors import model_summaries, model_vs_crowd
from annotations.predictions.services import PredictionError, import_predictions, store_prediction
from tests.annotations.export_data import build_scene
from tests.factories import researcher_user

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
    from tests.factories import TaskFactory

    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="seg", out=tmp_path).path) as archive:
        seg = tmp_path / "model-output.dcm"
        seg.write_bytes(archive.read(f"seg/case-{scene.case.pk}/consensus.dcm"))

    (result,) = import_predictions(task=TaskFactory(), model_name="seg-model", paths=[seg])

    assert "is not a case of task" in result.error and not ModelPrediction.objects.exists()
