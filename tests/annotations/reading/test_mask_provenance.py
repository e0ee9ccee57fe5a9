"""A mask's provenance in the read document: hand, line or tap, with the algorithm, and the Dice between the
proposal and the submitted mask computed by the server; strict checks naming the JSON path."""

from __future__ import annotations

import pytest

from annotations.models import MaskProvenance
from annotations.reading.documents import ReadValidationError
from annotations.reading.submission import submit_read
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    TaskFactory,
    middle_instance,
    read_document,
    square_mask_counts,
)

pytestmark = pytest.mark.django_db

ALGORITHM = {"algorithm": "readerboard seeded random walker", "algorithm_version": "1 (scikit-image 0.26.0)"}


@pytest.fixture
def case(small_ct_series):
    return CaseFactory(series=small_ct_series, task=TaskFactory(reads_per_case=3))


@pytest.fixture
def reader(case):
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)
    return reader


def square(case, *, top=34, left=20, size=6) -> dict:
    instance = middle_instance(case)
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "counts": square_mask_counts(instance, top=top, left=left, size=size),
    }


def with_provenance(case, provenance: dict) -> dict:
    document = read_document(case)
    document["lesions"][0]["mask"]["provenance"] = provenance
    return document


def errors_of(reader, document) -> dict[str, list[str]]:
    with pytest.raises(ReadValidationError) as caught:
        submit_read(reader=reader, document=document)
    return caught.value.errors


def test_an_unchanged_proposal_is_stored_with_dice_one(case, reader):
    document = with_provenance(case, {"source": "line", **ALGORITHM, "proposal": {"slices": [square(case)]}})

    read = submit_read(reader=reader, document=document).read

    provenance = MaskProvenance.objects.get(read=read)
    assert (provenance.source, provenance.edited, provenance.edit_dice) == ("line", False, 1.0)
    assert provenance.algorithm == ALGORITHM["algorithm"]
    assert provenance.proposal_pixels == 36


def test_an_edited_proposal_gets_the_servers_dice(case, reader):
    # The proposal is an 8 x 8 square holding the submitted 6 x 6 one: Dice = 2 * 36 / (64 + 36) = 0.72.
    proposal = square(case, top=33, left=19, size=8)
    document = with_provenance(case, {"source": "tap", **ALGORITHM, "proposal": {"slices": [proposal]}})

    read = submit_read(reader=reader, document=document).read

    provenance = MaskProvenance.objects.get(read=read)
    assert (provenance.source, provenance.edited) == ("tap", True)
    assert provenance.edit_dice == pytest.approx(0.72)


def test_a_page_sent_dice_is_refused(case, reader):
    provenance = {"source": "line", **ALGORITHM, "proposal": {"slices": [square(case)]}, "dice": 1.0}

    assert errors_of(reader, with_provenance(case, provenance)) == {
        "lesions[0].mask.provenance.dice": ["unknown field"]
    }


@pytest.mark.parametrize("provenance", [None, {"source": "hand"}])
def test_a_hand_made_mask_stores_no_proposal(case, reader, provenance):
    document = read_document(case) if provenance is None else with_provenance(case, provenance)

    read = submit_read(reader=reader, document=document).read

    assert read.mask_slices.exists()
    assert not MaskProvenance.objects.filter(read=read).exists()


@pytest.mark.parametrize(
    ("provenance", "path", "message"),
    [
        ({"source": "magic"}, "lesions[0].mask.provenance.source", "must be one of hand, line, tap"),
        ({"source": "hand", **ALGORITHM}, "lesions[0].mask.provenance.algorithm", "a hand-made mask has no proposal"),
        ({"source": "line", **ALGORITHM}, "lesions[0].mask.provenance.proposal", "this field is required"),
        (
            {"source": "line", "algorithm_version": "1", "proposal": {"slices": []}},
            "lesions[0].mask.provenance.algorithm",
            "must be a non-empty string",
        ),
        ("line", "lesions[0].mask.provenance", "must be an object"),
    ],
)
def test_bad_provenance_names_its_path(case, reader, provenance, path, message):
    errors = errors_of(reader, with_provenance(case, provenance))

    assert path in errors and errors[path][0].startswith(message)


def test_a_proposal_slice_off_the_series_names_its_path(case, reader):
    stray = {**square(case), "sop_instance_uid": "9.9.9"}
    document = with_provenance(case, {"source": "line", **ALGORITHM, "proposal": {"slices": [stray]}})

    errors = errors_of(reader, document)

    assert "lesions[0].mask.provenance.proposal.slices[0].sop_instance_uid" in errors
