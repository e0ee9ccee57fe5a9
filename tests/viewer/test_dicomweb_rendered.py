"""Rendered images, thumbnails, cache warming and pydicom's bundled test images over DICOMweb."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.factories import admin_user
from viewer.models import Instance
from viewer.services import image_cache
from viewer.services.dicom_import import import_paths

pytestmark = pytest.mark.django_db

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


def instance_url(instance: Instance) -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )


def middle_instance(series) -> Instance:
    return series.instances.order_by("sort_position_mm")[4]


def decoded(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)))


def reference_render(instance: Instance, center: float, width: float) -> np.ndarray:
    hu = pydicom.dcmread(instance.absolute_path).pixel_array.astype(np.float64) * instance.rescale_slope
    hu += instance.rescale_intercept
    out = np.clip((hu - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255
    return np.rint(out).astype(np.uint8)


@pytest.mark.parametrize("window", [(40, 400), (-600, 1500), (300, 50)])
def test_rendered_png_frame_matches_a_numpy_reference_of_the_window(admin_client, small_ct_series, window):
    instance = middle_instance(small_ct_series)
    response = admin_client.get(
        instance_url(instance) + "/frames/1/rendered",
        {"window": f"{window[0]},{window[1]},linear"},
        HTTP_ACCEPT="image/png",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert np.array_equal(decoded(response), reference_render(instance, *window))


def test_changing_the_window_changes_the_rendered_pixels(admin_client, small_ct_series):
    url = instance_url(middle_instance(small_ct_series)) + "/rendered"
    soft = decoded(admin_client.get(url, {"window": "40,400", "accept": "image/png"}))
    lung = decoded(admin_client.get(url, {"window": "-600,1500", "accept": "image/png"}))
    assert not np.array_equal(soft, lung)
    # Air (-1000 HU) is black in a soft-tissue window but not in a lung window.
    assert soft.min() == 0 and lung[0, 0] > soft[0, 0]


def test_rendered_defaults_to_jpeg_and_to_the_header_window(admin_client, small_ct_series):
    instance = middle_instance(small_ct_series)
    response = admin_client.get(instance_url(instance) + "/rendered")
    assert response["Content-Type"] == "image/jpeg"
    reference = reference_render(instance, instance.window_centers[0], instance.window_widths[0])
    assert np.abs(decoded(response).astype(int) - reference).mean() < 3  # JPEG is lossy


def test_viewport_scales_the_rendered_image(admin_client, small_ct_series):
    url = instance_url(middle_instance(small_ct_series)) + "/rendered"
    response = admin_client.get(url, {"viewport": "32,32", "accept": "image/png"})
    assert decoded(response).shape == (32, 32)


@pytest.mark.parametrize(
    ("params", "named"),
    [({"window": "40"}, "window"), ({"viewport": "0,10"}, "viewport"), ({"quality": "0"}, "quality")],
)
def test_bad_rendering_parameters_give_400_naming_them(admin_client, small_ct_series, params, named):
    response = admin_client.get(instance_url(middle_instance(small_ct_series)) + "/rendered", params)
    assert response.status_code == 400
    assert named in response.json()["detail"]


def test_rendered_in_an_unsupported_type_gives_406(admin_client, small_ct_series):
    response = admin_client.get(instance_url(middle_instance(small_ct_series)) + "/rendered", HTTP_ACCEPT="image/gif")
    assert response.status_code == 406


def test_rendered_etag_gives_304_and_changes_with_the_window(admin_client, small_ct_series):
    url = instance_url(middle_instance(small_ct_series)) + "/rendered"
    first = admin_client.get(url, {"window": "40,400"})
    assert admin_client.get(url, {"window": "40,400"}, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    other = admin_client.get(url, {"window": "40,401"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200 and other["ETag"] != first["ETag"]


def test_series_thumbnail_is_a_small_image_of_the_middle_slice(admin_client, small_ct_series):
    series = small_ct_series
    dicomweb = admin_client.get(
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/thumbnail"
    )
    api = admin_client.get(f"/api/images/series/{series.pk}/thumbnail", HTTP_ACCEPT="image/png")
    assert dicomweb["Content-Type"] == "image/jpeg" and api["Content-Type"] == "image/png"
    assert max(decoded(api).shape) <= 128
    assert decoded(api).shape == decoded(dicomweb).shape


def test_instance_retrieval_returns_the_stored_file_in_a_multipart(admin_client, small_ct_series):
    from viewer.dicomweb.multipart import parse_multipart

    instance = middle_instance(small_ct_series)
    response = admin_client.get(instance_url(instance), HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    boundary = response["Content-Type"].split("boundary=")[1].split(";")[0]
    ((headers, payload),) = parse_multipart(body, boundary=boundary)
    assert headers["content-type"].startswith("application/dicom")
    assert payload == instance.absolute_path.read_bytes()


def test_compressed_instance_is_decompressed_when_explicit_little_endian_is_asked_for(admin_client):
    from viewer.dicomweb.multipart import parse_multipart

    import_paths([TEST_FILES / "MR_small_RLE.dcm"])
    instance = Instance.objects.get()
    response = admin_client.get(
        instance_url(instance),
        HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1',
    )
    body = b"".join(response.streaming_content)
    boundary = response["Content-Type"].split("boundary=")[1].split(";")[0]
    ((_, payload),) = parse_multipart(body, boundary=boundary)
    ds = pydicom.dcmread(io.BytesIO(payload))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(instance.absolute_path).pixel_array)


def test_warm_task_encodes_every_frame_so_the_first_request_is_a_cache_hit(small_ct_series):
    from viewer.dicomweb.delivery import LOSSLESS_CACHE, frame_key
    from viewer.tasks import warm_series_cache

    result = warm_series_cache.delay(small_ct_series.pk).get()
    assert result["frames"] == 9 and result["failed"] == 0
    assert all(image_cache.contains(LOSSLESS_CACHE, frame_key(i, 1)) for i in small_ct_series.instances.all())
    again = warm_series_cache.delay(small_ct_series.pk).get()
    assert again["frames"] == 0 and again["frames_cached"] == 9


def test_undecodable_pixels_give_422_json_not_500(admin_client, small_ct_series, caplog):
    instance = middle_instance(small_ct_series)
    instance.absolute_path.write_bytes(instance.absolute_path.read_bytes()[:2000])  # truncate the stored file
    image_cache.clear_process_cache()
    response = admin_client.get(instance_url(instance) + "/frames/1")
    assert response.status_code == 422
    assert response.json()["error"] == "undecodable_pixel_data"
    assert "undecodable pixel data" in caplog.text


def test_every_bundled_pydicom_image_renders_or_answers_a_clear_error(admin_client):
    report = import_paths(sorted(TEST_FILES.glob("*.dcm")))
    assert report.imported >= 25  # the others are not images or repeat a SOP Instance UID
    problems = []
    for instance in Instance.objects.all():
        for suffix in ("/frames/1/rendered", "/frames/1", "/metadata"):
            response = admin_client.get(instance_url(instance) + suffix, HTTP_ACCEPT="*/*")
            if response.status_code == 422:
                assert response.json()["detail"], instance.file_path
            elif response.status_code != 200:
                problems.append((instance.file_path, suffix, response.status_code))
        rendered = admin_client.get(instance_url(instance) + "/rendered", {"accept": "image/png"})
        if rendered.status_code == 200:
            image = Image.open(io.BytesIO(rendered.content))
            assert image.size == (instance.columns, instance.rows)
    assert problems == []
