"""The read format's run-length masks: round trips, sparse decoding and the validation messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annotations.core import mask_rle


def test_documented_example_counts_decode_to_two_runs():
    counts = [3, 2, 4, 1, 2]

    mask = mask_rle.decode(counts, rows=3, columns=4)

    assert mask.ravel().tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0]


def test_mask_starting_with_foreground_begins_with_an_empty_zero_run():
    assert mask_rle.encode(np.array([[1, 1], [0, 1]], dtype=bool)) == [0, 2, 1, 1]


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_encode_decode_and_sparse_indices_round_trip(mask):
    counts = mask_rle.encode(mask)

    np.testing.assert_array_equal(mask_rle.decode(counts, rows=mask.shape[0], columns=mask.shape[1]), mask)
    indices = mask_rle.foreground_indices(counts, rows=mask.shape[0], columns=mask.shape[1])
    np.testing.assert_array_equal(indices, np.flatnonzero(mask))
    assert mask_rle.encode_indices(indices, rows=mask.shape[0], columns=mask.shape[1]) == counts
    assert mask_rle.pixel_count(counts) == mask.sum()


@pytest.mark.parametrize(
    ("counts", "message"),
    [([3, 2], "expected rows x columns = 12"), ([0, 0, 12], "only the first run"), ([-1, 13], "negative")],
)
def test_invalid_counts_are_rejected_with_the_reason(counts, message):
    with pytest.raises(ValueError, match=message):
        mask_rle.decode(counts, rows=3, columns=4)
