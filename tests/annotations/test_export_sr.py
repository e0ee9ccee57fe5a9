"""DICOM SR (TID 1500) exports: read back with highdicom and pydicom, validated with dciodvfy and dsrdump."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from annotations.models import Mark
from annotations.services.exports import export_to_path
from annotations.services.exports.sr_export import LOCAL_SCHEME, finding_code
from tests.annotations.export_data import build_scene, dicom_tool_errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def sr_files(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name.endswith(".dcm")}


def load_sr(data: bytes) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(data)))


def lengths_by_name(group) -> dict[str, float]:
    return {m.name.meaning: m.value for m in group.get_measurements()}


def test_read_sr_holds_every_line_and_length_of_the_database(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    read_a = scene.reads[0]
    sr = load_sr(files[f"sr/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == scene.series.study.study_instance_uid
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2
    for lesion_index, group in enumerate(groups, start=1):
        marks = {m.kind: m for m in Mark.objects.filter(read=read_a, lesion_index=lesion_index)}
        long_axis = marks["long_axis"]
        assert group.tracking_identifier == f"Read {read_a.pk} lesion {lesion_index}"
        assert group.tracking_uid  # a UID, stable across exports
        assert group.finding_type == codes.SCT.Neoplasm
        region = group.roi
        assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        # SCOORD is corner-based; the read format is centre-based: half a pixel apart.
        expected = np.array([[long_axis.start_col, long_axis.start_row], [long_axis.end_col, long_axis.end_row]]) + 0.5
        np.testing.assert_allclose(region.value, expected, atol=1e-5)
        source = region.ReferencedImageSequence[0] if "ReferencedImageSequence" in region else region.ContentSequence[0]
        assert source.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == long_axis.instance.sop_instance_uid
        measured = lengths_by_name(group)
        assert measured["Length"] == pytest.approx(long_axis.length_mm, abs=1e-6)
        if "short_axis" in marks:
            assert measured["Long axis"] == pytest.approx(long_axis.length_mm, abs=1e-6)
            assert measured["Short axis"] == pytest.approx(marks["short_axis"].length_mm, abs=1e-6)
        else:
            assert set(measured) == {"Length"}


def test_read_sr_names_the_reader_by_pseudonym_and_references_the_source_series(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    read_a = scene.reads[0]
    ds = pydicom.dcmread(io.BytesIO(files[f"sr/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"]))
    observer_names = [item.PersonName.family_name for item in ds.ContentSequence if item.get("ValueType") == "PNAME"]
    assert observer_names == [read_a.reader.pseudonym]
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == scene.series.study.study_instance_uid
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == scene.series.series_instance_uid
    assert read_a.reader.display_name not in b"".join(files.values()).decode("latin-1")


def test_sr_set_has_latest_versions_only_and_no_file_for_a_no_lesion_read(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    read_a, read_b1, read_b2, read_c = scene.reads
    case = scene.case.pk
    assert set(files) == {
        f"sr/case-{case}/read-{read_a.pk}-v1.dcm",
        f"sr/case-{case}/read-{read_b2.pk}-v2.dcm",
        f"sr/case-{case}/consensus.dcm",
    }


def test_consensus_sr_has_a_device_observer_with_the_algorithm_version(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    sr = load_sr(files[f"sr/case-{scene.case.pk}/consensus.dcm"])
    context = {item.name.meaning: item for item in sr.content[0].ContentSequence}
    assert context["Observer Type"].value == codes.DCM.Device
    assert context["Device Observer Name"].value == "Readerboard consensus"
    assert "1.2.0" in context["Device Observer Model Name"].value
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 1  # the rejected lesion 2 is not a consensus finding
    lesion = scene.consensus.lesions.get(lesion_index=1)
    texts = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
        for item in groups[0][0].ContentSequence
        if item.ValueType == "TEXT"
    }
    assert texts["Algorithm Name"] == "Readerboard consensus" and texts["Algorithm Version"] == "1.2.0"
    np.testing.assert_allclose(
        groups[0].roi.value, np.array([lesion.long_axis["start"], lesion.long_axis["end"]]) + 0.5, atol=1e-5
    )
    measured = lengths_by_name(groups[0])
    assert measured["Length"] == pytest.approx(lesion.long_axis["length_mm"], abs=1e-6)
    assert measured["Short axis"] == pytest.approx(lesion.short_axis["length_mm"], abs=1e-6)


def test_finding_is_coded_in_snomed_when_known_and_locally_otherwise():
    assert finding_code("Neoplasm") == codes.SCT.Neoplasm
    assert finding_code("Nodule").value == "27925004"
    assert finding_code("lymph node").scheme_designator in ("SCT", LOCAL_SCHEME)
    odd = finding_code("Blob of interest")
    assert odd.scheme_designator == LOCAL_SCHEME and odd.meaning == "Blob of interest"


@pytest.mark.dicomtools
@pytest.mark.skipif(not (shutil.which("dciodvfy") and shutil.which("dsrdump")), reason="dicom3tools/dcmtk missing")
def test_every_sr_file_passes_dciodvfy_and_dsrdump(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    assert files
    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        assert dicom_tool_errors(["dciodvfy"], path) == [], name
        assert dicom_tool_errors(["dsrdump"], path) == [], name
        dump = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True).stdout
        assert 'SCOORD:(,,"Image Region")=(POLYLINE' in dump and '"Length"' in dump
