"""Preset task questions (lesion type, lesion site), coded with SNOMED CT from pydicom's code dictionary.

Every code comes from `pydicom.sr.codedict.codes.SCT` at import time, never typed by hand,
so a value, scheme and meaning always agree with the DICOM standard's dictionary (PS3.16).
Pure: no Django, no database.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes

# DeepLesion's eight lesion types (Yan et al. 2018), each with its SNOMED CT body structure.
LESION_TYPES: tuple[tuple[str, str, str], ...] = (
    # (option value, label, pydicom codes.SCT attribute)
    ("lung", "Lung", "Lung"),
    ("liver", "Liver", "Liver"),
    ("kidney", "Kidney", "Kidney"),
    ("bone", "Bone", "Bone"),
    ("abdomen", "Abdomen", "Abdomen"),
    ("pelvis", "Pelvis", "Pelvis"),
    ("mediastinum", "Mediastinum", "Mediastinum"),
    ("soft_tissue", "Soft tissue", "SoftTissue"),
)

# Body sites of oncological CT measurements; each one has a code in pydicom's dictionary
# (sites without one there, e.g. peritoneum, are left out rather than typed from memory).
# Order: chest, abdomen, musculoskeletal, so neighbours sit side by side in the picker.
LESION_SITES: tuple[tuple[str, str, str], ...] = (
    ("lung", "Lung", "Lung"),
    ("pleura", "Pleura", "Pleura"),
    ("mediastinum", "Mediastinum", "Mediastinum"),
    ("lymph_node", "Lymph node", "LymphNode"),
    ("liver", "Liver", "Liver"),
    ("gallbladder", "Gallbladder", "Gallbladder"),
    ("spleen", "Spleen", "Spleen"),
    ("pancreas", "Pancreas", "Pancreas"),
    ("kidney", "Kidney", "Kidney"),
    ("adrenal_gland", "Adrenal gland", "AdrenalGland"),
    ("retroperitoneum", "Retroperitoneum", "Retroperitoneum"),
    ("bone", "Bone", "Bone"),
    ("soft_tissue", "Soft tissue", "SoftTissue"),
)


def sct_code(name: str) -> dict:
    """Return {"value", "scheme", "meaning"} of pydicom's codes.SCT.<name>; raise ValueError when it has none."""
    try:
        code = getattr(codes.SCT, name)
    except AttributeError:
        raise ValueError(f"pydicom's code dictionary has no SCT code named {name!r}") from None
    return {"value": str(code.value), "scheme": str(code.scheme_designator), "meaning": str(code.meaning)}


def _options(entries: tuple[tuple[str, str, str], ...]) -> list[dict]:
    return [{"value": value, "label": label, "code": sct_code(name)} for value, label, name in entries]


def lesion_type_question() -> dict:
    """Return the "lesion_type" preset: a required single choice over DeepLesion's eight types."""
    return {
        "key": "lesion_type",
        "kind": "single_choice",
        "label": "Lesion type",
        "help": "The organ or region the lesion belongs to (DeepLesion's eight types).",
        "required": True,
        "options": _options(LESION_TYPES),
    }


def lesion_site_question() -> dict:
    """Return the "lesion_site" preset: a required single choice over coded body sites (TID 1500 Finding Site)."""
    return {
        "key": "lesion_site",
        "kind": "single_choice",
        "label": "Lesion site",
        "help": "Where the lesion is; exported as the measurement's Finding Site.",
        "required": True,
        "options": _options(LESION_SITES),
    }


PRESETS = {"lesion_type": lesion_type_question, "lesion_site": lesion_site_question}


def preset_question(key: str) -> dict:
    """Return a fresh copy of the named preset question; raise ValueError for an unknown name."""
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()
