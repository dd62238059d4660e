"""``fuse_pairs``: whatever a method returns, callers get float32 intensities in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from msgfusion.data.datasets import load_aanlib
from msgfusion.methods import registry
from msgfusion.methods.registry import FusionMethod, fuse_pairs, stack_sources


class Overshoot(FusionMethod):
    """MR + functional - 0.5: overshoots both ends of [0, 1] on real pairs."""

    name = "overshoot-for-test"
    description = "sum minus a half"
    reference = "test"

    def fuse(self, pairs):
        mr, func = stack_sources(pairs)
        return (mr + func - 0.5).astype(np.float64)


@pytest.fixture
def overshoot():
    registry.register(Overshoot)
    yield registry.get_method(Overshoot.name)
    registry._REGISTRY.pop(Overshoot.name)
    registry._INSTANCES.pop(Overshoot.name, None)


def test_results_are_clipped_float32(overshoot, aanlib_dir):
    pairs = [load_aanlib(aanlib_dir, "test", ["CT-MRI"])[0][i] for i in range(3)]
    raw = overshoot.fuse(pairs)
    assert raw.min() < 0 and raw.max() > 1
    out = fuse_pairs(overshoot, pairs, batch_size=2)
    for o, r in zip(out, raw):
        assert o.dtype == np.float32
        np.testing.assert_array_equal(o, np.clip(r, 0, 1).astype(np.float32))


def test_fingerprint_is_a_16_digit_hex_that_follows_the_data(overshoot):
    fp = overshoot.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    Overshoot.fingerprint_data = lambda self: b"weights v2"  # type: ignore[method-assign]
    try:
        assert overshoot.fingerprint() != fp
    finally:
        del Overshoot.fingerprint_data


def test_a_second_method_under_a_taken_name_is_refused(overshoot):
    from msgfusion.methods.registry import register

    class Impostor(FusionMethod):
        name = Overshoot.name
        description = "another method"
        reference = "test"

        def fuse(self, pairs):
            return stack_sources(pairs)[0]

    with pytest.raises(ValueError, match="already registered"):
        register(Impostor)
    assert register(Overshoot) is Overshoot  # registering the same class again is harmless
