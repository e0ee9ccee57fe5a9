"""Pixel core: native bytes, VOI windowing against a NumPy reference, viewport and encoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from viewer.services.pixels import (
    PixelDescription,
    UndecodablePixelsError,
    Viewport,
    Window,
    apply_viewport,
    can_slice_native_frames,
    decode_frame,
    encode_image,
    encode_png,
    native_frame_bytes,
    parse_viewport,
    parse_window,
    render_frame,
    sliced_native_frame,
    voi_lut,
)


def reference_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 written out branch by branch, in float64."""
    x = x.astype(np.float64)
    out = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    out[x <= center - 0.5 - (width - 1) / 2] = 0.0
    out[x > center - 0.5 + (width - 1) / 2] = 255.0
    return out


def test_linear_window_matches_the_dicom_formula():
    values = np.arange(-1200, 1200, 0.5, dtype=np.float32)
    got = voi_lut(values, Window(center=40, width=400))
    assert np.allclose(got, reference_linear(values, 40, 400), atol=1e-3)


def test_linear_exact_window_maps_the_window_edges_to_black_and_white():
    got = voi_lut(np.array([-160.0, 40.0, 240.0]), Window(center=40, width=400, function="linear-exact"))
    assert got.tolist() == [0.0, 127.5, 255.0]


def test_sigmoid_window_is_half_grey_at_the_center():
    got = voi_lut(np.array([40.0]), Window(center=40, width=400, function="sigmoid"))
    assert got[0] == pytest.approx(127.5)


# No deadline: a loaded CI machine must not turn a slow example into a failure.
@settings(deadline=None)
@given(
    center=st.floats(-2000, 2000),
    width=st.floats(1, 5000),
    values=st.lists(st.floats(-4000, 4000), min_size=2, max_size=50),
)
def test_windowing_is_monotone_and_stays_in_0_255(center, width, values):
    x = np.sort(np.array(values, dtype=np.float32))
    out = voi_lut(x, Window(center=center, width=width))
    assert out.min() >= 0 and out.max() <= 255
    assert np.all(np.diff(out) >= -1e-3)


def test_rendered_ct_applies_rescale_then_window():
    stored = np.array([[0, 1024], [1064, 2048]], dtype=np.int16)  # HU = stored - 1024
    image = render_frame(
        stored, photometric_interpretation="MONOCHROME2", rescale_intercept=-1024.0, window=Window(40, 400)
    )
    expected = np.rint(reference_linear(stored.astype(np.float64) - 1024, 40, 400)).astype(np.uint8)
    assert np.array_equal(np.asarray(image), expected)


def test_monochrome1_is_inverted():
    frame = np.array([[0, 100]], dtype=np.uint16)
    image = render_frame(frame, photometric_interpretation="MONOCHROME1", window=Window(50, 80))
    assert np.asarray(image).tolist() == [[255, 0]]


def test_header_window_is_used_when_none_is_asked_for():
    frame = np.array([[0, 50, 100]], dtype=np.uint16)
    image = render_frame(frame, photometric_interpretation="MONOCHROME2", window_centers=[50.0], window_widths=[11.0])
    # ((50 - 49.5) / 10 + 0.5) * 255 = 140.25
    assert np.asarray(image).tolist() == [[0, 140, 255]]


def test_without_any_window_the_frame_range_spans_black_to_white():
    frame = np.array([[10, 20, 30]], dtype=np.uint16)
    image = render_frame(frame, photometric_interpretation="MONOCHROME2")
    assert np.asarray(image).tolist() == [[0, 128, 255]]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("40", "center,width"),
        ("a,400", "numbers"),
        ("40,0", "width"),
        ("40,400,cubic", "function"),
        ("nan,4", "finite"),
    ],
)
def test_bad_window_parameters_raise_value_error_naming_the_fault(text, named):
    with pytest.raises(ValueError, match=named):
        parse_window(text)


def test_window_parameter_parses_center_width_and_function():
    assert parse_window("40,400,linear") == Window(40.0, 400.0, "linear")
    assert parse_window("-600,1500") == Window(-600.0, 1500.0, "linear")


@pytest.mark.parametrize("text", ["512", "0,10", "10,10,0,0,0,5", "a,b", "9999,10"])
def test_bad_viewport_parameters_raise_value_error(text):
    with pytest.raises(ValueError, match="viewport"):
        parse_viewport(text)


def test_viewport_fits_the_image_keeping_its_aspect_ratio():
    image = Image.new("L", (200, 100))
    assert apply_viewport(image, Viewport(50, 50)).size == (50, 25)


def test_viewport_source_region_crops_before_scaling():
    pixels = np.zeros((100, 100), dtype=np.uint8)
    pixels[:50, :50] = 255
    image = apply_viewport(Image.fromarray(pixels), parse_viewport("10,10,0,0,50,50"))
    assert image.size == (10, 10)
    assert np.asarray(image).min() == 255


def test_native_bytes_are_little_endian_whatever_the_input_order():
    big = np.array([[1, 258]], dtype=">u2")
    assert native_frame_bytes(big) == b"\x01\x00\x02\x01"


def test_native_bytes_interleave_rgb_samples():
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (1, 2, 3)
    rgb[0, 1] = (4, 5, 6)
    assert native_frame_bytes(rgb) == bytes([1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize(("media_type", "magic"), [("image/png", b"\x89PNG"), ("image/jpeg", b"\xff\xd8")])
def test_encoded_images_decode_back_to_the_same_size(media_type, magic):
    image = Image.fromarray(np.arange(64 * 32, dtype=np.uint16).reshape(32, 64).astype(np.uint8))
    payload = encode_image(image, media_type=media_type)
    assert payload.startswith(magic)
    assert Image.open(io.BytesIO(payload)).size == (64, 32)


@pytest.mark.parametrize("shape", [(16, 16), (1, 1), (3, 7), (7, 3, 3), (512, 512)])
def test_png_is_lossless(shape):
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    payload = encode_image(Image.fromarray(pixels), media_type="image/png")
    decoded = Image.open(io.BytesIO(payload))
    decoded.load()  # Pillow checks every chunk's CRC while loading
    assert decoded.mode == ("RGB" if len(shape) == 3 else "L")
    assert np.array_equal(np.asarray(decoded), pixels)


def test_png_refuses_pixels_it_cannot_encode():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), dtype=np.uint16))


def _description_of(path) -> PixelDescription | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not every bundled file is DICOM
        return None
    if "Rows" not in ds or "BitsAllocated" not in ds or not hasattr(ds, "file_meta"):
        return None
    try:
        return _description(ds)
    except (TypeError, ValueError):  # e.g. NumberOfFrames '1A' in a deliberately broken file
        return None


def _description(ds) -> PixelDescription:
    return PixelDescription(
        rows=ds.Rows,
        columns=ds.Columns,
        samples_per_pixel=int(ds.get("SamplesPerPixel") or 1),
        bits_allocated=ds.BitsAllocated,
        bits_stored=int(ds.get("BitsStored") or ds.BitsAllocated),
        pixel_representation=int(ds.get("PixelRepresentation") or 0),
        photometric_interpretation=str(ds.get("PhotometricInterpretation") or ""),
        number_of_frames=int(ds.get("NumberOfFrames") or 1),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "")),
        planar_configuration=int(ds.get("PlanarConfiguration") or 0),
    )


def test_frames_sliced_from_uncompressed_files_equal_pydicom_decoding():
    import pydicom

    sliceable = []
    for path in sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm")):
        description = _description_of(path)
        if description is None or not can_slice_native_frames(description):
            continue
        last = description.number_of_frames - 1
        for index in {0, last}:
            try:
                expected = native_frame_bytes(decode_frame(path, frame_index=index))
            except UndecodablePixelsError:
                continue
            assert sliced_native_frame(path, description=description, frame_index=index) == expected, path.name
            sliceable.append(path.name)
    assert len(sliceable) >= 8


def _uncompressed_file(tmp_path: Path, *, trailing_element: bool) -> tuple[Path, PixelDescription, np.ndarray]:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 30
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 1
    ds.PixelData = frames.tobytes()
    if trailing_element:
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 8)  # Data Set Trailing Padding, after Pixel Data
    path = tmp_path / "frames.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, _description(pydicom.dcmread(path, stop_before_pixels=True)), frames


def test_a_frame_of_a_typical_file_is_read_without_parsing_the_header(tmp_path, monkeypatch):
    import pydicom

    path, description, frames = _uncompressed_file(tmp_path, trailing_element=False)
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: pytest.fail("the header was parsed"))
    assert sliced_native_frame(path, description=description, frame_index=2) == frames[2].tobytes()


def test_elements_after_pixel_data_fall_back_to_parsing_the_header(tmp_path):
    path, description, frames = _uncompressed_file(tmp_path, trailing_element=True)
    for index in range(3):
        assert sliced_native_frame(path, description=description, frame_index=index) == frames[index].tobytes()
