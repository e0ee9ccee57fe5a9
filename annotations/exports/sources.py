"""What every export format needs to know about a case's source images and its readers.

Loads a series' instances once per export (anatomical order, slice indices,
DICOM headers without pixel data for highdicom) and names readers as the export
is allowed to name them. It must never read pixel data of the source images and
never reveal a reader's display name (or a team's name) unless the export was asked to identify them.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset

from annotations.core.geometry import FrameGeometry, frames_of_instance
from annotations.exports import sanitise
from annotations.models import Reader, Team
from viewer.models import Instance, Series
from viewer.services.stored_files import local_path

SOFTWARE_NAME = "Readerboard"


@functools.cache
def software_version() -> str:
    """Return Readerboard's package version, written into every DICOM file it makes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("readerboard")
    except PackageNotFoundError:  # running from a plain checkout
        return "0+unknown"


def reader_label(reader: Reader, *, pseudonymise: bool) -> str:
    """Return the name an export shows for a reader: the stable pseudonym unless identities were asked for."""
    return reader.pseudonym if pseudonymise else reader.display_name


def team_label(team: Team | None, *, identify: bool) -> str:
    """Return the name an export shows for a reader's team: its stable pseudonym unless team names were asked for."""
    if team is None:
        return ""
    return team.name if identify else team.pseudonym


def person_name(label: str) -> str:
    """Return a DICOM PN value holding the whole label as the family name."""
    # PN components are separated by ^ and =; the trailing caret says "one component",
    # so a display name with spaces never splits into parts. 64 characters with the caret.
    name = sanitise.dicom_text(label, "PN", fallback="Unknown")
    if len(name) > 63:
        sanitise.note(sanitise.DICOM_TEXT_SHORTENED)
        name = name[:63].rstrip()
    return name + "^"


@dataclass
class SeriesSources:
    """A series' instances in reading order, with lazily read DICOM headers."""

    series: Series
    instances: list[Instance]
    _frame_offsets: dict[int, int] = field(default_factory=dict)
    _by_id: dict[int, Instance] = field(default_factory=dict)
    _by_uid: dict[str, Instance] = field(default_factory=dict)
    _headers: dict[int, Dataset] = field(default_factory=dict)
    _frames: dict[int, list[FrameGeometry]] = field(default_factory=dict)

    @classmethod
    def load(cls, series: Series) -> SeriesSources:
        instances = list(Instance.objects.filter(series=series).order_by(*Instance._meta.ordering))
        offsets, offset = {}, 0
        for instance in instances:
            offsets[instance.pk] = offset
            offset += instance.number_of_frames
        return cls(
            series=series,
            instances=instances,
            _frame_offsets=offsets,
            _by_id={instance.pk: instance for instance in instances},
        )

    def slice_index(self, *, instance_id: int, frame: int) -> int:
        """Return the 0-based position of (instance, frame) in the series' reading order."""
        return self._frame_offsets[instance_id] + frame - 1

    def instance(self, instance_id: int) -> Instance:
        try:
            return self._by_id[instance_id]
        except KeyError:
            raise KeyError(f"instance {instance_id} is not in series {self.series.series_instance_uid}") from None

    def by_uid(self, sop_instance_uid: str) -> Instance:
        """Return the series' instance with this SOP Instance UID; ValueError names a stranger."""
        if not self._by_uid:
            self._by_uid.update((instance.sop_instance_uid, instance) for instance in self.instances)
        try:
            return self._by_uid[sop_instance_uid]
        except KeyError:
            raise ValueError(
                f"instance {sop_instance_uid} is not in series {self.series.series_instance_uid}"
            ) from None

    def frame_geometry(self, instance: Instance, frame: int) -> FrameGeometry | None:
        """Return where a frame lies in patient space, or None when the image carries no position or orientation."""
        if not (instance.image_position_patient or instance.frame_positions_patient):
            return None
        if not (instance.image_orientation_patient and instance.pixel_spacing_mm):
            return None
        if instance.pk not in self._frames:
            self._frames[instance.pk] = frames_of_instance(instance)
        return self._frames[instance.pk][frame - 1]

    def header(self, instance: Instance) -> Dataset:
        """Return the instance's stored DICOM header (no pixel data), read once."""
        if instance.pk not in self._headers:
            self._headers[instance.pk] = pydicom.dcmread(local_path(instance), stop_before_pixels=True)
        return self._headers[instance.pk]


class SeriesCache:
    """Keeps the few most recently used series' sources, so an export touching 1,000 cases stays small."""

    def __init__(self, *, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[int, SeriesSources] = OrderedDict()

    def get(self, series: Series) -> SeriesSources:
        if series.pk in self._items:
            self._items.move_to_end(series.pk)
            return self._items[series.pk]
        sources = SeriesSources.load(series)
        self._items[series.pk] = sources
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return sources
