"""The long-format CSV exports: read back with the csv module and compared with the database."""

from __future__ import annotations

import csv
import math
import tracemalloc

import pytest

from annotations.booth.teams import team_for_name
from annotations.exports import csv_export, export_to_path
from annotations.models import Mark, MaskSlice, Read
from tests.annotations.export_data import add_scene_answers, add_scene_consensus_answers, build_scene
from tests.factories import ReaderFactory

pytestmark = pytest.mark.django_db


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def patient_mm(instance, col: float, row: float) -> tuple[float, float, float]:
    """Independent image-plane arithmetic for the synthetic CT's identity orientation."""
    x0, y0, z0 = instance.image_position_patient
    row_spacing, column_spacing = instance.pixel_spacing_mm
    return (x0 + col * column_spacing, y0 + row * row_spacing, z0)


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def test_reads_csv_has_a_row_per_line_with_the_database_coordinates_and_lengths(scene, tmp_path):
    out = export_to_path(task=scene.task, fmt="csv", out=tmp_path / "reads.csv").path

    rows = read_csv(out)
    assert tuple(rows[0].keys()) == csv_export.READ_COLUMNS
    line_rows = [row for row in rows if row["mark_kind"] in ("long_axis", "short_axis")]
    marks = Mark.objects.filter(read__case=scene.case).select_related("instance", "read__reader")
    assert len(line_rows) == marks.count() == 5
    by_key = {(int(r["read_id"]), int(r["lesion_index"]), r["mark_kind"]): r for r in line_rows}
    for mark in marks:
        row = by_key[(mark.read_id, mark.lesion_index, mark.kind)]
        assert row["sop_instance_uid"] == mark.instance.sop_instance_uid
        assert row["series_instance_uid"] == scene.series.series_instance_uid
        assert int(row["frame"]) == mark.frame
        assert int(row["slice_index"]) == scene.instances.index(mark.instance)
        assert float(row["start_col"]) == mark.start_col and float(row["start_row"]) == mark.start_row
        assert float(row["end_col"]) == mark.end_col and float(row["end_row"]) == mark.end_row
        assert float(row["length_mm"]) == pytest.approx(mark.length_mm, abs=1e-12)
        for end, (col, row_px) in (("start", (mark.start_col, mark.start_row)), ("end", (mark.end_col, mark.end_row))):
            expected = patient_mm(mark.instance, col, row_px)
            got = tuple(float(row[f"{end}_{axis}_mm"]) for axis in "xyz")
            assert got == pytest.approx(expected, abs=1e-9)
        # The patient end points are as far apart as the stored length says.
        start = [float(row[f"start_{a}_mm"]) for a in "xyz"]
        end = [float(row[f"end_{a}_mm"]) for a in "xyz"]
        assert math.dist(start, end) == pytest.approx(mark.length_mm, abs=1e-9)
        assert row["reader"] == mark.read.reader.pseudonym
        assert row["reader_role"] == mark.read.reader.role
        assert int(row["reader_years_experience"]) == mark.read.reader.years_experience


def test_reads_csv_keeps_every_version_and_marks_the_superseded_one(scene, tmp_path):
    rows = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "r.csv").path)

    _, read_b1, read_b2, _ = scene.reads
    versions = {int(r["read_id"]): (r["read_version"], r["is_latest_version"]) for r in rows}
    assert versions[read_b1.pk] == ("1", "False")
    assert versions[read_b2.pk] == ("2", "True")
    b2 = next(r for r in rows if int(r["read_id"]) == read_b2.pk)
    assert b2["quality_problem"] == "True" and float(b2["duration_s"]) == 12.25


def test_reads_csv_lists_mask_slices_no_lesion_votes_and_consensus_matching(scene, tmp_path):
    rows = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "r.csv").path)

    read_a, _, read_b2, read_c = scene.reads
    masks = [r for r in rows if r["mark_kind"] == "mask"]
    assert len(masks) == MaskSlice.objects.filter(read=read_a).count() == 2
    for row in masks:
        stored = MaskSlice.objects.get(read=read_a, instance__sop_instance_uid=row["sop_instance_uid"])
        assert int(row["mask_pixels"]) == stored.pixel_count
        assert float(row["mask_area_mm2"]) == pytest.approx(stored.pixel_count * 1.0)
        assert row["start_col"] == "" and row["length_mm"] == ""
    no_lesion = [r for r in rows if int(r["read_id"]) == read_c.pk]
    assert [r["mark_kind"] for r in no_lesion] == ["no_lesion"] and no_lesion[0]["no_lesion"] == "True"
    matched = {(int(r["read_id"]), r["lesion_index"]): r["consensus_lesion_index"] for r in rows if r["lesion_index"]}
    assert matched[(read_a.pk, "1")] == "1" and matched[(read_b2.pk, "1")] == "1"
    assert matched[(read_a.pk, "2")] == "2"
    comment = next(r["comment"] for r in rows if int(r["read_id"]) == read_a.pk)
    assert comment == 'margin "ill-defined", ok'


def test_reads_csv_never_names_readers_unless_identities_are_asked_for(scene, tmp_path):
    pseudonymised = (export_to_path(task=scene.task, fmt="csv", out=tmp_path / "p.csv").path).read_text()
    identified = (
        export_to_path(task=scene.task, fmt="csv", out=tmp_path / "i.csv", pseudonymise=False).path
    ).read_text()

    for reader in scene.readers:
        assert reader.display_name not in pseudonymised and reader.pseudonym in pseudonymised
        assert reader.display_name in identified


def test_reads_csv_names_teams_by_stable_pseudonyms_unless_team_names_are_asked_for(scene, tmp_path):
    alice, bob, carol = scene.readers
    team = team_for_name("Mass General")
    for reader in (alice, bob):
        reader.team = team
        reader.save()

    def teams_by_reader(rows):
        return {row["reader"]: row["reader_team"] for row in rows}

    pseudonymised = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "p.csv").path)
    again = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "q.csv").path)
    named_teams = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "t.csv", identify_teams=True).path)
    identified = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "i.csv", pseudonymise=False).path)

    assert teams_by_reader(pseudonymised) == {alice.pseudonym: team.pseudonym, bob.pseudonym: team.pseudonym,
                                              carol.pseudonym: ""}  # fmt: skip
    assert team.pseudonym.startswith("T-") and teams_by_reader(again) == teams_by_reader(pseudonymised)
    # Team names, readers still pseudonymised.
    assert teams_by_reader(named_teams) == {alice.pseudonym: "Mass General", bob.pseudonym: "Mass General",
                                            carol.pseudonym: ""}  # fmt: skip
    assert teams_by_reader(identified)[alice.display_name] == "Mass General"
    assert "Mass General" not in (tmp_path / "p.csv").read_text()


def test_reads_csv_has_a_column_per_question_with_lesion_answers_on_lesion_rows(scene, tmp_path):
    add_scene_answers(scene)
    read_a, read_b1, read_b2, read_c = scene.reads

    rows = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "a.csv").path)

    header = tuple(rows[0].keys())
    assert header[: len(csv_export.READ_COLUMNS)] == csv_export.READ_COLUMNS
    assert header[len(csv_export.READ_COLUMNS) :] == (
        "lesion_answer_lesion_type", "lesion_answer_lesion_type_code",
        "lesion_answer_lesion_site", "lesion_answer_lesion_site_code",
        "lesion_answer_malignancy",
        "case_answer_metastases", "case_answer_metastases_code",
        "case_answer_artefacts", "case_answer_contrast", "case_answer_confidence",
        "case_answer_liver_span", "case_answer_impression",
    )  # fmt: skip
    alice_rows = [row for row in rows if int(row["read_id"]) == read_a.pk]
    lesion_1 = [row for row in alice_rows if row["lesion_index"] == "1"]
    lesion_2 = [row for row in alice_rows if row["lesion_index"] == "2"]
    assert lesion_1 and all(row["lesion_answer_lesion_type"] == "liver" for row in lesion_1)
    assert all(row["lesion_answer_lesion_site_code"] == "SCT:10200004" for row in lesion_1)
    assert all(row["lesion_answer_malignancy"] == "5" for row in lesion_1)
    assert [(row["lesion_answer_lesion_site"], row["lesion_answer_lesion_site_code"], row["lesion_answer_malignancy"])
            for row in lesion_2] == [("lung", "SCT:39607008", "")]  # fmt: skip
    # Case answers on every row of the read.
    for row in alice_rows:
        assert row["question_version"] == "1"
        assert (row["case_answer_metastases"], row["case_answer_metastases_code"]) == ("present", "SCT:52101004")
        assert row["case_answer_artefacts"] == "motion;noise" and row["case_answer_contrast"] == "True"
        assert row["case_answer_confidence"] == "4" and float(row["case_answer_liver_span"]) == 162.5
        assert row["case_answer_impression"] == "Two hepatic lesions"
    (carol_row,) = [row for row in rows if int(row["read_id"]) == read_c.pk]
    assert carol_row["mark_kind"] == "no_lesion" and carol_row["case_answer_metastases"] == "absent"
    assert carol_row["lesion_answer_lesion_type"] == "" and carol_row["case_answer_contrast"] == ""
    (old_bob_row,) = [row for row in rows if int(row["read_id"]) == read_b1.pk]
    assert old_bob_row["question_version"] == "" and old_bob_row["case_answer_metastases"] == ""
    (bob_row,) = [row for row in rows if int(row["read_id"]) == read_b2.pk]
    assert bob_row["case_answer_contrast"] == "False" and bob_row["lesion_answer_malignancy"] == "3"


def test_consensus_csv_has_consensus_answers_with_their_support(scene, tmp_path):
    add_scene_answers(scene)
    add_scene_consensus_answers(scene)

    rows = read_csv(export_to_path(task=scene.task, fmt="consensus_csv", out=tmp_path / "c.csv").path)

    header = tuple(rows[0].keys())
    assert header[: len(csv_export.CONSENSUS_COLUMNS)] == csv_export.CONSENSUS_COLUMNS
    assert "lesion_consensus_lesion_type_code" in header and "case_consensus_liver_span_iqr" in header
    lesion_1 = [row for row in rows if row["lesion_index"] == "1"]
    lesion_2 = [row for row in rows if row["lesion_index"] == "2"]
    for row in lesion_1:
        assert (row["lesion_consensus_lesion_site"], row["lesion_consensus_lesion_site_code"]) == (
            "liver",
            "SCT:10200004",
        )
        assert (
            float(row["lesion_consensus_lesion_site_support"]) == 1.0 and row["lesion_consensus_lesion_site_n"] == "2"
        )
        assert float(row["lesion_consensus_malignancy"]) == 4.0  # median of 5 and 3
        assert float(row["lesion_consensus_malignancy_iqr"]) == 1.0
    assert {row["lesion_consensus_lesion_type"] for row in lesion_2} == {"lung"}
    for row in rows:
        # Metastases: Alice "present", Bob and Carol "absent".
        assert row["case_consensus_metastases"] == "absent" and row["case_consensus_metastases_code"] == "SCT:272519000"
        assert float(row["case_consensus_metastases_support"]) == pytest.approx(2 / 3, abs=1e-6)
        assert row["case_consensus_metastases_tied"] == "" and row["case_consensus_metastases_n"] == "3"
        # Contrast: one yes, one no: a tie, no consensus answer.
        assert row["case_consensus_contrast"] == "" and row["case_consensus_contrast_tied"] == "no;yes"
        assert row["case_consensus_artefacts"] == "motion;noise"  # Alice alone answered: both above half
        assert row["answer_flags"] == "metastases: answers tie"


def test_consensus_csv_adds_support_agreement_and_algorithm_version(scene, tmp_path):
    rows = read_csv(export_to_path(task=scene.task, fmt="consensus_csv", out=tmp_path / "c.csv").path)

    assert tuple(rows[0].keys()) == csv_export.CONSENSUS_COLUMNS
    lesion = scene.consensus.lesions.get(lesion_index=1)
    long_row = next(r for r in rows if r["lesion_index"] == "1" and r["mark_kind"] == "long_axis")
    assert long_row["algorithm_version"] == "1.2.0" and long_row["consensus_method"] == "staple"
    assert float(long_row["case_agreement"]) == 0.82
    assert int(long_row["support"]) == 2 and float(long_row["support_fraction"]) == pytest.approx(2 / 3)
    assert long_row["accepted"] == "True"
    assert float(long_row["start_col"]) == lesion.long_axis["start"][0]
    assert float(long_row["end_row"]) == lesion.long_axis["end"][1]
    assert float(long_row["length_mm"]) == pytest.approx(lesion.long_axis["length_mm"])
    middle = scene.instances[len(scene.instances) // 2]
    assert float(long_row["start_x_mm"]) == pytest.approx(patient_mm(middle, *lesion.long_axis["start"])[0])
    assert set(long_row["supporting_readers"].split(";")) == {scene.readers[0].pseudonym, scene.readers[1].pseudonym}
    masks = [r for r in rows if r["mark_kind"] == "mask"]
    assert [int(r["slice_index"]) for r in masks] == sorted(int(r["slice_index"]) for r in masks)
    assert sum(int(r["mask_pixels"]) for r in masks) == sum(sum(s["counts"][1::2]) for s in lesion.mask_slices)
    rejected = [r for r in rows if r["lesion_index"] == "2"]
    assert rejected and all(r["accepted"] == "False" for r in rejected)


def test_csv_export_streams_100000_rows_without_holding_them(small_ct_series, django_db_blocker):
    scene = build_scene(small_ct_series)
    middle = scene.instances[4]
    readers = [ReaderFactory() for _ in range(4)]
    reads = Read.objects.bulk_create(
        Read(case=scene.case, reader=readers[i % 4], version=10 + i // 4, document={}, duration_s=1.0)
        for i in range(10_000)
    )
    Mark.objects.bulk_create(
        (
            Mark(read=read, lesion_index=lesion, kind="long_axis", instance=middle, start_col=1.0, start_row=2.0,
                 end_col=11.0, end_row=2.0, length_mm=10.0)
            for read in reads
            for lesion in range(1, 11)
        ),
        batch_size=5000,
    )  # fmt: skip

    tracemalloc.start()
    lines = csv_export.iter_csv_lines(csv_export.iter_read_rows(task=scene.task), columns=csv_export.READ_COLUMNS)
    count = sum(1 for _ in lines)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert count == 1 + 100_000 + 8  # header, the synthetic marks, the scene's own rows
    # 100,000 rows of ~40 fields held at once would take hundreds of MB; chunks of 500 reads stay small.
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_mask_rows_say_how_the_mask_was_made_and_how_much_the_proposal_was_edited(scene, tmp_path):
    from annotations.models import MaskProvenance

    read_a = scene.reads[0]
    MaskProvenance.objects.create(
        read=read_a,
        lesion_index=1,
        source="tap",
        algorithm="readerboard seeded random walker",
        algorithm_version="1",
        edited=True,
        edit_dice=0.875,
    )

    rows = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "reads.csv").path)

    mask_rows = [row for row in rows if row["mark_kind"] == "mask"]
    assert mask_rows and all(int(row["read_id"]) == read_a.pk for row in mask_rows)
    assert {(row["mask_source"], row["mask_algorithm"], row["mask_edit_dice"]) for row in mask_rows} == {
        ("tap_edited", "readerboard seeded random walker 1", "0.875")
    }
    line_rows = [row for row in rows if row["mark_kind"] == "long_axis"]
    assert {row["mask_source"] for row in line_rows} == {""}


def test_a_mask_without_provenance_is_hand_made_in_the_csv(scene, tmp_path):
    rows = read_csv(export_to_path(task=scene.task, fmt="csv", out=tmp_path / "reads.csv").path)

    assert {row["mask_source"] for row in rows if row["mark_kind"] == "mask"} == {"hand"}
