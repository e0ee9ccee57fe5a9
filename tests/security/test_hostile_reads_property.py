"""Property: whatever hostile leaf a valid read, follow-up read or answer key carries, the API answers 2xx or 4xx,
never 5xx, and every document it accepts can be exported.

Hypothesis takes a valid read (lesion with lines and a mask, answers to text, number and choice questions),
replaces one to three of its leaves (or adds a field) with hostile values (unpaired surrogates, NUL,
control characters, huge integers, odd floats, impossible dates, arrays and objects where a string goes)
and posts it as JSON text through the real API. After each accepted read the task's CSV export must run.
The same mutations are applied to a valid follow-up read (three time points) and to an admin's answer key of
a gold case. CI budget: 200 examples for reads, 100 each for follow-up reads and answer keys, no deadline.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from annotations.exports import export_to_path
from annotations.questions.services import save_questions
from tests.annotations.follow_up_data import build_follow_up_scene
from tests.annotations.reading.test_follow_up_reads import full_read
from tests.factories import CaseFactory, LeaseFactory, ReaderFactory, TaskFactory, admin_user, read_document

pytestmark = pytest.mark.django_db

EXAMPLES = 200
OTHER_KIND_EXAMPLES = 100
QUESTIONS = [
    {"key": "note", "kind": "text", "label": "Note", "max_length": 300},
    {"key": "size", "kind": "number", "label": "Size", "number": {"min": None, "max": None}},
    {
        "key": "features",
        "kind": "multiple_choice",
        "label": "Features",
        "options": [{"value": "calcified", "label": "Calcified"}, {"value": "cystic", "label": "Cystic"}],
    },
]
SPECIAL_CHARACTERS = ["\ud800", "\udfff", "\udbff\udc00", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff"]
SPECIAL_CHARACTERS += ["\n", "\r", "\t", "=", '"', ",", "é", "😀"]

hostile_text = st.lists(st.one_of(st.characters(), st.sampled_from(SPECIAL_CHARACTERS)), min_size=0, max_size=12).map(
    "".join
)
hostile_number = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, -1, 2**15, 2**31, 2**63, -(2**63) - 1, 10**300, 10**1000]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324]),
)
odd_date = st.one_of(
    st.sampled_from(
        [
            "2026-02-30T10:00:00Z",
            "2026-11-25T10:31:02+25:00",
            "2026-11-25T10:31:02-24:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-13-01T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25",
            "2026-11-25T10:31:02",
            "",
        ]
    ),
    st.datetimes().map(lambda moment: moment.isoformat() + "+05:30"),
)
wrong_type = st.one_of(
    st.none(),
    st.booleans(),
    st.just([]),
    st.just({}),
    st.lists(hostile_text, max_size=2),
    st.dictionaries(hostile_text, hostile_text, max_size=2),
)
hostile_leaf = st.one_of(hostile_text, hostile_number, odd_date, wrong_type)


def leaf_paths(value, path=()) -> list[tuple]:
    """Every path to a leaf (and to each container, so a whole list or object can be replaced)."""
    paths = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths += leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):  # a mask's run lengths need not all be candidates
            paths += leaf_paths(child, (*path, index))
    return paths


def replaced(document, path: tuple, leaf):
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = leaf
    return document


# Text leaves a reader may legitimately fill: mutating them with storable oddities must be accepted and exported.
TEXT_LEAVES = [("comment",), ("answers", "note")]
odd_but_storable_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs", "Cc")),
        st.sampled_from(["\n", "\r", "\t", "=", "+", "-", "@", '"', ",", ";", "\u2028", "\ufeff", "😀"]),
    ),
    max_size=40,
)


@st.composite
def hostile_documents(draw, template: dict, text_leaves: list[tuple] = TEXT_LEAVES):
    document = json.loads(json.dumps(template))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = leaf_paths(document)
        move = draw(st.integers(min_value=0, max_value=9))
        if move == 0:
            # An extra field in some object of the document (its name may be hostile too).
            objects = [p for p in [(), *paths] if isinstance(_at(document, p), dict)]
            where = draw(st.sampled_from(objects))
            _at(document, where)[draw(hostile_text)] = draw(hostile_leaf)
        elif move <= 4 and all(_has(document, path) for path in text_leaves):
            leaf = draw(st.one_of(odd_but_storable_text, hostile_leaf))
            document = replaced(document, draw(st.sampled_from(text_leaves)), leaf)
        elif paths:
            document = replaced(document, draw(st.sampled_from(paths)), draw(hostile_leaf))
    return document


def _has(document, path: tuple) -> bool:
    try:
        _at(document, path[:-1])[path[-1]]  # noqa: B018
    except (KeyError, IndexError, TypeError):
        return False
    return isinstance(_at(document, path[:-1]), dict)


def _at(document, path: tuple):
    for step in path:
        document = document[step]
    return document


@pytest.fixture
def scene(small_ct_series):
    task = TaskFactory(reads_per_case=10_000)
    case = CaseFactory(series=small_ct_series, task=task, label="Hostile")
    question_set = save_questions(task=task, lesion=[], case=QUESTIONS)
    template = read_document(
        case,
        comment="looks fine",
        question_version=question_set.version,
        answers={"note": "nothing else", "size": 3.5, "features": ["cystic"]},
    )
    return case, template


def test_hostile_leaves_in_a_valid_read_are_never_a_500_and_accepted_reads_export(scene, tmp_path: Path):
    case, template = scene
    client = APIClient()
    outcomes: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(document=hostile_documents(template))
    def check(document):
        reader = ReaderFactory()
        LeaseFactory(case=case, reader=reader)
        client.force_login(reader.user)
        if document.get("client_uuid") == template["client_uuid"]:
            document["client_uuid"] = str(uuid.uuid4())  # each example is a new read, not a retry of the first
        response = client.post("/api/reads/", data=json.dumps(document).encode(), content_type="application/json")
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        assert response.status_code < 500, (document, response.content[:500])
        response.json()  # every answer is JSON
        if response.status_code < 300:
            export_to_path(task=case.task, fmt="csv", out=tmp_path / "reads.csv")

    check()

    print(f"hostile reads posted: {sum(outcomes.values())}, answers by status: {sorted(outcomes.items())}")
    assert sum(outcomes.values()) >= EXAMPLES // 2, outcomes
    assert any(status < 300 for status in outcomes), f"no hostile read was ever accepted: {outcomes}"
    assert any(400 <= status < 500 for status in outcomes), outcomes


def _post_hostile_documents(
    *, template: dict, url: str, client_for, export, examples: int, text_leaves: list[tuple] = TEXT_LEAVES
) -> dict[int, int]:
    """Post the template, then `examples` hostile variants of it; no 5xx, JSON answers, an export after each 2xx."""
    accepted = client_for().post(url, data=json.dumps(template).encode(), content_type="application/json")
    assert accepted.status_code == 201, accepted.content[:500]  # the unharmed document is valid and exports
    export()
    outcomes: dict[int, int] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(document=hostile_documents(template, text_leaves))
    def check(document):
        client = client_for()
        if document.get("client_uuid") == template["client_uuid"]:
            document["client_uuid"] = str(uuid.uuid4())
        response = client.post(url, data=json.dumps(document).encode(), content_type="application/json")
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        assert response.status_code < 500, (document, response.content[:500])
        response.json()
        if response.status_code < 300:
            export()

    check()
    print(f"hostile documents posted to {url}: {sum(outcomes.values())}, by status: {sorted(outcomes.items())}")
    return outcomes


def test_hostile_leaves_in_a_follow_up_read_are_never_a_500_and_accepted_reads_export(tmp_path: Path):
    scene = build_follow_up_scene(tmp_path / "images", reads_per_case=10_000)
    template = full_read(scene, comment="stable")

    def client_for() -> APIClient:
        reader = ReaderFactory()
        LeaseFactory(case=scene.case, reader=reader)
        client = APIClient()
        client.force_login(reader.user)
        return client

    outcomes = _post_hostile_documents(
        template=template,
        url="/api/reads/",
        client_for=client_for,
        export=lambda: export_to_path(task=scene.task, fmt="bundle", out=tmp_path / "bundle.zip"),
        examples=OTHER_KIND_EXAMPLES,
        text_leaves=[("comment",)],
    )

    assert sum(outcomes.values()) >= OTHER_KIND_EXAMPLES // 2, outcomes
    assert any(400 <= status < 500 for status in outcomes), outcomes


def test_hostile_leaves_in_an_answer_key_are_never_a_500_and_accepted_keys_export(scene, tmp_path: Path):
    case, template = scene
    case.is_gold = True
    case.save(update_fields=["is_gold"])
    client = APIClient()
    client.force_login(admin_user())

    outcomes = _post_hostile_documents(
        template=template,
        url=f"/api/cases/{case.pk}/answer-key/",
        client_for=lambda: client,
        export=lambda: export_to_path(task=case.task, fmt="csv", out=tmp_path / "reads.csv"),
        examples=OTHER_KIND_EXAMPLES,
    )

    assert sum(outcomes.values()) >= OTHER_KIND_EXAMPLES // 2, outcomes
    assert any(400 <= status < 500 for status in outcomes), outcomes
