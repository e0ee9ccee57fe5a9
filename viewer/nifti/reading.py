"""Load a NIfTI-1 or NIfTI-2 file (plain or gzipped) as one checked 3-D volume, or refuse it with the reason.

The file is recognised by its `.nii` / `.nii.gz` name or, without such a name (console uploads,
zip members), by its header. nibabel parses it; this module only decides what the platform
accepts: a readable, complete, 3-D (trailing singleton axes allowed) volume of real numbers whose
affine is a proper orientation. The content digest that names the series comes from here. It
must never write files or touch the database.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from viewer.nifti.geometry import check_affine

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# A 3-D volume bigger than this (uncompressed) is refused before it is read: 2 GiB is a 1024^3 int16 volume.
MAX_VOXEL_BYTES = 2 * 1024**3
_GZIP_MAGIC = b"\x1f\x8b"


class NiftiError(ValueError):
    """A NIfTI file that cannot be imported; the message is the reason shown to the user."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class NiftiVolume:
    """One 3-D NIfTI volume: voxels as stored [i, j, k], the scaling to real values, and the RAS affine.

    Real-world value = stored * slope + intercept (NIfTI's scl_slope / scl_inter; 1 and 0 when unset).
    `content_sha256` digests the uncompressed file, so the same image gzipped or not is the same volume.
    """

    name: str
    stored: np.ndarray
    slope: float
    intercept: float
    affine_ras: np.ndarray
    content_sha256: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.stored.shape)  # type: ignore[return-value]

    @property
    def voxel_sizes_mm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine_ras[:3, :3], axis=0))  # type: ignore[return-value]

    def real_values(self) -> np.ndarray:
        """Return the voxels in real-world units (integers stay integers when the scaling is an identity)."""
        if self.slope == 1.0 and self.intercept == 0.0:
            return self.stored
        return self.stored.astype(np.float64) * self.slope + self.intercept


def has_nifti_name(path: Path | str) -> bool:
    """True when the file is named like a single-file NIfTI (`.nii` or `.nii.gz`, any case)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(name: str) -> str:
    """Return a file name without its folder and its `.nii` / `.nii.gz` suffix."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    lowered = base.lower()
    for suffix in (".nii.gz", ".nii"):
        if lowered.endswith(suffix):
            return base[: -len(suffix)]
    return base


def looks_like_nifti(path: Path) -> bool:
    """True when the file starts like a single-file NIfTI-1 or NIfTI-2 header (gzipped or not)."""
    try:
        with open(path, "rb") as raw:
            start = raw.read(2)
            raw.seek(0)
            if start == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=raw) as unzipped:
                    header = unzipped.read(548)
            else:
                header = raw.read(548)
    except (OSError, EOFError, zlib.error):
        return False
    return _header_kind(header) is not None


def _header_kind(header: bytes) -> str | None:
    """'nifti1' or 'nifti2' for a single-file header (any byte order), else None."""
    if len(header) >= 348 and header[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c") and header[344:348] == b"n+1\0":
        return "nifti1"
    if len(header) >= 540 and header[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c") and header[4:8] == b"n+2\0":
        return "nifti2"
    return None


def _read_uncompressed(path: Path, *, limit: int) -> bytes:
    """Return the whole uncompressed file, reading gzip to its end so a truncated stream is noticed."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        source = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            header = source.read(548)
            kind = _header_kind(header)
            if kind is None:
                raise NiftiError(_not_nifti_reason(header, gzipped))
            _check_declared_size(header, kind, limit)
            chunks = [header]
            while chunk := source.read(1 << 22):
                chunks.append(chunk)
        finally:
            if gzipped:
                source.close()
    return b"".join(chunks)


def _not_nifti_reason(header: bytes, gzipped: bool) -> str:
    if len(header) < 348 and header[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c", b"\x1c\x02\x00\x00"):
        return f"truncated or corrupt NIfTI: the header ends after {len(header)} bytes"
    if len(header) >= 348 and header[344:348] == b"ni1\0":
        return "not a single-file NIfTI: a .hdr/.img pair header (convert it to .nii first)"
    what = "gzip data" if gzipped else "file"
    return f"not NIfTI: the {what} has no NIfTI-1 or NIfTI-2 header"


def _check_declared_size(header: bytes, kind: str, limit: int) -> None:
    """Refuse more than one volume, or more voxels than we will hold, before reading them."""
    header_class = nib.Nifti1Header if kind == "nifti1" else nib.Nifti2Header
    try:
        parsed = header_class.from_fileobj(io.BytesIO(header), check=False)
        shape = parsed.get_data_shape()
        dtype = parsed.get_data_dtype()
    except (HeaderDataError, ValueError, TypeError) as error:
        raise NiftiError(f"corrupt NIfTI header: {_one_line(error)}") from None
    _check_dimensions(shape)
    size = int(np.prod([int(n) for n in shape], dtype=np.float64)) * dtype.itemsize
    if size > limit:
        raise NiftiError(f"too large: {size} bytes of voxels exceeds the limit of {limit}")


def _check_dimensions(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return the 3-D shape, refusing more than one volume (trailing singleton axes are fine)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise NiftiError(f"not an image: {len(shape)}-D data of shape {shape}")
    extra = shape[3:]
    if any(n != 1 for n in extra):
        raise NiftiError(
            f"not 3-D: a {len(shape)}-D NIfTI of shape {shape} where one 3-D volume was expected "
            "(split time series or multi-channel files into one volume per file)"
        )
    volume_shape = (*shape[:3], 1)[:3] if len(shape) == 2 else shape[:3]
    if any(n < 1 for n in volume_shape):
        raise NiftiError(f"empty volume of shape {shape}")
    return volume_shape


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def read_nifti(path: Path, *, name: str | None = None, max_voxel_bytes: int = MAX_VOXEL_BYTES) -> NiftiVolume:
    """Load and check one NIfTI volume; raise NiftiError with the reason when it cannot be imported."""
    name = name or str(path)
    try:
        content = _read_uncompressed(Path(path), limit=max_voxel_bytes)
    except NiftiError:
        raise
    except (EOFError, OSError, zlib.error) as error:
        raise NiftiError(f"truncated or corrupt NIfTI: {_one_line(error)}") from None
    image_class = nib.Nifti1Image if _header_kind(content[:548]) == "nifti1" else nib.Nifti2Image
    try:
        image = image_class.from_bytes(content)
        proxy = image.dataobj
        stored = np.asarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
        slope = float(getattr(proxy, "slope", 1.0))
        intercept = float(getattr(proxy, "inter", 0.0))
    except (HeaderDataError, ImageFileError, ValueError, OSError, EOFError, TypeError) as error:
        raise NiftiError(f"truncated or corrupt NIfTI: {_one_line(error)}") from None
    header = image.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        raise NiftiError("no orientation: sform_code and qform_code are both 0, so left and right are unknown")
    shape = _check_dimensions(stored.shape)
    stored = stored.reshape(shape)
    if stored.dtype.kind not in "biuf":
        raise NiftiError(f"unsupported voxel type: {stored.dtype} where real numbers were expected")
    if stored.dtype.kind == "b":
        stored = stored.astype(np.uint8)
    if stored.dtype.kind == "f" and not np.all(np.isfinite(stored)):
        count = int(np.size(stored) - np.count_nonzero(np.isfinite(stored)))
        raise NiftiError(f"non-finite voxels: {count} voxels are NaN or infinite")
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        raise NiftiError(f"unusable scaling: scl_slope {slope}, scl_inter {intercept}")
    affine = np.asarray(image.affine, dtype=np.float64)
    try:
        check_affine(affine)
    except ValueError as error:
        raise NiftiError(f"unusable affine: {error}") from None
    return NiftiVolume(
        name=name,
        stored=stored,
        slope=slope,
        intercept=intercept,
        affine_ras=affine,
        content_sha256=hashlib.sha256(content).hexdigest(),
    )
