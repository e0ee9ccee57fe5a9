"""`manage.py export` and the atomic write every export path relies on."""

from __future__ import annotations

import csv
import logging
import zipfile

import pytest
from django.core.management import CommandError, call_command

from annotations.exports import bundle, export_to_path
from tests.annotations.export_data import build_scene

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def test_export_command_writes_a_csv_for_a_task_named_by_id_or_name(scene, tmp_path, capsys):
    call_command("export", str(scene.task.pk), "--format", "csv", "--out", str(tmp_path / "by-id.csv"))
    call_command("export", scene.task.name, "--format", "csv", "--out", str(tmp_path / "by-name.csv"))

    assert "8 CSV rows" in capsys.readouterr().out
    by_id = list(csv.DictReader((tmp_path / "by-id.csv").open(newline="")))
    by_name = list(csv.DictReader((tmp_path / "by-name.csv").open(newline="")))
    assert len(by_id) == len(by_name) == 8
    assert {row["reader"] for row in by_id} == {reader.pseudonym for reader in scene.readers}


def test_export_command_identifies_readers_only_when_asked(scene, tmp_path):
    call_command("export", scene.task.name, "--format", "csv", "--out", str(tmp_path / "x.csv"), "--identify-readers")

    assert {row["reader"] for row in csv.DictReader((tmp_path / "x.csv").open(newline=""))} == {
        reader.display_name for reader in scene.readers
    }


def test_bundle_holds_both_csvs_sr_seg_manifest_and_readme(scene, tmp_path):
    call_command("export", scene.task.name, "--format", "bundle", "--out", str(tmp_path))

    (archive_path,) = tmp_path.glob("*.zip")  # an existing folder gets the default file name
    assert archive_path.name == f"task-{scene.task.pk}-{scene.task.name.lower().replace(' ', '-')}-bundle.zip"
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.txt").decode()
        manifest = list(csv.DictReader(archive.read("manifest.csv").decode().splitlines()))
    assert {"README.txt", "reads.csv", "consensus.csv", "manifest.csv"} <= names
    dicom = {name for name in names if name.endswith(".dcm")}
    assert {row["file"] for row in manifest} == dicom
    assert sum(name.startswith("sr/") for name in dicom) == 3 and sum(name.startswith("seg/") for name in dicom) == 2
    assert "TID 1500" in readme and "pseudonym" in readme and "manifest.csv" in readme


def test_unknown_task_is_a_command_error(db, tmp_path):
    with pytest.raises(CommandError, match="no task"):
        call_command("export", "no such task", "--format", "csv", "--out", str(tmp_path / "x.csv"))


def test_a_crash_mid_export_leaves_no_file_and_keeps_the_previous_one(scene, tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "bundle.zip"
    out.write_bytes(b"the previous, complete export")
    written = []

    def crash_after_some_files(archive, **kwargs):
        archive.writestr("sr/partial.dcm", b"half")
        written.append(True)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(bundle, "write_dicom_set", crash_after_some_files)

    with pytest.raises(RuntimeError, match="worker lost"):
        export_to_path(task=scene.task, fmt="bundle", out=out)

    assert written  # the crash happened after the CSVs were already in the archive
    assert out.read_bytes() == b"the previous, complete export"
    assert [path.name for path in folder.iterdir()] == ["bundle.zip"]  # no temporary leftovers


def test_a_crash_mid_csv_leaves_no_file(scene, tmp_path, monkeypatch):
    from annotations.exports import csv_export

    real = csv_export.iter_read_rows

    def rows_then_crash(**kwargs):
        yield next(real(**kwargs))
        raise OSError("disk full")

    monkeypatch.setattr(csv_export, "iter_read_rows", rows_then_crash)
    folder = tmp_path / "exports"
    out = folder / "reads.csv"

    with pytest.raises(CommandError, match="disk full"):
        call_command("export", scene.task.name, "--format", "csv", "--out", str(out))

    assert list(folder.iterdir()) == []


@pytest.fixture
def highdicom_records():
    """Records highdicom lets through, caught on its own logger; its level is reset afterwards."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("highdicom")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    for name in ("highdicom", "pydicom"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize(("verbosity", "shown"), [(1, False), (2, True)])
def test_highdicom_info_lines_reach_the_terminal_only_with_v2(scene, tmp_path, highdicom_records, verbosity, shown):
    call_command("export", scene.task.name, "--format", "sr", "--out", str(tmp_path / "sr.zip"), verbosity=verbosity)

    assert any(record.levelno == logging.INFO for record in highdicom_records) is shown


def test_export_command_shows_a_progress_bar_on_a_terminal(scene, tmp_path, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    call_command("export", scene.task.name, "--format", "bundle", "--out", str(tmp_path / "b.zip"), stderr=terminal)

    assert "100%" in terminal.getvalue() and "step" in terminal.getvalue()
