"""Image delivery: cached native frames, stored frames, rendered images and metadata documents.

Builds the bytes the DICOMweb views send, through viewer.services.image_cache so
that a frame is decoded once and a metadata document is built once per series
version. Cache keys are made of UIDs and request parameters only (UIDs are
immutable), which also makes them the strong ETags. This module must never decide
access (callers pass instances they already checked) nor shape HTTP responses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pydicom

from viewer.models import Instance, Series
from viewer.selectors import series_instances, series_version
from viewer.services import frame_codecs, image_cache
from viewer.services.dicom_json import instance_metadata, pixel_description
from viewer.services.pixels import (
    PixelDescription,
    UndecodablePixelsError,
    Viewport,
    Window,
    can_slice_native_frames,
    decode_frame,
    encode_image,
    native_frame_bytes,
    native_frame_size,
    render_frame,
    sliced_native_frame,
    stored_frame_bytes,
)
from viewer.services.stored_files import has_local_copy, local_location, local_path

logger = logging.getLogger(__name__)

# Metadata is cached with this stand-in for the service root and given the real one when served,
# so one cached document serves every host name the server is reached by.
BASE_URL_PLACEHOLDER = "{{readerboard-dicomweb-root}}"
THUMBNAIL_SIZE = 128


def strong_etag(*parts: str) -> str:
    """Return a strong ETag for content fully determined by `parts`."""
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def frame_key(instance: Instance, frame_number: int) -> str:
    return f"{instance.sop_instance_uid}/{frame_number}"


def check_frame_number(instance: Instance, frame_number: int) -> None:
    """Raise ValueError naming the range when a 1-based frame number is outside the instance."""
    if not 1 <= frame_number <= instance.number_of_frames:
        raise ValueError(
            f"frame {frame_number} is out of range: instance {instance.sop_instance_uid} "
            f"has frames 1..{instance.number_of_frames}"
        )


def native_frame(instance: Instance, *, frame_number: int) -> bytes:
    """Return frame `frame_number` (1-based) decoded to native little-endian bytes, cached.

    A frame sliced straight from an uncompressed file stays in memory only: writing
    512 KiB to the disk tier costs more on a cold request than slicing it again, and
    slicing a local file is a read like a disk-tier hit (the fast path does it on its loop).
    """
    check_frame_number(instance, frame_number)
    sliceable = can_slice_native_frames(pixel_description(instance))
    value, _ = image_cache.get_or_build(
        "frames",
        frame_key(instance, frame_number),
        lambda: _decode_native(instance, frame_number),
        persist=not sliceable,
        build_is_a_file_read=sliceable and has_local_copy(instance),
    )
    return value


def _decode_native(instance: Instance, frame_number: int) -> bytes:
    description = pixel_description(instance)
    if can_slice_native_frames(description):
        return sliced_native_frame(local_path(instance), description=description, frame_index=frame_number - 1)
    frame = decode_frame(local_path(instance), frame_index=frame_number - 1)
    return _checked_native_bytes(instance, frame)


def _checked_native_bytes(instance: Instance, frame: np.ndarray) -> bytes:
    description = pixel_description(instance)
    payload = native_frame_bytes(frame)
    expected = native_frame_size(description)
    if len(payload) != expected:
        raise UndecodablePixelsError(
            f"decoded frame has {len(payload)} bytes, expected {expected} for "
            f"{description.rows}x{description.columns}x{description.samples_per_pixel} "
            f"at {description.native_bits_allocated} bits"
        )
    return payload


def native_dtype(description: PixelDescription) -> np.dtype:
    """Return the NumPy dtype of the native frame bytes of an instance."""
    size = description.native_bits_allocated // 8
    kind = "i" if description.pixel_representation == 1 and description.bits_allocated > 1 else "u"
    return np.dtype(f"<{kind}{size}")


def native_frame_array(instance: Instance, *, frame_number: int) -> np.ndarray:
    """Return a frame as an array, from the native-bytes cache (decoding at most once)."""
    description = pixel_description(instance)
    payload = native_frame(instance, frame_number=frame_number)
    shape = (description.rows, description.columns)
    if description.samples_per_pixel > 1:
        shape += (description.samples_per_pixel,)
    return np.frombuffer(payload, dtype=native_dtype(description)).reshape(shape)


def stored_frame(instance: Instance, *, frame_number: int) -> bytes:
    """Return a frame's bytes in the stored (compressed) transfer syntax, cached."""
    check_frame_number(instance, frame_number)
    value, _ = image_cache.get_or_build(
        "stored-frames",
        frame_key(instance, frame_number),
        lambda: stored_frame_bytes(
            local_path(instance), frame_index=frame_number - 1, number_of_frames=instance.number_of_frames
        ),
    )
    return value


LOSSLESS_CACHE = "frames-jls"


def can_send_lossless(instance: Instance) -> bool:
    """Return whether the frames of an instance can go out JPEG-LS encoded (else they go native)."""
    return frame_codecs.can_encode_lossless(pixel_description(instance))


def lossless_frame(instance: Instance, *, frame_number: int) -> bytes:
    """Return a frame as a JPEG-LS lossless codestream, encoded once and cached in every tier.

    The cached value carries its length and CRC-32: a damaged entry is logged, rebuilt and
    replaced, never served. Raises ValueError when the instance cannot be encoded.
    """
    check_frame_number(instance, frame_number)
    key = frame_key(instance, frame_number)
    sealed = image_cache.get(LOSSLESS_CACHE, key)
    if sealed is not None:
        try:
            return frame_codecs.unseal(sealed)
        except frame_codecs.DamagedEncodingError as error:
            logger.warning("rebuilding damaged JPEG-LS frame %s: %s", key, error)
            image_cache.discard(LOSSLESS_CACHE, key)
    if image_cache.is_cached_only():
        raise image_cache.NotCachedError(f"{LOSSLESS_CACHE} {key} is not cached")
    payload = _encode_lossless(instance, frame_number)
    image_cache.put(LOSSLESS_CACHE, key, frame_codecs.seal(payload))
    return payload


def _encode_lossless(instance: Instance, frame_number: int) -> bytes:
    description = pixel_description(instance)
    frame = native_frame_array(instance, frame_number=frame_number)
    return frame_codecs.encode_lossless(frame, description=description)


def rendered_key(
    instance: Instance,
    *,
    frame_number: int,
    window: Window | None,
    viewport: Viewport | None,
    media_type: str,
    quality: int,
) -> str:
    return f"{frame_key(instance, frame_number)}|{window}|{viewport}|{media_type}|{quality}"


def rendered_frame(
    instance: Instance,
    *,
    frame_number: int,
    window: Window | None,
    viewport: Viewport | None,
    media_type: str,
    quality: int = 90,
) -> bytes:
    """Return a frame rendered to PNG or JPEG with the window and viewport asked for, cached."""
    key = rendered_key(
        instance, frame_number=frame_number, window=window, viewport=viewport, media_type=media_type, quality=quality
    )

    def build() -> bytes:
        frame = native_frame_array(instance, frame_number=frame_number)
        image = render_frame(
            frame,
            photometric_interpretation=pixel_description(instance).native_photometric_interpretation,
            rescale_slope=instance.rescale_slope,
            rescale_intercept=instance.rescale_intercept,
            window=window,
            window_centers=instance.window_centers,
            window_widths=instance.window_widths,
            viewport=viewport,
        )
        return encode_image(image, media_type=media_type, quality=quality)

    value, _ = image_cache.get_or_build("rendered", key, build)
    return value


def instance_metadata_json(instance: Instance, *, study_uid: str, series_uid: str) -> bytes:
    """Return one instance's WADO-RS metadata as JSON bytes (with the root placeholder), cached."""
    url = f"{BASE_URL_PLACEHOLDER}/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}"

    def build() -> bytes:
        # Import writes the document beside the file (like Orthanc's DICOM-as-JSON attachment), so even a
        # cold cache answers without parsing the header; older stores get the sidecar on first use.
        sidecar = metadata_sidecar_path(instance)
        try:
            return sidecar.read_bytes()
        except FileNotFoundError:
            pass
        try:
            document = instance_metadata(
                local_path(instance), description=pixel_description(instance), instance_url=url
            )
        except (OSError, pydicom.errors.InvalidDicomError) as error:
            raise UndecodablePixelsError(
                f"stored file of {instance.sop_instance_uid} cannot be read: {error}"
            ) from None
        encoded = json.dumps(document, separators=(",", ":")).encode()
        _write_atomically(sidecar, encoded)
        return encoded

    value, _ = image_cache.get_or_build("instance-metadata", f"{instance.sop_instance_uid}|{url}", build)
    return value


def metadata_sidecar_path(instance: Instance) -> Path:
    """Where an instance's WADO-RS metadata document (with the root placeholder) is kept beside its local file."""
    return local_location(instance).with_suffix(".metadata.json")


def write_metadata_sidecar(instance: Instance) -> None:
    """Build and keep an instance's metadata document now (called by import), unless it exists."""
    study_uid = instance.series.study.study_instance_uid
    instance_metadata_json(instance, study_uid=study_uid, series_uid=instance.series.series_instance_uid)


def keep_metadata_on_import(sender, *, instance: Instance, **kwargs) -> None:
    """Receiver of `dicom_import.instance_imported`: write the metadata document; never fail the import."""
    try:
        write_metadata_sidecar(instance)
    except Exception:  # noqa: BLE001 - the instance is imported; the document is rebuilt on first request
        logger.warning("metadata document of %s not written at import", instance.sop_instance_uid, exc_info=True)


def _write_atomically(path: Path, payload: bytes) -> None:
    partial = path.with_suffix(".partial-json")
    try:
        partial.write_bytes(payload)
        os.replace(partial, path)
    except OSError:
        # A read-only or full store still answers from the freshly built document.
        logger.warning("could not keep metadata sidecar %s", path, exc_info=True)
        partial.unlink(missing_ok=True)


def series_metadata_json(series: Series, *, version: str | None = None) -> tuple[bytes, str]:
    """Return (JSON array of every instance's metadata in reading order, version), cached per series version."""
    version = version or series_version(series=series)
    study_uid = series.study.study_instance_uid

    def build() -> bytes:
        parts = [
            instance_metadata_json(instance, study_uid=study_uid, series_uid=series.series_instance_uid)
            for instance in series_instances(series=series)
        ]
        return b"[" + b",".join(parts) + b"]"

    value, _ = image_cache.get_or_build("series-metadata", f"{series.series_instance_uid}|{version}", build)
    return value, version


def with_base_url(document: bytes, base_url: str) -> bytes:
    """Return a cached metadata document with the service root filled in."""
    return document.replace(BASE_URL_PLACEHOLDER.encode(), base_url.encode())


def thumbnail_instance(series: Series) -> Instance | None:
    """Return the instance a series' thumbnail shows: the middle one in reading order."""
    instances = series_instances(series=series)
    return instances[len(instances) // 2] if instances else None


def warm_series(series: Series) -> dict[str, int]:
    """Encode and cache every frame (JPEG-LS, as the viewer asks), the metadata and the thumbnail.

    Return counts of what was built. Frames of compressed files are also kept decoded on
    disk (decoding them is the expensive part); frames sliced from uncompressed files are not,
    since slicing a local file costs as much as reading a cache file.
    """
    built = {"frames": 0, "frames_cached": 0, "thumbnails": 0, "failed": 0}
    series_metadata_json(series)
    for instance in series_instances(series=series):
        description = pixel_description(instance)
        encodable = frame_codecs.can_encode_lossless(description)
        keep_native = not can_slice_native_frames(description)
        for frame_number in range(1, instance.number_of_frames + 1):
            key = frame_key(instance, frame_number)
            native_done = not keep_native or image_cache.contains("frames", key)
            lossless_done = not encodable or image_cache.contains(LOSSLESS_CACHE, key)
            if native_done and lossless_done:
                built["frames_cached"] += 1
                continue
            try:
                if not native_done:
                    image_cache.put("frames", key, native_frame(instance, frame_number=frame_number))
                if not lossless_done:
                    lossless_frame(instance, frame_number=frame_number)
                built["frames"] += 1
            except (UndecodablePixelsError, ValueError):
                logger.warning("cannot warm frame %s of %s", frame_number, instance.sop_instance_uid, exc_info=True)
                built["failed"] += 1
    middle = thumbnail_instance(series)
    if middle is not None:
        try:
            series_thumbnail(series, media_type="image/jpeg")
            built["thumbnails"] += 1
        except UndecodablePixelsError:
            built["failed"] += 1
    return built


def series_thumbnail(series: Series, *, media_type: str) -> bytes:
    """Return a series thumbnail (the middle image, default window, fit in 128x128)."""
    middle = thumbnail_instance(series)
    if middle is None:
        raise LookupError(f"series {series.series_instance_uid} has no instances")
    frame_number = (middle.number_of_frames + 1) // 2
    return rendered_frame(
        middle,
        frame_number=frame_number,
        window=None,
        viewport=Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE),
        media_type=media_type,
        quality=85,
    )
