"""What identifies a patient in a DICOM file, and an optional PS3.15 basic-profile de-identification.

The PHI report tells an admin which identifying attributes the imported files
carry (names, dates, IDs, institutions) before they are shown at a public booth;
it records attribute names and counts, never the values themselves.
De-identification uses dicom-anonymizer's implementation of the DICOM PS3.15
Basic Application Level Confidentiality Profile, with UIDs replaced
deterministically (a keyed hash of the original), so re-importing the same file
is still recognised as a duplicate and a series stays together.
This module must never log or store the identifying values it finds.
"""

from __future__ import annotations

from collections import Counter

import pydicom
from django.conf import settings
from pydicom.uid import generate_uid

# Attributes of PS3.15 Table E.1-1 that most often carry identity at a booth, in the field's words.
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MilitaryRank",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "AcquisitionDateTime",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "StationName",
    "DeviceSerialNumber",
    "RequestingPhysician",
)

DEIDENTIFIED_UID_ROOT = "1.2.826.0.1.3680043.10.1427.9."


def identifying_attributes(ds: pydicom.Dataset) -> list[str]:
    """Return the keywords of identifying attributes that are present and non-empty."""
    found = [keyword for keyword in IDENTIFYING_KEYWORDS if str(ds.get(keyword, "") or "").strip()]
    if any(element.tag.is_private for element in ds):
        found.append("private tags")
    if str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES":
        found.append("BurnedInAnnotation=YES")
    return found


def summarise(findings: list[list[str]]) -> dict[str, int]:
    """Return {attribute: number of files carrying it} for a list of per-file findings."""
    return dict(Counter(keyword for per_file in findings for keyword in per_file))


def deidentified_uid(original: str) -> str:
    """Return the replacement for a UID: stable for the same original and the same SECRET_KEY."""
    return generate_uid(prefix=DEIDENTIFIED_UID_ROOT, entropy_srcs=[settings.SECRET_KEY, original])


def deidentify(ds: pydicom.Dataset) -> pydicom.Dataset:
    """De-identify a dataset in place with the PS3.15 basic profile; return it."""
    from dicomanonymizer import anonymize_dataset
    from dicomanonymizer import simpledicomanonymizer as profile

    # Seed the library's UID map so its "U" actions use our deterministic replacements,
    # and empty it afterwards so a long import does not grow it without bound.
    seeded = set()
    for element in ds.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if isinstance(element.value, list | pydicom.multival.MultiValue) else [element.value]
            for value in values:
                profile.dictionary[str(value)] = deidentified_uid(str(value))
                seeded.add(str(value))
    try:
        anonymize_dataset(ds, delete_private_tags=True)
    finally:
        for value in seeded:
            profile.dictionary.pop(value, None)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "DICOM PS3.15 Basic Profile (Readerboard)"
    if hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds
