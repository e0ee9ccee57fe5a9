"""Grouping readers' marks into lesions: the distance rule, one mark per reader, conflicts, invariances."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.core.lesion_matching import ReaderLesion, group_lesions, match_points, within_reach
from annotations.core.line_consensus import DrawnLine

SPACING = 2.5


def reader_lesion(reader_id, center, length, *, lesion_index=1, z=0.0, mask=None, line_voxels=None):
    x, y = center
    start, end = (x - length / 2, y), (x + length / 2, y)
    drawn = DrawnLine(reader_id, "1.1", 1, start, end, (*start, z), (*end, z), length)
    return ReaderLesion(
        reader_id=reader_id,
        read_id=100 + reader_id,
        lesion_index=lesion_index,
        anchor_mm=(x, y, z),
        size_mm=length,
        long_axis=drawn,
        mask_voxels=mask,
        line_voxels=line_voxels,
    )


def groups_as_sets(groups):
    return sorted(sorted((m.reader_id, m.lesion_index) for m in g.members) for g in groups)


def test_rule_is_half_the_longer_length_plus_one_slice_spacing():
    assert within_reach(7.4, 10.0, 4.0, slice_spacing_mm=2.5)
    assert not within_reach(7.5, 10.0, 4.0, slice_spacing_mm=2.5)


def test_marks_on_neighbouring_slices_join_and_a_distant_mark_stays_alone():
    lesions = [
        reader_lesion(1, (0, 0), 20),
        reader_lesion(2, (1, 0.5), 19, z=2.5),
        reader_lesion(3, (60, 60), 12),
    ]

    groups = group_lesions(lesions, slice_spacing_mm=SPACING)

    assert groups_as_sets(groups) == [[(1, 1), (2, 1)], [(3, 1)]]
    assert len(groups[0].members) == 2  # the best-supported lesion comes first


def test_a_reader_never_has_two_marks_in_one_lesion_and_conflicts_go_to_the_closest_lesion():
    # Two lesions 12 mm apart, both within reach of each other; reader 3 measured both.
    lesions = [
        reader_lesion(1, (0, 0), 20),
        reader_lesion(2, (12, 0), 20),
        reader_lesion(3, (1, 0), 20, lesion_index=1),
        reader_lesion(3, (11, 0), 20, lesion_index=2),
    ]

    groups = group_lesions(lesions, slice_spacing_mm=SPACING)

    assert groups_as_sets(groups) == [[(1, 1), (3, 1)], [(2, 1), (3, 2)]]


def test_a_mask_only_lesion_joins_the_line_it_contains_even_when_sizes_differ():
    line_voxels = np.array([10, 11, 12])
    lesions = [
        reader_lesion(1, (0, 0), 4, line_voxels=line_voxels),
        ReaderLesion(2, 200, 1, anchor_mm=(30, 0, 0), size_mm=5, mask_voxels=np.arange(5, 40)),
    ]

    assert len(group_lesions(lesions, slice_spacing_mm=SPACING)) == 1


def test_mask_only_lesions_group_by_overlap():
    lesions = [
        ReaderLesion(1, 1, 1, anchor_mm=(0, 0, 0), size_mm=2, mask_voxels=np.arange(0, 10)),
        ReaderLesion(2, 2, 1, anchor_mm=(40, 0, 0), size_mm=2, mask_voxels=np.arange(9, 20)),
        ReaderLesion(3, 3, 1, anchor_mm=(90, 0, 0), size_mm=2, mask_voxels=np.arange(50, 60)),
    ]

    assert groups_as_sets(group_lesions(lesions, slice_spacing_mm=SPACING)) == [[(1, 1), (2, 1)], [(3, 1)]]


def test_reference_matching_minimises_total_distance_and_drops_pairs_out_of_reach():
    pairs = match_points(
        [[0, 0, 0], [10, 0, 0], [99, 0, 0]], [20, 20, 5], [[9, 0, 0], [1, 0, 0]], [20, 20], slice_spacing_mm=2.5
    )

    assert sorted((p.left, p.right) for p in pairs) == [(0, 1), (1, 0)]


lesion_centres = st.lists(
    st.tuples(st.floats(-80, 80), st.floats(-80, 80), st.sampled_from([-2.5, 0.0, 2.5]), st.floats(5, 40)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(lesion_centres, st.integers(2, 5), st.randoms(use_true_random=False), st.data())
def test_grouping_does_not_depend_on_reader_order_or_reader_labels(centres, n_readers, rng, data):
    lesions = []
    for reader in range(1, n_readers + 1):
        for index, (x, y, z, length) in enumerate(centres, start=1):
            if data.draw(st.booleans()):
                jitter = data.draw(st.floats(-1, 1))
                lesions.append(
                    reader_lesion(reader, (x + jitter, y - jitter), length + jitter, lesion_index=index, z=z)
                )
    relabel = list(range(1, n_readers + 1))
    rng.shuffle(relabel)
    renamed = [
        reader_lesion(
            relabel[m.reader_id - 1], m.anchor_mm[:2], m.size_mm, lesion_index=m.lesion_index, z=m.anchor_mm[2]
        )
        for m in lesions
    ]
    rng.shuffle(renamed)

    def geometry_groups(groups):
        return sorted(sorted(tuple(np.round(m.anchor_mm, 6)) for m in g.members) for g in groups)

    original = group_lesions(lesions, slice_spacing_mm=SPACING)
    shuffled = group_lesions(renamed, slice_spacing_mm=SPACING)

    assert geometry_groups(shuffled) == geometry_groups(original)
    for group in original:
        assert len(set(group.reader_ids)) == len(group.members)


@settings(max_examples=30, deadline=None)
@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(5, 40), st.integers(1, 8))
def test_a_unanimous_lesion_is_one_group_with_every_reader(x, y, length, n_readers):
    lesions = [reader_lesion(reader, (x, y), length) for reader in range(1, n_readers + 1)]

    (group,) = group_lesions(lesions, slice_spacing_mm=SPACING)

    assert group.reader_ids == list(range(1, n_readers + 1))
