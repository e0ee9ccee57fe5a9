"""Seeded two-label segmenters: the library algorithm a proposal runs inside its crop.

A segmenter gets an intensity image already normalised from the seed's statistics (lesion about 1,
surrounding organ about 0, clipped), lesion seeds and background seeds, all on one isotropic grid, and
returns the lesion mask. The algorithm itself always comes from a maintained library; this module only
adapts its calling convention. The chosen one, by measurement (benchmarks/bench_segmentation.py, 200 hard
phantoms against the random walker, Chan-Vese, SimpleITK region growing, GrabCut and LiteMedSAM), is
`watershed_segmenter`: scikit-image's marker watershed. The benchmark passes the others through the same
protocol so that cropping, seeding and acceptance checks are shared.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import skimage
from skimage.filters import sobel
from skimage.segmentation import random_walker, watershed

RANDOM_WALKER_BETA = 1000.0


class Segmenter(Protocol):
    """A seeded two-label segmentation: (image, lesion seeds, background seeds) -> lesion mask, same shape."""

    name: str

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray: ...


class RandomWalkerSegmenter:
    """scikit-image's random walker (Grady 2006), solved directly; lesion where its probability exceeds 1/2."""

    name = f"scikit-image {skimage.__version__} random_walker"

    def __init__(self, *, beta: float = RANDOM_WALKER_BETA) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.beta = beta

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        labels = np.zeros(image.shape, dtype=np.int32)
        labels[background_seeds] = 2
        labels[lesion_seeds] = 1
        if not (labels == 0).any():
            return lesion_seeds.copy()
        result = random_walker(image.astype(np.float64), labels, beta=self.beta, mode="bf")
        return result == 1


random_walker_segmenter = RandomWalkerSegmenter()


class WatershedSegmenter:
    """scikit-image's marker-controlled watershed on the Sobel gradient magnitude of the normalised crop."""

    name = f"scikit-image {skimage.__version__} watershed"

    def __call__(self, image: np.ndarray, lesion_seeds: np.ndarray, background_seeds: np.ndarray) -> np.ndarray:
        markers = np.zeros(image.shape, dtype=np.int32)
        markers[background_seeds] = 2
        markers[lesion_seeds] = 1
        return watershed(sobel(image), markers) == 1


watershed_segmenter = WatershedSegmenter()
DEFAULT_SEGMENTER: Segmenter = watershed_segmenter
