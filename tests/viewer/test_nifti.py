"""NIfTI in and out: stable UIDs, RAS/LPS geometry, voxel-exact round trips, label maps, refusals and the command."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st
from nibabel.affines import apply_affine

from viewer.models import Instance, Series
from viewer.nifti.from_dicom import masks_to_label_nifti, series_to_nifti
from viewer.nifti.geometry import dicom_layout, lps_to_ras, ras_to_lps, slice_affine_lps
from viewer.nifti.labels import read_label_masks
from viewer.nifti.reading import NiftiError, read_nifti
from viewer.nifti.to_dicom import encode_pixels, nifti_to_series, plan_series
from viewer.services.dicom_import import DUPLICATE, IMPORTED, REJECTED, SKIPPED, import_paths
from viewer.services.synthetic_ct import read_back_hu


def _rotation(degrees_about_x: float, degrees_about_z: float) -> np.ndarray:
    a, b = np.radians(degrees_about_x), np.radians(degrees_about_z)
    about_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_z = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return about_z @ about_x


def _affine(linear: np.ndarray, origin=(12.5, -30.0, 41.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


AFFINES = {
    # RAS+ with anisotropic voxels, as nibabel's canonical images are.
    "identity": _affine(np.diag([0.9, 1.1, 2.5])),
    # Radiological LAS (FSL, MNI templates) with the slices running downwards too.
    "flipped": _affine(np.diag([-1.0, 1.0, -3.0])),
    # Tilted 17 degrees about x and 25 about z: nothing lines up with a patient axis.
    "oblique": _affine(_rotation(17, 25) @ np.diag([0.8, 0.7, 2.0])),
    # Sagittal slices stored along k, with the in-plane axes swapped (i runs head-foot, j front-back).
    "sagittal": _affine(np.array([[0.0, 0.0, 1.5], [0.0, -1.2, 0.0], [-1.0, 0.0, 0.0]])),
}


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, sform_only: bool = False) -> Path:
    """Write data with affine as both sform and qform (or the sform alone, for affines a quaternion cannot hold)."""
    if sform_only:
        header = nib.Nifti1Header()
        header.set_data_dtype(data.dtype)
        header.set_data_shape(data.shape)
        header.set_sform(affine, code=1)
        header["qform_code"] = 0
        image = nib.Nifti1Image(data, None, header=header)
    else:
        image = nib.Nifti1Image(data, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def unique_volume(shape=(6, 5, 4)) -> np.ndarray:
    """Every voxel a different integer, so where a voxel lands in the DICOM series can be found by its value."""
    return (np.arange(int(np.prod(shape))).reshape(shape) * 7 - 300).astype(np.int16)


def dicom_patient_mm(ds: pydicom.Dataset, row: int, column: int) -> np.ndarray:
    """PS3.3 C.7.6.2.1.1: LPS mm of a pixel from ImagePositionPatient, ImageOrientationPatient and PixelSpacing."""
    position = np.array([float(v) for v in ds.ImagePositionPatient])
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    return position + column * column_spacing * orientation[:3] + row * row_spacing * orientation[3:]


# --- geometry -------------------------------------------------------------------------


def test_ras_to_lps_negates_x_and_y_and_is_its_own_inverse():
    affine = _affine(_rotation(10, 20) @ np.diag([1.0, 2.0, 3.0]), origin=(5.0, -6.0, 7.0))

    lps = ras_to_lps(affine)

    voxel = np.array([2.0, 3.0, 4.0])
    x, y, z = apply_affine(affine, voxel)
    assert np.allclose(apply_affine(lps, voxel), [-x, -y, z])
    assert np.allclose(lps_to_ras(lps), affine)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_every_voxel_sits_where_nibabel_puts_it_in_dicom_patient_coordinates(name, tmp_path):
    data = unique_volume()
    affine = AFFINES[name]
    volume = read_nifti(write_nifti(tmp_path / f"{name}.nii.gz", data, affine))

    series = nifti_to_series(volume, tmp_path / "dicom", modality="MR")

    slices = [pydicom.dcmread(path) for path in series.files]
    for voxel in [(0, 0, 0), (5, 0, 0), (0, 4, 0), (0, 0, 3), (5, 4, 3), (2, 1, 2)]:
        value = data[voxel]
        [(slice_index, row, column)] = [
            (k, int(r), int(c)) for k, ds in enumerate(slices) for r, c in np.argwhere(ds.pixel_array == value)
        ]
        x, y, z = apply_affine(affine, voxel)
        assert np.allclose(dicom_patient_mm(slices[slice_index], row, column), [-x, -y, z], atol=1e-3), voxel


def test_slices_are_stored_along_the_normal_so_the_viewer_order_is_the_file_order(tmp_path):
    volume = read_nifti(write_nifti(tmp_path / "down.nii.gz", unique_volume(), AFFINES["flipped"]))

    series = nifti_to_series(volume, tmp_path / "dicom", modality="MR")

    datasets = [pydicom.dcmread(path, stop_before_pixels=True) for path in series.files]
    normal = np.cross(*np.reshape([float(v) for v in datasets[0].ImageOrientationPatient], (2, 3)))
    along_normal = [float(normal @ np.array([float(v) for v in ds.ImagePositionPatient])) for ds in datasets]
    assert along_normal == sorted(along_normal)
    assert [int(ds.InstanceNumber) for ds in datasets] == [1, 2, 3, 4]


def test_an_axial_ras_volume_reads_the_radiological_way_up():
    layout = dicom_layout(affine_ras=AFFINES["identity"], shape=(6, 5, 4))

    # Columns run to the patient's left, rows to the back: anterior at the top, patient's right on the left.
    assert np.allclose(layout.image_orientation_patient, [1, 0, 0, 0, 1, 0])
    assert layout.pixel_spacing_mm == pytest.approx((1.1, 0.9))
    assert layout.slice_spacing_mm == pytest.approx(2.5)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    zooms=st.tuples(*[st.floats(0.3, 4.0)] * 3),
    shape=st.tuples(*[st.integers(1, 6)] * 3),
)
def test_any_orthogonal_affine_cuts_into_upright_slices_that_keep_every_voxel_in_place(seed, zooms, shape):
    # A random orthogonal matrix (rotation, possibly with a reflection) times random voxel sizes.
    rng = np.random.default_rng(seed)
    orthogonal, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = _affine(orthogonal @ np.diag(zooms), origin=tuple(rng.uniform(-100, 100, 3)))
    volume = np.arange(int(np.prod(shape))).reshape(shape)

    layout = dicom_layout(affine_ras=affine, shape=shape)

    slices = layout.to_slices(volume)
    for s, r, c in [(0, 0, 0), tuple(n - 1 for n in slices.shape), (slices.shape[0] // 2, 0, slices.shape[2] - 1)]:
        voxel = np.unravel_index(slices[s, r, c], shape)
        x, y, z = apply_affine(affine, voxel)
        assert np.allclose(apply_affine(layout.affine_lps, (c, r, s)), [-x, -y, z], atol=1e-6)
    orientation = np.array(layout.image_orientation_patient)
    assert abs(orientation[:3] @ orientation[3:]) < 1e-9
    # Slices ascend along the plane's normal, the order the viewer sorts them in.
    assert np.cross(orientation[:3], orientation[3:]) @ layout.affine_lps[:3, 2] > 0
    rebuilt = slice_affine_lps(
        positions_lps=[layout.image_position_patient(k) for k in range(layout.slices)],
        orientation=orientation,
        pixel_spacing_mm=layout.pixel_spacing_mm,
        slice_spacing_mm=layout.slice_spacing_mm,
    )
    assert np.allclose(rebuilt, layout.affine_lps, atol=1e-6)


# --- UIDs -----------------------------------------------------------------------------


def test_the_same_file_gets_the_same_uids_every_time_gzipped_or_not(tmp_path):
    data = unique_volume()
    plain = write_nifti(tmp_path / "case.nii", data, AFFINES["identity"])
    zipped = tmp_path / "copy" / "case.nii.gz"
    zipped.parent.mkdir()
    zipped.write_bytes(gzip.compress(plain.read_bytes()))

    first = plan_series(read_nifti(plain), modality="MR")
    again = plan_series(read_nifti(plain), modality="MR")
    from_gzip = plan_series(read_nifti(zipped), modality="MR")

    assert first.sop_instance_uids == again.sop_instance_uids
    assert (first.study_instance_uid, first.series_instance_uid, first.sop_instance_uids) == (
        from_gzip.study_instance_uid,
        from_gzip.series_instance_uid,
        from_gzip.sop_instance_uids,
    )
    uids = [first.study_instance_uid, first.series_instance_uid, first.frame_of_reference_uid, *first.sop_instance_uids]
    assert len(set(uids)) == len(uids)
    assert all(len(uid) <= 64 and uid.startswith("1.2.826.0.1.3680043.10.1427.") for uid in uids)


def test_other_content_modality_or_patient_gives_other_uids(tmp_path):
    path = write_nifti(tmp_path / "case.nii.gz", unique_volume(), AFFINES["identity"])
    other = write_nifti(tmp_path / "other.nii.gz", unique_volume() + 1, AFFINES["identity"])
    volume = read_nifti(path)

    series_uids = {
        plan_series(volume, modality="MR").series_instance_uid,
        plan_series(volume, modality="CT").series_instance_uid,
        plan_series(volume, modality="MR", patient_id="RB-7").series_instance_uid,
        plan_series(read_nifti(other), modality="MR", patient_id="case").series_instance_uid,
    }

    assert len(series_uids) == 4


# --- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_integer_volume_comes_back_voxel_identical_with_the_same_affine(name, tmp_path):
    data = unique_volume((7, 6, 5))
    affine = AFFINES[name]
    series = nifti_to_series(
        read_nifti(write_nifti(tmp_path / "in.nii.gz", data, affine)), tmp_path / "d", modality="CT"
    )

    image = series_to_nifti(series.files, axcodes=nib.aff2axcodes(affine))

    assert np.array_equal(np.asarray(image.dataobj), data)
    assert np.issubdtype(image.get_data_dtype(), np.integer)
    assert np.allclose(image.affine, affine, atol=1e-4)


def test_export_defaults_to_ras_and_keeps_world_coordinates(tmp_path):
    data = unique_volume()
    affine = AFFINES["flipped"]
    series = nifti_to_series(read_nifti(write_nifti(tmp_path / "in.nii.gz", data, affine)), tmp_path / "d")

    image = series_to_nifti(series.files)

    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    exported = np.asarray(image.dataobj)
    voxel = np.argwhere(exported == data[1, 2, 3])[0]
    assert np.allclose(apply_affine(image.affine, voxel), apply_affine(affine, (1, 2, 3)), atol=1e-4)


def test_float_volume_comes_back_within_one_quantisation_step(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1e-3, size=(8, 7, 3)).astype(np.float32)
    series = nifti_to_series(
        read_nifti(write_nifti(tmp_path / "adc.nii.gz", data, AFFINES["identity"])), tmp_path / "d", modality="MR"
    )

    image = series_to_nifti(series.files)

    step = (float(data.max()) - float(data.min())) / 65535
    assert np.max(np.abs(np.asarray(image.dataobj) - data)) <= step
    assert "RescaleSlope" in pydicom.dcmread(series.files[0], stop_before_pixels=True)


def test_integers_past_sixteen_bits_keep_their_values_through_an_intercept():
    stored = np.array([[[100_000, 140_000]]], dtype=np.int32)

    encoding = encode_pixels(stored=stored)

    assert encoding.stored.dtype == np.uint16
    assert np.array_equal(encoding.stored * encoding.slope + encoding.intercept, stored)


def test_a_native_dicom_series_exports_with_its_hounsfield_units_and_positions(small_ct_files):
    image = series_to_nifti(small_ct_files.files, axcodes=None)

    hu = np.asarray(image.dataobj)
    assert np.array_equal(hu[:, :, 4].T, read_back_hu(small_ct_files.files[4]))
    first = pydicom.dcmread(small_ct_files.files[0], stop_before_pixels=True)
    x, y, z = (float(v) for v in first.ImagePositionPatient)
    assert np.allclose(apply_affine(image.affine, (0, 0, 0)), [-x, -y, z])
    assert np.allclose(apply_affine(image.affine, (0, 0, 1)) - apply_affine(image.affine, (0, 0, 0)), [0, 0, 2.5])


# --- label maps -----------------------------------------------------------------------


def _lesion_labels(shape=(7, 6, 5)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:3, 2:4, 1] = 1
    labels[4, 4, 1:4] = 2
    return labels


@pytest.mark.parametrize("name", ["oblique", "sagittal"])
def test_label_masks_are_keyed_by_sop_uid_and_export_back_to_the_same_label_map(name, tmp_path):
    affine = AFFINES[name]
    image_path = write_nifti(tmp_path / "case.nii.gz", unique_volume((7, 6, 5)), affine)
    labels = _lesion_labels()
    label_path = write_nifti(tmp_path / "case_seg.nii.gz", labels, affine)
    series = nifti_to_series(read_nifti(image_path), tmp_path / "d", modality="MR")

    found = read_label_masks(image_path=image_path, label_path=label_path, modality="MR")

    assert found.labels == (1, 2)
    assert found.series_instance_uid == series.plan.series_instance_uid
    assert len(found.masks[1]) == 1 and len(found.masks[2]) == 3
    index_of = {uid: index for index, uid in enumerate(series.plan.sop_instance_uids)}
    masks = {}
    for label, by_uid in found.masks.items():
        for uid, mask in by_uid.items():
            masks.setdefault(index_of[uid], np.zeros(mask.shape, dtype=np.uint8))[mask] = label
    exported = masks_to_label_nifti(masks, instances=series.files, axcodes=nib.aff2axcodes(affine))
    assert np.array_equal(np.asarray(exported.dataobj), labels)
    assert np.allclose(exported.affine, series_to_nifti(series.files, axcodes=nib.aff2axcodes(affine)).affine)


def test_boolean_masks_become_the_given_label_and_bad_slices_are_refused(small_ct_files):
    mask = np.zeros((64, 64), dtype=bool)
    mask[10:20, 30:35] = True

    image = masks_to_label_nifti({3: mask}, instances=small_ct_files.files, label=5, axcodes=None)

    assert np.array_equal(np.asarray(image.dataobj)[:, :, 3].T, np.where(mask, 5, 0))
    with pytest.raises(ValueError, match="slice 9"):
        masks_to_label_nifti({9: mask}, instances=small_ct_files.files)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        masks_to_label_nifti({0: np.zeros((3, 3), dtype=bool)}, instances=small_ct_files.files)


def test_a_label_map_of_another_shape_or_affine_is_refused_by_name(tmp_path):
    image_path = write_nifti(tmp_path / "case.nii.gz", unique_volume((7, 6, 5)), AFFINES["identity"])
    small = write_nifti(tmp_path / "small_seg.nii.gz", np.zeros((7, 6, 4), np.uint8), AFFINES["identity"])
    shifted = write_nifti(tmp_path / "moved_seg.nii.gz", _lesion_labels(), _affine(np.diag([0.9, 1.1, 2.5]), (0, 0, 0)))

    with pytest.raises(NiftiError, match=r"small_seg.nii.gz has shape \(7, 6, 4\)"):
        read_label_masks(image_path=image_path, label_path=small)
    with pytest.raises(NiftiError, match="moved_seg.nii.gz has a different affine"):
        read_label_masks(image_path=image_path, label_path=shifted)


# --- refusals through the import ------------------------------------------------------


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Write every kind of bad NIfTI into folder; return {file name: expected start of the reason}."""
    data = unique_volume()
    write_nifti(folder / "singular.nii.gz", data, np.diag([1.0, 1.0, 0.0, 1.0]), sform_only=True)
    shear = _affine(np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    write_nifti(folder / "shear.nii.gz", data, shear, sform_only=True)
    write_nifti(folder / "fmri.nii.gz", np.stack([data, data, data], axis=-1), AFFINES["identity"])
    good = write_nifti(folder / "whole.nii.gz", data, AFFINES["identity"])
    (folder / "truncated.nii.gz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    plain = gzip.decompress(good.read_bytes())
    (folder / "cut.nii").write_bytes(plain[: len(plain) - 10])
    (folder / "notes.nii").write_text("subject 12: scan repeated\n" * 40)
    unoriented = nib.Nifti1Image(data, AFFINES["identity"])
    unoriented.set_qform(None, code=0)
    unoriented.set_sform(None, code=0)
    nib.save(unoriented, folder / "unoriented.nii.gz")
    good.unlink()
    return {
        "singular.nii.gz": "unusable affine: singular affine",
        "shear.nii.gz": "unusable affine: shearing affine",
        "fmri.nii.gz": "not 3-D: a 4-D NIfTI",
        "truncated.nii.gz": "truncated or corrupt NIfTI",
        "cut.nii": "truncated or corrupt NIfTI",
        "notes.nii": "not NIfTI",
        "unoriented.nii.gz": "no orientation",
    }


@pytest.mark.django_db
def test_each_bad_nifti_is_refused_by_name_and_nothing_imported_is_lost(tmp_path, small_ct_files):
    import_paths(small_ct_files.files[:3])
    folder = tmp_path / "bad"
    folder.mkdir()
    expected = _bad_inputs(folder)
    write_nifti(folder / "fine.nii.gz", unique_volume(), AFFINES["oblique"])

    report = import_paths([folder, *small_ct_files.files[:4]])

    rejected = {Path(o.name).name: o.reason for o in report.outcomes if o.status == REJECTED}
    assert set(rejected) == set(expected)
    for name, reason in expected.items():
        assert rejected[name].startswith(reason), (name, rejected[name])
    assert report.imported == 4 + 1  # the fine volume's four slices and the fourth CT slice
    assert report.duplicates == 3
    assert Instance.objects.count() == 3 + 1 + 4


@pytest.mark.django_db
def test_a_4d_file_with_a_trailing_singleton_axis_is_one_volume(tmp_path):
    data = unique_volume()
    path = write_nifti(tmp_path / "single.nii.gz", data[..., np.newaxis], AFFINES["identity"])

    report = import_paths([path])

    assert report.imported == 4 and report.rejected == 0


@pytest.mark.django_db
def test_a_label_map_that_does_not_fit_its_image_is_refused_and_the_image_still_imported(tmp_path):
    write_nifti(tmp_path / "case.nii.gz", unique_volume(), AFFINES["identity"])
    write_nifti(tmp_path / "case_label.nii.gz", np.zeros((6, 5, 3), np.uint8), AFFINES["identity"])

    report = import_paths([tmp_path])

    [refused] = [o for o in report.outcomes if o.status == REJECTED]
    assert refused.name.endswith("case_label.nii.gz")
    assert refused.reason.startswith("label map mismatch:") and "shape (6, 5, 3)" in refused.reason
    assert report.imported == 4


# --- the import and the command -------------------------------------------------------


@pytest.mark.django_db
def test_import_command_converts_a_folder_with_a_label_map_and_a_rerun_is_a_no_op(tmp_path, isolated_data_dir):
    folder = tmp_path / "BraTS-like"
    folder.mkdir()
    affine = AFFINES["flipped"]
    write_nifti(folder / "case7_t1.nii.gz", unique_volume((7, 6, 5)), affine)
    write_nifti(folder / "case7_flair.nii", unique_volume((7, 6, 5)) + 3, affine)
    write_nifti(folder / "case7_seg.nii.gz", _lesion_labels(), affine)
    (folder / "case8_t1.nii.gz").write_bytes(b"\x1f\x8b" + b"cut off" * 9)
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import_dicom", str(folder), "--nifti-modality", "CT", "--patient-id", "RB-NII-7", stdout=out, stderr=err
    )

    assert "imported 10, duplicates 0, rejected 1, skipped 1" in out.getvalue()
    assert f"rejected {folder / 'case8_t1.nii.gz'}: truncated or corrupt NIfTI" in err.getvalue()
    assert (
        "case7_seg.nii.gz: label map of case7_flair, case7_t1, checked: labels 1 (1 slice), 2 (3 slices); "
        "not imported as images"
    ) in out.getvalue()
    series = Series.objects.filter(study__patient_id="RB-NII-7").order_by("series_description")
    assert [s.series_description for s in series] == ["case7_flair (NIfTI)", "case7_t1 (NIfTI)"]
    first = series[1].instances.first()
    assert series[1].modality == "CT" and first.rescale_type == "HU"
    assert (isolated_data_dir / first.file_path).exists()
    again = io.StringIO()
    call_command("import_dicom", str(folder), "--nifti-modality", "CT", "--patient-id", "RB-NII-7", stdout=again)
    assert "imported 0, duplicates 10, rejected 1, skipped 1" in again.getvalue()


@pytest.mark.django_db
def test_import_command_names_the_refused_file_and_fails_when_nothing_came_in(tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"broken" * 10)
    err = io.StringIO()

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_dicom", str(bad), stdout=io.StringIO(), stderr=err)

    assert f"rejected {bad}: truncated or corrupt NIfTI" in err.getvalue()


@pytest.mark.django_db
def test_nifti_without_its_name_in_an_upload_or_a_zip_is_recognised_by_its_header(tmp_path):
    source = write_nifti(tmp_path / "brain.nii.gz", unique_volume(), AFFINES["identity"])
    upload = tmp_path / "0f3c.upload"  # the console stores each dropped file under its upload id
    shutil.copyfile(source, upload)
    archive = tmp_path / "cases.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(source, "sub/brain.nii.gz")

    report = import_paths([upload, archive])

    names = sorted(o.name for o in report.outcomes)
    assert names[0] == "0f3c.upload:MR0001.dcm"
    assert "cases.zip:sub/brain.nii.gz:MR0001.dcm" in names
    # Same voxels, same default modality, but other patient IDs: two series. The upload, whose name
    # says nothing, is named by its content, so uploading it again finds the same UIDs.
    assert report.imported == 8
    digest = read_nifti(source).content_sha256
    assert set(Series.objects.values_list("study__patient_id", flat=True)) == {f"NIFTI-{digest[:12]}", "brain"}
    assert import_paths([upload]).duplicates == 4


@pytest.mark.django_db
def test_a_nifti_dropped_in_the_console_is_imported_and_reported_under_its_dropped_name(admin_api, tmp_path):
    content = write_nifti(tmp_path / "brain.nii.gz", unique_volume(), AFFINES["oblique"]).read_bytes()
    job = admin_api.post(
        reverse("console:api-import-create"), {"collection": "Research"}, content_type="application/json"
    ).json()
    registered = admin_api.post(
        reverse("console:api-upload-register", args=[job["id"]]),
        {"name": "atlas/brain.nii.gz", "size": len(content)},
        content_type="application/json",
    ).json()
    admin_api.put(
        reverse("console:api-upload-chunk", args=[job["id"], registered["upload_id"]]) + "?offset=0",
        content,
        content_type="application/octet-stream",
    )

    admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    done = admin_api.get(reverse("console:api-import", args=[job["id"]])).json()
    assert done["status"] == "done" and done["summary"]["imported"] == 4
    assert sorted(row["name"] for row in done["report"])[0] == "atlas/brain.nii.gz:MR0001.dcm"
    assert Series.objects.get(study__collection__name="Research").instances.count() == 4


@pytest.mark.django_db
def test_a_lone_seg_file_without_an_image_beside_it_is_imported_as_an_image(tmp_path):
    write_nifti(tmp_path / "case_seg.nii.gz", _lesion_labels(), AFFINES["identity"])

    report = import_paths([tmp_path])

    assert {o.status for o in report.outcomes} == {IMPORTED}
    assert not [o for o in report.outcomes if o.status in (SKIPPED, DUPLICATE)]


@pytest.mark.dicomtools
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) is not installed")
@pytest.mark.parametrize(("modality", "dtype"), [("CT", np.int16), ("MR", np.uint16), ("MR", np.float32)])
def test_dciodvfy_finds_no_errors_in_a_converted_slice(modality, dtype, tmp_path):
    data = (unique_volume() + 400).astype(dtype) / (3 if dtype == np.float32 else 1)
    volume = read_nifti(write_nifti(tmp_path / "case.nii.gz", data.astype(dtype), AFFINES["oblique"]))
    series = nifti_to_series(volume, tmp_path / "d", modality=modality)

    result = subprocess.run(["dciodvfy", str(series.files[1])], capture_output=True, text=True, timeout=60)

    output = result.stdout + result.stderr
    assert "Error" not in output, output
    assert f"{modality}Image" in output
