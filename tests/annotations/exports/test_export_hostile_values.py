"""Stored values an export cannot write as they are: replaced and counted in the job's report, formula cells quoted."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from annotations.exports import export_to_path, run_export, sanitise
from annotations.models import ExportJob, Read
from tests.annotations.export_data import add_scene_answers, build_scene
from tests.factories import researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    scene = build_scene(small_ct_series)
    add_scene_answers(scene)
    return scene


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_an_export_job_of_an_unencodable_answer_finishes_and_counts_what_it_replaced(scene):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL refuses to store a lone surrogate; SQLite's JSON columns keep it")
    read = scene.reads[0]
    Read.all_objects.filter(pk=read.pk).update(
        answers={"case": {"impression": "bad \ud800 text"}, "lesions": {}}, comment="=HYPERLINK(1)"
    )
    job = ExportJob.objects.create(task=scene.task, format=ExportJob.Format.BUNDLE)

    run_export(job=job)

    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.warnings[sanitise.UNENCODABLE_TEXT] >= 1
    assert job.warnings[sanitise.FORMULA_CELLS] >= 1


def test_formula_cells_are_quoted_and_negative_numbers_stay_numbers(scene, tmp_path):
    Read.all_objects.filter(pk=scene.reads[0].pk).update(comment="@SUM(A1:A9)")

    result = export_to_path(task=scene.task, fmt="csv", out=tmp_path)

    rows = _rows(result.path.read_text(encoding="utf-8"))
    assert {row["comment"] for row in rows if row["read_id"] == str(scene.reads[0].pk)} == {"'@SUM(A1:A9)"}
    # The synthetic CT's patient x coordinates are negative on the left of the image: still plain numbers.
    negative = [row["start_x_mm"] for row in rows if row["start_x_mm"].startswith("-")]
    assert negative and all(float(value) < 0 for value in negative)
    assert result.warnings == {sanitise.FORMULA_CELLS: len([r for r in rows if r["comment"].startswith("'")])}


def test_raw_cells_keep_formula_cells_as_stored(scene, tmp_path):
    Read.all_objects.filter(pk=scene.reads[0].pk).update(comment="=1+1")

    result = export_to_path(task=scene.task, fmt="bundle", out=tmp_path, raw_cells=True)

    with zipfile.ZipFile(result.path) as archive:
        rows = _rows(archive.read("reads.csv").decode("utf-8"))
    assert "=1+1" in {row["comment"] for row in rows}
    assert sanitise.FORMULA_CELLS not in result.warnings


def test_the_export_command_takes_raw_cells_and_reports_what_it_changed(scene, tmp_path):
    Read.all_objects.filter(pk=scene.reads[0].pk).update(comment="=1+1")
    quoted, raw, errors = io.StringIO(), io.StringIO(), io.StringIO()

    call_command("export", str(scene.task.pk), "--format", "csv", "--out", str(tmp_path / "a.csv"), stdout=quoted,
                 stderr=errors, quiet_progress=True)  # fmt: skip
    call_command("export", str(scene.task.pk), "--format", "csv", "--out", str(tmp_path / "b.csv"), "--raw-cells",
                 stdout=raw, quiet_progress=True)  # fmt: skip

    assert "formula_cells_neutralised" in errors.getvalue()
    assert "'=1+1" in (tmp_path / "a.csv").read_text(encoding="utf-8")
    assert "'=1+1" not in (tmp_path / "b.csv").read_text(encoding="utf-8")


def test_the_api_asks_for_raw_cells_and_shows_the_warnings(scene, django_capture_on_commit_callbacks):
    Read.all_objects.filter(pk=scene.reads[0].pk).update(comment="=1+1")
    client = APIClient()
    client.force_authenticate(researcher_user())

    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/exports/", {"task": scene.task.pk, "format": "csv"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        raw = client.post("/api/exports/", {"task": scene.task.pk, "format": "csv", "raw_cells": True}, format="json")

    quoted_job = client.get(f"/api/exports/{created.data['id']}/").data
    raw_job = client.get(f"/api/exports/{raw.data['id']}/").data
    assert (quoted_job["raw_cells"], raw_job["raw_cells"]) == (False, True)
    assert quoted_job["warnings"][sanitise.FORMULA_CELLS] >= 1
    assert sanitise.FORMULA_CELLS not in raw_job["warnings"]
