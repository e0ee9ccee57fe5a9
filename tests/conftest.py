"""Shared fixtures: an isolated data dir per test and small synthetic CT series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, WrittenSeries, write_series

# pytest-django's fixtures that open the test database; any test that reaches the database asks for one of them
# (directly, through another fixture, or by its django_db marker).
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"})


def pytest_collection_modifyitems(config, items) -> None:
    """With READERBOARD_DATABASE_TESTS_ONLY=1 (scripts/test.sh's PostgreSQL pass) run only tests that use the database.

    A test that never opens a connection ran on the SQLite pass and would say nothing new about PostgreSQL.
    """
    if os.environ.get("READERBOARD_DATABASE_TESTS_ONLY") != "1":
        return
    kept, left_out = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames)
        (kept if uses_database else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


SMALL_LESION = SyntheticLesion(center_mm=(-8.0, 6.0, 0.0), diameters_mm=(16.0, 10.0, 12.0))


def small_patient(patient_id: str = "RB-TEST-001", seed: int = 1) -> SyntheticPatient:
    """A 64x64x9 CT at 1 mm pixels and 2.5 mm slices with one 16 x 10 mm lesion on the middle slice."""
    return SyntheticPatient(
        patient_id=patient_id,
        patient_name="Test^Patient",
        lesions=[SMALL_LESION],
        rows=64,
        columns=64,
        slices=9,
        pixel_spacing_mm=1.0,
        slice_spacing_mm=2.5,
        seed=seed,
    )


@pytest.fixture(autouse=True)
def isolated_data_dir(settings, tmp_path: Path) -> Path:
    """Every test writes DICOM files and exports under its own folder."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


@pytest.fixture(scope="session")
def small_ct_files(tmp_path_factory) -> WrittenSeries:
    """The files of one small synthetic CT series, written once per test session."""
    return write_series(small_patient(), tmp_path_factory.mktemp("small-ct"))


@pytest.fixture
def small_ct_series(db, small_ct_files):
    """The small synthetic CT imported into the database; returns the Series."""
    from viewer.models import Series
    from viewer.services.dicom_import import import_paths

    import_paths(small_ct_files.files, collection_name="Test CT")
    return Series.objects.get(series_instance_uid=small_ct_files.series_instance_uid)


@pytest.fixture
def admin_api(client, django_capture_on_commit_callbacks):
    """An admin's client whose requests run their on-commit work (the eager import task) as in production."""
    from tests.factories import admin_user

    client.force_login(admin_user())
    original = client.request

    def request(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return original(**kwargs)

    client.request = request
    return client
