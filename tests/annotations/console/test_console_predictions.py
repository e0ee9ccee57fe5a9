"""Model predictions imported from the task page of the console, in the background, with a per-file report."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotations.console.tasks import import_prediction_upload
from annotations.models import ModelPrediction, PredictionImportJob, Task
from tests.annotations.export_data import build_scene
from tests.annotations.predictions.test_model_predictions import exported_label
from tests.annotations.predictions.test_prediction_lines import exported_deeplesion
from tests.factories import ReaderFactory, TaskFactory, researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def upload(path_or_name, content: bytes | None = None) -> SimpleUploadedFile:
    if content is None:
        return SimpleUploadedFile(Path(path_or_name).name, Path(path_or_name).read_bytes())
    return SimpleUploadedFile(path_or_name, content)


def post_predictions(client, task: Task, *files: SimpleUploadedFile, model: str = "nnunet-3d", show: bool = False):
    data = {"model_name": model, "files": list(files)}
    if show:
        data["show_to_readers"] = "on"
    return client.post(reverse("console:predictions-import", args=[task.pk]), data)


def test_a_nifti_and_a_csv_uploaded_on_the_task_page_become_the_models_prediction(admin_api, scene, tmp_path):
    label, lines = exported_label(scene, tmp_path), exported_deeplesion(scene, tmp_path)

    response = post_predictions(admin_api, scene.task, upload(label), upload(lines), model="nnunet-3d")

    job = PredictionImportJob.objects.get(task=scene.task)
    job_page = reverse("console:prediction-import", args=[scene.task.pk, job.pk])
    assert response.status_code == 302 and response.url == job_page
    prediction = ModelPrediction.objects.get(case=scene.case, model_name="nnunet-3d")
    assert prediction.voxel_count == int(sum(mask.sum() for mask in scene.masks.values()))
    assert prediction.lesion_marks
    assert [(row["name"], row["status"], row["case"]) for row in job.report] == [
        (label.name, "imported", scene.case.pk),
        ("DL_info.csv", "imported", scene.case.pk),
    ]
    page = admin_api.get(response.url).content.decode()
    assert f"{prediction.voxel_count}</td>" in page and f"case {scene.case.pk}</a>" in page
    assert "2 file(s) · 2 imported · 0 refused" in page
    dashboard = admin_api.get(reverse("console:task-dashboard", args=[scene.task.pk])).content.decode()
    assert "nnunet-3d" in dashboard and "Import model predictions" in dashboard


def test_a_truncated_nifti_is_refused_by_name_and_reason_while_the_csv_imports(admin_api, scene, tmp_path):
    whole = exported_label(scene, tmp_path).read_bytes()
    # Cut inside the compressed voxels: the header still reads, the data does not.
    truncated = upload(f"case_{scene.case.pk}.nii.gz", whole[: len(whole) - 20])

    post_predictions(admin_api, scene.task, truncated, upload(exported_deeplesion(scene, tmp_path)))

    job = PredictionImportJob.objects.get(task=scene.task)
    by_name = {row["name"]: row for row in job.report}
    assert by_name[f"case_{scene.case.pk}.nii.gz"]["status"] == "refused"
    assert "is not a readable NIfTI" in by_name[f"case_{scene.case.pk}.nii.gz"]["reason"]
    assert by_name["DL_info.csv"]["status"] == "imported"
    prediction = ModelPrediction.objects.get(case=scene.case)
    assert prediction.lesion_marks and prediction.voxel_count == 0
    page = admin_api.get(reverse("console:prediction-import", args=[scene.task.pk, job.pk])).content.decode()
    assert f"case_{scene.case.pk}.nii.gz" in page and "is not a readable NIfTI" in page


def test_a_zip_of_model_outputs_imports_its_predictions_by_member_name(admin_api, scene, tmp_path):
    label = exported_label(scene, tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"fold0/{label.name}", label.read_bytes())
        archive.writestr("fold0/plans.json", "{}")

    post_predictions(admin_api, scene.task, upload("outputs.zip", buffer.getvalue()))

    job = PredictionImportJob.objects.get(task=scene.task)
    (row,) = job.report
    assert (row["name"], row["status"]) == (f"outputs.zip:fold0/{label.name}", "imported")
    assert ModelPrediction.objects.filter(case=scene.case, model_name="nnunet-3d").exists()
    progress = admin_api.get(reverse("console:api-prediction-import", args=[scene.task.pk, job.pk])).json()
    assert progress["status"] == "done" and progress["files_done"] == progress["files_total"] == 1


def test_rerunning_a_finished_import_changes_nothing(admin_api, scene, tmp_path):
    post_predictions(admin_api, scene.task, upload(exported_label(scene, tmp_path)))
    job = PredictionImportJob.objects.get(task=scene.task)
    ModelPrediction.objects.all().delete()

    import_prediction_upload(job.pk)

    assert PredictionImportJob.objects.get(pk=job.pk).report == job.report
    assert not ModelPrediction.objects.exists()


def test_a_file_that_is_no_prediction_kind_refuses_the_upload_naming_it(admin_api, scene, tmp_path):
    response = post_predictions(
        admin_api, scene.task, upload(exported_label(scene, tmp_path)), upload("notes.txt", b"hello")
    )

    assert response.status_code == 400
    assert "notes.txt is not a prediction file" in response.content.decode()
    assert not PredictionImportJob.objects.exists() and not ModelPrediction.objects.exists()


def test_a_file_name_too_long_to_store_refuses_the_upload_clearly(admin_api, scene):
    response = post_predictions(admin_api, scene.task, upload("p" * 300 + ".csv", b"a,b\n"))

    assert response.status_code == 400 and "has a name longer than 200 bytes" in response.content.decode()
    assert not PredictionImportJob.objects.exists()


@pytest.mark.parametrize("who", ["reader", "researcher"])
def test_only_admins_may_import_predictions(client, scene, tmp_path, who):
    client.force_login(ReaderFactory().user if who == "reader" else researcher_user())

    response = post_predictions(client, scene.task, upload(exported_label(scene, tmp_path)))

    assert response.status_code == 403
    assert not PredictionImportJob.objects.exists() and not ModelPrediction.objects.exists()


def test_a_signed_out_visitor_is_sent_to_sign_in(client, scene, tmp_path):
    response = post_predictions(client, scene.task, upload(exported_label(scene, tmp_path)))

    assert response.status_code == 302 and response.url.startswith("/console/login/")
    assert not PredictionImportJob.objects.exists()


def test_the_show_to_readers_box_makes_the_task_check_the_model(admin_api, scene, tmp_path):
    scene.task.tools = ["mask", "no_lesion"]
    scene.task.save()

    response = post_predictions(admin_api, scene.task, upload(exported_label(scene, tmp_path)), show=True)

    assert Task.objects.get(pk=scene.task.pk).suggestion_model == "nnunet-3d"
    assert "Readers of this task now start from nnunet-3d" in admin_api.get(response.url).content.decode()


def test_show_to_readers_is_refused_clearly_when_the_tools_cannot_draw_masks_but_the_masks_import(
    admin_api, scene, tmp_path
):
    label = exported_label(scene, tmp_path)
    lines_task = TaskFactory(tools=["long_axis", "no_lesion"])
    scene.case.task = lines_task
    scene.case.save()

    response = post_predictions(admin_api, lines_task, upload(label), show=True)

    assert Task.objects.get(pk=lines_task.pk).suggestion_model == ""
    assert ModelPrediction.objects.get(case=scene.case).voxel_count > 0
    page = admin_api.get(response.url).content.decode()
    assert "Not shown to readers:" in page and "lacks the mask tool for its masks" in page


def test_an_admin_shows_a_models_predictions_to_readers_and_stops_showing_them(admin_api, scene, tmp_path):
    scene.task.tools = ["long_axis", "bidirectional", "mask", "no_lesion"]
    scene.task.save(update_fields=["tools"])
    post_predictions(admin_api, scene.task, upload(exported_label(scene, tmp_path)), model="nnunet-3d")
    shown = reverse("console:predictions-shown", args=[scene.task.pk])
    dashboard = reverse("console:task-dashboard", args=[scene.task.pk])

    response = admin_api.post(shown, {"model_name": "nnunet-3d"})

    scene.task.refresh_from_db()
    assert response.status_code == 302 and scene.task.suggestion_model == "nnunet-3d"
    page = admin_api.get(dashboard).content.decode()
    assert "now start from nnunet-3d" in page and "Stop showing to readers" in page

    admin_api.post(shown, {"model_name": ""})

    scene.task.refresh_from_db()
    assert scene.task.suggestion_model == ""
    assert ModelPrediction.objects.filter(case__task=scene.task, model_name="nnunet-3d").exists()
    page = admin_api.get(dashboard).content.decode()
    assert "now start from an empty slate" in page and "Show to readers</button>" in page


@pytest.mark.parametrize("model_name", ["no-such-model", "x" * 500, "nnunet-3d\x00"])
def test_showing_a_model_the_task_has_no_predictions_of_is_refused_and_changes_nothing(admin_api, scene, model_name):
    response = admin_api.post(reverse("console:predictions-shown", args=[scene.task.pk]), {"model_name": model_name})

    scene.task.refresh_from_db()
    assert response.status_code == 302 and scene.task.suggestion_model == ""
    page = admin_api.get(response.url).content.decode()
    assert "Not shown to readers: this task has no predictions by a model named" in page


def test_a_researcher_cannot_choose_what_readers_are_shown(client, scene):
    client.force_login(researcher_user())

    response = client.post(reverse("console:predictions-shown", args=[scene.task.pk]), {"model_name": ""})

    assert response.status_code == 403
