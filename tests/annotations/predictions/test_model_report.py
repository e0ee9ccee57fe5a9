"""The model against the crowd, lesion by lesion: sensitivity, false positives per case, Dice and long-axis error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.urls import reverse

from annotations.core import mask_rle
from annotations.models import CaseConsensus, ConsensusLesion, ModelPrediction
from annotations.predictions.selectors import model_summaries, model_vs_crowd
from tests.annotations.export_data import disc
from tests.factories import CaseFactory, TaskFactory, line_json, middle_instance, researcher_user

pytestmark = pytest.mark.django_db


def rectangle(*, rows: tuple[int, int], columns: tuple[int, int]) -> np.ndarray:
    """Pixels rows[0]..rows[1] x columns[0]..columns[1] (inclusive) of the 64 x 64 CT."""
    mask = np.zeros((64, 64), dtype=bool)
    mask[rows[0] : rows[1] + 1, columns[0] : columns[1] + 1] = True
    return mask


@pytest.fixture
def one_found_one_missed_one_false(small_ct_series):
    """Consensus: a 16 mm lesion with a mask, and a 10 mm line-only lesion. Model: one near the first, one stray.

    The small CT has 1 mm pixels, so pixel distances are mm.
    """
    task = TaskFactory(name="Liver")
    case = CaseFactory(task=task, series=small_ct_series, label="Liver 1")
    middle = middle_instance(case)
    consensus = CaseConsensus.objects.create(
        case=case, algorithm_version="1", params={}, inputs_hash="b" * 64, n_reads=3, summary={}
    )
    found = rectangle(rows=(17, 23), columns=(10, 26))
    ConsensusLesion.objects.create(
        consensus=consensus,
        lesion_index=1,
        support=3,
        support_fraction=1.0,
        long_axis=line_json(middle, (10, 20), (26, 20)),
        mask_slices=[{"sop_instance_uid": middle.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(found)}],
    )
    ConsensusLesion.objects.create(
        consensus=consensus,
        lesion_index=2,
        support=2,
        support_fraction=2 / 3,
        long_axis=line_json(middle, (40, 50), (50, 50)),
    )
    ConsensusLesion.objects.create(  # too little support: not a consensus lesion, so the model need not find it
        consensus=consensus, lesion_index=3, support=1, support_fraction=1 / 3, accepted=False,
        long_axis=line_json(middle, (5, 55), (12, 55)),
    )  # fmt: skip
    model_found = rectangle(rows=(18, 22), columns=(12, 26))
    stray = disc(64, 64, center=(50.0, 15.0), radius=3)
    ModelPrediction.objects.create(
        case=case,
        model_name="seg-net",
        mask_slices=[
            {"sop_instance_uid": middle.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(model_found | stray)}
        ],
    )
    return task, found, model_found


def test_the_report_counts_found_missed_and_false_lesions_and_their_errors(one_found_one_missed_one_false):
    task, found, model_found = one_found_one_missed_one_false

    (row,) = model_vs_crowd(task=task)
    (summary,) = model_summaries([row])

    # The model's rectangle (12..26 x 18..22) measures corner to corner: sqrt(14^2 + 4^2) mm against 16 mm.
    axis_error = math.hypot(14, 4) - 16
    lesion_dice = 2 * int((found & model_found).sum()) / (int(found.sum()) + int(model_found.sum()))
    assert (row.model_lesions, row.vs_consensus.found, row.vs_consensus.false_positives) == (2, 1, 1)
    figures = summary.vs_consensus
    assert (figures.sensitivity, figures.false_positives_per_case) == (0.5, 1.0)
    assert figures.long_axis_mean_error_mm == pytest.approx(axis_error)
    assert figures.long_axis_mean_abs_error_mm == pytest.approx(abs(axis_error))
    assert figures.dice_median == figures.dice_mean == pytest.approx(lesion_dice) == pytest.approx(150 / 194)
    assert summary.vs_answer_key is None and row.verdicts is None


def test_the_results_page_shows_the_per_lesion_figures_and_what_they_mean(one_found_one_missed_one_false, client):
    task, _, _ = one_found_one_missed_one_false
    client.force_login(researcher_user())

    page = client.get(reverse("console:task-results", args=[task.pk])).content.decode()

    summary = page[page.index('data-testid="model-summary"') : page.index('data-testid="model-cases"')]
    assert "0.50 (1 / 2)" in summary and "1.00" in summary  # sensitivity, false positives per case
    assert "0.77 (0.77)" in summary and "1.4 (-1.4)" in summary  # lesion Dice; long-axis error and bias, mm
    assert "False positives / case" in page and "Sensitivity</b>: reference lesions the model found" in page
