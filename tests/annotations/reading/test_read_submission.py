"""Saving a read: every rule of docs/read-format.md with its field path, idempotency, versions, side effects."""

from __future__ import annotations

import copy
import datetime
import math
import uuid

import pytest
from django.utils import timezone

from annotations.models import Lease, Mark, MaskSlice, Read
from annotations.reading.documents import ReadValidationError
from annotations.reading.kinds import ReadConflict
from annotations.reading.submission import submit_read
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    TaskFactory,
    line_json,
    middle_instance,
    no_lesion_document,
    read_document,
    square_mask_counts,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(small_ct_series):
    return CaseFactory(series=small_ct_series, task=TaskFactory(reads_per_case=3), label="Small CT")


@pytest.fixture
def reader(case):
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)
    return reader


def errors_of(reader, document) -> dict[str, list[str]]:
    with pytest.raises(ReadValidationError) as caught:
        submit_read(reader=reader, document=document)
    return caught.value.errors


def with_tools(case, tools, **task_fields):
    case.task.tools = tools
    for name, value in task_fields.items():
        setattr(case.task, name, value)
    case.task.save()
    return case


# --- What is stored -------------------------------------------------------------------------------


def test_a_valid_read_is_stored_with_its_marks_and_mask(case, reader):
    document = read_document(case)

    result = submit_read(reader=reader, document=document)

    read = result.read
    assert result.created and read.version == 1 and read.document == document
    long_axis = Mark.objects.get(read=read, kind="long_axis")
    assert (long_axis.start_col, long_axis.start_row, long_axis.end_col, long_axis.end_row) == (15.5, 37.5, 31.5, 37.5)
    assert long_axis.length_mm == pytest.approx(16.0)
    assert long_axis.instance == middle_instance(case)
    assert Mark.objects.get(read=read, kind="short_axis").length_mm == pytest.approx(10.0)
    assert MaskSlice.objects.get(read=read).pixel_count == 36


def test_the_server_keeps_its_own_length_not_the_pages(case, reader):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["length_mm"] = 16.3  # within 0.5 mm

    read = submit_read(reader=reader, document=document).read

    assert Mark.objects.get(read=read, kind="long_axis").length_mm == pytest.approx(16.0)


def test_saving_releases_the_lease_and_counts_the_read(case, reader):
    submit_read(reader=reader, document=read_document(case))

    case.refresh_from_db()
    assert case.reads_done == 1
    assert not Lease.objects.filter(case=case, reader=reader).exists()


def test_a_skip_is_stored_but_not_counted(case, reader):
    submit_read(reader=reader, document=no_lesion_document(case, flags={"skip": True}))

    case.refresh_from_db()
    assert case.reads_done == 0
    assert Read.objects.get().skip


# --- Idempotency and versions ---------------------------------------------------------------------


def test_a_retry_with_the_same_uuid_and_body_returns_the_stored_read(case, reader):
    document = read_document(case)
    first = submit_read(reader=reader, document=document)

    again = submit_read(reader=reader, document=copy.deepcopy(document))

    assert not again.created and again.read.pk == first.read.pk
    assert Read.objects.count() == 1


def test_the_same_uuid_with_a_different_body_is_a_conflict(case, reader):
    document = read_document(case)
    submit_read(reader=reader, document=document)

    with pytest.raises(ReadConflict):
        submit_read(reader=reader, document={**document, "comment": "changed my mind"})


def test_another_reader_cannot_reuse_a_uuid(case, reader):
    document = read_document(case)
    submit_read(reader=reader, document=document)
    other = ReaderFactory()
    LeaseFactory(case=case, reader=other)

    with pytest.raises(ReadConflict):
        submit_read(reader=other, document=document)


def test_a_second_submit_for_the_case_is_a_new_version_and_the_first_stays(case, reader):
    first = submit_read(reader=reader, document=read_document(case)).read

    second = submit_read(reader=reader, document=no_lesion_document(case)).read

    first.refresh_from_db()
    assert (second.version, second.supersedes_id) == (2, first.pk)
    assert first.document["lesions"] and Mark.objects.filter(read=first).count() == 2
    case.refresh_from_db()
    assert case.reads_done == 1


def test_a_correction_to_skip_stops_counting_the_read(case, reader):
    submit_read(reader=reader, document=read_document(case))

    submit_read(reader=reader, document=no_lesion_document(case, flags={"skip": True}))

    case.refresh_from_db()
    assert case.reads_done == 0


# --- Which case may be read ------------------------------------------------------------------------


def test_a_case_that_was_not_given_to_the_reader_is_refused(case):
    with pytest.raises(ReadConflict):
        submit_read(reader=ReaderFactory(), document=no_lesion_document(case))


def test_a_lapsed_lease_is_accepted_while_the_case_has_room(case):
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader, expires_at=timezone.now() - datetime.timedelta(minutes=10))

    assert submit_read(reader=reader, document=no_lesion_document(case)).created


def test_a_lapsed_lease_on_a_full_case_is_refused(case):
    with_tools(case, case.task.tools, reads_per_case=1)
    late = ReaderFactory()
    LeaseFactory(case=case, reader=late, expires_at=timezone.now() - datetime.timedelta(minutes=10))
    LeaseFactory(case=case)

    with pytest.raises(ReadConflict):
        submit_read(reader=late, document=no_lesion_document(case))


def test_a_read_for_a_closed_task_is_refused(case, reader):
    with_tools(case, case.task.tools, is_open=False)

    with pytest.raises(ReadConflict):
        submit_read(reader=reader, document=no_lesion_document(case))


def test_an_unknown_case_is_a_field_error(case, reader):
    assert "case" in errors_of(reader, {**no_lesion_document(case), "case": 999_999})


# --- Validation: the envelope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"client_uuid": "not-a-uuid"}, "client_uuid"),
        ({"client_uuid": 12}, "client_uuid"),
        ({"case": "12"}, "case"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-11-25T10:31:02"}, "started_at"),
        ({"duration_s": -1}, "duration_s"),
        ({"duration_s": 90_000}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"duration_s": True}, "duration_s"),
        ({"comment": "x" * 2001}, "comment"),
        ({"comment": 5}, "comment"),
        ({"flags": {"no_lesion": "yes"}}, "flags.no_lesion"),
        ({"flags": {"no_lesion": True, "urgent": True}}, "flags.urgent"),
        ({"flags": []}, "flags"),
        ({"lesions": {}}, "lesions"),
        ({"reader": 3}, "reader"),
    ],
)
def test_envelope_rules_answer_with_the_field_path(case, reader, change, path):
    errors = errors_of(reader, {**no_lesion_document(case), **change})

    assert path in errors, errors


@pytest.mark.parametrize("missing", ["started_at", "duration_s", "flags", "lesions"])
def test_required_fields_are_required(case, reader, missing):
    document = no_lesion_document(case)
    del document[missing]

    assert "this field is required" in errors_of(reader, document)[missing]


def test_a_read_without_lesions_must_say_why(case, reader):
    errors = errors_of(reader, no_lesion_document(case, flags={"no_lesion": False}))

    assert "lesions" in errors


@pytest.mark.parametrize("flag", ["no_lesion", "skip"])
def test_no_lesion_and_skip_forbid_lesions(case, reader, flag):
    document = read_document(case, flags={flag: True})

    assert "lesions" in errors_of(reader, document)


def test_a_flag_the_task_does_not_offer_is_refused(case, reader):
    with_tools(case, ["long_axis", "no_lesion"])

    errors = errors_of(reader, no_lesion_document(case, flags={"no_lesion": True, "quality_problem": True}))

    assert "flags.quality_problem" in errors


def test_at_most_the_tasks_lesions_per_case(case, reader):
    with_tools(case, case.task.tools, max_lesions_per_case=1)
    document = read_document(case)
    second = copy.deepcopy(document["lesions"][0])
    second["lesion"] = 2
    second.pop("mask")
    document["lesions"].append(second)

    assert "lesions" in errors_of(reader, document)


def test_no_more_than_fifty_lesions_whatever_the_task(case, reader):
    document = read_document(case)
    lesion = document["lesions"][0]
    document["lesions"] = [{**copy.deepcopy(lesion), "lesion": n + 1} for n in range(51)]

    assert "at most 50" in errors_of(reader, document)["lesions"][0]


def test_lesion_numbers_are_positive_and_unique(case, reader):
    document = read_document(case)
    twin = copy.deepcopy(document["lesions"][0])
    twin.pop("mask")
    document["lesions"].append(twin)
    zero = copy.deepcopy(twin)
    zero["lesion"] = 0
    document["lesions"].append(zero)

    errors = errors_of(reader, document)

    assert "lesions[1].lesion" in errors and "lesions[2].lesion" in errors


def test_a_lesion_needs_a_line_or_a_mask(case, reader):
    document = read_document(case)
    document["lesions"][0] = {"lesion": 1}

    assert "lesions[0]" in errors_of(reader, document)


# --- Validation: lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "message_part"),
    [
        ([700.0, 37.5], "column 700.0"),
        ([64.0, 37.5], "column 64.0"),
        ([20.0, -0.6], "row -0.6"),
        ([20.0, 64.0], "row 64.0"),
    ],
)
def test_line_ends_must_lie_inside_the_image(case, reader, end, message_part):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["end"] = end

    messages = errors_of(reader, document)["lesions[0].long_axis.end"]

    assert any(message_part in message for message in messages)


def test_the_outer_pixel_edges_are_inside_the_image(case, reader):
    instance = middle_instance(case)
    document = read_document(case)
    document["lesions"][0]["long_axis"] = line_json(instance, (-0.5, -0.5), (63.5, 63.5))
    document["lesions"][0].pop("short_axis")

    assert submit_read(reader=reader, document=document).created


@pytest.mark.parametrize("bad", [[1.0], [1.0, 2.0, 3.0], ["1", 2.0], [float("inf"), 2.0], [float("nan"), 2.0], None])
def test_line_points_are_two_finite_numbers(case, reader, bad):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["start"] = bad

    assert "lesions[0].long_axis.start" in errors_of(reader, document)


def test_a_line_on_an_instance_of_another_series_is_refused(case, reader):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["sop_instance_uid"] = "1.2.3.4.5"

    assert "lesions[0].long_axis.sop_instance_uid" in errors_of(reader, document)


@pytest.mark.parametrize("frame", [0, 2, "1", 1.0])
def test_frames_are_one_based_and_within_the_instance(case, reader, frame):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["frame"] = frame

    assert "lesions[0].long_axis.frame" in errors_of(reader, document)


def test_a_length_off_by_more_than_half_a_millimetre_is_refused(case, reader):
    document = read_document(case)
    document["lesions"][0]["long_axis"]["length_mm"] = 16.7

    messages = errors_of(reader, document)["lesions[0].long_axis.length_mm"]

    assert "16.00 mm" in messages[0]


def test_long_lines_are_allowed_one_percent(case, reader):
    instance = middle_instance(case)
    document = read_document(case)
    true_mm = math.hypot(60.0, 60.0)
    document["lesions"][0]["long_axis"] = line_json(instance, (1.0, 1.0), (61.0, 61.0), length_mm=true_mm * 1.008)
    document["lesions"][0].pop("short_axis")

    assert submit_read(reader=reader, document=document).created


def test_a_line_with_unknown_or_missing_fields_is_refused(case, reader):
    document = read_document(case)
    line = document["lesions"][0]["long_axis"]
    line["colour"] = "red"
    del line["frame"]

    errors = errors_of(reader, document)

    assert "lesions[0].long_axis.colour" in errors and "lesions[0].long_axis.frame" in errors


def test_a_short_axis_needs_a_long_axis(case, reader):
    document = read_document(case)
    document["lesions"][0].pop("long_axis")

    assert "lesions[0].short_axis" in errors_of(reader, document)


def test_a_short_axis_must_be_on_the_long_axis_frame(case, reader):
    instances = list(case.series.instances.order_by("sort_position_mm"))
    document = read_document(case)
    document["lesions"][0]["short_axis"] = line_json(instances[0], (23.5, 32.5), (23.5, 42.5))

    assert "lesions[0].short_axis" in errors_of(reader, document)


def test_a_short_axis_longer_than_the_long_axis_is_refused(case, reader):
    document = read_document(case)
    document["lesions"][0]["short_axis"] = line_json(middle_instance(case), (23.5, 20.0), (23.5, 50.0))

    assert "lesions[0].short_axis" in errors_of(reader, document)


def test_a_short_axis_needs_the_bidirectional_tool(case, reader):
    with_tools(case, ["long_axis", "mask", "no_lesion"])

    assert "lesions[0].short_axis" in errors_of(reader, read_document(case))


def test_lines_need_a_line_tool(case, reader):
    with_tools(case, ["mask", "no_lesion"])

    assert "lesions[0].long_axis" in errors_of(reader, read_document(case))


# --- Validation: masks ----------------------------------------------------------------------------


def _set_counts(document, counts):
    document["lesions"][0]["mask"]["slices"][0]["counts"] = counts
    return document


@pytest.mark.parametrize(
    "counts",
    [
        [4096, 1],  # sums past rows x columns
        [100, 10],  # sums short
        [100, 0, 3996],  # an empty run after the first
        [100, -5, 4001],  # negative
        [100, 10.0, 3986],  # not integers
        [],  # empty
        "100,3996",  # not a list
    ],
)
def test_mask_runs_must_cover_the_frame_exactly(case, reader, counts):
    document = _set_counts(read_document(case), counts)

    assert "lesions[0].mask.slices[0].counts" in errors_of(reader, document)


def test_a_mask_may_start_with_painted_pixels(case, reader):
    document = _set_counts(read_document(case), [0, 10, 4086])

    read = submit_read(reader=reader, document=document).read

    assert MaskSlice.objects.get(read=read).pixel_count == 10


def test_an_all_zero_mask_slice_is_accepted_but_not_stored(case, reader):
    document = _set_counts(read_document(case), [4096])

    read = submit_read(reader=reader, document=document).read

    assert not MaskSlice.objects.filter(read=read).exists()


def test_one_mask_entry_per_frame_per_lesion(case, reader):
    document = read_document(case)
    slices = document["lesions"][0]["mask"]["slices"]
    slices.append(copy.deepcopy(slices[0]))

    assert "lesions[0].mask.slices[1]" in errors_of(reader, document)


def test_mask_slices_must_name_an_instance_of_the_case(case, reader):
    document = read_document(case)
    document["lesions"][0]["mask"]["slices"][0]["sop_instance_uid"] = "9.9.9"

    assert "lesions[0].mask.slices[0].sop_instance_uid" in errors_of(reader, document)


def test_masks_need_the_mask_tool(case, reader):
    with_tools(case, ["long_axis", "bidirectional", "no_lesion"])

    assert "lesions[0].mask" in errors_of(reader, read_document(case))


def test_a_mask_only_lesion_is_a_valid_read(case, reader):
    instance = middle_instance(case)
    document = read_document(case)
    document["lesions"][0] = {
        "lesion": 1,
        "mask": {
            "slices": [
                {
                    "sop_instance_uid": instance.sop_instance_uid,
                    "frame": 1,
                    "counts": square_mask_counts(instance, top=30, left=18, size=8),
                }
            ]
        },
    }

    read = submit_read(reader=reader, document=document).read

    assert MaskSlice.objects.get(read=read).pixel_count == 64 and not Mark.objects.filter(read=read).exists()


def test_every_broken_rule_is_reported_at_once(case, reader):
    document = read_document(case, duration_s=-3, comment=7)
    document["lesions"][0]["long_axis"]["end"] = [900.0, 10.0]

    errors = errors_of(reader, document)

    assert {"duration_s", "comment", "lesions[0].long_axis.end"} <= set(errors)


# --- After commit ---------------------------------------------------------------------------------


def test_consensus_is_queued_and_the_leaderboard_broadcast_after_commit(
    case, reader, monkeypatch, django_capture_on_commit_callbacks
):
    import annotations.booth.leaderboard as leaderboard_service
    import annotations.consensus.tasks as consensus_tasks

    queued: list[int] = []
    broadcasts: list[bool] = []

    class FakeTask:
        @staticmethod
        def delay(case_id):
            queued.append(case_id)

    monkeypatch.setattr(consensus_tasks, "compute_case_consensus", FakeTask, raising=False)
    monkeypatch.setattr(leaderboard_service, "broadcast_leaderboard", lambda: broadcasts.append(True))

    with django_capture_on_commit_callbacks(execute=True):
        submit_read(reader=reader, document=read_document(case))

    assert queued == [case.pk] and broadcasts == [True]


def test_a_read_document_must_be_an_object(case, reader):
    assert "" in errors_of(reader, [uuid.uuid4().hex])
