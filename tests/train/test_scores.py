"""The differentiable metric scores equal the metrics they mirror, on real fused images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msgfusion.data.datasets import sample_folders
from msgfusion.metrics import entropy, mutual_information, qabf, viff
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.scores import entropy_score, mi_score, qabf_score, viff_score

PAIRS = [pair for folder in sample_folders() for pair in folder]


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None]


@pytest.fixture(scope="module")
def triples() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(MR, functional grey, 8-bit GFF fusion) of the three bundled sample pairs, in [0, 1]."""
    fused = fuse_pairs(get_method("gff"), PAIRS)
    return [(p.mr, p.func_gray, np.round(np.clip(f, 0, 1) * 255) / 255)
            for p, f in zip(PAIRS, fused, strict=True)]


def test_qabf_score_matches_the_metric(triples) -> None:
    for a, b, f in triples:
        expected = qabf(255 * a, 255 * b, 255 * f)  # the metrics read 0..255
        assert float(qabf_score(_tensor(f), _tensor(a), _tensor(b))) == pytest.approx(
            expected, abs=1e-3)


def test_viff_score_matches_the_metric(triples) -> None:
    for a, b, f in triples:
        expected = viff(255 * a, 255 * b, 255 * f)
        assert float(viff_score(_tensor(f), _tensor(a), _tensor(b))) == pytest.approx(
            expected, rel=1e-6)


def test_entropy_and_mi_scores_match_the_metrics_on_grey_levels(triples) -> None:
    for a, b, f in triples:
        f = np.round(255 * f.astype(np.float64)) / 255  # exact grey levels in float64
        assert float(entropy_score(_tensor(f))) == pytest.approx(entropy(255 * f), rel=1e-12)
        expected = mutual_information(255 * a, 255 * b, 255 * f)
        assert float(mi_score(_tensor(f), _tensor(a), _tensor(b))) == pytest.approx(
            expected, rel=1e-12)


def test_soft_histogram_splits_a_value_between_its_two_grey_levels() -> None:
    x = torch.full((1, 1, 4, 4), 10.25 / 255, dtype=torch.float64)
    assert float(entropy_score(x)) == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))


def test_scores_rank_a_sharp_fusion_above_a_blurred_one(triples) -> None:
    a, b, f = triples[1]
    blurred = torch.nn.functional.avg_pool2d(_tensor(f), 5, stride=1, padding=2)
    for score in (qabf_score, viff_score, mi_score):
        assert float(score(blurred, _tensor(a), _tensor(b))) < float(
            score(_tensor(f), _tensor(a), _tensor(b)))


def test_metric_loss_terms_have_finite_gradients(triples) -> None:
    a, b, f = triples[0]
    o = _tensor(f).float().requires_grad_(True)
    batch = {"mr": _tensor(a).float(), "func_gray": _tensor(b).float()}
    total, terms = FusionLoss(LossConfig(ssim=0, mse=0, qabf=1, viff=1, mi=1,
                                        clamp=True))(o, batch)
    total.backward()
    assert set(terms) == {"qabf", "viff", "mi"}
    assert torch.isfinite(o.grad).all() and o.grad.abs().sum() > 0
