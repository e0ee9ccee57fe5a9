"""What every DICOM file Readerboard makes carries: its UID root and the same file meta (demo series, NIfTI imports).

Exports (SR, SEG) are written by highdicom, which makes its own file meta; they only take the UID root.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

READERBOARD_UID_ROOT = "1.2.826.0.1.3680043.10.1427."  # pydicom's org root with our own branch
IMPLEMENTATION_VERSION_NAME = "READERBOARD_01"


def new_file_dataset(path: Path, *, sop_class_uid: str, sop_instance_uid: str) -> FileDataset:
    """Return an empty dataset to be written to `path` as Explicit VR Little Endian, with our file meta."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = READERBOARD_UID_ROOT + "1"
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
