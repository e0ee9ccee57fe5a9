"""Turn the NIfTI files among an import's sources into DICOM slices for the normal import, pairing label maps.

`viewer.services.dicom_import.import_paths` hands over every source it found that is a NIfTI
(by name, or by header for console uploads and zip members); each image becomes a DICOM series
in the import's scratch folder and its slices go through the same validation and storage as any
DICOM file. A label map beside its images is checked against each and reported, not imported as
images. Every refusal names the file and the reason, and one bad file never stops the others.
This module writes only into the scratch folder it is given; it must never touch the database.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from viewer.nifti.labels import (
    LABEL_MAP_SUFFIXES,
    LabelMasks,
    image_stem_of_label_map,
    label_masks,
    labels_images,
)
from viewer.nifti.reading import NiftiError, NiftiVolume, has_nifti_name, looks_like_nifti, nifti_stem, read_nifti
from viewer.nifti.to_dicom import DEFAULT_MODALITY, MODALITIES, SeriesPlan, nifti_to_series

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NiftiOptions:
    """How NIfTI sources are converted: the modality (CT values are HU), and the patient (else the file's stem)."""

    modality: str = DEFAULT_MODALITY
    patient_id: str | None = None
    patient_name: str | None = None
    label_suffixes: tuple[str, ...] = LABEL_MAP_SUFFIXES

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"NIfTI modality {self.modality!r} is not one of {sorted(MODALITIES)}")


@dataclass(frozen=True)
class NiftiSource:
    """A NIfTI among the sources: its name in the report, the file, and the prefix its slices are named with."""

    display_name: str
    path: Path
    slice_prefix: str

    @property
    def folder(self) -> str:
        """The folder (or 'archive.zip:folder') the file was found in; label maps pair within one folder."""
        name = self.display_name.replace("\\", "/")
        cut = max(name.rfind("/"), name.rfind(":"))
        return name[: cut + 1]


@dataclass
class NiftiConversion:
    """What became of the NIfTI sources: DICOM slices to import, refusals, and checked label maps."""

    slices: list[tuple[str, Path]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    label_maps: list[tuple[str, str]] = field(default_factory=list)
    label_masks: list[LabelMasks] = field(default_factory=list)


def is_nifti_source(*, display_name: str, path: Path) -> bool:
    """True for a file named .nii / .nii.gz (even if it turns out not to be one) or one with a NIfTI header."""
    return has_nifti_name(display_name) or looks_like_nifti(path)


def _pair_label_maps(sources: list[NiftiSource], suffixes: tuple[str, ...]) -> dict[NiftiSource, list[NiftiSource]]:
    """Return {label map: its images} for sources named as label maps with at least one image beside them."""
    by_folder: dict[str, list[NiftiSource]] = defaultdict(list)
    for source in sources:
        by_folder[source.folder].append(source)
    pairs = {}
    for source in sources:
        target = image_stem_of_label_map(source.display_name, suffixes=suffixes)
        if target is None:
            continue
        images = [
            other
            for other in by_folder[source.folder]
            if other is not source
            and image_stem_of_label_map(other.display_name, suffixes=suffixes) is None
            and labels_images(target, nifti_stem(other.display_name))
        ]
        if images:
            pairs[source] = images
    return pairs


def convert_sources(sources: list[NiftiSource], *, scratch: Path, options: NiftiOptions) -> NiftiConversion:
    """Convert every NIfTI image among sources into DICOM files under scratch; check label maps against their images."""
    conversion = NiftiConversion()
    pairs = _pair_label_maps(sources, options.label_suffixes)
    needed = {image for images in pairs.values() for image in images}
    converted: dict[NiftiSource, tuple[NiftiVolume, SeriesPlan]] = {}
    refused: dict[NiftiSource, str] = {}
    for number, source in enumerate(s for s in sources if s not in pairs):
        try:
            volume = read_nifti(source.path, name=source.display_name)
            series = nifti_to_series(
                volume,
                scratch / f"nifti{number:05d}",
                modality=options.modality,
                patient_id=options.patient_id,
                patient_name=options.patient_name,
            )
        except ValueError as error:  # NiftiError, or a value DICOM cannot hold
            refused[source] = str(error)
            conversion.refused.append((source.display_name, str(error)))
            continue
        conversion.slices.extend((f"{source.slice_prefix}:{path.name}", path) for path in series.files)
        if source in needed:
            converted[source] = (volume, series.plan)
    for label_source, images in pairs.items():
        conversion_note = _check_label_map(label_source, images, converted, refused)
        if isinstance(conversion_note, str):
            conversion.refused.append((label_source.display_name, conversion_note))
        else:
            conversion.label_masks.extend(conversion_note)
            images_named = ", ".join(nifti_stem(masks.image_name) for masks in conversion_note)
            note = f"label map of {images_named}, checked: {conversion_note[0].description()}; not imported as images"
            conversion.label_maps.append((label_source.display_name, note))
    return conversion


def _check_label_map(
    label_source: NiftiSource,
    images: list[NiftiSource],
    converted: dict[NiftiSource, tuple[NiftiVolume, SeriesPlan]],
    refused: dict[NiftiSource, str],
) -> list[LabelMasks] | str:
    """Return the label map's masks on each of its images, or the reason it is refused."""
    try:
        label_map = read_nifti(label_source.path, name=label_source.display_name)
    except NiftiError as error:
        return str(error)
    found = []
    for image in images:
        if image in refused:
            return f"label map not checked: its image {image.display_name} was refused"
        volume, plan = converted[image]
        try:
            found.append(label_masks(image=volume, label_map=label_map, plan=plan))
        except ValueError as error:
            return f"label map mismatch: {error}"
    return found
