"""Follow-up exports: lesion and response CSVs, and SRs per time point that keep each lesion's tracking UID."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile

import highdicom as hd
import pydicom
import pytest

from annotations.assignment.services import next_case
from annotations.consensus.tasks import compute_case_consensus
from annotations.exports import export_to_path
from annotations.exports.follow_up_export import lesion_tracking_uid
from annotations.reading.submission import submit_read
from tests.annotations.export_data import dicom_tool_errors
from tests.annotations.follow_up_data import build_follow_up_scene, follow_up_read, measured
from tests.factories import ReaderFactory

pytestmark = pytest.mark.django_db

B1, B2 = (-8.0, 6.0), (14.0, -12.0)


@pytest.fixture
def scene(tmp_path):
    scene = build_follow_up_scene(tmp_path / "dicom")
    for b1 in (12.0, 13.0):
        reader = ReaderFactory()
        next_case(reader=reader, task=scene.task)
        points = [
            {"index": 1, "lesions": [measured(scene, 1, 1, "B1", *B1, b1), measured(scene, 1, 2, "B2", *B2, 15.0)]},
            {
                "index": 2,
                "lesions": [
                    {"lesion": 3, "baseline_lesion": "B1", "status": "disappeared"},
                    measured(scene, 2, 4, "B2", *B2, 14.0),
                    measured(scene, 2, 5, None, -20.0, -15.0, 6.0),
                ],
            },
        ]
        submit_read(reader=reader, document=follow_up_read(scene, points))
    compute_case_consensus(scene.case.pk)
    return scene


def csv_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_lesion_csv_has_a_row_per_lesion_per_time_point_per_read(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="csv", out=tmp_path / "lesions.csv")

    rows = csv_rows(result.path)
    # Per read: 2 baseline rows, 2 at follow-up 1, 3 (with the new lesion) at follow-up 2.
    assert len(rows) == 2 * (2 + 2 + 3)
    b1 = [row for row in rows if row["baseline_lesion"] == "B1" and row["read_id"] == rows[0]["read_id"]]
    assert [(row["time_point"], row["status"], row["long_axis_mm"]) for row in b1] == [
        ("0", "baseline", "20.0"),
        ("1", "measured", "12.0"),
        ("2", "disappeared", ""),
    ]
    assert {row["tracking_uid"] for row in b1} == {lesion_tracking_uid(scene.case.pk, "B1")}
    assert [row["study_date"] for row in b1] == ["2026-01-05", "2026-03-02", "2026-05-04"]
    new = [row for row in rows if row["is_new"] == "True"]
    assert len(new) == 2 and all(row["is_target"] == "False" for row in new)


def test_the_response_csv_has_reads_consensus_and_answer_key_rows(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="consensus_csv", out=tmp_path / "responses.csv")

    rows = csv_rows(result.path)
    reads = [row for row in rows if row["source"] == "read"]
    consensus = [row for row in rows if row["source"] == "consensus"]
    assert len(reads) == 4  # 2 reads x 2 follow-ups
    assert [(row["time_point"], row["response"]) for row in consensus] == [("1", "SD"), ("2", "PD")]
    first = next(row for row in reads if row["time_point"] == "1")
    assert first["baseline_sum_mm"] == "36.0"
    assert first["change_from_baseline_pct"] in {"-25.0", "-22.2"}


def test_srs_of_two_time_points_pair_their_lesions_by_tracking_uid(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip")

    with zipfile.ZipFile(result.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist() if name.endswith(".dcm")}
        manifest = archive.read("manifest.csv").decode()
    assert result.dicom_files == len(files) == len(manifest.strip().splitlines()) - 1
    read_files = sorted(name for name in files if "/read-" in name)
    first_read = read_files[0].rsplit("/", 1)[1]
    at_1 = next(name for name in read_files if "/tp-1/" in name and name.endswith(first_read))
    at_2 = next(name for name in read_files if "/tp-2/" in name and name.endswith(first_read))

    def tracked(name: str) -> dict[str, float]:
        sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(files[name])))
        return {
            group.tracking_uid: group.get_measurements()[0].value for group in sr.content.get_image_measurement_groups()
        }

    first, second = tracked(at_1), tracked(at_2)
    b2 = lesion_tracking_uid(scene.case.pk, "B2")
    assert set(first) & set(second) == {b2}  # B1 disappeared at follow-up 2; the new lesion is only there
    assert (float(first[b2]), float(second[b2])) == pytest.approx((15.0, 14.0), abs=0.01)
    assert lesion_tracking_uid(scene.case.pk, "B1") in first
    assert len(second) == 2
    baseline = tracked(next(name for name in files if name.endswith("tp-0/baseline.dcm")))
    assert set(baseline) == {lesion_tracking_uid(scene.case.pk, "B1"), b2}
    consensus_2 = tracked(next(name for name in files if name.endswith("tp-2/consensus.dcm")))
    assert b2 in consensus_2
    # Each SR belongs to its time point's study.
    ds = pydicom.dcmread(io.BytesIO(files[at_2]))
    assert ds.StudyInstanceUID == scene.series[2].study.study_instance_uid


@pytest.mark.skipif(not shutil.which("dciodvfy"), reason="dicom3tools missing")
def test_every_follow_up_sr_passes_dciodvfy(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="sr", out=tmp_path / "sr.zip")

    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(tmp_path / "sr")
    paths = sorted((tmp_path / "sr").rglob("*.dcm"))
    assert len(paths) == 2 * 2 + 2 + 1  # reads x time points, consensus per time point, baseline
    for path in paths:
        assert dicom_tool_errors(["dciodvfy"], path) == [], path.name


def test_a_bundle_names_the_follow_up_csvs_and_explains_them(scene, tmp_path):
    result = export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip")

    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.txt").decode()
    assert {"follow-up-lesions.csv", "follow-up-responses.csv", "manifest.csv"} <= names
    assert not any(name.startswith("seg/") for name in names)
    assert "tracking UID at every time point" in readme
