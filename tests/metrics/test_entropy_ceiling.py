"""entropy_ceiling: the largest EN of a fused image that stays black where both sources are."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msgfusion.data.datasets import load_aanlib
from msgfusion.metrics import entropy, entropy_ceiling


def test_reached_by_the_flattest_histogram() -> None:
    # 340 pixels black in both sources (p = 1/4), then every level 1..255 four times.
    a = np.concatenate([np.zeros(340), np.full(1020, 9.0)]).reshape(40, 34)
    b = np.concatenate([np.zeros(340), np.zeros(510), np.full(510, 200.0)]).reshape(40, 34)
    f = np.concatenate([np.zeros(340), np.repeat(np.arange(1.0, 256.0), 4)]).reshape(40, 34)
    expected = -0.25 * math.log2(0.25) - 0.75 * math.log2(0.75 / 255)
    assert entropy_ceiling(a, b) == pytest.approx(expected)
    assert entropy(f) == pytest.approx(expected)
    # Any other image black on those 340 pixels has a lower EN.
    g = f.copy()
    g[-4:] = 128
    assert entropy(g) < entropy_ceiling(a, b)


def test_limits() -> None:
    black = np.zeros((8, 8))
    assert str(entropy_ceiling(black, black)) == "0.0"  # no -0.0
    bright, dark = np.full((16, 16), 50.0), np.zeros((16, 16))
    assert entropy_ceiling(bright, dark) == 8.0  # no pixel is black in both
    one = bright.copy()
    one[0, 0] = 0
    assert entropy_ceiling(one, dark) == 8.0  # p = 1/256: the uniform histogram is allowed
    with pytest.raises(ValueError, match="same shape"):
        entropy_ceiling(black, np.zeros((8, 9)))


def _levels(img: np.ndarray) -> np.ndarray:
    return np.round(img * 255.0)


def test_bounds_real_fusions_that_keep_the_background_black(aanlib_dir) -> None:
    """Pixel max and average of the PET-MRI test pairs stay under the ceiling; the same images
    with their no-signal background lifted to faint noise can exceed it."""
    rng = np.random.default_rng(0)
    above = []
    for pair in load_aanlib(aanlib_dir, "test", ["PET-MRI"])[0]:
        a, b = _levels(pair.mr), _levels(pair.func_gray)
        ceiling = entropy_ceiling(a, b)
        for fused in (np.maximum(a, b), np.round((a + b) / 2)):
            assert entropy(fused) <= ceiling
        lifted = np.maximum(a, b)
        background = (a == 0) & (b == 0)
        lifted[background] = rng.integers(1, 9, int(background.sum()))
        above.append(entropy(lifted) > ceiling)
    assert len(above) == 24 and any(above)
