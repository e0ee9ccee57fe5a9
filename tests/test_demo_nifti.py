"""The NIfTI demo: an ATLAS-like MR task whose gold cases' answer keys came in as NIfTI label maps."""

import json
import zipfile

import numpy as np
import pytest

from annotations.demo.nifti_demo import CHECK_MODEL_TASK, DEMO_MODEL, SHAPE, make_nifti_demo, synthetic_t1
from annotations.exports import export_to_path
from annotations.models import Read, Task
from annotations.predictions.selectors import model_vs_crowd
from annotations.predictions.suggestions import suggestion_document

pytestmark = pytest.mark.django_db


def test_a_synthetic_t1_has_one_dark_lesion_inside_the_brain():
    volume, labels, affine = synthetic_t1(seed=1)

    assert volume.shape == labels.shape == SHAPE
    assert 200 < labels.sum() < 20000
    assert volume[labels == 1].mean() < volume[(labels == 0) & (volume > 700)].mean() - 300
    assert np.allclose(np.diag(affine)[:3], (1.5, 1.5, 4.0))


def test_the_nifti_demo_makes_gold_cases_with_label_map_answer_keys_that_export_to_nnunet(tmp_path):
    task = make_nifti_demo(cases=2)

    keys = Read.all_objects.filter(case__task=task, is_answer_key=True)
    assert task.cases.filter(is_gold=True).count() == 2 and keys.count() == 2
    assert all(key.mask_slices.exists() for key in keys)
    assert make_nifti_demo(cases=2) == task  # a second run changes nothing
    with zipfile.ZipFile(export_to_path(task=task, fmt="nnunet", out=tmp_path).path) as archive:
        document = json.loads(archive.read("dataset.json"))
    assert document["channel_names"] == {"0": "MR"} and document["numTraining"] == 2


def test_the_demo_models_predictions_are_close_to_but_not_the_answer_keys():
    task = make_nifti_demo(cases=1)

    (row,) = model_vs_crowd(task=task)
    assert row.model_name == DEMO_MODEL and row.is_gold
    assert 0.5 < row.dice_answer_key < 1.0


def test_the_check_the_model_task_suggests_the_demo_models_mask_on_the_same_series():
    task = make_nifti_demo(cases=1)
    check = Task.objects.get(name=CHECK_MODEL_TASK)

    (case,) = check.cases.all()
    suggestion = suggestion_document(case=case)
    assert check.suggestion_model == DEMO_MODEL and case.series_id == task.cases.get().series_id
    assert suggestion["model_name"] == DEMO_MODEL and len(suggestion["lesions"]) == 1


def test_the_demo_model_is_wrong_in_each_way_a_reader_must_catch():
    from scipy import ndimage

    from annotations.demo.nifti_demo import MODEL_FLAWS, flawed_prediction

    volume, labels, _ = synthetic_t1(seed=2701)
    by_flaw = {flaw: flawed_prediction(labels, volume, flaw=flaw) for flaw in MODEL_FLAWS}

    assert not by_flaw["missed lesion"].any()
    assert 0 < by_flaw["undersized"].sum() < 0.8 * labels.sum() and not (by_flaw["undersized"] & ~labels).any()
    false_positive = by_flaw["false positive"].astype(bool) & ~labels.astype(bool)
    assert ndimage.label(by_flaw["false positive"])[1] == 2 and false_positive.sum() > 20
    assert volume[false_positive].mean() > 700  # drawn on healthy white matter, not on the lesion
    shifted = by_flaw["shifted"].astype(bool)
    assert shifted.sum() == labels.sum() and 0 < (shifted & labels.astype(bool)).sum() < labels.sum()


def test_the_check_the_model_task_shows_a_missed_lesion_as_no_suggested_lesion_and_a_false_positive_as_two():
    make_nifti_demo(cases=3)
    check = Task.objects.get(name=CHECK_MODEL_TASK)

    counts = [len(suggestion_document(case=case)["lesions"]) for case in check.cases.order_by("label")]

    assert counts == [1, 0, 2]  # shifted, missed lesion, false positive beside the true lesion
