"""Training-ready dataset exports (nnU-Net, MONAI, DeepLesion) and NIfTI label maps imported as answer keys."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotations.exports import export_to_path
from annotations.exports.deeplesion_export import DEEPLESION_COLUMNS
from annotations.exports.nifti_dataset import NoTrainingLabels
from annotations.models import ExportJob, Read
from annotations.reading.label_maps import import_label_map_answer_key
from tests.annotations.export_data import build_scene
from tests.factories import CaseFactory, TaskFactory, admin_user
from viewer.models import Instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def dataset_files(path: Path, folder: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder


def ras_to_lps(point) -> np.ndarray:
    x, y, z = point
    return np.array([-x, -y, z])


def dicom_patient_mm(instance: Instance, column: float, row: float) -> np.ndarray:
    """The LPS position of a (column, row) pixel centre from IPP, IOP and PixelSpacing."""
    orientation = np.array(instance.image_orientation_patient, dtype=float)
    row_spacing, column_spacing = instance.pixel_spacing_mm
    return (
        np.array(instance.image_position_patient, dtype=float)
        + column * column_spacing * orientation[:3]
        + row * row_spacing * orientation[3:]
    )


def test_nnunet_export_holds_a_loadable_image_and_label_on_one_grid(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="nnunet", out=tmp_path)
    folder = dataset_files(result.path, tmp_path / "Dataset501_Test")

    name = f"case_{scene.case.pk:05d}"
    image = nib.load(folder / "imagesTr" / f"{name}_0000.nii.gz")
    label = nib.load(folder / "labelsTr" / f"{name}.nii.gz")
    assert result.dataset_cases == 1
    assert image.shape == label.shape == (64, 64, 9)
    np.testing.assert_allclose(image.affine, label.affine, atol=1e-5)
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    values = np.asarray(label.dataobj)
    assert set(np.unique(values)) == {0, 1}
    # The consensus lesion's two slices (STAPLE masks), and nothing of the unaccepted lesion.
    assert int(values.sum()) == int(sum(mask.sum() for mask in scene.masks.values()))


def test_a_lesion_centre_lies_within_half_a_voxel_of_its_dicom_patient_position(scene, tmp_path):
    folder = dataset_files(export_to_path(task=scene.task, fmt="nnunet", out=tmp_path).path, tmp_path / "d")
    label = nib.load(folder / "labelsTr" / f"case_{scene.case.pk:05d}.nii.gz")
    middle = scene.instances[len(scene.instances) // 2]

    voxels = np.argwhere(np.asarray(label.dataobj) == 1)
    world_lps = np.array([ras_to_lps(nib.affines.apply_affine(label.affine, v)) for v in voxels])
    on_middle = world_lps[np.abs(world_lps[:, 2] - middle.image_position_patient[2]) < 1e-3]
    expected = dicom_patient_mm(middle, 23.5, 38.0)  # the painted disc's centre (column, row)

    half_voxel = np.abs(label.header.get_zooms()) / 2
    assert len(on_middle)
    assert np.all(np.abs(on_middle.mean(axis=0) - expected) <= half_voxel)


def test_the_agreement_map_is_the_fraction_of_readers_who_painted_each_voxel(scene, tmp_path):
    folder = dataset_files(export_to_path(task=scene.task, fmt="nnunet", out=tmp_path).path, tmp_path / "d")
    agreement = nib.load(folder / "agreementTr" / f"case_{scene.case.pk:05d}.nii.gz")
    label = nib.load(folder / "labelsTr" / f"case_{scene.case.pk:05d}.nii.gz")

    values = np.asarray(agreement.dataobj)
    np.testing.assert_allclose(agreement.affine, label.affine, atol=1e-5)
    # Three readers' latest reads; only one painted, so a painted voxel is 1/3 and the rest 0.
    np.testing.assert_allclose(np.unique(values), [0.0, 1 / 3], atol=1e-3)
    assert np.array_equal(values > 0, np.asarray(label.dataobj) == 1)


def test_nnunet_dataset_json_names_channel_labels_count_and_file_ending(scene, tmp_path):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="nnunet", out=tmp_path).path) as archive:
        document = json.loads(archive.read("dataset.json"))
        names = set(archive.namelist())

    assert document["channel_names"] == {"0": "CT"}
    assert document["labels"] == {"background": 0, "lesion": 1}
    assert document["numTraining"] == 1
    assert document["file_ending"] == ".nii.gz"
    assert {"cases.csv", "README.txt", "dataset.json"} <= names


def test_monai_datalist_points_at_files_in_the_archive(scene, tmp_path):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="monai", out=tmp_path).path) as archive:
        document = json.loads(archive.read("dataset.json"))
        names = set(archive.namelist())

    assert document["numTraining"] == len(document["training"]) == 1
    assert document["modality"] == {"0": "CT"} and document["labels"] == {"0": "background", "1": "lesion"}
    for entry in document["training"]:
        assert {entry["image"][2:], entry["label"][2:]} <= names
        assert entry["image"].startswith("./imagesTr/") and entry["label"].startswith("./labelsTr/")


def test_deeplesion_csv_has_deeplesions_columns_and_the_recist_end_points_in_pixels(scene, tmp_path):
    text = export_to_path(task=scene.task, fmt="deeplesion", out=tmp_path).path.read_text()

    rows = list(csv.DictReader(io.StringIO(text)))
    header = next(csv.reader(io.StringIO(text)))
    assert tuple(header) == DEEPLESION_COLUMNS
    assert len(rows) == 1  # the accepted consensus lesion only
    row = rows[0]
    coordinates = [float(value) for value in row["Measurement_coordinates"].split(", ")]
    assert coordinates == [15.5, 38.0, 31.25, 37.5, 23.0, 33.0, 23.5, 42.75]
    assert row["Key_slice_index"] == "5" and row["File_name"] == "000001_01_01_005.png"
    long_px, short_px = (float(value) for value in row["Lesion_diameters_Pixel_"].split(", "))
    assert long_px == pytest.approx(15.758, abs=1e-3) and short_px == pytest.approx(9.763, abs=1e-3)
    assert [float(v) for v in row["Bounding_boxes"].split(", ")] == [10.5, 28.0, 36.25, 47.75]
    assert row["Spacing_mm_px_"] == "1, 1, 2.5" and row["Image_size"] == "64, 64" and row["Slice_range"] == "1, 9"
    assert row["Train_Val_Test"] in {"1", "2", "3"}


@pytest.mark.parametrize("fmt", ["nnunet", "monai", "deeplesion"])
def test_a_task_without_masks_or_lines_is_refused_and_no_file_is_written(small_ct_series, tmp_path, fmt):
    task = TaskFactory()
    CaseFactory(task=task, series=small_ct_series)

    out = tmp_path / "exports"
    out.mkdir()

    with pytest.raises(ValueError, match=r"has no (lesion masks|consensus lesion)"):
        export_to_path(task=task, fmt=fmt, out=out)
    assert list(out.iterdir()) == []


def test_the_api_answers_400_for_a_dataset_of_a_task_without_masks(small_ct_series):
    task = TaskFactory()
    CaseFactory(task=task, series=small_ct_series)
    client = APIClient()
    client.force_authenticate(admin_user())

    response = client.post("/api/exports/", {"task": task.pk, "format": "nnunet"}, format="json")

    assert response.status_code == 400
    assert "no lesion masks" in response.data["format"][0]
    assert not ExportJob.objects.exists()


def test_the_command_exits_with_the_reason_for_a_task_without_masks(small_ct_series, tmp_path):
    task = TaskFactory()
    CaseFactory(task=task, series=small_ct_series)

    with pytest.raises(CommandError, match="no lesion masks"):
        call_command("export", str(task.pk), "--format", "monai", "--out", str(tmp_path), "--quiet-progress")


def test_a_job_of_a_task_without_masks_fails_with_the_reason(small_ct_series):
    from annotations.exports import run_export

    task = TaskFactory()
    CaseFactory(task=task, series=small_ct_series)
    job = ExportJob.objects.create(task=task, format="nnunet")

    with pytest.raises(NoTrainingLabels):
        run_export(job=job)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and "no lesion masks" in job.error


# --- label maps in as answer keys -------------------------------------------------------


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def volume_and_labels(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A 24 x 20 x 6 MR volume (0.8 x 0.8 x 3 mm, RAS) with two separate lesions in its label map."""
    rng = np.random.default_rng(27)
    data = rng.integers(0, 900, size=(24, 20, 6)).astype(np.int16)
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[3:8, 4:9, 1:4] = 1
    labels[15:19, 12:16, 3:5] = 1
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    affine[:3, 3] = (-9.6, -8.0, 20.0)
    image = write_nifti(folder / "case7.nii.gz", data, affine)
    label_map = write_nifti(folder / "case7_seg.nii.gz", labels, affine)
    return image, label_map, data, labels


def test_a_label_map_becomes_the_answer_key_of_a_new_gold_case_a_lesion_per_component(tmp_path):
    image, label_map, _, labels = volume_and_labels(tmp_path)
    task = TaskFactory()

    result = import_label_map_answer_key(task=task, image_path=image, label_path=label_map)

    key = Read.all_objects.get(case=result.case, is_answer_key=True)
    assert result.created_case and result.case.is_gold and result.lesions == 2
    assert sorted(set(key.mask_slices.values_list("lesion_index", flat=True))) == [1, 2]
    assert sum(key.mask_slices.values_list("pixel_count", flat=True)) == int(labels.sum())


def test_a_label_map_off_its_images_grid_is_refused_and_nothing_is_stored(tmp_path):
    image, _, _, labels = volume_and_labels(tmp_path)
    shifted = write_nifti(tmp_path / "other_seg.nii.gz", labels, np.diag([0.8, 0.8, 2.0, 1.0]))
    task = TaskFactory()

    with pytest.raises(ValueError, match="different affine"):
        import_label_map_answer_key(task=task, image_path=image, label_path=shifted)
    assert not task.cases.exists() and not Read.all_objects.exists()


def test_a_label_map_is_refused_when_the_task_offers_no_mask_tool(tmp_path):
    from annotations.reading.documents import ReadValidationError

    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory(tools=["long_axis", "no_lesion"])

    with pytest.raises(ReadValidationError, match="does not offer lesion masks"):
        import_label_map_answer_key(task=task, image_path=image, label_path=label_map)
    assert not Read.all_objects.exists()


def test_the_command_imports_label_maps_as_answer_keys(tmp_path):
    image, label_map, _, _ = volume_and_labels(tmp_path)
    task = TaskFactory()
    out = io.StringIO()

    call_command("import_nifti_labels", str(image), str(label_map), "--task", task.name, stdout=out)

    assert "answer key v1 of new gold case" in out.getvalue() and "(2 lesions)" in out.getvalue()
    assert Read.all_objects.filter(case__task=task, is_answer_key=True).count() == 1


def test_an_imported_volume_and_label_map_come_back_voxel_identical_from_the_nnunet_export(tmp_path):
    image, label_map, data, labels = volume_and_labels(tmp_path)
    task = TaskFactory()
    case = import_label_map_answer_key(task=task, image_path=image, label_path=label_map).case

    folder = dataset_files(export_to_path(task=task, fmt="nnunet", out=tmp_path).path, tmp_path / "d")

    exported_image = nib.load(folder / "imagesTr" / f"case_{case.pk:05d}_0000.nii.gz")
    exported_label = nib.load(folder / "labelsTr" / f"case_{case.pk:05d}.nii.gz")
    original = nib.load(image)
    np.testing.assert_array_equal(np.asarray(exported_image.dataobj), data)
    np.testing.assert_array_equal(np.asarray(exported_label.dataobj), labels)
    np.testing.assert_allclose(exported_image.affine, original.affine, atol=1e-4)
    np.testing.assert_allclose(exported_label.affine, original.affine, atol=1e-4)
    with zipfile.ZipFile(next(tmp_path.glob("*.zip"))) as archive:
        assert "answer_key" in archive.read("cases.csv").decode()


def test_a_gold_cases_answer_key_is_its_label_even_when_it_has_a_consensus(scene, tmp_path):
    scene.case.is_gold = True
    scene.case.save(update_fields=["is_gold"])
    middle = scene.instances[len(scene.instances) // 2]
    plane = np.zeros((64, 64), dtype=bool)
    plane[10:14, 10:14] = True
    from annotations.reading.label_maps import answer_key_document
    from annotations.reading.submission import submit_answer_key

    document = answer_key_document(case_id=scene.case.pk, lesions=[{middle.sop_instance_uid: plane}], comment="")
    submit_answer_key(user=admin_user(), case=scene.case, document=document)

    folder = dataset_files(export_to_path(task=scene.task, fmt="nnunet", out=tmp_path).path, tmp_path / "d")
    label = np.asarray(nib.load(folder / "labelsTr" / f"case_{scene.case.pk:05d}.nii.gz").dataobj)
    assert int(label.sum()) == 16
