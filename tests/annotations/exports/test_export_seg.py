"""DICOM SEG exports: read back with highdicom and compared pixel by pixel with the stored run lengths."""

from __future__ import annotations

import io
import shutil
import zipfile

import highdicom as hd
import numpy as np
import pydicom
import pytest

from annotations.core import mask_rle
from annotations.exports import export_to_path
from tests.annotations.export_data import build_scene, dicom_tool_errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def seg_files(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name.endswith(".dcm")}


def load_seg(data: bytes) -> hd.seg.Segmentation:
    return hd.seg.segread(io.BytesIO(data))


def test_read_seg_holds_every_painted_pixel_of_the_database(scene, tmp_path):
    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    read_a = scene.reads[0]
    seg = load_seg(files[f"seg/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"])
    assert seg.SegmentationType == "BINARY"
    assert seg.number_of_segments == 1
    description = seg.get_segment_description(1)
    assert description.segment_label == "Lesion 1"
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.MANUAL
    assert description.segmented_property_type.value == "108369006"
    assert seg.ContentCreatorName.family_name == read_a.reader.pseudonym
    for mask in read_a.mask_slices.select_related("instance"):
        uid = mask.instance.sop_instance_uid
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[uid], segment_numbers=[1])
        expected = mask_rle.decode(mask.counts, rows=64, columns=64)
        np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), expected)
        assert int(pixels.sum()) == mask.pixel_count


def test_read_seg_references_its_source_images_and_shares_tracking_uids_with_the_sr(scene, tmp_path):
    seg_set = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)
    sr_set = seg_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    read_a = scene.reads[0]
    name = f"case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"
    seg = load_seg(seg_set[f"seg/{name}"])
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced == {m.instance.sop_instance_uid for m in read_a.mask_slices.select_related("instance")}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == scene.series.series_instance_uid
    assert seg.FrameOfReferenceUID == pydicom.dcmread(scene.instances[0].absolute_path).FrameOfReferenceUID
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(sr_set[f"sr/{name}"])))
    sr_uid = sr.content.get_image_measurement_groups()[0].tracking_uid
    assert seg.get_segment_description(1).tracking_uid == sr_uid


def test_consensus_seg_is_semi_automatic_and_holds_the_consensus_mask(scene, tmp_path):
    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    seg = load_seg(files[f"seg/case-{scene.case.pk}/consensus.dcm"])
    description = seg.get_segment_description(1)
    assert description.segment_label == "Consensus lesion 1"
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    assert description.algorithm_identification[0].AlgorithmVersion == "1.2.0"
    lesion = scene.consensus.lesions.get(lesion_index=1)
    for item in lesion.mask_slices:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[item["sop_instance_uid"]], segment_numbers=[1]
        )
        np.testing.assert_array_equal(
            pixels[0, :, :, 0].astype(bool), mask_rle.decode(item["counts"], rows=64, columns=64)
        )


def test_reads_without_masks_get_no_seg_file(scene, tmp_path):
    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    assert set(files) == {
        f"seg/case-{scene.case.pk}/read-{scene.reads[0].pk}-v1.dcm",
        f"seg/case-{scene.case.pk}/consensus.dcm",
    }


@pytest.mark.dicomtools
@pytest.mark.skipif(not shutil.which("dciodvfy"), reason="dicom3tools missing")
def test_every_seg_file_passes_dciodvfy(scene, tmp_path):
    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        assert dicom_tool_errors(["dciodvfy"], path) == [], name


def test_a_proposed_mask_is_a_semi_automatic_segment_naming_its_algorithm(scene, tmp_path):
    from annotations.models import MaskProvenance

    read_a = scene.reads[0]
    MaskProvenance.objects.create(
        read=read_a,
        lesion_index=1,
        source="line",
        algorithm="readerboard seeded random walker",
        algorithm_version="1 (scikit-image 0.26.0 random_walker)",
        edited=True,
        edit_dice=0.9134,
    )

    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    description = load_seg(files[f"seg/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"]).get_segment_description(1)
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    algorithm = description.algorithm_identification[0]
    assert algorithm.AlgorithmName == "readerboard seeded random walker"
    assert algorithm.AlgorithmVersion == "1 (scikit-image 0.26.0 random_walker)"
    assert "edit_dice=0.9134" in algorithm.AlgorithmParameters


def test_a_hand_made_mask_stays_a_manual_segment(scene, tmp_path):
    from annotations.models import MaskProvenance

    read_a = scene.reads[0]
    MaskProvenance.objects.create(read=read_a, lesion_index=1, source="hand")

    files = seg_files(export_to_path(task=scene.task, fmt="seg", out=tmp_path / "seg.zip").path)

    description = load_seg(files[f"seg/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"]).get_segment_description(1)
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.MANUAL
