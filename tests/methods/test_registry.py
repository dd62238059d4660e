"""The method registry and the two pixel rules."""

from __future__ import annotations

import numpy as np
import pytest

from msgfusion.data.datasets import load_aanlib
from msgfusion.errors import UnknownMethodError
from msgfusion.methods.registry import FusionMethod, fuse_pairs, get_method, list_methods, register
from msgfusion.pair import FusionPair


@pytest.fixture(scope="module")
def pet_pairs(aanlib_dir):
    folder = load_aanlib(aanlib_dir, "test", ["PET-MRI"])[0]
    return [folder[i] for i in range(3)]


def test_every_method_has_metadata():
    methods = list_methods()
    assert {"average", "max"} <= {m.name for m in methods}
    for m in methods:
        assert m.description and m.reference


def test_average_and_max_on_real_pairs(pet_pairs):
    avg = get_method("average").fuse(pet_pairs)
    mx = get_method("max").fuse(pet_pairs)
    assert avg.shape == mx.shape == (3, 256, 256)
    p = pet_pairs[0]
    np.testing.assert_allclose(avg[0], (p.mr + p.func_gray) / 2)
    np.testing.assert_allclose(mx[0], np.maximum(p.mr, p.func_gray))


def test_fuse_pairs_groups_sizes_and_keeps_order(pet_pairs):
    small = FusionPair(mr=np.full((5, 7), 0.2), func=np.full((5, 7), 0.6), modality="CT")
    seen = []
    out = fuse_pairs(get_method("average"), [pet_pairs[0], small, pet_pairs[1]], batch_size=1,
                     on_batch=seen.append)
    assert [o.shape for o in out] == [(256, 256), (5, 7), (256, 256)]
    np.testing.assert_allclose(out[1], 0.4)
    assert sum(seen) == 3


def test_unknown_method_and_bad_registration():
    with pytest.raises(UnknownMethodError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(TypeError, match="reference"):
        @register
        class Incomplete(FusionMethod):
            name = "incomplete"
            description = "x"
            reference = ""

            def fuse(self, pairs):
                return np.zeros(1)
