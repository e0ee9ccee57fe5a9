"""Hostile stored rows against every export: Hypothesis writes them straight through the ORM, exports must complete.

Rows stored before input was checked at the door (or written by a script through the ORM) may hold text
UTF-8 cannot encode (lone surrogates), NUL and other control characters, formula-like text, absurd
numbers, answers of the wrong shape, read documents of unexpected types and marks on images of another
series. Whatever they hold, the CSV, SR, SEG and bundle exports (and the follow-up exports) complete;
the CSVs parse back with the csv module with as many rows as the export reports, the DICOM files read
back with pydicom and highdicom, and no CSV cell runs as a formula unless raw cells were asked for.
Examples per run: READERBOARD_EXPORT_FUZZ_EXAMPLES (CI: 100 for a single-read task, 40 for a follow-up
task); `make fuzz` runs more and records the counts in benchmarks/results/fuzz.json.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from annotations.exports import export_to_path, sanitise
from annotations.models import ConsensusLesion, FollowUpMeasurement, Mark, Read, Reader, Team
from tests.annotations.export_data import add_scene_answers, add_scene_consensus_answers, build_scene
from tests.factories import ReaderFactory, SeriesFactory
from tests.security.fuzz_counts import record

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(int(os.environ.get("READERBOARD_FUZZ_TIMEOUT_S", "900")))]

EXAMPLES = int(os.environ.get("READERBOARD_EXPORT_FUZZ_EXAMPLES", "100"))
FOLLOW_UP_EXAMPLES = int(os.environ.get("READERBOARD_EXPORT_FUZZ_FOLLOW_UP_EXAMPLES", "40"))
FORMATS = ("csv", "consensus_csv", "sr", "seg", "bundle")
FOLLOW_UP_FORMATS = ("csv", "consensus_csv", "sr", "bundle")


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def hostile_text(*, max_size: int = 40, json_column: bool = False) -> st.SearchStrategy[str]:
    """Text a column of this backend can store, leaning on what breaks exports: surrogates, controls, formulas.

    SQLite keeps lone surrogates in JSON (escaped) and NUL anywhere; PostgreSQL refuses both, so they are
    left out there. Plain text columns never take a lone surrogate (the driver cannot encode it).
    """
    excluded = ["\x00"] if _postgres() else []
    categories = ["Cs"] if (_postgres() or not json_column) else []
    characters = st.characters(codec=None, exclude_categories=categories, exclude_characters=excluded)
    tricky = st.sampled_from(["\ud800", "\udfff", "\x00", "\x1b", "\x7f", "\x85", "\r", "\n", "\\", "^", "="])
    if categories or excluded:
        tricky = tricky.filter(lambda c: c not in excluded and not ("\ud800" <= c <= "\udfff" and categories))
    body = st.text(st.one_of(characters, tricky), max_size=max_size)
    formula = st.tuples(st.sampled_from(["=", "+", "-", "@", "\t", "\r", "=cmd|' /C calc'!A0", "-3.5", "+1"]), body)
    return st.one_of(body, formula.map("".join)).map(lambda text: text[:max_size])


def absurd_float() -> st.SearchStrategy[float]:
    # SQLite stores infinities but turns NaN into NULL (refused by NOT NULL columns); PostgreSQL keeps both.
    return st.floats(allow_nan=_postgres(), allow_infinity=True, width=64)


def hostile_json(text: st.SearchStrategy[str]) -> st.SearchStrategy:
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )

    def containers(inner):
        return st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3))

    return st.recursive(scalar, containers, max_leaves=8)


def hostile_answers(text: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Answers of the right shape with hostile values, or of any shape at all."""
    number = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN or Infinity
    value = st.one_of(text, st.integers(), number, st.booleans(), st.lists(text, max_size=3), hostile_json(text))
    keys = st.sampled_from(["metastases", "artefacts", "contrast", "confidence", "liver_span", "impression"])
    lesion_keys = st.sampled_from(["lesion_type", "lesion_site", "malignancy"])
    well_shaped = st.fixed_dictionaries(
        {
            "case": st.dictionaries(keys, value, max_size=6),
            "lesions": st.dictionaries(
                st.sampled_from(["1", "2", "9", "x"]),
                st.one_of(st.dictionaries(lesion_keys, value, max_size=3), value),
                max_size=3,
            ),  # fmt: skip
        }
    )
    # JSON null would be SQL NULL, which the NOT NULL answers columns refuse.
    return st.one_of(well_shaped, hostile_json(text).filter(lambda value: value is not None))


@st.composite
def hostile_rows(draw) -> dict:
    """What one example stores over the scene: names, comments, answers, documents, absurd marks."""
    plain = hostile_text()
    in_json = hostile_text(json_column=True)
    return {
        "display_names": draw(st.lists(hostile_text(max_size=80), min_size=3, max_size=3)),
        "team_name": draw(hostile_text(max_size=80)),
        "comments": draw(st.lists(plain, min_size=4, max_size=4)),
        "answers": draw(st.lists(hostile_answers(in_json), min_size=4, max_size=4)),
        "document": draw(hostile_json(in_json).filter(lambda value: value is not None)),
        "consensus_answers": draw(st.one_of(st.none(), hostile_answers(in_json))),
        "length_mm": draw(st.one_of(st.none(), absurd_float())),
        "start_col": draw(st.one_of(st.none(), absurd_float())),
        "mark_elsewhere": draw(st.booleans()),
        # A consensus line naming an image that is not in the series (or not a UID at all).
        "consensus_line_uid": draw(st.one_of(st.none(), in_json)),
        "pseudonymise": draw(st.booleans()),
        "raw_cells": draw(st.booleans()),
        # The bundle holds every format; the other file is one format alone (an SR without SEG links, ...).
        "formats": ("bundle", draw(st.sampled_from(FORMATS[:-1]))),
    }


def _store_names(readers: list[Reader], rows: dict) -> None:
    team = Team.objects.create(name=rows["team_name"], name_key=f"fuzz-{Team.objects.count()}")
    for index, (reader, name) in enumerate(zip(readers, rows["display_names"], strict=True)):
        # display_name is unique: a suffix keeps three equal hostile names storable.
        Reader.objects.filter(pk=reader.pk).update(display_name=f"{name}{'​' * index}", team=team)


def _store_reads(reads: list[Read], rows: dict) -> None:
    for read, comment, answers in zip(reads, rows["comments"], rows["answers"], strict=True):
        Read.all_objects.filter(pk=read.pk).update(comment=comment, answers=answers, document=rows["document"])


def _store_marks(scene, rows: dict, other_series_instance) -> None:
    mark = Mark.objects.filter(read__case=scene.case).order_by("pk").first()
    updates = {}
    if rows["length_mm"] is not None:
        updates["length_mm"] = rows["length_mm"]
    if rows["start_col"] is not None:
        updates["start_col"] = rows["start_col"]
    if rows["mark_elsewhere"]:
        updates["instance"] = other_series_instance
    if updates:
        Mark.objects.filter(pk=mark.pk).update(**updates)


def check_export(task, fmt: str, *, out_dir: Path, pseudonymise: bool, raw_cells: bool) -> dict:
    """Export one format and read it back as a researcher's tools would; return the export's warnings."""
    result = export_to_path(
        task=task, fmt=fmt, out=out_dir, pseudonymise=pseudonymise, identify_teams=True, raw_cells=raw_cells
    )
    if result.path.suffix == ".csv":
        assert len(_csv_rows(result.path.read_bytes(), raw_cells=raw_cells)) == result.csv_rows
    else:
        with zipfile.ZipFile(result.path) as archive:
            csv_rows = 0
            for name in archive.namelist():
                data = archive.read(name)
                if name.endswith(".csv"):
                    rows = _csv_rows(data, raw_cells=raw_cells)
                    csv_rows += 0 if name == "manifest.csv" else len(rows)
                elif name.endswith(".dcm"):
                    _check_dicom(data)
                else:
                    data.decode("utf-8")  # README.txt
            assert csv_rows == result.csv_rows
            assert len([n for n in archive.namelist() if n.endswith(".dcm")]) == result.dicom_files
    return result.warnings


def _csv_rows(data: bytes, *, raw_cells: bool) -> list[list[str]]:
    """Parse CSV bytes strictly as UTF-8; check that no cell would run as a formula (unless raw)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    assert all(len(row) == len(header) for row in body)
    if not raw_cells:
        for row in rows:
            for cell in row:
                assert not (cell.startswith(sanitise.FORMULA_PREFIXES) and not _number(cell)), cell
    return body


def _number(cell: str) -> bool:
    """A number the export wrote (-3.5, 1e-3, and -inf from an infinite float column), not text."""
    try:
        float(cell)
    except ValueError:
        return False
    return cell.strip() == cell


def _check_dicom(data: bytes) -> None:
    ds = pydicom.dcmread(io.BytesIO(data))
    # Every text value decodes in the declared character set, within its VR's length.
    for element in ds.iterall():
        if element.VR in ("LO", "SH", "PN") and isinstance(element.value, str):
            assert len(element.value) <= {"LO": 64, "SH": 16, "PN": 64}[element.VR], (element.tag, element.value)
    if ds.Modality == "SEG":
        hd.seg.Segmentation.from_dataset(ds)
    else:
        hd.sr.Comprehensive3DSR.from_dataset(ds)


@pytest.fixture
def hostile_scene(small_ct_series, tmp_path):
    scene = build_scene(small_ct_series)
    add_scene_answers(scene)
    add_scene_consensus_answers(scene)
    # An image of another series, for marks that point outside their case's series.
    other = scene.instances[0]
    other.pk, other.series, other.sop_instance_uid = None, SeriesFactory(), "1.2.826.0.1.3680043.10.1427.99.3.1"
    other.save()
    return scene, other


def test_every_export_completes_whatever_the_reads_hold(hostile_scene, tmp_path):
    scene, other_instance = hostile_scene
    ran = []

    @given(rows=hostile_rows())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
        # Shrinking a failing export can take many minutes; CI reports the example as found.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    def export_everything(rows):
        ran.append(1)
        out_dir = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            with transaction.atomic():
                _store_names(scene.readers, rows)
                _store_reads(scene.reads, rows)
                _store_marks(scene, rows, other_instance)
                if rows["consensus_line_uid"] is not None:
                    lesion = scene.consensus.lesions.get(lesion_index=1)
                    line = {**lesion.long_axis, "sop_instance_uid": rows["consensus_line_uid"]}
                    ConsensusLesion.objects.filter(pk=lesion.pk).update(long_axis=line)
                if rows["consensus_answers"] is not None:
                    scene.consensus.__class__.objects.filter(pk=scene.consensus.pk).update(
                        answers=rows["consensus_answers"]
                    )
                for fmt in rows["formats"]:
                    check_export(
                        scene.task,
                        fmt,
                        out_dir=out_dir,
                        pseudonymise=rows["pseudonymise"],
                        raw_cells=rows["raw_cells"],
                    )
                transaction.set_rollback(True)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    export_everything()
    record("exports_single_read_task", {"examples": len(ran), "exports_per_example": 2, "failed_exports": 0})
    assert len(ran) >= min(EXAMPLES, 10)


def test_a_lone_surrogate_in_a_case_answer_is_replaced_and_counted(hostile_scene, tmp_path):
    """The issue's case: an answer "\\ud800" stored in a read used to make every CSV and bundle export fail."""
    if _postgres():
        pytest.skip("PostgreSQL refuses to store a lone surrogate; SQLite's JSON columns keep it")
    scene, _ = hostile_scene
    read = scene.reads[0]
    Read.all_objects.filter(pk=read.pk).update(answers={"case": {"impression": "=1+\ud800"}, "lesions": {}})

    result = export_to_path(task=scene.task, fmt="csv", out=tmp_path)

    rows = list(csv.DictReader(io.StringIO(result.path.read_text(encoding="utf-8"), newline="")))
    assert {row["case_answer_impression"] for row in rows if row["read_id"] == str(read.pk)} == {"'=1+\ufffd"}
    assert result.warnings[sanitise.UNENCODABLE_TEXT] >= 1
    assert result.warnings[sanitise.FORMULA_CELLS] >= 1


# --- follow-up tasks -----------------------------------------------------------------------------


@pytest.fixture
def hostile_follow_up(tmp_path):
    from annotations.assignment.services import next_case
    from annotations.consensus.tasks import compute_case_consensus
    from annotations.reading.submission import submit_read
    from tests.annotations.follow_up_data import build_follow_up_scene, follow_up_read, measured

    scene = build_follow_up_scene(tmp_path / "dicom")
    readers = []
    for b1 in (12.0, 13.0):
        reader = ReaderFactory()
        readers.append(reader)
        next_case(reader=reader, task=scene.task)
        points = [
            {"index": 1, "lesions": [measured(scene, 1, 1, "B1", -8.0, 6.0, b1), measured(scene, 1, 2, "B2", 14.0,
                                                                                          -12.0, 15.0)]},
            {"index": 2, "lesions": [{"lesion": 3, "baseline_lesion": "B1", "status": "disappeared"},
                                     measured(scene, 2, 4, "B2", 14.0, -12.0, 14.0),
                                     measured(scene, 2, 5, None, -20.0, -15.0, 6.0)]},
        ]  # fmt: skip
        submit_read(reader=reader, document=follow_up_read(scene, points))
    compute_case_consensus(scene.case.pk)
    return scene, readers


@st.composite
def hostile_follow_up_rows(draw) -> dict:
    short = hostile_text(max_size=16)
    return {
        "display_names": draw(st.lists(hostile_text(max_size=80), min_size=2, max_size=2)),
        "team_name": draw(hostile_text(max_size=80)),
        "comments": draw(st.lists(hostile_text(), min_size=2, max_size=2)),
        "sites": draw(st.lists(hostile_text(max_size=64), min_size=5, max_size=5)),
        "statuses": draw(
            st.lists(st.one_of(st.sampled_from(["measured", "disappeared", "new"]), short), min_size=5, max_size=5)
        ),  # fmt: skip
        "baseline_keys": draw(st.lists(st.one_of(st.sampled_from(["B1", "B2", ""]), short), min_size=5, max_size=5)),
        "length_mm": draw(st.one_of(st.none(), absurd_float())),
        "pseudonymise": draw(st.booleans()),
        "raw_cells": draw(st.booleans()),
        "formats": ("bundle", draw(st.sampled_from(FOLLOW_UP_FORMATS[:-1]))),
    }


def test_every_follow_up_export_completes_whatever_the_measurements_hold(hostile_follow_up, tmp_path):
    scene, readers = hostile_follow_up
    reads = list(Read.all_objects.filter(case=scene.case).order_by("pk"))
    measurements = list(FollowUpMeasurement.objects.filter(read__in=reads).order_by("pk"))
    ran = []

    @given(rows=hostile_follow_up_rows())
    @settings(
        max_examples=FOLLOW_UP_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
        # Shrinking a failing export can take many minutes; CI reports the example as found.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    def export_everything(rows):
        ran.append(1)
        out_dir = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            with transaction.atomic():
                team = Team.objects.create(name=rows["team_name"], name_key="fuzz-follow-up")
                for index, (reader, name) in enumerate(zip(readers, rows["display_names"], strict=True)):
                    Reader.objects.filter(pk=reader.pk).update(display_name=f"{name}{'​' * index}", team=team)
                for read, comment in zip(reads, rows["comments"], strict=False):
                    Read.all_objects.filter(pk=read.pk).update(comment=comment)
                for m, site, status, key in zip(
                    measurements, rows["sites"], rows["statuses"], rows["baseline_keys"], strict=False
                ):
                    FollowUpMeasurement.objects.filter(pk=m.pk).update(site=site, status=status, baseline_key=key)
                if rows["length_mm"] is not None:
                    Mark.objects.filter(read__in=reads).update(length_mm=rows["length_mm"])
                for fmt in rows["formats"]:
                    check_export(
                        scene.task,
                        fmt,
                        out_dir=out_dir,
                        pseudonymise=rows["pseudonymise"],
                        raw_cells=rows["raw_cells"],
                    )
                transaction.set_rollback(True)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    export_everything()
    record("exports_follow_up_task", {"examples": len(ran), "exports_per_example": 2, "failed_exports": 0})
    assert len(ran) >= min(FOLLOW_UP_EXAMPLES, 10)


def test_neutralised_cells_keep_numbers_and_quote_formulas():
    assert sanitise.csv_cell(-3.5) == -3.5
    assert sanitise.csv_cell("-3.5") == "-3.5"
    assert sanitise.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert sanitise.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert sanitise.csv_cell("\tx") == "'\tx"
    assert sanitise.csv_cell("=1", raw=True) == "=1"
    assert sanitise.csv_cell("a\x00b\ud800") == "a\ufffdb\ufffd"
    assert math.isinf(sanitise.csv_cell(float("inf")))
