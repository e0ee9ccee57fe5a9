"""Consensus over time, the service: reads of a follow-up case in, a current CaseConsensus with RECIST out."""

from __future__ import annotations

import pytest

from annotations.assignment.services import next_case
from annotations.consensus.longitudinal_consensus import follow_up_task_agreement
from annotations.consensus.tasks import compute_case_consensus
from annotations.models import CaseConsensus, ConsensusLesion
from annotations.reading.submission import submit_read
from tests.annotations.follow_up_data import build_follow_up_scene, follow_up_read, measured
from tests.factories import ReaderFactory

pytestmark = pytest.mark.django_db

B1, B2 = (-8.0, 6.0), (14.0, -12.0)


def submit(scene, reader, b1_sizes, b2_sizes, *, new_at_2=None):
    assert next_case(reader=reader, task=scene.task) == scene.case
    points = []
    number = 0
    for index, (b1, b2) in enumerate(zip(b1_sizes, b2_sizes, strict=True), start=1):
        lesions = [measured(scene, index, number + 1, "B1", *B1, b1), measured(scene, index, number + 2, "B2", *B2, b2)]
        number += 2
        if index == 2 and new_at_2:
            number += 1
            lesions.append(measured(scene, index, number, None, *new_at_2, 6.0))
        points.append({"index": index, "lesions": lesions})
    return submit_read(reader=reader, document=follow_up_read(scene, points)).read


def test_the_consensus_task_computes_a_follow_up_case_over_time(tmp_path):
    scene = build_follow_up_scene(tmp_path)
    readers = [ReaderFactory() for _ in range(3)]
    submit(scene, readers[0], (12.0, 10.0), (15.0, 15.0), new_at_2=(-20.0, -15.0))
    submit(scene, readers[1], (13.0, 10.0), (14.0, 14.0), new_at_2=(-21.0, -15.0))
    submit(scene, readers[2], (20.0, 19.0), (16.0, 16.0))

    consensus_id = compute_case_consensus(scene.case.pk)

    stored = CaseConsensus.objects.get(pk=consensus_id)
    assert stored.is_current and stored.algorithm_version.startswith("longitudinal")
    assert stored.n_reads == 3
    # Medians: follow-up 1: 13 + 15 = 28 of 36 (-22 %): SD; follow-up 2: a new lesion found by 2 of 3: PD.
    assert [(e["index"], e["sum_mm"], e["response"]) for e in stored.summary["consensus_recist"]] == [
        (1, 28.0, "SD"),
        (2, 25.0, "PD"),
    ]
    b1_at_1 = ConsensusLesion.objects.get(consensus=stored, statistics__time_point=1, statistics__key="B1")
    assert b1_at_1.long_axis_median_mm == pytest.approx(13.0)
    assert b1_at_1.long_axis["sop_instance_uid"] in {i.sop_instance_uid for i in scene.series[1].instances.all()}
    assert ConsensusLesion.objects.filter(consensus=stored, statistics__is_new=True, accepted=True).count() == 1

    assert compute_case_consensus(scene.case.pk) == consensus_id  # same inputs: the same rows
    figures = follow_up_task_agreement(task=scene.task)
    assert figures["subjects"] == 2
    assert {row["vs_consensus"]["agree"] for row in figures["readers"]} == {2, 1}


def test_the_stale_sweep_recomputes_a_follow_up_case_only_when_it_has_new_reads(tmp_path):
    from annotations.consensus.case_consensus import stale_case_ids
    from annotations.consensus.tasks import sweep_stale_consensus

    scene = build_follow_up_scene(tmp_path)
    submit(scene, ReaderFactory(), (12.0, 10.0), (15.0, 15.0))
    assert stale_case_ids(task=scene.task) == [scene.case.pk]

    sweep_stale_consensus()

    assert stale_case_ids(task=scene.task) == []
    assert CaseConsensus.objects.get(case=scene.case, is_current=True).algorithm_version.startswith("longitudinal")
