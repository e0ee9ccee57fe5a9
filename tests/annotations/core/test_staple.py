"""STAPLE over decision patterns against SimpleITK's STAPLEImageFilter, and majority voting."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.core.staple import decision_histogram, majority_vote, staple, staple_patterns


def simpleitk_staple(masks):
    images = [sitk.GetImageFromArray(mask.astype(np.uint8)) for mask in masks]
    flt = sitk.STAPLEImageFilter()
    posterior = sitk.GetArrayFromImage(flt.Execute(images))
    return posterior, np.array(flt.GetSensitivity()), np.array(flt.GetSpecificity()), flt.GetElapsedIterations()


def random_readers(rng, truth, n_readers):
    masks = []
    for reader in range(n_readers):
        miss = rng.random(truth.shape) < 0.05 + 0.03 * (reader % 4)
        extra = rng.random(truth.shape) < 0.01 + 0.01 * (reader % 3)
        masks.append((truth & ~miss) | (~truth & extra))
    return masks


def sphere(shape, center, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)) <= radius**2


def structured_readers(shape, n_readers):
    """Spheres drawn a little off-centre and too big or small, as readers really disagree."""
    masks = []
    for reader in range(n_readers):
        offset = (reader % 3 - 1, (reader * 2) % 5 - 2, reader % 2)
        radius = 7 + (reader % 4) - 1.5
        centre = tuple(s // 2 + o for s, o in zip(shape, offset, strict=True))
        masks.append(sphere(shape, centre, radius))
    return masks


@pytest.mark.parametrize("n_readers", [3, 5, 10])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_posteriors_and_labels_match_simpleitk(n_readers, kind):
    rng = np.random.default_rng(n_readers)
    shape = (12, 40, 36)
    if kind == "random":
        truth = sphere(shape, (6, 20, 18), 9)
        masks = random_readers(rng, truth, n_readers)
    else:
        masks = structured_readers(shape, n_readers)

    ours = staple(masks)
    posterior, sensitivity, specificity, iterations = simpleitk_staple(masks)

    np.testing.assert_array_equal(ours.label, posterior > 0.5)
    np.testing.assert_allclose(ours.posterior, posterior, atol=1e-4)
    np.testing.assert_allclose(ours.sensitivity, sensitivity, atol=1e-6)
    np.testing.assert_allclose(ours.specificity, specificity, atol=1e-6)
    assert ours.iterations == iterations


def test_sparse_small_lesion_in_a_large_volume_matches_simpleitk():
    shape = (20, 128, 128)
    masks = [np.zeros(shape, dtype=bool) for _ in range(4)]
    for reader, mask in enumerate(masks):
        mask[8:12, 60 + reader : 70 + reader, 50 : 62 - reader] = True

    ours = staple(masks)
    posterior, *_ = simpleitk_staple(masks)

    np.testing.assert_array_equal(ours.label, posterior > 0.5)
    np.testing.assert_allclose(ours.posterior, posterior, atol=1e-4)


def test_staple_recovers_simulated_sensitivity_and_specificity():
    rng = np.random.default_rng(7)
    truth = rng.random((30, 60, 60)) < 0.3
    true_p = [0.95, 0.85, 0.75, 0.9, 0.6]
    true_q = [0.98, 0.95, 0.99, 0.9, 0.97]
    masks = [
        np.where(truth, rng.random(truth.shape) < p, rng.random(truth.shape) > q)
        for p, q in zip(true_p, true_q, strict=True)
    ]

    result = staple(masks)

    np.testing.assert_allclose(result.sensitivity, true_p, atol=0.01)
    np.testing.assert_allclose(result.specificity, true_q, atol=0.01)


def test_histogram_holds_at_most_one_row_per_vote_pattern():
    masks = [np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]])]

    histogram = decision_histogram(masks)

    assert histogram.patterns.tolist() == [[False, False], [True, False], [False, True], [True, True]]
    assert histogram.counts.tolist() == [1, 1, 1, 1]


def test_maximum_iterations_stops_early_like_itk():
    rng = np.random.default_rng(3)
    masks = random_readers(rng, sphere((8, 20, 20), (4, 10, 10), 5), 3)
    flt = sitk.STAPLEImageFilter()
    flt.SetMaximumIterations(2)
    expected = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]))

    ours = staple(masks, maximum_iterations=2)

    np.testing.assert_allclose(ours.posterior, expected, atol=1e-9)
    assert ours.iterations == 2


def test_confidence_weight_scales_the_prior_like_simpleitk():
    rng = np.random.default_rng(5)
    masks = random_readers(rng, sphere((8, 24, 24), (4, 12, 12), 6), 5)
    flt = sitk.STAPLEImageFilter()
    flt.SetConfidenceWeight(0.5)
    expected = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]))

    ours = staple(masks, confidence_weight=0.5)

    np.testing.assert_allclose(ours.posterior, expected, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**16 - 1), st.randoms(use_true_random=False))
def test_reader_order_does_not_change_the_consensus(n_readers, seed, rng):
    generator = np.random.default_rng(seed)
    truth = sphere((6, 16, 16), (3, 8, 8), 4)
    masks = random_readers(generator, truth, n_readers)
    order = list(range(n_readers))
    rng.shuffle(order)

    original = staple(masks)
    shuffled = staple([masks[i] for i in order])

    np.testing.assert_allclose(shuffled.posterior, original.posterior, atol=1e-9)
    np.testing.assert_allclose(shuffled.sensitivity, original.sensitivity[order], atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(0, 2**16 - 1))
def test_a_unanimous_vote_gives_that_mask(n_readers, seed):
    mask = np.random.default_rng(seed).random((4, 9, 9)) < 0.4
    mask[0, 0, 0], mask[0, 0, 1] = True, False  # both classes present

    result = staple([mask] * n_readers)

    np.testing.assert_array_equal(result.label, mask)
    np.testing.assert_array_equal(majority_vote([mask] * n_readers), mask)


def test_patterns_with_fractional_counts_are_accepted():
    result = staple_patterns(np.array([[0, 0], [1, 1]]), np.array([90.0, 10.0]))

    assert result.posterior.tolist() == [0.0, 1.0]


def test_majority_vote_needs_more_than_half_by_default():
    masks = [np.array([1, 1, 0]), np.array([1, 0, 0]), np.array([0, 1, 1]), np.array([1, 1, 0])]

    assert majority_vote(masks).tolist() == [True, True, False]
    assert majority_vote(masks, min_votes=1).tolist() == [True, True, True]


def test_masks_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="mask 1 has shape"):
        staple([np.zeros((2, 2)), np.zeros((3, 2))])
