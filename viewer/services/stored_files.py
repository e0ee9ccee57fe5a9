"""Stored DICOM files: where an instance's bytes are kept, and a local path to read them from.

Import keeps every instance in `storages["dicom"]` (the data dir by default, an
S3-compatible bucket in a multi-machine deployment). Everything that parses pixels or
headers needs a file on this machine: `local_path` is the one way to get it. On the
filesystem store it is the stored file itself; on object storage the object is downloaded
once into DATA_DIR/cache/objects/<sop>.dcm (atomically, so a concurrent reader never sees a
half file) and that copy is read from then on. Objects are immutable (a SOP Instance UID
names one object for ever), so a cached copy never goes stale. This module must never decide
where the store is (settings.py does) nor who may read an instance.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from viewer.models import Instance


def dicom_store() -> Storage:
    return storages["dicom"]


def is_local_store() -> bool:
    """Whether instances are files on this machine's filesystem (the default) rather than remote objects."""
    return isinstance(dicom_store(), FileSystemStorage)


def local_location(instance: Instance) -> Path:
    """Where an instance's local file is or will be, without fetching anything.

    Sidecars (e.g. the metadata document) are kept beside it with another suffix.
    """
    store = dicom_store()
    if isinstance(store, FileSystemStorage):
        return Path(store.path(instance.file_path))
    return object_cache_dir() / f"{instance.sop_instance_uid}.dcm"


def has_local_copy(instance: Instance) -> bool:
    """Whether reading an instance needs no download (a filesystem store, or an object fetched before)."""
    return is_local_store() or local_location(instance).is_file()


def local_path(instance: Instance) -> Path:
    """A readable local file holding an instance's stored bytes (downloaded once from object storage)."""
    location = local_location(instance)
    if has_local_copy(instance):
        return location
    location.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{location.name}.", suffix=".part", dir=location.parent)
    try:
        with os.fdopen(descriptor, "wb") as target, dicom_store().open(instance.file_path, "rb") as source:
            shutil.copyfileobj(source, target, length=1024 * 1024)
        os.replace(name, location)
    finally:
        Path(name).unlink(missing_ok=True)
    return location


def object_cache_dir() -> Path:
    return Path(settings.DATA_DIR) / "cache" / "objects"


def upload(*, name: str, source: Path, sop_instance_uid: str) -> None:
    """Keep a finished local file as object `name` in the remote store, then as this machine's cached copy.

    An object already under that name is a leftover of an interrupted import of the same
    instance (no record points at it): it is replaced, never saved beside under another name.
    """
    store = dicom_store()
    if store.exists(name):
        store.delete(name)
    with open(source, "rb") as handle:
        saved = store.save(name, File(handle, name=Path(name).name))
    if saved != name:
        store.delete(saved)
        raise OSError(f"object storage kept {name} as {saved}")
    # The finished file becomes this machine's cached copy, saving the first reader a download.
    cached = object_cache_dir() / f"{sop_instance_uid}.dcm"
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, cached)
    except OSError:
        source.unlink(missing_ok=True)  # the object is stored; the copy is only a cache


def delete(*, name: str) -> None:
    """Remove an object from the remote store (undoing an upload whose record did not survive)."""
    dicom_store().delete(name)
