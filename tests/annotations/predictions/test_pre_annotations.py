"""NIfTI label maps in as pre-annotations: readers of a check-the-model task start from them (issue 27)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from annotations.models import ModelPrediction, Read
from annotations.predictions.errors import PredictionError
from annotations.predictions.pre_annotations import import_label_map_pre_annotation
from tests.annotations.exports.test_export_datasets import volume_and_labels, write_nifti
from tests.factories import ReaderFactory, TaskFactory

pytestmark = pytest.mark.django_db


def import_as_pre_annotation(image, label_map, *, task, extra=(), **streams) -> None:
    """Run `import_nifti_labels IMAGE LABELS --task NAME --labels-as pre-annotation` as a researcher would."""
    arguments = [str(image), str(label_map), "--task", task.name, "--labels-as", "pre-annotation", *extra]
    call_command("import_nifti_labels", *arguments, **streams)


def test_a_label_map_becomes_the_pre_annotation_of_an_ordinary_case_shown_to_readers(tmp_path):
    image, label_map, _, labels = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis", "mask", "no_lesion"])

    result = import_label_map_pre_annotation(task=task, image_path=image, label_path=label_map, model_name="atlas")

    task.refresh_from_db()
    assert result.created_case and not result.case.is_gold
    assert task.suggestion_model == "atlas"
    assert result.prediction.voxel_count == int(labels.sum())
    assert not Read.all_objects.exists()  # a pre-annotation is never a read or an answer key


def test_a_reader_of_the_task_is_shown_the_label_maps_lesions(tmp_path):
    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis", "mask", "no_lesion"])
    import_label_map_pre_annotation(task=task, image_path=image, label_path=label_map)
    client = APIClient()
    client.force_authenticate(ReaderFactory().user)

    answer = client.post(f"/api/tasks/{task.pk}/next-case/")

    assert answer.status_code == 200, answer.content
    suggestion = answer.json()["suggestion"]
    assert suggestion["model_name"] == "pre-annotation"
    assert len(suggestion["lesions"]) == 2  # the label map's two separate lesions


def test_a_pre_annotation_is_refused_without_the_mask_tool_and_nothing_is_imported(tmp_path):
    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis", "no_lesion"])

    with pytest.raises(PredictionError, match="no mask tool"):
        import_label_map_pre_annotation(task=task, image_path=image, label_path=label_map)

    assert not task.cases.exists() and not ModelPrediction.objects.exists()


def test_a_label_map_off_its_images_grid_is_refused_as_a_pre_annotation(tmp_path):
    import numpy as np

    image, _, _, labels = volume_and_labels(tmp_path)
    shifted = write_nifti(tmp_path / "other_seg.nii.gz", labels, np.diag([0.8, 0.8, 2.0, 1.0]))
    task = TaskFactory(tools=["mask"])

    with pytest.raises(ValueError, match="different affine"):
        import_label_map_pre_annotation(task=task, image_path=image, label_path=shifted)

    assert not task.cases.exists() and not ModelPrediction.objects.exists()


def test_the_command_imports_label_maps_as_pre_annotations(tmp_path):
    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis", "mask", "no_lesion"])
    out = io.StringIO()

    import_as_pre_annotation(image, label_map, task=task, extra=["--model-name", "tracings"], stdout=out)

    assert "pre-annotation 'tracings' of new case" in out.getvalue()
    assert ModelPrediction.objects.get(case__task=task).model_name == "tracings"


def test_the_command_names_a_refused_pre_annotation(tmp_path):
    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis"])
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 of 1 label maps refused"):
        import_as_pre_annotation(image, label_map, task=task, stderr=err)

    assert f"{label_map}: refused:" in err.getvalue() and "no mask tool" in err.getvalue()
