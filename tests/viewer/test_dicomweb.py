"""DICOMweb service: QIDO-RS search, WADO-RS metadata and frames, multipart framing, auth and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from rest_framework.authtoken.models import Token

from tests.factories import admin_user
from viewer.dicomweb.multipart import parse_multipart

pytestmark = pytest.mark.django_db

NATIVE = "1.2.840.10008.1.2.1"
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


def uids(series):
    instance = series.instances.order_by("sort_position_mm").first()
    return series.study.study_instance_uid, series.series_instance_uid, instance


def boundary_of(response) -> str:
    params = dict(part.strip().split("=", 1) for part in response["Content-Type"].split(";")[1:] if "=" in part)
    return params["boundary"].strip('"')


def test_anonymous_request_gets_401_json_and_no_images(client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    response = client.get(
        f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")


def test_drf_token_authenticates_a_request(client, small_ct_series):
    token = Token.objects.create(user=admin_user())
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200


def test_bad_token_gets_401(client, small_ct_series):
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401


def test_qido_studies_lists_the_study_with_counts(admin_client, small_ct_series):
    response = admin_client.get("/dicomweb/studies", {"PatientID": "RB-TEST-001"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    (study,) = response.json()
    assert study["0020000D"]["Value"] == [small_ct_series.study.study_instance_uid]
    assert study["00080061"]["Value"] == ["CT"]
    assert study["00201208"]["Value"] == [9]
    assert study["00100010"]["Value"] == [{"Alphabetic": "Test^Patient"}]


def test_qido_studies_filters_by_patient_id_wildcard_and_tag_form(admin_client, small_ct_series):
    assert len(admin_client.get("/dicomweb/studies", {"PatientID": "RB-TEST-*"}).json()) == 1
    assert admin_client.get("/dicomweb/studies", {"00100020": "nobody"}).json() == []


def test_qido_series_and_instances_of_a_study(admin_client, small_ct_series):
    study_uid, series_uid, _ = uids(small_ct_series)
    (series,) = admin_client.get(f"/dicomweb/studies/{study_uid}/series", {"Modality": "CT"}).json()
    assert series["0020000E"]["Value"] == [series_uid]
    assert series["00201209"]["Value"] == [9]
    instances = admin_client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances").json()
    assert len(instances) == 9
    assert all(item["00280010"]["Value"] == [64] for item in instances)


def test_qido_limit_and_offset_page_the_results(admin_client, small_ct_series):
    study_uid, series_uid, _ = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances"
    everything = [i["00080018"]["Value"][0] for i in admin_client.get(url).json()]
    page = [i["00080018"]["Value"][0] for i in admin_client.get(url, {"limit": 3, "offset": 2}).json()]
    assert page == everything[2:5]


@pytest.mark.parametrize(
    ("params", "named"),
    [({"limit": "ten"}, "limit"), ({"offset": "-1"}, "offset"), ({"NotAKeyword": "x"}, "NotAKeyword")],
)
def test_malformed_qido_parameters_give_400_naming_the_parameter(admin_client, small_ct_series, params, named):
    response = admin_client.get("/dicomweb/studies", params)
    assert response.status_code == 400
    assert named in response.json()["detail"]


def test_qido_refuses_an_accept_type_it_cannot_produce_with_406(admin_client, small_ct_series):
    response = admin_client.get("/dicomweb/studies", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert "application/dicom+json" in response.json()["detail"]


def test_unknown_study_gives_404(admin_client, small_ct_series):
    response = admin_client.get("/dicomweb/studies/1.2.3.4/series")
    assert response.status_code == 404


def test_series_metadata_is_the_full_header_with_pixel_data_as_bulk_uri(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    response = admin_client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    documents = response.json()
    assert len(documents) == 9
    first = documents[0]
    assert first["00080018"]["Value"] == [instance.sop_instance_uid]  # reading order
    assert first["00280030"]["Value"] == [1.0, 1.0]  # PixelSpacing
    assert first["00281052"]["Value"] == [-1024]  # RescaleIntercept
    assert first["00280004"]["Value"] == ["MONOCHROME2"]
    pixel = first["7FE00010"]
    assert "Value" not in pixel and "InlineBinary" not in pixel
    assert pixel["BulkDataURI"].startswith("http://testserver/dicomweb/studies/")
    assert pixel["BulkDataURI"].endswith(f"/instances/{instance.sop_instance_uid}/bulkdata/7FE00010")


def test_series_metadata_answers_304_to_its_etag(admin_client, small_ct_series):
    study_uid, series_uid, _ = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata"
    first = admin_client.get(url)
    again = admin_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""


def test_frame_is_multipart_with_native_little_endian_pixels(admin_client, small_ct_series, small_ct_files):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"
    response = admin_client.get(url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"')
    assert response.status_code == 200
    assert response["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
    (part,) = parse_multipart(response.content, boundary=boundary_of(response))
    headers, payload = part
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={NATIVE}"
    expected = pydicom.dcmread(instance.absolute_path).pixel_array
    assert np.array_equal(np.frombuffer(payload, dtype="<i2").reshape(64, 64), expected)
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_frame_body_has_the_layout_cornerstone_wadors_parses(admin_client, small_ct_series):
    """Cornerstone finds the first '--' line, the 'Content-Type:' line and slices to the next boundary - 2."""
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"
    body = admin_client.get(
        url, HTTP_ACCEPT="multipart/related; type=application/octet-stream; transfer-syntax=*"
    ).content
    header_end = body.index(b"\r\n\r\n")
    header_lines = body[:header_end].decode().split("\r\n")
    boundary = next(line for line in header_lines if line.startswith("--"))
    content_type = next(line for line in header_lines if line.startswith("Content-Type:"))
    end = body.index(boundary.encode(), header_end + 4)
    pixel_data = body[header_end + 4 : end - 2]
    # Cornerstone asks for any transfer syntax and gets a whole JPEG-LS codestream (SOI ... EOI).
    assert pixel_data[:2] == b"\xff\xd8" and pixel_data[-2:] == b"\xff\xd9"
    assert "transfer-syntax=1.2.840.10008.1.2.4.80" in content_type


def test_several_frames_come_back_as_several_parts(admin_client):
    from viewer.models import Instance
    from viewer.services.dicom_import import import_paths

    import_paths([TEST_FILES / "rtdose.dcm"])
    instance = Instance.objects.get()
    series = instance.series
    url = (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/1,3"
    )
    response = admin_client.get(url)
    parts = parse_multipart(response.content, boundary=boundary_of(response))
    frames = pydicom.dcmread(instance.absolute_path).pixel_array
    assert [
        np.frombuffer(p, dtype=frames.dtype.newbyteorder("<")).reshape(frames.shape[1:]).tolist() for _, p in parts
    ] == [
        frames[0].tolist(),
        frames[2].tolist(),
    ]


def test_out_of_range_frame_gives_400_naming_the_range(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/2"
    response = admin_client.get(url)
    assert response.status_code == 400
    assert "frames 1..1" in response.json()["detail"]


def test_malformed_frame_list_gives_400(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/0,x"
    assert admin_client.get(url).status_code == 400


def test_frames_in_an_unavailable_transfer_syntax_give_406(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"
    response = admin_client.get(url, HTTP_ACCEPT='multipart/related; type="image/jp2"')
    assert response.status_code == 406
    assert "available" in response.json()["detail"]


def test_frame_answers_304_to_its_etag(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"
    etag = admin_client.get(url)["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert admin_client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_instance_metadata_is_one_document(admin_client, small_ct_series):
    study_uid, series_uid, instance = uids(small_ct_series)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/metadata"
    (document,) = json.loads(admin_client.get(url).content)
    assert document["00080018"]["Value"] == [instance.sop_instance_uid]


def import_test_file(name: str):
    from viewer.models import Instance
    from viewer.services.dicom_import import import_paths

    report = import_paths([TEST_FILES / name])
    return Instance.objects.get(sop_instance_uid=report.outcomes[0].sop_instance_uid)


def frame_url(instance, frames: str = "1") -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/{frames}"
    )


def test_ybr_jpeg_frames_are_decoded_to_interleaved_rgb_and_metadata_says_rgb(admin_client):
    instance = import_test_file("SC_rgb_jpeg_dcmtk.dcm")
    assert instance.photometric_interpretation.startswith("YBR")
    response = admin_client.get(frame_url(instance))
    ((headers, payload),) = parse_multipart(response.content, boundary=boundary_of(response))
    expected = pydicom.dcmread(instance.absolute_path).pixel_array  # pydicom converts YBR to RGB
    assert np.array_equal(np.frombuffer(payload, dtype=np.uint8).reshape(expected.shape), expected)
    (document,) = admin_client.get(frame_url(instance).rsplit("/frames", 1)[0] + "/metadata").json()
    assert document["00280004"]["Value"] == ["RGB"]
    assert document["00280006"]["Value"] == [0]
    assert document["00083002"]["Value"] == [instance.transfer_syntax_uid]


def test_stored_compressed_frame_is_sent_when_its_transfer_syntax_is_asked_for(admin_client):
    instance = import_test_file("SC_rgb_jpeg_dcmtk.dcm")
    syntax = instance.transfer_syntax_uid
    response = admin_client.get(
        frame_url(instance), HTTP_ACCEPT=f'multipart/related; type="image/jpeg"; transfer-syntax={syntax}'
    )
    assert response.status_code == 200
    ((headers, payload),) = parse_multipart(response.content, boundary=boundary_of(response))
    assert headers["content-type"] == f"image/jpeg; transfer-syntax={syntax}"
    assert payload[:2] == b"\xff\xd8"  # a JPEG stream, as stored


def test_planar_rgb_rle_frames_are_interleaved(admin_client):
    instance = import_test_file("SC_rgb_rle_2frame.dcm")
    response = admin_client.get(frame_url(instance, "2"))
    ((_, payload),) = parse_multipart(response.content, boundary=boundary_of(response))
    expected = pydicom.dcmread(instance.absolute_path).pixel_array[1]
    assert np.array_equal(np.frombuffer(payload, dtype=np.uint8).reshape(expected.shape), expected)
