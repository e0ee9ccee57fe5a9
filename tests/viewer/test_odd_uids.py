"""Instances whose UIDs are not DICOM UIDs get derived ones, and everything QIDO lists can be retrieved."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from annotations.demo.ct_demo import ODD_COLLECTION, import_odd_dicom
from tests.factories import admin_user
from viewer.models import Instance, Series, Study
from viewer.services.dicom_import import DUPLICATE, IMPORTED, import_paths

pytestmark = pytest.mark.django_db

PYDICOM_TEST_FOLDER = Path(pydicom.__file__).parent / "data" / "test_files"
# Like pydicom-data's bad_sequence.dcm: 64-character hex strings where the UIDs belong.
HEX_UIDS = {
    "StudyInstanceUID": "a3f1" * 16,
    "SeriesInstanceUID": "b7c2" * 16,
    "SOPInstanceUID": "0d9e" * 16,
}


def write_hex_uid_file(folder: Path, name: str = "hex_uids.dcm") -> Path:
    ds = pydicom.dcmread(PYDICOM_TEST_FOLDER / "CT_small.dcm")
    for keyword, value in HEX_UIDS.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = HEX_UIDS["SOPInstanceUID"]
    path = folder / name
    ds.save_as(path, enforce_file_format=False)
    return path


def test_hex_uids_are_replaced_by_derived_dicom_uids_and_a_reimport_is_a_no_op(tmp_path):
    path = write_hex_uid_file(tmp_path)

    first = import_paths([path]).outcomes[0]
    again = import_paths([write_hex_uid_file(tmp_path, "copy.dcm")]).outcomes[0]

    assert first.status == IMPORTED and "not DICOM UIDs" in first.reason
    assert again.status == DUPLICATE and again.sop_instance_uid == first.sop_instance_uid
    instance = Instance.objects.select_related("series__study").get()
    for uid in (
        instance.sop_instance_uid,
        instance.series.series_instance_uid,
        instance.series.study.study_instance_uid,
    ):
        assert UID(uid).is_valid, uid
    stored = pydicom.dcmread(instance.absolute_path)
    assert stored.SOPInstanceUID == stored.file_meta.MediaStorageSOPInstanceUID == instance.sop_instance_uid
    assert stored.StudyInstanceUID == instance.series.study.study_instance_uid


def walk(client, url: str, **params):
    response = client.get(url, params, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200, (url, response.status_code)
    return response.json()


def value(item: dict, tag: str) -> str:
    return item[tag]["Value"][0]


def test_everything_qido_lists_in_the_odd_dicom_collection_can_be_retrieved(client, tmp_path):
    shutil.copy(write_hex_uid_file(tmp_path), tmp_path / "hex.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
        import_odd_dicom()
        import_paths([tmp_path / "hex.dcm"], collection_name=ODD_COLLECTION)
    client.force_login(admin_user())

    retrieved = 0
    for study in walk(client, "/dicomweb/studies", limit=1000):
        study_url = f"/dicomweb/studies/{value(study, '0020000D')}"
        for series in walk(client, f"{study_url}/series"):
            series_url = f"{study_url}/series/{value(series, '0020000E')}"
            assert client.get(f"{series_url}/metadata").status_code == 200, series_url
            assert client.get(f"{series_url}/thumbnail", HTTP_ACCEPT="image/jpeg").status_code == 200, series_url
            for instance in walk(client, f"{series_url}/instances"):
                url = f"{series_url}/instances/{value(instance, '00080018')}"
                for part, accept in (
                    ("/metadata", "application/dicom+json"),
                    # As stored: transcoding to the default syntax is a different question from "can it be found".
                    ("", 'multipart/related; type="application/dicom"; transfer-syntax=*'),
                    ("/frames/1", 'multipart/related; type="application/octet-stream"; transfer-syntax=*'),
                    ("/rendered", "image/png"),
                    ("/thumbnail", "image/jpeg"),
                ):
                    response = client.get(url + part, HTTP_ACCEPT=accept)
                    assert response.status_code == 200, (url + part, response.status_code, response.content[:300])
                    assert b"".join(response.streaming_content) if response.streaming else response.content
                retrieved += 1

    assert retrieved == Instance.objects.count() > 40
    assert Study.objects.filter(study_instance_uid__startswith="2.25.").exists()
    assert Series.objects.count() == len({s.series_instance_uid for s in Series.objects.all()})
