"""Model predictions as RECIST lines: TID 1500 SR and DeepLesion-style CSV in, and lines in the readers' suggestions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zipfile

import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from annotations.core.geometry import frames_of_instance
from annotations.exports import export_to_path
from annotations.models import ModelPrediction, Read
from annotations.predictions.services import PredictionError, import_predictions, show_to_readers
from tests.annotations.export_data import build_scene
from tests.factories import ReaderFactory, TaskFactory
from viewer.services.stored_files import local_path

pytestmark = pytest.mark.django_db

# The scene's accepted consensus lesion (tests/annotations/export_data.py), on the middle slice.
LONG_AXIS = ([15.5, 38.0], [31.25, 37.5])
SHORT_AXIS = ([23.0, 33.0], [23.5, 42.75])


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def middle(scene):
    return scene.instances[len(scene.instances) // 2]


def assert_same_line(stored: dict, expected, *, tolerance_px: float = 0.01) -> None:
    assert np.allclose([stored["start"], stored["end"]], expected, atol=tolerance_px)


def exported_consensus_sr(scene, folder):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="sr", out=folder).path) as archive:
        path = folder / "model-report.dcm"
        path.write_bytes(archive.read(f"sr/case-{scene.case.pk}/consensus.dcm"))
    return path


def exported_deeplesion(scene, folder):
    return export_to_path(task=scene.task, fmt="deeplesion", out=folder / "DL_info.csv").path


def highdicom_sr(path, *, instance, lines, evidence=None, scoord3d: bool = False, off_plane_mm: float = 0.0):
    """A TID 1500 SR written by highdicom as a model would: one group per lesion, a Length per line.

    `lines` is a list of lesions, each a list of ((column, row), (column, row)) in read-format pixels; with
    `scoord3d` the lines are SCOORD3D in patient mm, their end point `off_plane_mm` off the slice. An empty
    lesion gets a Length without coordinates.
    """
    header = pydicom.dcmread(local_path(instance), stop_before_pixels=True)
    frame = frames_of_instance(instance)[0]
    groups = []
    for number, lesion in enumerate(lines, start=1):
        measurements = []
        for line in lesion or [None]:
            start, end = line or (None, None)
            if line is None:
                coordinates = None
            elif scoord3d:
                coordinates = [
                    hd.sr.CoordinatesForMeasurement3D(
                        graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                        graphic_data=np.array(
                            [
                                frame.to_patient_mm(*start),
                                frame.to_patient_mm(*end) + off_plane_mm * np.array(frame.normal),
                            ]
                        ),
                        frame_of_reference_uid=header.FrameOfReferenceUID,
                    )
                ]
            else:
                coordinates = [
                    hd.sr.CoordinatesForMeasurement(
                        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                        graphic_data=np.array([start, end], dtype=float) + 0.5,  # SCOORD: corner of the pixel
                        source_image=hd.sr.SourceImageForRegion(
                            referenced_sop_class_uid=header.SOPClassUID,
                            referenced_sop_instance_uid=(
                                evidence.SOPInstanceUID if evidence else header.SOPInstanceUID
                            ),
                        ),
                    )
                ]
            measurements.append(
                hd.sr.Measurement(
                    name=codes.SCT.Length, value=10.0, unit=codes.UCUM.Millimeter, referenced_coordinates=coordinates
                )
            )
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"model lesion {number}"),
                measurements=measurements,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid()),
            )
        ),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence or header],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=7,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="A model",
    )
    sr.save_as(path)
    return path


def stranger_image(instance) -> Dataset:
    """Evidence of an image of a series Readerboard never imported (the study and class of `instance`)."""
    header = pydicom.dcmread(local_path(instance), stop_before_pixels=True)
    stranger = Dataset()
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "SOPClassUID"):  # fmt: skip
        setattr(stranger, keyword, header.get(keyword, ""))
    stranger.SeriesInstanceUID = generate_uid()
    stranger.SOPInstanceUID = generate_uid()
    return stranger


# --- TID 1500 SR in --------------------------------------------------------------------------------------


def test_our_consensus_sr_comes_back_as_the_same_long_and_short_axis(scene, tmp_path):
    path = exported_consensus_sr(scene, tmp_path)

    (result,) = import_predictions(task=scene.task, model_name="sr-model", paths=[path])

    assert result.error == ""
    (mark,) = result.prediction.lesion_marks
    assert mark["sop_instance_uid"] == middle(scene).sop_instance_uid and mark["frame"] == 1
    assert_same_line(mark["long_axis"], LONG_AXIS)
    assert_same_line(mark["short_axis"], SHORT_AXIS)
    assert mark["label"] == "Consensus lesion 1" and result.prediction.case == scene.case


def test_a_highdicom_sr_with_planar_and_3d_lines_lands_on_the_drawn_pixels(scene, tmp_path):
    planar = highdicom_sr(
        tmp_path / "planar.dcm",
        instance=middle(scene),
        lines=[[((10.0, 20.0), (30.0, 20.0)), ((20.0, 15.0), (20.0, 25.0))]],
    )
    volume = highdicom_sr(
        tmp_path / "volume.dcm", instance=middle(scene), lines=[[((12.25, 40.5), (20.75, 48.0))]], scoord3d=True
    )

    results = import_predictions(task=scene.task, model_name="planar", paths=[planar])
    results += import_predictions(task=scene.task, model_name="volume", paths=[volume])

    assert [result.error for result in results] == ["", ""]
    (planar_mark,) = ModelPrediction.objects.get(model_name="planar").lesion_marks
    assert_same_line(planar_mark["long_axis"], ([10.0, 20.0], [30.0, 20.0]))
    assert_same_line(planar_mark["short_axis"], ([20.0, 15.0], [20.0, 25.0]))
    (volume_mark,) = ModelPrediction.objects.get(model_name="volume").lesion_marks
    assert volume_mark["sop_instance_uid"] == middle(scene).sop_instance_uid
    assert_same_line(volume_mark["long_axis"], ([12.25, 40.5], [20.75, 48.0]))
    assert volume_mark["short_axis"] is None


def test_a_scoord3d_line_that_leaves_its_slice_is_refused(scene, tmp_path):
    path = highdicom_sr(
        tmp_path / "oblique.dcm", instance=middle(scene), lines=[[((12.0, 40.0), (20.0, 48.0))]], scoord3d=True,
        off_plane_mm=1.0,
    )  # fmt: skip

    (result,) = import_predictions(task=scene.task, model_name="m", paths=[path])

    assert "oblique.dcm, measurement 1 (model lesion 1): its SCOORD3D line lies on no slice of series" in result.error
    assert not ModelPrediction.objects.exists()


def test_the_command_tells_sr_from_seg_and_reports_the_measured_lesions(scene, tmp_path):
    path = exported_consensus_sr(scene, tmp_path)
    out = io.StringIO()

    call_command("import_predictions", str(path), "--task", str(scene.task.pk), "--model", "m", stdout=out)

    assert f"model-report.dcm: case {scene.case.pk}, 0 lesion voxels, 1 measured lesions" in out.getvalue()


# --- DeepLesion-style CSV in -----------------------------------------------------------------------------


def test_our_deeplesion_export_comes_back_as_the_same_end_points(scene, tmp_path):
    path = exported_deeplesion(scene, tmp_path)

    results = import_predictions(task=scene.task, model_name="detector", paths=[path])

    assert [result.error for result in results] == [""]
    (mark,) = results[0].prediction.lesion_marks
    assert mark["sop_instance_uid"] == middle(scene).sop_instance_uid
    assert_same_line(mark["long_axis"], LONG_AXIS, tolerance_px=1e-4)  # the export writes 4 decimals
    assert_same_line(mark["short_axis"], SHORT_AXIS, tolerance_px=1e-4)
    columns, rows = zip(*LONG_AXIS, *SHORT_AXIS, strict=True)
    assert mark["box"] == pytest.approx([min(columns) - 5, min(rows) - 5, max(columns) + 5, max(rows) + 5])


def test_a_series_uid_column_finds_the_case_without_deeplesion_numbers(scene, tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(
        "series_instance_uid,Key_slice_index,Measurement_coordinates\n"
        f'{scene.series.series_instance_uid},5,"10, 10, 20, 10, 15, 8, 15, 12"\n'
    )

    (result,) = import_predictions(task=scene.task, model_name="m", paths=[path])

    (mark,) = result.prediction.lesion_marks
    assert mark["sop_instance_uid"] == scene.instances[4].sop_instance_uid  # Key_slice_index counts from 1
    assert mark["long_axis"] == {"start": [10.0, 10.0], "end": [20.0, 10.0]}


def test_bad_rows_are_reported_by_row_and_reason_while_good_rows_import(scene, tmp_path):
    path = tmp_path / "DL_info.csv"
    with open(exported_deeplesion(scene, tmp_path), newline="") as handle:
        rows = list(csv.DictReader(handle))
    good = rows[0]
    bad_numbers = {**good, "Measurement_coordinates": "1, 2, x, 4"}
    bad_slice = {**good, "Key_slice_index": "10"}
    outside = {**good, "Measurement_coordinates": "10, 10, 70, 10, 12, 8, 12, 12"}
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(good))
        writer.writeheader()
        writer.writerows([bad_numbers, good, bad_slice, outside])

    results = import_predictions(task=scene.task, model_name="m", paths=[path])

    errors = [result.error for result in results if result.error]
    assert errors == [
        "DL_info.csv, row 2: Measurement_coordinates '1, 2, x, 4' is not numbers separated by commas",
        f"DL_info.csv, row 4: Key_slice_index 10 is not a slice of case {scene.case.pk} (1 to 9)",
        f"DL_info.csv, row 5: long axis point (70, 10) is outside image {middle(scene).sop_instance_uid} "
        "(64 columns x 64 rows)",
    ]
    (prediction,) = [result.prediction for result in results if result.prediction]
    assert len(prediction.lesion_marks) == 1


# --- refusals: the file and the reason, nothing of that file, the others still import -------------------


def test_refused_files_are_named_with_their_reason_and_the_others_still_import(scene, tmp_path):
    instance = middle(scene)
    unknown_series = highdicom_sr(
        tmp_path / "a-unknown-series.dcm",
        instance=instance,
        lines=[[((10.0, 20.0), (30.0, 20.0))]],
        evidence=stranger_image(instance),
    )
    without_lines = highdicom_sr(tmp_path / "b-no-lines.dcm", instance=instance, lines=[[]])
    outside = highdicom_sr(tmp_path / "c-outside.dcm", instance=instance, lines=[[((10.0, 20.0), (99.0, 20.0))]])
    malformed = tmp_path / "d-malformed.csv"
    malformed.write_text('Key_slice_index,Measurement_coordinates\n5,"1, 2, 3, 4"\n')
    good = exported_consensus_sr(scene, tmp_path)

    results = {
        result.path.name: result.error
        for result in import_predictions(
            task=scene.task, model_name="m", paths=[unknown_series, without_lines, outside, malformed, good]
        )
    }

    assert "a-unknown-series.dcm measures images Readerboard does not have" in results["a-unknown-series.dcm"]
    assert "b-no-lines.dcm has no measurement with a line" in results["b-no-lines.dcm"]
    assert (
        "c-outside.dcm, measurement 1 (model lesion 1): long axis point (99, 20) is outside image"
        in (results["c-outside.dcm"])
    )
    assert "d-malformed.csv lacks the column(s) Patient_index, Study_index, Series_ID" in results["d-malformed.csv"]
    assert results["model-report.dcm"] == ""
    (prediction,) = ModelPrediction.objects.all()
    assert prediction.source_file == "model-report.dcm" and len(prediction.lesion_marks) == 1


def test_an_sr_of_a_series_that_is_no_case_of_the_task_is_refused(scene, tmp_path):
    path = exported_consensus_sr(scene, tmp_path)
    other = TaskFactory()

    (result,) = import_predictions(task=other, model_name="m", paths=[path])

    assert result.error == (
        f"model-report.dcm measures series {scene.series.series_instance_uid}, not a case of task {other.pk}"
    )
    assert not ModelPrediction.objects.exists()


# --- readers' suggestions with lines -----------------------------------------------------------------------


def reader_with_suggestion(task):
    client = APIClient()
    client.force_login(ReaderFactory().user)
    response = client.post(f"/api/tasks/{task.pk}/next-case/")
    assert response.status_code == 200
    return client, response.json()["suggestion"]


def submitted(client, case, lesions):
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": (timezone.now() - dt.timedelta(seconds=30)).isoformat(),
        "duration_s": 30,
        "flags": {},
        "lesions": lesions,
    }
    return client.post("/api/reads/", document, format="json")


def test_a_lesion_with_a_mask_and_lines_is_suggested_as_one_lesion_that_submits_as_a_read(scene, tmp_path):
    with zipfile.ZipFile(export_to_path(task=scene.task, fmt="seg", out=tmp_path).path) as archive:
        seg = tmp_path / "model-masks.dcm"
        seg.write_bytes(archive.read(f"seg/case-{scene.case.pk}/consensus.dcm"))
    with open(exported_deeplesion(scene, tmp_path), newline="") as handle:
        (measured,) = csv.DictReader(handle)
    far = {**measured, "Key_slice_index": "2", "Measurement_coordinates": "50, 50, 58, 50", "Bounding_boxes": ""}
    lines = tmp_path / "lines.csv"  # the consensus lesion's lines, and a line far from any mask: its own lesion
    with open(lines, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(measured))
        writer.writeheader()
        writer.writerows([measured, far])
    import_predictions(task=scene.task, model_name="m", paths=[seg, lines])
    show_to_readers(task=scene.task, model_name="m")

    client, suggestion = reader_with_suggestion(scene.task)
    response = submitted(client, scene.case, suggestion["lesions"])

    first, second = suggestion["lesions"]
    assert first["mask"]["slices"] and first["long_axis"]["length_mm"] == pytest.approx(15.758, abs=1e-3)
    assert_same_line(first["short_axis"], SHORT_AXIS)
    assert "mask" not in second and second["long_axis"]["length_mm"] == 8.0 and "short_axis" not in second
    assert response.status_code == 201, response.json()
    assert Read.objects.get(pk=response.json()["read"]["id"]).marks.count() == 3


def test_a_lines_only_task_shows_lines_and_refuses_a_model_with_masks(scene, tmp_path):
    report = exported_consensus_sr(scene, tmp_path)
    lines_task = TaskFactory(tools=["long_axis", "no_lesion"])
    scene.case.task = lines_task
    scene.case.save()
    import_predictions(task=lines_task, model_name="lines", paths=[report])
    ModelPrediction.objects.create(case=scene.case, model_name="masks", voxel_count=5)

    show_to_readers(task=lines_task, model_name="lines")
    client, suggestion = reader_with_suggestion(lines_task)
    with pytest.raises(PredictionError, match="lacks the mask tool for its masks"):
        show_to_readers(task=lines_task, model_name="masks")

    (lesion,) = suggestion["lesions"]
    assert set(lesion) == {"lesion", "long_axis"}  # no short axis without the bidirectional tool
    assert submitted(client, scene.case, suggestion["lesions"]).status_code == 201


def test_a_mask_only_task_refuses_a_model_with_lines(scene, tmp_path):
    report = exported_consensus_sr(scene, tmp_path)
    mask_task = TaskFactory(tools=["mask", "no_lesion"])
    scene.case.task = mask_task
    scene.case.save()
    import_predictions(task=mask_task, model_name="lines", paths=[report])

    with pytest.raises(PredictionError, match="lacks the long axis or bidirectional tool for its lines"):
        show_to_readers(task=mask_task, model_name="lines")
    with pytest.raises(CommandError, match="lacks the long axis"):
        call_command(
            "import_predictions",
            str(report),
            "--task",
            str(mask_task.pk),
            "--model",
            "lines",
            "--show-to-readers",
            stdout=io.StringIO(),
        )
