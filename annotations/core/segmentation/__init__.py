"""Lesion mask proposals from a reader's RECIST line or tap: 2D on a slice, then propagated in 3D.

Pure numeric core (numpy, scipy, scikit-image): no Django, nothing else from the project. The library
algorithm is scikit-image's marker watershed, chosen by measurement over four other library methods and
LiteMedSAM (benchmarks/bench_segmentation.py, benchmarks/README-segmentation.md); this package only crops,
seeds, normalises, checks and post-processes around it.
"""

from .axes import Axes, recist_axes
from .errors import NoLesionFound
from .segmenters import (
    DEFAULT_SEGMENTER,
    RandomWalkerSegmenter,
    Segmenter,
    WatershedSegmenter,
    random_walker_segmenter,
    watershed_segmenter,
)
from .slice_proposal import ALGORITHM_NAME, ALGORITHM_VERSION, SliceProposal, propose_from_line
from .volume_proposal import VolumeProposal, propagate, propose_from_tap

__all__ = [
    "ALGORITHM_NAME",
    "ALGORITHM_VERSION",
    "DEFAULT_SEGMENTER",
    "Axes",
    "NoLesionFound",
    "RandomWalkerSegmenter",
    "Segmenter",
    "SliceProposal",
    "VolumeProposal",
    "WatershedSegmenter",
    "propagate",
    "propose_from_line",
    "propose_from_tap",
    "random_walker_segmenter",
    "recist_axes",
    "watershed_segmenter",
]
