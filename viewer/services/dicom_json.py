"""The DICOM JSON model (PS3.18 F.2) of stored instances, series and studies.

Builds the `application/dicom+json` documents of DICOMweb: QIDO-RS result
attributes from the database records, and WADO-RS metadata from the stored file
header, with the pixel data replaced by a BulkDataURI and the pixel description
adjusted to the decoded native frames the frames resource serves (YBR becomes RGB
interleaved). It must never read pixel data, never decide access and never format
HTTP responses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement

from viewer.models import Instance, Series, Study
from viewer.services.pixels import NATIVE_TRANSFER_SYNTAX, PixelDescription

PIXEL_DATA_TAGS = ("7FE00010", "7FE00008", "7FE00009")


def pixel_description(instance: Instance) -> PixelDescription:
    """Return the pixel description of an instance as recorded at import."""
    return PixelDescription(
        rows=instance.rows,
        columns=instance.columns,
        samples_per_pixel=instance.samples_per_pixel,
        bits_allocated=instance.bits_allocated,
        bits_stored=instance.bits_stored,
        pixel_representation=instance.pixel_representation,
        photometric_interpretation=instance.photometric_interpretation,
        number_of_frames=instance.number_of_frames,
        transfer_syntax_uid=instance.transfer_syntax_uid,
        planar_configuration=instance.planar_configuration or 0,
    )


def _element(vr: str, *values) -> dict:
    cleaned = [value for value in values if value not in (None, "")]
    return {"vr": vr, "Value": cleaned} if cleaned else {"vr": vr}


def _person_name(name: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]} if name else {"vr": "PN"}


def study_attributes(study: Study, *, base_url: str, modalities: list[str], series_count: int, instance_count: int):
    """Return the QIDO-RS study-level attributes of a study."""
    return {
        "00080005": _element("CS", "ISO_IR 192"),
        "00080020": _element("DA", study.study_date),
        "00080030": _element("TM", study.study_time),
        "00080050": _element("SH", study.accession_number),
        "00080061": _element("CS", *sorted(set(modalities))),
        "00081030": _element("LO", study.study_description),
        "00081190": _element("UR", f"{base_url}/studies/{study.study_instance_uid}"),
        "00100010": _person_name(study.patient_name),
        "00100020": _element("LO", study.patient_id),
        "00100030": _element("DA", study.patient_birth_date),
        "00100040": _element("CS", study.patient_sex),
        "0020000D": _element("UI", study.study_instance_uid),
        "00200010": _element("SH", study.study_id),
        "00201206": _element("IS", series_count),
        "00201208": _element("IS", instance_count),
    }


def series_attributes(series: Series, *, base_url: str, study_uid: str, instance_count: int) -> dict:
    """Return the QIDO-RS series-level attributes of a series."""
    return {
        "00080005": _element("CS", "ISO_IR 192"),
        "00080060": _element("CS", series.modality),
        "0008103E": _element("LO", series.series_description),
        "00081190": _element("UR", f"{base_url}/studies/{study_uid}/series/{series.series_instance_uid}"),
        "00180015": _element("CS", series.body_part_examined),
        "0020000D": _element("UI", study_uid),
        "0020000E": _element("UI", series.series_instance_uid),
        "00200011": _element("IS", series.series_number),
        "00200052": _element("UI", series.frame_of_reference_uid),
        "00201209": _element("IS", instance_count),
    }


def instance_attributes(instance: Instance, *, base_url: str, study_uid: str, series_uid: str) -> dict:
    """Return the QIDO-RS instance-level attributes of an instance."""
    url = f"{base_url}/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}"
    return {
        "00080016": _element("UI", instance.sop_class_uid),
        "00080018": _element("UI", instance.sop_instance_uid),
        "00081190": _element("UR", url),
        "00083002": _element("UI", instance.transfer_syntax_uid),
        "0020000D": _element("UI", study_uid),
        "0020000E": _element("UI", series_uid),
        "00200013": _element("IS", instance.instance_number),
        "00280008": _element("IS", instance.number_of_frames),
        "00280010": _element("US", instance.rows),
        "00280011": _element("US", instance.columns),
        "00280100": _element("US", instance.bits_allocated),
    }


def instance_metadata(path: Path | str, *, description: PixelDescription, instance_url: str) -> dict:
    """Return the WADO-RS metadata of one stored instance: its full header, pixel data as a BulkDataURI.

    The pixel attributes describe the frames served by `.../frames/{n}` (decoded,
    little endian, colour interleaved); AvailableTransferSyntaxUID keeps the stored one.
    """
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    document = ds.to_json_dict(bulk_data_threshold=64 * 1024, bulk_data_element_handler=_bulk_uri_handler(instance_url))
    document["00083002"] = {"vr": "UI", "Value": [description.transfer_syntax_uid]}
    document["00020010"] = {"vr": "UI", "Value": [NATIVE_TRANSFER_SYNTAX]}
    native_pi = description.native_photometric_interpretation
    if native_pi != description.photometric_interpretation:
        document["00280004"] = {"vr": "CS", "Value": [native_pi]}
    if description.samples_per_pixel > 1:
        # Decoded colour frames are always interleaved (R1G1B1R2...).
        document["00280006"] = {"vr": "US", "Value": [0]}
    if description.native_bits_allocated != description.bits_allocated:
        document["00280100"] = {"vr": "US", "Value": [description.native_bits_allocated]}
    for tag in PIXEL_DATA_TAGS:
        document.pop(tag, None)
    document["7FE00010"] = {
        "vr": "OB" if description.native_bits_allocated <= 8 else "OW",
        "BulkDataURI": f"{instance_url}/bulkdata/7FE00010",
    }
    return document


def _bulk_uri_handler(instance_url: str) -> Callable[[DataElement], str]:
    def handler(element: DataElement) -> str:
        return f"{instance_url}/bulkdata/{element.tag:08X}"

    return handler
