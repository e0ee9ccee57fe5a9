"""File stores under the data dir: the local default behind STORAGES["dicom"], ["exports"] and ["default"].

The location follows `settings.DATA_DIR` at the moment of use rather than at import, so a
test (or a management command) that points DATA_DIR elsewhere gets its own files. This
module must never decide where production files live: that is settings.py's job (S3 when
READERBOARD_S3_BUCKET is set).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage


class DataDirStorage(FileSystemStorage):
    """A FileSystemStorage rooted at `settings.DATA_DIR / subdirectory`, resolved on every access."""

    def __init__(self, *, subdirectory: str = "", **kwargs) -> None:
        self.subdirectory = subdirectory
        super().__init__(**kwargs)

    @property
    def base_location(self) -> Path:  # type: ignore[override]
        return Path(settings.DATA_DIR) / self.subdirectory

    @property
    def location(self) -> str:  # type: ignore[override]
        return str(self.base_location.resolve())
