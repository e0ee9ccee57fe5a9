"""Round trip with Python's dicomweb-client against the live test server (token authentication)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from rest_framework.authtoken.models import Token

from tests.factories import admin_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dicomweb(live_server, small_ct_series) -> DICOMwebClient:
    token = Token.objects.create(user=admin_user())
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Token {token.key}"})


def test_search_finds_the_study_series_and_instances(dicomweb, small_ct_series):
    studies = dicomweb.search_for_studies(search_filters={"PatientID": "RB-TEST-001"})
    study_uid = studies[0]["0020000D"]["Value"][0]
    assert study_uid == small_ct_series.study.study_instance_uid
    series = dicomweb.search_for_series(study_uid)
    assert [s["0020000E"]["Value"][0] for s in series] == [small_ct_series.series_instance_uid]
    instances = dicomweb.search_for_instances(study_uid, small_ct_series.series_instance_uid, limit=4)
    assert len(instances) == 4


def test_series_metadata_loads_into_pydicom_datasets(dicomweb, small_ct_series):
    documents = dicomweb.retrieve_series_metadata(
        small_ct_series.study.study_instance_uid, small_ct_series.series_instance_uid
    )
    datasets = [pydicom.Dataset.from_json(document) for document in documents]
    assert len(datasets) == 9
    assert {ds.Rows for ds in datasets} == {64}
    assert datasets[0].PixelSpacing == [1.0, 1.0]


def test_frames_retrieved_by_the_client_equal_the_decoded_pixels(dicomweb, small_ct_series):
    instance = small_ct_series.instances.order_by("sort_position_mm")[4]
    (frame,) = dicomweb.retrieve_instance_frames(
        small_ct_series.study.study_instance_uid,
        small_ct_series.series_instance_uid,
        instance.sop_instance_uid,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    expected = pydicom.dcmread(instance.absolute_path).pixel_array
    assert np.array_equal(np.frombuffer(frame, dtype="<i2").reshape(64, 64), expected)


def test_rendered_frame_and_instance_retrieval_round_trip(dicomweb, small_ct_series):
    instance = small_ct_series.instances.order_by("sort_position_mm")[4]
    uids = (small_ct_series.study.study_instance_uid, small_ct_series.series_instance_uid, instance.sop_instance_uid)
    png = dicomweb.retrieve_instance_frames_rendered(
        *uids, frame_numbers=[1], media_types=("image/png",), params={"window": "40,400,linear"}
    )
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    dataset = dicomweb.retrieve_instance(*uids)
    assert dataset.SOPInstanceUID == instance.sop_instance_uid
    assert np.array_equal(dataset.pixel_array, pydicom.dcmread(instance.absolute_path).pixel_array)
