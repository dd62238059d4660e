"""The MsgFusion network: shapes, the ablation switches, determinism, the two presets."""

from __future__ import annotations

import pytest
import torch

from msgfusion.model import MsgFusionNet, lite, paper
from msgfusion.model.configs import model_config, with_ablation
from msgfusion.model.gv_branch import BrightnessBranch
from msgfusion.model.msgfusion import count_parameters
from msgfusion.model.sf_branch import FrequencyUnit


def _inputs(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, h, w, generator=g), torch.rand(n, 3, h, w, generator=g),
            torch.rand(n, 1, h, w, generator=g))


@pytest.mark.parametrize("size", [(255, 181), (64, 64), (17, 33), (256, 256)])
def test_any_size_gives_same_size_output(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = MsgFusionNet(lite()).eval()
    with torch.inference_mode():
        out = model(*_inputs(2, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_frequency_path_changes_the_output() -> None:
    """The SF2 path is not the identity (the released script's path cancels out)."""
    torch.manual_seed(0)
    # without GV2, so that level 2 (max with the V' features) cannot mask level 1
    full = MsgFusionNet(with_ablation(lite(), frequency=True, v_prime=False)).eval()
    ablated = MsgFusionNet(with_ablation(lite(), frequency=False, v_prime=False)).eval()
    ablated.load_state_dict(full.state_dict(), strict=False)  # same weights where shared
    x = _inputs(1, 64, 48)
    with torch.inference_mode():
        assert not torch.allclose(full(*x), ablated(*x), atol=1e-4)
    assert ablated.sf.frequency is None


def test_frequency_unit_filters_the_spectrum() -> None:
    """Changing the radial gain of high frequencies changes the output: a real spectral path."""
    torch.manual_seed(0)
    unit = FrequencyUnit(4, bands=4, low_cutoff=0.25).eval()
    x = torch.rand(1, 1, 32, 40)
    with torch.no_grad():
        before = unit(x)
        unit.band_gain[:, -2:] = 0.0
        after = unit(x)
    assert before.shape == (1, 4, 32, 40)
    assert not torch.allclose(before, after, atol=1e-5)


def test_without_v_prime_ignores_v_prime() -> None:
    torch.manual_seed(0)
    model = MsgFusionNet(with_ablation(lite(), frequency=True, v_prime=False)).eval()
    mr, func, vp = _inputs(1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(model(mr, func, vp), model(mr, func, torch.zeros_like(vp)))
    assert model.gv2 is None


def test_v_weight_sets_the_initial_weight_of_v_prime_in_gv2() -> None:
    cfg = model_config({"preset": "lite", "gv": {"v_weight": 0.25}}).gv
    vp = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    low, full = BrightnessBranch(cfg), BrightnessBranch(lite().gv)
    assert low.v_gain.item() == 0.25 and full.v_gain.item() == 1.0
    with torch.no_grad():  # V' counts less in the merge: GV2 is lower wherever V' > 0
        assert bool((low(vp) < full(vp)).all())


def test_seeded_construction_and_inference_are_deterministic() -> None:
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = MsgFusionNet(lite()).eval()
        with torch.inference_mode():
            outs.append(model(*_inputs(1, 40, 40)))
    assert torch.equal(outs[0], outs[1])


def test_paper_config_parameter_count() -> None:
    """The released layout: about 2.6 M parameters (MSGFUSION.md section 3)."""
    n = count_parameters(MsgFusionNet(paper()))
    assert 2.4e6 < n < 2.8e6, n
    assert count_parameters(MsgFusionNet(lite())) < 100_000


def test_lite_compute_budget() -> None:
    """The shipped layout stays cheap: under 80 M multiply-adds per 256 x 256 pair (66 M now;
    the speed target is 50 ms per pair through fuse-dir on a 2-core CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = MsgFusionNet(lite()).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*_inputs(1, 256, 256))
    assert counter.get_total_flops() / 2 < 80e6


def test_level2_straight_through_keeps_the_forward_value() -> None:
    """Training mode: same forward value as eval, and L1 gets a gradient where GV2 wins."""
    from msgfusion.model.fusion import HierarchicalFusion

    fusion = HierarchicalFusion(4, 1)
    sf, gv1 = torch.randn(1, 4, 8, 8, requires_grad=True), torch.randn(1, 4, 8, 8)
    gv2 = torch.ones(1, 1, 8, 8)  # wins everywhere
    fusion.eval()
    expected = fusion(sf, gv1, gv2)
    fusion.train()
    out = fusion(sf, gv1, gv2)
    assert torch.equal(out, expected)
    out.sum().backward()
    assert sf.grad is not None and sf.grad.abs().sum() > 0


def test_gain_max_bounds_the_level1_gain() -> None:
    """L1 = min(gain, gain_max) tanh(...): a gain learned above the bound acts as the bound."""
    from msgfusion.model.fusion import HierarchicalFusion

    sf, gv1 = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    free, bounded = HierarchicalFusion(4, 1), HierarchicalFusion(4, 1, gain_max=1.5)
    bounded.load_state_dict(free.state_dict())
    with torch.no_grad():
        free.gain.fill_(1.5)
        bounded.gain.fill_(3.0)
    assert torch.equal(free(sf, gv1), bounded(sf, gv1))
    cfg = model_config({"preset": "lite", "gain_max": 1.5})
    assert MsgFusionNet(cfg).fusion.gain_max == 1.5


def test_model_config_overrides_and_rejects_unknown_keys() -> None:
    cfg = model_config({"preset": "lite", "sf": {"frequency": False}, "use_v_prime": False})
    assert not cfg.sf.frequency and not cfg.use_v_prime and cfg.sf.channels == lite().sf.channels
    with pytest.raises(ValueError, match="unknown"):
        model_config({"preset": "lite", "sf": {"nope": 1}})
    with pytest.raises(ValueError, match="preset"):
        model_config("huge")


def test_residual_max_starts_as_the_pixel_maximum_and_learns_a_correction(aanlib_dir) -> None:
    """residual_max: output = max(MR, luminance of the functional image) + the fusion's output,
    whose gain starts at 0: untrained, the network is the pixel maximum; one gradient step
    moves it away."""
    from dataclasses import replace

    from msgfusion.data.datasets import PairFolder
    from msgfusion.model.inputs import batch_from_pairs

    torch.manual_seed(0)
    cfg = replace(lite(), residual_max=True, use_v_prime=False)
    net = MsgFusionNet(cfg)
    pairs = [PairFolder(aanlib_dir / "PET-MRI" / "test")[i] for i in range(2)]
    batch = batch_from_pairs(pairs)
    out = net.forward_batch(batch)
    f = batch["func"]
    luma = 0.299 * f[:, :1] + 0.587 * f[:, 1:2] + 0.114 * f[:, 2:3]
    torch.testing.assert_close(out, torch.maximum(batch["mr"], luma), atol=1e-6, rtol=0)
    (out * torch.rand_like(out)).mean().backward()
    assert net.fusion.gain.grad is not None and net.fusion.gain.grad.abs().item() > 0
