"""The classical fusion methods on real atlas pairs: contract, determinism, known properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from msgfusion.data.datasets import load_aanlib
from msgfusion.methods.classical.filters import box_mean, guided_filter, select_max_abs
from msgfusion.methods.classical.lowrank import latent_lrr
from msgfusion.methods.classical.pca import pca_weights
from msgfusion.methods.classical.pcnn import (
    decompose,
    fractal_dimension,
    otsu_level,
    wpadcpcnn,
)
from msgfusion.methods.classical.pyramid import collapse, laplacian_pyramid
from msgfusion.methods.registry import get_method, list_methods
from msgfusion.pair import FusionPair

CLASSICAL = ("pca", "lp", "dwt", "gff", "latlrr", "wpadcpcnn")


@pytest.fixture(scope="module")
def pairs(aanlib_dir) -> list[FusionPair]:
    """The first test pair of CT-, PET- and SPECT-MRI (256 x 256)."""
    return [folder[0] for folder in load_aanlib(aanlib_dir, "test",
                                                ["CT-MRI", "PET-MRI", "SPECT-MRI"])]


def crop(pair: FusionPair, top: int, left: int, height: int, width: int) -> FusionPair:
    """A real pair cut to a small window (keeps the slow methods' tests short)."""
    window = (slice(top, top + height), slice(left, left + width))
    return FusionPair(mr=pair.mr[window], func=pair.func[window], modality=pair.modality)


@pytest.fixture(scope="module")
def small(pairs) -> list[FusionPair]:
    """A 72 x 64 window through the brain of each pair (not square, not a power of two)."""
    return [crop(p, 90, 100, 72, 64) for p in pairs]


def same_twice(pair: FusionPair) -> FusionPair:
    """A pair whose two sources are the same image (the MR)."""
    return FusionPair(mr=pair.mr, func=pair.mr, modality="CT")


def test_all_classical_methods_are_registered_with_references():
    methods = {m.name: m for m in list_methods()}
    for name in CLASSICAL:
        assert name in methods
        assert methods[name].description and "\n" not in methods[name].description
        assert methods[name].reference and methods[name].load().__doc__


@pytest.mark.parametrize("name", CLASSICAL)
def test_contract_on_ct_pet_spect(name, pairs):
    fused = get_method(name).fuse(pairs)
    assert fused.shape == (3, 256, 256) and fused.dtype == np.float32
    assert np.isfinite(fused).all() and fused.min() >= 0.0 and fused.max() <= 1.0
    for f, p in zip(fused, pairs):
        # a fusion, not a copy of either source and not blank
        assert f.std() > 0.05
        assert np.abs(f - p.mr).mean() > 1e-3 and np.abs(f - p.func_gray).mean() > 1e-3


@pytest.mark.parametrize("name", CLASSICAL)
def test_deterministic_and_batch_independent(name, small):
    method = get_method(name)
    first = method.fuse(small)
    assert first.shape == (3, 72, 64)
    np.testing.assert_array_equal(first, method.fuse(small))
    np.testing.assert_allclose(method.fuse(small[1:2])[0], first[1], atol=1e-6)


@pytest.mark.parametrize("name", CLASSICAL)
def test_tiny_images_work(name, pairs):
    for height, width in ((9, 7), (1, 1)):
        fused = get_method(name).fuse([crop(pairs[1], 120, 120, height, width)])
        assert fused.shape == (1, height, width)
        assert np.isfinite(fused).all() and fused.min() >= 0.0 and fused.max() <= 1.0


@pytest.mark.parametrize("name", ["lp", "dwt", "gff", "wpadcpcnn"])
def test_identical_sources_give_the_source_back(name, small):
    twin = same_twice(small[0])
    np.testing.assert_allclose(get_method(name).fuse([twin])[0], twin.mr, atol=1e-5)


def test_pca_weights_are_the_normalised_principal_component(pairs):
    mr = np.stack([p.mr for p in pairs])
    func = np.stack([p.func_gray for p in pairs])
    w = pca_weights(mr, func)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert (w >= 0).all() and (w <= 1).all()
    for i in range(3):
        _, vectors = np.linalg.eigh(np.cov(mr[i].ravel(), func[i].ravel()))
        v = np.abs(vectors[:, -1])
        np.testing.assert_allclose(w[i], v / v.sum(), rtol=1e-6)
        fused = get_method("pca").fuse([pairs[i]])[0]
        np.testing.assert_allclose(fused, np.clip(w[i, 0] * mr[i] + w[i, 1] * func[i], 0, 1),
                                   atol=1e-6)
    np.testing.assert_allclose(pca_weights(mr[:1], mr[:1]), [[0.5, 0.5]])


def test_laplacian_pyramid_is_exactly_invertible_at_odd_sizes(pairs):
    x = pairs[0].mr[:255, :250].astype(np.float64)
    pyramid = laplacian_pyramid(x, 4)
    assert [level.shape for level in pyramid] == [(255, 250), (128, 125), (64, 63), (32, 32),
                                                  (16, 16)]
    np.testing.assert_allclose(collapse(pyramid), x, atol=1e-12)


def test_max_abs_rule_and_box_and_guided_filters_keep_what_they_must(pairs):
    a, b = pairs[0].mr, pairs[0].func_gray - 0.5
    chosen = select_max_abs(a, b)
    assert (np.abs(chosen) == np.maximum(np.abs(a), np.abs(b))).all()
    constant = np.full((2, 40, 30), 0.7)
    np.testing.assert_allclose(box_mean(constant, 45), constant)  # window larger than image
    guide = np.stack([p.mr[:40, :30] for p in pairs[:2]]).astype(np.float64)
    np.testing.assert_allclose(guided_filter(guide, constant, 7, 1e-6), constant, atol=1e-9)
    # a guide that is the input itself, with a tiny eps, is reproduced (edge-preserving)
    np.testing.assert_allclose(guided_filter(guide, guide, 2, 1e-8), guide, atol=1e-3)


def test_latlrr_decomposition_reconstructs_the_image(small):
    x = small[0].mr
    r = latent_lrr(x)
    assert r.z.shape == (64, 64) and r.l.shape == (72, 72) and r.e.shape == x.shape
    assert 1 < r.iterations < 500
    np.testing.assert_allclose(x @ r.z + r.l @ x + r.e, x, atol=1.5e-3)
    # the two parts carry the image: neither is empty, and E is sparse noise
    assert np.abs(x @ r.z).mean() > 0.01 and np.abs(r.l @ x).mean() > 0.01
    assert np.abs(r.e).mean() < 0.01


def _plain_latlrr(x: np.ndarray, steps: int, lam: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Liu & Yan's inexact ALM written directly in pixel space (the released code's steps)."""
    x = x.astype(np.float64)
    d, n = x.shape
    inv_a = np.linalg.inv(x.T @ x + np.eye(n))
    inv_b = np.linalg.inv(x @ x.T + np.eye(d))
    z, l, e = np.zeros((n, n)), np.zeros((d, d)), np.zeros((d, n))
    y1, y2, y3 = np.zeros((d, n)), np.zeros((n, n)), np.zeros((d, d))
    mu = 1e-6

    def svt(m: np.ndarray, tau: float) -> np.ndarray:
        u, s, vt = scipy.linalg.svd(m)
        return (u * np.maximum(s - tau, 0)) @ vt

    for _ in range(steps):
        j, s_aux = svt(z + y2 / mu, 1 / mu), svt(l + y3 / mu, 1 / mu)
        z = inv_a @ (x.T @ x - x.T @ l @ x - x.T @ e + j + (x.T @ y1 - y2) / mu)
        l = ((x - x @ z - e) @ x.T + s_aux + (y1 @ x.T - y3) / mu) @ inv_b
        temp = x - x @ z - l @ x + y1 / mu
        e = np.sign(temp) * np.maximum(np.abs(temp) - lam / mu, 0)
        y1 += mu * (x - x @ z - l @ x - e)
        y2 += mu * (z - j)
        y3 += mu * (l - s_aux)
        mu = min(1e6, 1.1 * mu)
    return x @ z, l @ x


def test_latlrr_follows_the_released_alm_iteration(pairs):
    x = crop(pairs[2], 100, 100, 24, 20).mr
    fast = latent_lrr(x, tol=0.0, max_iter=160)
    low_rank, salient = _plain_latlrr(x, 160)
    assert fast.iterations == 160
    np.testing.assert_allclose(x @ fast.z, low_rank, atol=2e-3)
    np.testing.assert_allclose(fast.l @ x, salient, atol=2e-3)


def test_latlrr_fuses_as_average_of_low_rank_plus_sum_of_salient(small):
    pair = small[1]
    parts = [latent_lrr(x) for x in (pair.mr, pair.func_gray)]
    expected = sum(np.clip(x @ r.z, 0, 1) / 2 + np.clip(r.l @ x, 0, 1)
                   for x, r in zip((pair.mr, pair.func_gray), parts))
    np.testing.assert_allclose(get_method("latlrr").fuse([pair])[0], np.clip(expected, 0, 1),
                               atol=1e-6)


def test_directional_decomposition_is_a_partition(small):
    sources = np.stack([small[2].mr, small[2].func_gray])
    low, bands = decompose(sources, (4, 2, 1))
    assert low.shape == (2, 72, 64) and bands.shape == (2, 7, 72, 64)
    np.testing.assert_allclose(low + bands.sum(axis=1), sources, atol=1e-5)
    # directional: a horizontal edge lands in the sub-band of vertical frequencies
    edge = np.zeros((64, 64), np.float32)
    edge[32:] = 1.0
    _, edge_bands = decompose(edge, (4,))
    energy = (edge_bands ** 2).sum(axis=(1, 2))
    assert energy.argmax() == 2 and energy[2] > 0.9 * energy.sum()


def test_pcnn_firing_maps_are_counts_and_the_choice_is_binary(small):
    sources = np.stack([small[1].mr, small[1].func_gray])
    _, bands = decompose(sources, (4, 4))
    a, b = np.abs(bands[0]), np.abs(bands[1])
    result = wpadcpcnn(a, b, 0.5, iterations=40)
    assert result.choose_a.dtype == bool and result.choose_a.shape == a.shape
    counts = result.firing_counts
    assert np.issubdtype(counts.dtype, np.integer)
    assert counts.min() >= 0 and counts.max() <= 40 and counts.max() > 0
    # the network links neighbours: the choice is not just the larger magnitude everywhere
    assert (result.choose_a != (a >= b)).any()
    # more iterations, at least as many firings
    assert (wpadcpcnn(a, b, 0.5, iterations=60).firing_counts >= counts).all()


def test_pcnn_helpers_otsu_and_fractal_dimension():
    two_levels = np.zeros((1, 20, 20))
    two_levels[0, :, 10:] = 0.8
    level = otsu_level(two_levels)[0]
    assert 0.0 <= level < 0.8
    assert otsu_level(np.full((1, 5, 5), 0.3))[0] == 0.0
    # a flat image counts one unit per box: N_s = ceil(64 / s)^2 for s = 2..32
    sizes = np.arange(2, 33)
    slope = np.polyfit(np.log(1 / sizes), 2 * np.log(np.ceil(64 / sizes)), 1)[0]
    assert fractal_dimension(np.zeros((64, 64))) == pytest.approx(slope)
    # partial edge blocks count max - 0 + 1: a flat image of 9s gains 9 per edge block
    sizes = np.arange(2, 32)
    edge_blocks = np.array([(2 * np.ceil(63 / s) - 1) if 63 % s else 0 for s in sizes])
    counts = np.ceil(63 / sizes) ** 2 + 9 * edge_blocks
    slope = np.polyfit(np.log(1 / sizes), np.log(counts), 1)[0]
    assert fractal_dimension(np.full((63, 63), 9.0)) == pytest.approx(slope)
