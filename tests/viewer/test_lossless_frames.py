"""Frames go out JPEG-LS lossless by default: same pixels, fewer bytes, negotiated by Accept, cached once."""

from __future__ import annotations

import logging
from pathlib import Path

import libjpeg
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.factories import admin_user
from viewer.dicomweb import delivery
from viewer.dicomweb.multipart import parse_multipart
from viewer.models import Instance
from viewer.services import frame_codecs, image_cache
from viewer.services.dicom_import import import_paths

pytestmark = pytest.mark.django_db

NATIVE = "1.2.840.10008.1.2.1"
JLS = "1.2.840.10008.1.2.4.80"
ANY_SYNTAX = "multipart/related; type=application/octet-stream; transfer-syntax=*"
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


def write_image(
    path: Path,
    frames: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    modality: str = "OT",
    bits_stored: int | None = None,
) -> Path:
    """Write frames (frames x rows x columns [x 3]) as an uncompressed DICOM file; return its path."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "RB-LOSSLESS", "Lossless^Test", modality
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if frames.dtype.kind == "i" else 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def ct_with_negative_values(rng: np.random.Generator) -> np.ndarray:
    """A signed 16-bit CT slice stored in HU (intercept 0): air at -1000, fat below zero, bone above."""
    hu = np.full((1, 96, 96), -1000, dtype=np.int16)
    hu[0, 10:86, 10:86] = -100
    hu[0, 30:70, 30:70] = 40
    hu[0, 45:50, 45:50] = 1200
    return (hu + rng.normal(0, 12, hu.shape)).astype(np.int16)


SAMPLES = {
    "signed 16-bit CT with negative values": lambda rng: (ct_with_negative_values(rng), "MONOCHROME2", None),
    "unsigned 16-bit MR (12 bits stored)": lambda rng: (
        rng.integers(0, 4096, (1, 80, 72)).astype(np.uint16),
        "MONOCHROME2",
        12,
    ),
    "8-bit RGB": lambda rng: (rng.integers(0, 256, (1, 40, 56, 3)).astype(np.uint8), "RGB", None),
    "multi-frame unsigned 16-bit": lambda rng: (
        rng.integers(0, 60000, (3, 32, 48)).astype(np.uint16),
        "MONOCHROME2",
        None,
    ),
}


def imported(path: Path) -> Instance:
    import_paths([path])
    return Instance.objects.select_related("series__study").get(sop_instance_uid=pydicom.dcmread(path).SOPInstanceUID)


def parts_of(response) -> list[tuple[dict[str, str], bytes]]:
    params = dict(part.strip().split("=", 1) for part in response["Content-Type"].split(";")[1:] if "=" in part)
    return parse_multipart(response.content, boundary=params["boundary"].strip('"'))


def frame_url(instance: Instance, frames: str = "1") -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/{frames}"
    )


def decode_jls(payload: bytes, *, like: np.ndarray) -> np.ndarray:
    """Decode a JPEG-LS codestream with libjpeg (a decoder independent of the CharLS encoder),
    reading the samples with the sign of the stored pixels."""
    decoded = libjpeg.decode(bytes(payload))
    return decoded.view(like.dtype).reshape(like.shape)


@pytest.mark.parametrize("kind", SAMPLES)
def test_default_frames_are_jpeg_ls_and_decode_to_exactly_the_stored_pixels(admin_client, tmp_path, kind):
    frames, photometric, bits_stored = SAMPLES[kind](np.random.default_rng(7))
    instance = imported(write_image(tmp_path / "image.dcm", frames, photometric=photometric, bits_stored=bits_stored))
    numbers = ",".join(str(k) for k in range(1, len(frames) + 1))

    response = admin_client.get(frame_url(instance, numbers), HTTP_ACCEPT=ANY_SYNTAX)

    assert response.status_code == 200
    parts = parts_of(response)
    assert [headers["content-type"] for headers, _ in parts] == [f"image/jls; transfer-syntax={JLS}"] * len(frames)
    for (_, payload), expected in zip(parts, frames, strict=True):
        assert np.array_equal(decode_jls(payload, like=expected), expected)
        if expected.nbytes > 8000:
            assert len(payload) < expected.nbytes


def test_native_pixels_stay_available_by_their_transfer_syntax(admin_client, tmp_path):
    frames = ct_with_negative_values(np.random.default_rng(1))
    instance = imported(write_image(tmp_path / "ct.dcm", frames))

    response = admin_client.get(
        frame_url(instance), HTTP_ACCEPT=f"multipart/related; type=application/octet-stream; transfer-syntax={NATIVE}"
    )

    ((headers, payload),) = parts_of(response)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={NATIVE}"
    assert np.array_equal(np.frombuffer(payload, "<i2").reshape(96, 96), frames[0])


def test_jpeg_ls_can_be_asked_for_by_media_type_or_transfer_syntax(admin_client, tmp_path):
    instance = imported(write_image(tmp_path / "ct.dcm", ct_with_negative_values(np.random.default_rng(2))))
    for accept in (
        'multipart/related; type="image/jls"',
        f"multipart/related; type=application/octet-stream; transfer-syntax={JLS}",
    ):
        response = admin_client.get(frame_url(instance), HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept
        assert f"transfer-syntax={JLS}" in response.content.split(b"\r\n\r\n")[0].decode()


def test_a_transfer_syntax_we_cannot_produce_gets_406_naming_what_we_can(admin_client, tmp_path):
    instance = imported(write_image(tmp_path / "ct.dcm", ct_with_negative_values(np.random.default_rng(3))))

    response = admin_client.get(
        frame_url(instance), HTTP_ACCEPT="multipart/related; type=image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"
    )

    assert response.status_code == 406
    detail = response.json()["detail"]
    assert NATIVE in detail and JLS in detail


@pytest.mark.parametrize("name", ["rtdose.dcm"])
def test_an_image_jpeg_ls_cannot_carry_goes_out_native_with_its_transfer_syntax(admin_client, name):
    instance = imported(TEST_FILES / name)  # 32-bit dose grid, 15 frames

    response = admin_client.get(frame_url(instance), HTTP_ACCEPT=ANY_SYNTAX)

    assert response.status_code == 200
    ((headers, payload),) = parts_of(response)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={NATIVE}"
    assert len(payload) == 10 * 10 * 4


def test_palette_colour_goes_out_native(admin_client, tmp_path):
    frames = np.random.default_rng(4).integers(0, 256, (1, 16, 16)).astype(np.uint8)
    path = write_image(tmp_path / "palette.dcm", frames, photometric="PALETTE COLOR")
    ds = pydicom.dcmread(path)
    for offset in (1, 2, 3):  # red, green, blue: descriptor (0028,110x) and data (0028,120x)
        ds.add_new((0x0028, 0x1100 + offset), "US", [256, 0, 8])
        ds.add_new((0x0028, 0x1200 + offset), "OW", bytes(range(256)) * 2)
    ds.save_as(path, enforce_file_format=True)
    instance = imported(path)

    assert not delivery.can_send_lossless(instance)
    response = admin_client.get(frame_url(instance), HTTP_ACCEPT=ANY_SYNTAX)
    assert f"transfer-syntax={NATIVE}" in response.content.split(b"\r\n\r\n")[0].decode()


def test_a_frame_is_encoded_once_and_then_served_from_the_cache(admin_client, tmp_path, monkeypatch):
    instance = imported(write_image(tmp_path / "ct.dcm", ct_with_negative_values(np.random.default_rng(5))))
    first = delivery.lossless_frame(instance, frame_number=1)
    image_cache.clear_process_cache()
    monkeypatch.setattr(frame_codecs, "encode_lossless", lambda *a, **k: pytest.fail("encoded a second time"))

    assert delivery.lossless_frame(instance, frame_number=1) == first


def test_a_damaged_cached_encoding_is_detected_rebuilt_and_never_served(admin_client, tmp_path, caplog):
    frames = ct_with_negative_values(np.random.default_rng(6))
    instance = imported(write_image(tmp_path / "ct.dcm", frames))
    delivery.lossless_frame(instance, frame_number=1)
    key = delivery.frame_key(instance, 1)
    cached_file = image_cache._disk_path(delivery.LOSSLESS_CACHE, key)
    damaged = bytearray(cached_file.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    cached_file.write_bytes(bytes(damaged[:-10]) if len(damaged) % 2 else bytes(damaged))
    image_cache.clear_process_cache()

    with caplog.at_level(logging.WARNING, logger="viewer.dicomweb.delivery"):
        response = admin_client.get(frame_url(instance), HTTP_ACCEPT=ANY_SYNTAX)

    ((_, payload),) = parts_of(response)
    assert np.array_equal(decode_jls(payload, like=frames[0]), frames[0])
    assert "rebuilding damaged JPEG-LS frame" in caplog.text
    assert frame_codecs.unseal(cached_file.read_bytes()) == payload


def test_warming_a_series_encodes_every_frame_ahead_of_the_first_reader(tmp_path):
    frames = np.random.default_rng(8).integers(0, 4000, (4, 32, 32)).astype(np.uint16)
    instance = imported(write_image(tmp_path / "mf.dcm", frames))

    built = delivery.warm_series(instance.series)

    assert built["failed"] == 0
    assert all(image_cache.contains(delivery.LOSSLESS_CACHE, delivery.frame_key(instance, k)) for k in range(1, 5))


@pytest.mark.parametrize(
    "damage",
    [lambda sealed: sealed[:-1], lambda sealed: sealed[:8] + b"\0" + sealed[9:], lambda sealed: b"XXXX" + sealed[4:]],
)
def test_a_sealed_encoding_rejects_truncation_bit_flips_and_a_foreign_header(damage):
    sealed = frame_codecs.seal(b"\x01\x02\x03" * 100)

    with pytest.raises(frame_codecs.DamagedEncodingError):
        frame_codecs.unseal(damage(sealed))
