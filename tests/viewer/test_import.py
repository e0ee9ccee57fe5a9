"""Import of files, folders and zips: good, duplicate, corrupt, odd and malicious input."""

from __future__ import annotations

import io
import logging
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command

from viewer.models import Instance, Series, Study
from viewer.services.dicom_import import DUPLICATE, IMPORTED, REJECTED, import_paths

pytestmark = pytest.mark.django_db

# The bundled files only: get_testdata_files would try to download the rest.
PYDICOM_TEST_FOLDER = Path(pydicom.__file__).parent / "data" / "test_files"


def test_import_stores_series_in_anatomical_order(small_ct_files, isolated_data_dir):
    report = import_paths(reversed(small_ct_files.files), collection_name="Test CT")

    assert report.imported == len(small_ct_files.files)
    series = Series.objects.get(series_instance_uid=small_ct_files.series_instance_uid)
    positions = [i.sort_position_mm for i in series.instances.all()]
    assert positions == sorted(positions)
    assert series.study.collection.name == "Test CT"
    first = series.instances.first()
    assert first.pixel_spacing_mm == [1.0, 1.0]
    assert first.rescale_intercept == -1024.0
    assert first.window_centers == [40.0, -600.0]
    assert (isolated_data_dir / first.file_path).exists()


def test_reimporting_the_same_instances_is_a_no_op(small_ct_files):
    import_paths(small_ct_files.files)

    again = import_paths(small_ct_files.files)

    assert again.imported == 0
    assert again.duplicates == len(small_ct_files.files)
    assert Instance.objects.count() == len(small_ct_files.files)


def test_corrupt_truncated_and_non_dicom_files_are_rejected_by_name(tmp_path, small_ct_files):
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(small_ct_files.files[0].read_bytes()[:700])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    good = small_ct_files.files[1]

    report = import_paths([truncated, text, good])

    by_name = {Path(o.name).name: o for o in report.outcomes}
    assert by_name["notes.txt"].status == REJECTED and by_name["notes.txt"].reason.startswith("not DICOM")
    assert by_name["truncated.dcm"].status == REJECTED
    assert by_name[good.name].status == IMPORTED
    assert Instance.objects.count() == 1


def test_a_file_without_pixel_data_is_rejected_with_the_reason():
    report = import_paths([PYDICOM_TEST_FOLDER / "rtplan.dcm"])

    assert report.outcomes[0].status == REJECTED
    assert report.outcomes[0].reason.startswith("no pixel data")


def test_every_pydicom_test_image_is_imported_and_decodable_or_rejected_with_a_reason(isolated_data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
        report = import_paths([PYDICOM_TEST_FOLDER], collection_name="Odd DICOM")

    assert report.imported > 40
    for outcome in report.outcomes:
        assert outcome.status in {IMPORTED, DUPLICATE, REJECTED}
        if outcome.status == REJECTED:
            assert outcome.reason and ":" in outcome.reason
    # No half records: every stored instance has its file, and every file its record.
    stored_files = {p.relative_to(isolated_data_dir).as_posix() for p in (isolated_data_dir / "dicom").rglob("*.dcm")}
    assert stored_files == set(Instance.objects.values_list("file_path", flat=True))
    assert not list((isolated_data_dir / "dicom").rglob("*.partial"))
    modalities = set(Series.objects.values_list("modality", flat=True))
    assert {"CT", "MR"} <= modalities
    assert Instance.objects.filter(number_of_frames__gt=1).exists()


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def test_zip_archives_are_imported(tmp_path, small_ct_files):
    archive = tmp_path / "series.zip"
    archive.write_bytes(_zip_bytes({f"a/{p.name}": p.read_bytes() for p in small_ct_files.files}))

    report = import_paths([archive])

    assert report.imported == len(small_ct_files.files)


def test_zip_with_path_traversal_is_refused_and_writes_nothing_outside(tmp_path, small_ct_files):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"../../escape.dcm": small_ct_files.files[0].read_bytes()}))

    report = import_paths([archive])

    assert report.outcomes[0].status == REJECTED
    assert "outside the import folder" in report.outcomes[0].reason
    assert not (tmp_path.parent / "escape.dcm").exists()
    assert Study.objects.count() == 0


def test_zip_bomb_and_oversize_archives_are_refused(tmp_path, settings):
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip_bytes({"zeros.dcm": b"\0" * 50_000_000}))
    settings.READERBOARD = {**settings.READERBOARD, "ZIP_MAX_UNCOMPRESSED_BYTES": 10_000_000}

    report = import_paths([bomb])

    assert report.outcomes[0].status == REJECTED
    assert "exceeds the limit" in report.outcomes[0].reason


def test_zip_expansion_ratio_guard(tmp_path):
    bomb = tmp_path / "ratio.zip"
    bomb.write_bytes(_zip_bytes({"zeros.dcm": b"\0" * 20_000_000}))

    report = import_paths([bomb])

    assert report.outcomes[0].status == REJECTED
    assert "zip bomb" in report.outcomes[0].reason


def test_import_command_reports_and_fails_only_when_nothing_imported(tmp_path, small_ct_files, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk")
    call_command("import_dicom", str(small_ct_files.files[0]), str(junk), "--quiet-progress")
    out = capsys.readouterr().out
    assert "imported 1, duplicates 0, rejected 1" in out

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_dicom", str(junk), "--quiet-progress")


def test_multiframe_frames_are_addressable():
    path = PYDICOM_TEST_FOLDER / "SC_rgb_rle_2frame.dcm"

    import_paths([path])

    instance = Instance.objects.get()
    assert instance.number_of_frames == pydicom.dcmread(path).NumberOfFrames > 1


def test_demo_geometry_lesion_diameter_matches_pixels(small_ct_files):
    """The lesion's known 16 mm diameter, measured on the generated pixels, is right within a pixel."""
    from viewer.services.synthetic_ct import read_back_hu

    middle = small_ct_files.files[len(small_ct_files.files) // 2]
    hu = read_back_hu(middle)
    ds = pydicom.dcmread(middle)
    spacing = float(ds.PixelSpacing[1])
    x0 = float(ds.ImagePositionPatient[0])
    y0 = float(ds.ImagePositionPatient[1])
    row = int(round((6.0 - y0) / float(ds.PixelSpacing[0])))
    lesion_columns = np.flatnonzero(np.abs(hu[row] - 45.0) < 30.0)
    centre_column = (-8.0 - x0) / spacing
    lesion_columns = lesion_columns[np.abs(lesion_columns - centre_column) < 12]
    measured_mm = (lesion_columns.max() - lesion_columns.min() + 1) * spacing

    assert abs(measured_mm - 16.0) <= spacing


def test_import_reports_identifying_attributes_without_their_values(small_ct_files):
    report = import_paths(small_ct_files.files[:2])

    summary = report.summary()["phi"]
    assert summary["PatientName"] == 2
    assert summary["PatientBirthDate"] == 2
    assert "Test^Patient" not in repr(report.summary())


def test_deidentified_import_removes_identity_and_keeps_the_series_together(small_ct_files, isolated_data_dir):
    report = import_paths(small_ct_files.files, deidentify=True)

    assert report.imported == len(small_ct_files.files)
    assert Series.objects.count() == 1
    study = Study.objects.get()
    assert study.study_instance_uid != small_ct_files.study_instance_uid
    assert "Test" not in study.patient_name
    stored = pydicom.dcmread(isolated_data_dir / Instance.objects.first().file_path)
    assert stored.PatientIdentityRemoved == "YES"
    assert stored.PatientBirthDate != "19600101"
    # The same files again are recognised as the same (deterministic UIDs): nothing new is stored.
    again = import_paths(small_ct_files.files, deidentify=True)
    assert again.duplicates == len(small_ct_files.files)


def test_import_keeps_each_instance_metadata_document_beside_its_file(small_ct_files):
    import json

    from viewer.dicomweb.delivery import metadata_sidecar_path

    import_paths(small_ct_files.files[:2])

    for instance in Instance.objects.all():
        document = json.loads(metadata_sidecar_path(instance).read_bytes())
        assert document["00080018"]["Value"] == [instance.sop_instance_uid]
        assert "BulkDataURI" in document["7FE00010"]
