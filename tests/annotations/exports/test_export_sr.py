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

from annotations.exports import export_to_path
from annotations.exports.sr_export import (
    LOCAL_SCHEME,
    LesionMeasurement,
    LineOnImage,
    finding_code,
    measurement_groups,
    tracking_uid,
)
from annotations.models import Mark
from tests.annotations.export_data import (
    add_scene_answers,
    add_scene_consensus_answers,
    build_scene,
    dicom_tool_errors,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def sr_files(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name.endswith(".dcm")}


def load_sr(data: bytes) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(data)))


def line_of(measurement) -> tuple[np.ndarray, str]:
    """The SCOORD points INFERRED FROM a NUM, and the SOP Instance UID it was selected from."""
    (scoord,) = [item for item in measurement[0].ContentSequence if item.ValueType == "SCOORD"]
    assert scoord.RelationshipType == "INFERRED FROM" and scoord.GraphicType == "POLYLINE"
    (image,) = scoord.ContentSequence
    assert image.RelationshipType == "SELECTED FROM"
    points = np.array(scoord.GraphicData, dtype=float).reshape(-1, 2)
    return points, image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID


def comment_of(group) -> str:
    """The group's Comment (DCM 121106): the lesion's label, which OHIF shows on the annotation."""
    return next(
        item.TextValue
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"
    )


def test_read_sr_holds_every_line_under_its_length_the_way_ohif_reads_it(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    read_a = scene.reads[0]
    sr = load_sr(files[f"sr/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == scene.series.study.study_instance_uid
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 2
    for lesion_index, group in enumerate(groups, start=1):
        marks = {m.kind: m for m in Mark.objects.filter(read=read_a, lesion_index=lesion_index)}
        tool = "Bidirectional" if "short_axis" in marks else "Length"
        assert group.tracking_identifier == f"Cornerstone3DTools@^0.1.0:{tool}"
        assert group.tracking_uid == tracking_uid("read", read_a.pk, lesion_index)  # stable across exports
        assert comment_of(group) == f"Read {read_a.pk} lesion {lesion_index}"
        assert group.finding_type == codes.SCT.Neoplasm
        measurements = {m.name.meaning: m for m in group.get_measurements()}
        names = {"Length": "long_axis"} if tool == "Length" else {"Long Axis": "long_axis", "Short Axis": "short_axis"}
        assert set(measurements) == set(names)
        for name, kind in names.items():
            mark = marks[kind]
            points, sop_instance_uid = line_of(measurements[name])
            # SCOORD is corner-based; the read format is centre-based: half a pixel apart.
            expected = np.array([[mark.start_col, mark.start_row], [mark.end_col, mark.end_row]]) + 0.5
            np.testing.assert_allclose(points, expected, atol=1e-5)
            assert sop_instance_uid == mark.instance.sop_instance_uid
            assert measurements[name].value == pytest.approx(mark.length_mm, abs=1e-6)


def test_bundle_sr_points_each_masked_lesion_at_its_segment_in_the_bundles_seg(scene, tmp_path):
    files = sr_files(export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip").path)

    read_a = scene.reads[0]
    name = f"case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"
    sr = load_sr(files[f"sr/{name}"])
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(files[f"seg/{name}"])))
    (mask_group,) = sr.content.get_volumetric_roi_measurement_groups()
    lines_group = sr.content.get_image_measurement_groups(tracking_uid=mask_group.tracking_uid)[0]
    assert mask_group.tracking_identifier == comment_of(lines_group) == f"Read {read_a.pk} lesion 1"
    segment = mask_group.referenced_segment
    assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    number = segment.referenced_segment_numbers[0]
    assert seg.get_segment_description(number).tracking_uid == mask_group.tracking_uid
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert seg.SOPInstanceUID in evidence


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
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 1  # the rejected lesion 2 is not a consensus finding
    assert comment_of(groups[0]) == "Consensus lesion 1"
    lesion = scene.consensus.lesions.get(lesion_index=1)
    texts = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
        for item in groups[0][0].ContentSequence
        if item.ValueType == "TEXT"
    }
    assert texts["Algorithm Name"] == "Readerboard consensus" and texts["Algorithm Version"] == "1.2.0"
    measurements = {m.name.meaning: m for m in groups[0].get_measurements()}
    for name, line in (("Long Axis", lesion.long_axis), ("Short Axis", lesion.short_axis)):
        points, _ = line_of(measurements[name])
        np.testing.assert_allclose(points, np.array([line["start"], line["end"]]) + 0.5, atol=1e-5)
        assert measurements[name].value == pytest.approx(line["length_mm"], abs=1e-6)


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
        # Each line sits under its NUM, as TID 300 and OHIF write it.
        assert '<inferred from SCOORD:(,,"Source")=(POLYLINE' in dump
        assert '"Length"' in dump or '"Long Axis"' in dump


def test_a_line_on_a_multi_frame_image_is_selected_from_its_frame():
    on_frame_2 = LineOnImage(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
        sop_instance_uid="1.2.3.4",
        frame=2,
        number_of_frames=3,
        start=(10.0, 20.0),
        end=(30.0, 20.0),
        length_mm=20.0,
    )
    lesion = LesionMeasurement(label="Read 1 lesion 1", tracking_uid="1.2.3.5", long_axis=on_frame_2)

    (group,) = measurement_groups(lesion=lesion, finding=codes.SCT.Neoplasm)

    (length,) = group.get_measurements()
    (scoord,) = length[0].ContentSequence
    (image,) = scoord.ContentSequence
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "1.2.3.4"
    assert image.ReferencedSOPSequence[0].ReferencedFrameNumber == 2
    assert group.tracking_identifier == "Cornerstone3DTools@^0.1.0:Length"


def test_axes_on_two_slices_become_one_length_group_per_image_under_one_tracking_uid():
    def line(sop_instance_uid: str, length_mm: float) -> LineOnImage:
        return LineOnImage("1.2.840.10008.5.1.4.1.1.2", sop_instance_uid, 1, 1, (10.0, 20.0), (30.0, 20.0), length_mm)

    lesion = LesionMeasurement(
        label="Consensus lesion 1",
        tracking_uid="1.2.3.9",
        long_axis=line("1.2.3.1", 20.0),
        short_axis=line("1.2.3.2", 9.0),
    )

    groups = measurement_groups(lesion=lesion, finding=codes.SCT.Neoplasm)

    assert [group.tracking_identifier for group in groups] == ["Cornerstone3DTools@^0.1.0:Length"] * 2
    assert {group.tracking_uid for group in groups} == {"1.2.3.9"}
    assert [comment_of(group) for group in groups] == ["Consensus lesion 1 long axis", "Consensus lesion 1 short axis"]
    (long_axis,), (short_axis,) = (group.get_measurements() for group in groups)
    assert (long_axis.name.meaning, short_axis.name.meaning) == ("Long Axis", "Short Axis")
    assert [line_of(long_axis)[1], line_of(short_axis)[1]] == ["1.2.3.1", "1.2.3.2"]


def case_evaluations_of(sr) -> list[tuple[str, str, object]]:
    """(question key, value type, coded value or text) of the report's Qualitative Evaluations (TID 1500)."""
    containers = [
        item
        for item in sr.content[0].ContentSequence
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeValue == "C0034375"
    ]
    if not containers:
        return []
    (container,) = containers
    found = []
    for item in container.ContentSequence:
        assert item.RelationshipType == "CONTAINS"
        key = item.ConceptNameCodeSequence[0].CodeValue
        if item.ValueType == "CODE":
            code = item.ConceptCodeSequence[0]
            found.append((key, "CODE", (code.CodeValue, code.CodingSchemeDesignator)))
        else:
            found.append((key, item.ValueType, item.TextValue))
    return found


def test_read_sr_groups_carry_the_lesion_type_as_finding_and_the_site_as_finding_site(scene, tmp_path):
    add_scene_answers(scene)
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)
    read_a = scene.reads[0]

    sr = load_sr(files[f"sr/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"])

    first, second = sr.content.get_image_measurement_groups()
    assert first.finding_type == codes.SCT.Liver and second.finding_type == codes.SCT.Lung
    assert [site.value for site in first.finding_sites] == [codes.SCT.Liver]
    assert [site.value for site in second.finding_sites] == [codes.SCT.Lung]
    malignancy = [
        item.TextValue
        for item in first[0].ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "malignancy"
    ]
    assert malignancy == ["5 (scale 1 = Benign to 5 = Malignant)"]
    assert not any(  # lesion 2 has no malignancy answer
        item.ConceptNameCodeSequence[0].CodeValue == "malignancy" for item in second[0].ContentSequence
    )


def test_read_sr_has_case_answers_as_qualitative_evaluations_coded_where_the_answer_is(scene, tmp_path):
    add_scene_answers(scene)
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)
    read_a, _, read_b2, _ = scene.reads

    alice = case_evaluations_of(load_sr(files[f"sr/case-{scene.case.pk}/read-{read_a.pk}-v1.dcm"]))
    bob = case_evaluations_of(load_sr(files[f"sr/case-{scene.case.pk}/read-{read_b2.pk}-v2.dcm"]))

    assert alice == [
        ("metastases", "CODE", (codes.SCT.Present.value, "SCT")),
        ("artefacts", "TEXT", "Motion"),
        ("artefacts", "TEXT", "Noise"),
        ("contrast", "CODE", (codes.SCT.Yes.value, "SCT")),
        ("confidence", "TEXT", "4 (scale 1 to 5)"),
        ("liver_span", "TEXT", "162.5 mm"),
        ("impression", "TEXT", "Two hepatic lesions"),
    ]
    assert bob == [
        ("metastases", "CODE", (codes.SCT.Absent.value, "SCT")),
        ("contrast", "CODE", (codes.SCT.No.value, "SCT")),
    ]


def test_a_lesion_type_without_codes_leaves_the_tasks_finding_and_becomes_text():
    from annotations.exports.sr_answers import sr_answers

    question = {"key": "lesion_type", "kind": "single_choice", "label": "Type", "required": True,
                "options": [{"value": "cyst", "label": "Cyst", "code": None}]}  # fmt: skip

    answers = sr_answers([question], {"lesion_type": "cyst"}, lesion=True)

    assert answers.finding is None and answers.finding_sites == ()
    assert [(e.name.value, e.value) for e in answers.evaluations] == [("lesion_type", "Cyst")]


@pytest.mark.dicomtools
@pytest.mark.skipif(not (shutil.which("dciodvfy") and shutil.which("dsrdump")), reason="dicom3tools/dcmtk missing")
def test_sr_files_with_answers_pass_dciodvfy_and_dsrdump_shows_the_finding_sites(scene, tmp_path):
    add_scene_answers(scene)
    add_scene_consensus_answers(scene)
    # The bundle: its SRs also hold the masks' groups (TID 1411), which carry the Finding and sites too.
    files = sr_files(export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip").path)
    read_a = scene.reads[0]

    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        assert dicom_tool_errors(["dciodvfy"], path) == [], name
        if name.startswith("sr/"):
            assert dicom_tool_errors(["dsrdump"], path) == [], name
    path = tmp_path / f"sr_case-{scene.case.pk}_read-{read_a.pk}-v1.dcm"
    dump = subprocess.run(["dsrdump", "+Pc", str(path)], capture_output=True, text=True).stdout
    assert '(363698007,SCT,"Finding Site")=(10200004,SCT,"Liver")' in dump
    assert '(363698007,SCT,"Finding Site")=(39607008,SCT,"Lung")' in dump
    assert dump.count('(363698007,SCT,"Finding Site")=(10200004,SCT,"Liver")') == 2  # lines and mask groups
    assert '(121071,DCM,"Finding")=(10200004,SCT,"Liver")' in dump
    assert '(C0034375,UMLS,"Qualitative Evaluations")' in dump
    assert '(metastases,99RDBD,"Metastases")=(52101004,SCT,"Present")' in dump
    assert '(impression,99RDBD,"Impression")="Two hepatic lesions"' in dump


def test_consensus_sr_carries_the_consensus_answers(scene, tmp_path):
    add_scene_answers(scene)
    add_scene_consensus_answers(scene)
    files = sr_files(export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip").path)

    sr = load_sr(files[f"sr/case-{scene.case.pk}/consensus.dcm"])

    (group,) = sr.content.get_image_measurement_groups()  # only accepted lesion 1
    assert group.finding_type == codes.SCT.Liver
    assert [site.value for site in group.finding_sites] == [codes.SCT.Liver]
    texts = {
        item.ConceptNameCodeSequence[0].CodeValue: item.TextValue
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT"
    }
    assert texts["malignancy"] == "4 (scale 1 = Benign to 5 = Malignant)"  # median of 5 and 3
    # The tied yes/no (contrast) and free text (impression) have no consensus answer.
    assert case_evaluations_of(sr) == [
        ("metastases", "CODE", (codes.SCT.Absent.value, "SCT")),
        ("artefacts", "TEXT", "Motion"),
        ("artefacts", "TEXT", "Noise"),
        ("confidence", "TEXT", "4 (scale 1 to 5)"),
        ("liver_span", "TEXT", "162.5 mm"),
    ]
