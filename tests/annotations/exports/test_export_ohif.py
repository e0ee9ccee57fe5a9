"""Our SR and SEG as OHIF opens them: Node runs @cornerstonejs/adapters on every file of an export.

viewer/frontend/ohif/roundTrip.js (bundled for Node with Vite) turns each SR into
Cornerstone tool states with `MeasurementReport.generateToolState`, and those into read
document lines with the viewer's own readDocument.js; each SEG goes through the
segmentation adapter. These tests compare what came back with the database.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from annotations.core import mask_rle
from annotations.demo.reader_study import STUDY_TASK
from annotations.exports import export_to_path
from annotations.exports.sr_export import tracking_uid
from annotations.models import CaseConsensus, Mark, Read, Task
from tests.annotations.export_data import build_scene, dicom_tool_errors
from tests.conftest import small_patient
from viewer.models import Instance, Series

pytestmark = [pytest.mark.django_db, pytest.mark.dicomtools]

FRONTEND = Path(__file__).resolve().parents[3] / "viewer" / "frontend"
# Lengths come back from OHIF's own geometry; the issue asks for 0.1 mm.
LENGTH_TOLERANCE_MM = 0.1
POINT_TOLERANCE_PX = 1e-3


@pytest.fixture(scope="module")
def round_trip_script(tmp_path_factory) -> Path:
    """The Node bundle of roundTrip.js, built once per test module."""
    if not (shutil.which("node") and shutil.which("npx")):
        pytest.skip("Node.js is needed to run @cornerstonejs/adapters")
    assert (FRONTEND / "node_modules" / "@cornerstonejs" / "adapters").is_dir(), (
        "run scripts/build-frontend.sh (npm ci) first: @cornerstonejs/adapters is a viewer dev dependency"
    )
    out = tmp_path_factory.mktemp("ohif-round-trip")
    subprocess.run(
        ["npx", "--no-install", "vite", "build", "--config", "ohif/vite.config.js", "--outDir", str(out)],
        cwd=FRONTEND,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out / "roundTrip.mjs"


def image_entry(instance: Instance, frame: int, index: int) -> dict:
    series = instance.series
    position = instance.image_position_patient
    if instance.frame_positions_patient:
        position = instance.frame_positions_patient[frame - 1]
    return {
        "image_id": (
            f"wadors:/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
            f"/instances/{instance.sop_instance_uid}/frames/{frame}"
        ),
        "index": index,
        "sop_instance_uid": instance.sop_instance_uid,
        "sop_class_uid": instance.sop_class_uid,
        "frame": frame,
        "number_of_frames": instance.number_of_frames,
        "series_instance_uid": series.series_instance_uid,
        "study_instance_uid": series.study.study_instance_uid,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "modality": series.modality,
        "rows": instance.rows,
        "columns": instance.columns,
        "position": [float(value) for value in position],
        "orientation": [float(value) for value in instance.image_orientation_patient],
        "pixel_spacing_mm": [float(value) for value in instance.pixel_spacing_mm],
    }


def open_in_ohif(script: Path, archive: Path, folder: Path) -> tuple[dict, dict, list[dict]]:
    """Unpack an export, run the adapters on every SR and SEG; return (SR tool states, SEG segments, manifest)."""
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(folder)
        manifest_text = bundle.read("manifest.csv").decode()
    manifest = list(csv.DictReader(manifest_text.splitlines()))
    series_uids = {row["source_series_instance_uid"] for row in manifest}
    images = []
    for series in Series.objects.filter(series_instance_uid__in=series_uids).select_related("study"):
        instances = Instance.objects.filter(series=series).order_by(*Instance._meta.ordering)
        for instance in instances:
            for frame in range(1, instance.number_of_frames + 1):
                images.append(image_entry(instance, frame, len(images)))
    job = {
        "images": images,
        "sr": [str(folder / row["file"]) for row in manifest if row["kind"].startswith("sr_")],
        "seg": [
            {"path": str(folder / row["file"]), "series_instance_uid": row["source_series_instance_uid"]}
            for row in manifest
            if row["kind"].startswith("seg_")
        ],
    }
    job_path = folder / "job.json"
    job_path.write_text(json.dumps(job))
    result = subprocess.run(["node", str(script), str(job_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout)
    relative = {str(folder / row["file"]): row["file"] for row in manifest}
    return (
        {relative[path]: tools for path, tools in answer["sr"].items()},
        {relative[path]: segments for path, segments in answer["seg"].items()},
        manifest,
    )


def expected_read_lesions(read: Read) -> dict[str, dict]:
    """Tracking UID -> {label, long_axis, short_axis} of a read's lines, as the read document writes them."""
    lesions: dict[str, dict] = {}
    for mark in Mark.objects.filter(read=read).select_related("instance"):
        lesion = lesions.setdefault(
            tracking_uid("read", read.pk, mark.lesion_index), {"label": f"Read {read.pk} lesion {mark.lesion_index}"}
        )
        lesion[mark.kind] = {
            "sop_instance_uid": mark.instance.sop_instance_uid,
            "frame": mark.frame,
            "start": [mark.start_col, mark.start_row],
            "end": [mark.end_col, mark.end_row],
            "length_mm": mark.length_mm,
        }
    return lesions


def expected_consensus_lesions(consensus: CaseConsensus) -> dict[str, dict]:
    lesions = {}
    for lesion in consensus.lesions.filter(accepted=True).exclude(long_axis=None):
        if not lesion.long_axis:
            continue
        uid = tracking_uid("consensus", consensus.case_id, consensus.inputs_hash, lesion.lesion_index)
        lesions[uid] = {"label": f"Consensus lesion {lesion.lesion_index}", "long_axis": lesion.long_axis}
        if lesion.short_axis:
            lesions[uid]["short_axis"] = lesion.short_axis
    return lesions


def assert_same_line(got: dict, expected: dict, where: str) -> None:
    assert got["sop_instance_uid"] == expected["sop_instance_uid"], where
    assert got["frame"] == int(expected.get("frame", 1)), where
    np.testing.assert_allclose(got["start"], expected["start"], atol=POINT_TOLERANCE_PX, err_msg=where)
    np.testing.assert_allclose(got["end"], expected["end"], atol=POINT_TOLERANCE_PX, err_msg=where)
    assert got["length_mm"] == pytest.approx(expected["length_mm"], abs=LENGTH_TOLERANCE_MM), where


def same_frame(first: dict, second: dict) -> bool:
    return (first["sop_instance_uid"], int(first.get("frame", 1))) == (
        second["sop_instance_uid"],
        int(second.get("frame", 1)),
    )


def expected_tools(lesion: dict) -> list[tuple[str, str, dict]]:
    """(tool, label, line) for each annotation OHIF should draw for a lesion, in SR order."""
    if "short_axis" not in lesion:
        return [("Length", lesion["label"], {"long_axis": lesion["long_axis"]})]
    if same_frame(lesion["long_axis"], lesion["short_axis"]):
        return [
            ("Bidirectional", lesion["label"], {"long_axis": lesion["long_axis"], "short_axis": lesion["short_axis"]})
        ]
    # Axes on different slices (a consensus can have them): one Length per axis, each on its own image.
    return [
        ("Length", f"{lesion['label']} long axis", {"long_axis": lesion["long_axis"]}),
        ("Length", f"{lesion['label']} short axis", {"long_axis": lesion["short_axis"]}),
    ]


def assert_sr_lines_come_back(tools_by_file: dict, manifest: list[dict]) -> int:
    """Every line of every SR comes back as a Length or Bidirectional on its image; return how many lines."""
    lines = 0
    for row in manifest:
        if not row["kind"].startswith("sr_"):
            continue
        if row["kind"] == "sr_read":
            expected = expected_read_lesions(Read.objects.get(pk=row["read_id"]))
        else:
            expected = expected_consensus_lesions(CaseConsensus.objects.get(pk=row["consensus_id"]))
        tools = tools_by_file[row["file"]]
        assert {tool["tracking_uid"] for tool in tools} == set(expected), row["file"]
        for uid, lesion in expected.items():
            got = [tool for tool in tools if tool["tracking_uid"] == uid]
            wanted = expected_tools(lesion)
            assert [(tool["tool_type"], tool["label"]) for tool in got] == [(t, label) for t, label, _ in wanted]
            for tool, (_, label, axes) in zip(got, wanted, strict=True):
                where = f"{row['file']} {label}"
                assert tool["sop_instance_uid"] == axes["long_axis"]["sop_instance_uid"], where
                for kind, line in axes.items():
                    assert_same_line(tool["axes"][kind], line, f"{where} {kind}")
                    lines += 1
                assert tool["stats"]["length"] == pytest.approx(axes["long_axis"]["length_mm"], abs=LENGTH_TOLERANCE_MM)
    return lines


def expected_segment_voxels(row: dict) -> dict[str, int]:
    """Tracking UID -> voxel count of each segment of a SEG, from the database's run lengths."""
    voxels: dict[str, int] = {}
    if row["kind"] == "seg_read":
        read = Read.objects.get(pk=row["read_id"])
        for mask in read.mask_slices.select_related("instance"):
            uid = tracking_uid("read", read.pk, mask.lesion_index)
            decoded = mask_rle.decode(mask.counts, rows=mask.instance.rows, columns=mask.instance.columns)
            voxels[uid] = voxels.get(uid, 0) + int(decoded.sum())
        return voxels
    consensus = CaseConsensus.objects.get(pk=row["consensus_id"])
    for lesion in consensus.lesions.filter(accepted=True):
        uid = tracking_uid("consensus", consensus.case_id, consensus.inputs_hash, lesion.lesion_index)
        for item in lesion.mask_slices or []:
            instance = Instance.objects.get(sop_instance_uid=item["sop_instance_uid"])
            decoded = mask_rle.decode(item["counts"], rows=instance.rows, columns=instance.columns)
            voxels[uid] = voxels.get(uid, 0) + int(decoded.sum())
    return voxels


def assert_seg_segments_come_back(segments_by_file: dict, manifest: list[dict]) -> int:
    segments = 0
    for row in manifest:
        if not row["kind"].startswith("seg_"):
            continue
        got = {segment["tracking_uid"]: segment["voxels"] for segment in segments_by_file[row["file"]]}
        assert got == expected_segment_voxels(row), row["file"]
        segments += len(got)
    return segments


@pytest.fixture
def demo_task(monkeypatch) -> Task:
    """The demo's simulated reader study (5 readers, bidirectional lines and masks) on small patients."""
    import annotations.management.commands.make_demo as command

    monkeypatch.setattr(command, "demo_patients", lambda **kwargs: [small_patient("P1", 1), small_patient("P2", 2)])
    call_command("make_demo", "--no-odd-dicom")
    return Task.objects.get(name=STUDY_TASK)


def dciodvfy_findings(path: Path) -> list[str]:
    """dciodvfy's error and warning lines for one file."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(("Error", "Warning"))]


def test_ohif_adapters_recover_every_line_and_mask_of_the_demo_bundle(demo_task, round_trip_script, tmp_path):
    archive = export_to_path(task=demo_task, fmt="bundle", out=tmp_path / "bundle.zip").path

    tools, segments, manifest = open_in_ohif(round_trip_script, archive, tmp_path / "bundle")

    assert {row["kind"] for row in manifest} == {"sr_read", "sr_consensus", "seg_read", "seg_consensus"}
    assert assert_sr_lines_come_back(tools, manifest) > 0
    assert assert_seg_segments_come_back(segments, manifest) > 0
    if shutil.which("dciodvfy"):  # the same files stay clean for dicom3tools: no errors, no warnings
        assert {row["file"]: dciodvfy_findings(tmp_path / "bundle" / row["file"]) for row in manifest} == {
            row["file"]: [] for row in manifest
        }


def test_ohif_adapters_recover_lines_and_masks_of_a_hand_built_case(small_ct_series, round_trip_script, tmp_path):
    scene = build_scene(small_ct_series)
    archive = export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip").path

    tools, segments, manifest = open_in_ohif(round_trip_script, archive, tmp_path / "bundle")

    # Read A: a bidirectional lesion and a Length; read B's second version; the consensus bidirectional.
    assert assert_sr_lines_come_back(tools, manifest) == 3 + 1 + 2
    assert assert_seg_segments_come_back(segments, manifest) == 2


def test_a_consensus_with_its_axes_on_two_slices_comes_back_as_two_lengths(
    small_ct_series, round_trip_script, tmp_path
):
    scene = build_scene(small_ct_series)
    lesion = scene.consensus.lesions.get(lesion_index=1)
    above = scene.instances[len(scene.instances) // 2 + 1]
    lesion.short_axis = {**lesion.short_axis, "sop_instance_uid": above.sop_instance_uid}
    lesion.save(update_fields=["short_axis"])
    archive = export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip").path

    tools, segments, manifest = open_in_ohif(round_trip_script, archive, tmp_path / "bundle")

    consensus = tools[f"sr/case-{scene.case.pk}/consensus.dcm"]
    assert [tool["tool_type"] for tool in consensus] == ["Length", "Length"]
    images = {tool["sop_instance_uid"] for tool in consensus}
    assert images == {above.sop_instance_uid, lesion.long_axis["sop_instance_uid"]}
    assert assert_sr_lines_come_back(tools, manifest) == 3 + 1 + 2


@pytest.mark.skipif(not shutil.which("dciodvfy"), reason="dicom3tools missing")
def test_bundle_sr_that_references_segments_passes_dciodvfy(small_ct_series, tmp_path):
    scene = build_scene(small_ct_series)
    archive = export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip").path

    with zipfile.ZipFile(archive) as bundle:
        names = [name for name in bundle.namelist() if name.startswith("sr/")]
        bundle.extractall(tmp_path / "bundle")
    assert names
    for name in names:
        assert dicom_tool_errors(["dciodvfy"], tmp_path / "bundle" / name) == [], name
