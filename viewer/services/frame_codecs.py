"""Lossless frame encoding for the wire: JPEG-LS of the native frames the viewer decodes.

A 512x512 CT frame is 512 KiB native; JPEG-LS lossless (1.2.840.10008.1.2.4.80) brings it to
about a third on CT (measured against JPEG 2000 lossless, HTJ2K lossless and RLE in
benchmarks/README.md), and Cornerstone's dicom-image-loader decodes it in its web workers
(CharLS). Encoding goes through pydicom's encoder interface and its pyjpegls plugin, never a
hand-written codec. Encoded frames are sealed with their length and a CRC-32, so a damaged
cache entry is detected and rebuilt instead of being served.

This module is pure: arrays and descriptions in, bytes out. It must never touch the database,
the cache or HTTP; viewer.dicomweb.delivery decides when to encode and where to keep the result.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from pydicom.pixels import get_encoder
from pydicom.uid import JPEGLSLossless

from viewer.services.pixels import PixelDescription

LOSSLESS_TRANSFER_SYNTAX = str(JPEGLSLossless)
LOSSLESS_MEDIA_TYPE = "image/jls"
# Colour spaces a JPEG-LS frame can carry unchanged; palette colour needs its LUT and stays native.
ENCODABLE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB"}
_SEAL_MAGIC = b"RBJ1"
_SEAL_HEADER = struct.Struct("<4sII")  # magic, payload length, CRC-32 of the payload


class DamagedEncodingError(ValueError):
    """A sealed encoding whose length or checksum does not match its payload."""


def can_encode_lossless(description: PixelDescription) -> bool:
    """Return whether native frames of this description can go out as JPEG-LS lossless.

    Only 8- and 16-bit monochrome or RGB frames: 1-bit, 32-bit and float pixels and palette
    colour are served native, with their own transfer syntax.
    """
    return (
        description.native_bits_allocated in (8, 16)
        and description.bits_allocated != 1
        and description.native_photometric_interpretation in ENCODABLE_PHOTOMETRIC
        and description.samples_per_pixel in (1, 3)
        and description.rows >= 1
        and description.columns >= 1
    )


def encode_lossless(frame: np.ndarray, *, description: PixelDescription) -> bytes:
    """Return a native frame (rows x columns [x samples]) as a JPEG-LS lossless codestream.

    Signed frames are encoded as their full 16-bit two's-complement patterns (pixel
    representation 1, 16 bits stored), so a decoder that reads them back as signed gets
    exactly the sign-extended values we serve natively, whatever Bits Stored says.
    Raises ValueError naming the reason when the frame cannot be encoded.
    """
    if not can_encode_lossless(description):
        raise ValueError(
            f"cannot encode {description.native_photometric_interpretation} frames of "
            f"{description.bits_allocated} bits as JPEG-LS"
        )
    bits = description.native_bits_allocated
    signed = description.pixel_representation == 1 and bits == 16
    expected_dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    pixels = np.ascontiguousarray(frame, dtype=expected_dtype) if frame.dtype != expected_dtype else frame
    if pixels.shape[:2] != (description.rows, description.columns):
        raise ValueError(f"frame is {pixels.shape}, expected {description.rows}x{description.columns}")
    encoder = get_encoder(JPEGLSLossless)
    return encoder.encode(
        np.ascontiguousarray(pixels),
        rows=description.rows,
        columns=description.columns,
        samples_per_pixel=description.samples_per_pixel,
        bits_allocated=bits,
        bits_stored=bits,
        pixel_representation=1 if signed else 0,
        photometric_interpretation=description.native_photometric_interpretation,
        number_of_frames=1,
        planar_configuration=0,
    )


def seal(payload: bytes) -> bytes:
    """Return the payload behind a header of its length and CRC-32 (for storing in a cache)."""
    return _SEAL_HEADER.pack(_SEAL_MAGIC, len(payload), zlib.crc32(payload)) + payload


def unseal(sealed: bytes) -> bytes:
    """Return the payload of a sealed value; raise DamagedEncodingError when it does not check out."""
    if len(sealed) < _SEAL_HEADER.size:
        raise DamagedEncodingError(f"sealed encoding of {len(sealed)} bytes is shorter than its header")
    magic, length, checksum = _SEAL_HEADER.unpack_from(sealed)
    payload = memoryview(sealed)[_SEAL_HEADER.size :]
    if magic != _SEAL_MAGIC:
        raise DamagedEncodingError("sealed encoding has no header")
    if len(payload) != length:
        raise DamagedEncodingError(f"sealed encoding holds {len(payload)} bytes, its header says {length}")
    if zlib.crc32(payload) != checksum:
        raise DamagedEncodingError("sealed encoding fails its CRC-32 check")
    return bytes(payload)
