"""MsgFusion's fast inference path gives the network's values, on the CPU or any other device.

The shipped method folds BatchNorm, runs channels-last, one pair per pass, and large pairs in
tiles; the reference here is the plain network from the shipped weights (BatchNorm as trained,
NCHW, a whole modality per pass). Numerically equal means within 1/255 (one 8-bit
grey level) at every pixel of the 72 test pairs; measured: about 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msgfusion.data.datasets import load_aanlib
from msgfusion.errors import MsgFusionError
from msgfusion.methods.device import torch_device
from msgfusion.methods.msgfusion import SHIPPED, MsgFusion
from msgfusion.methods.registry import get_method
from msgfusion.model.inputs import batch_from_pairs
from msgfusion.model.msgfusion import load_pretrained
from msgfusion.pair import FusionPair


@pytest.fixture(scope="module")
def test_pairs(aanlib_dir) -> dict[str, list[FusionPair]]:
    """All 72 test pairs (24 each of CT-, PET- and SPECT-MRI), by modality."""
    return {f.modality: [f[i] for i in range(len(f))] for f in load_aanlib(aanlib_dir, "test")}


def reference(pairs: list[FusionPair]) -> np.ndarray:
    """The plain network of the shipped weights, all pairs in one pass."""
    net = load_pretrained(SHIPPED).net(pairs[0].modality)
    with torch.no_grad():
        out = net.forward_batch(batch_from_pairs(pairs))
    return out[:, 0].clamp(0.0, 1.0).numpy()


def test_fast_path_equals_the_network_on_all_72_test_pairs(test_pairs):
    method = MsgFusion()
    for modality, pairs in test_pairs.items():
        diff = np.abs(method.fuse(pairs) - reference(pairs))
        assert diff.max() <= 1 / 255, modality
        assert diff.mean() < 1e-5, modality


def test_tiled_equals_whole_image(test_pairs):
    """Tiles of 128 pixels (4 per 256 x 256 pair, ragged ones on an odd-sized crop) give the
    whole-image values: the global frequency path is shared, the halo covers the rest."""
    pairs = [test_pairs[m][3] for m in ("CT", "PET", "SPECT")]
    odd = FusionPair(mr=pairs[1].mr[5:250, 9:230], func=pairs[1].func[5:250, 9:230],
                     modality="PET")
    whole = MsgFusion()
    tiled = MsgFusion()
    tiled.tile_above, tiled.tile = 0, 128
    for pair in [*pairs, odd]:
        np.testing.assert_allclose(tiled.fuse([pair]), whole.fuse([pair]), atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 4"):
        tiled.model.net("PET").forward_tiled(*batch_from_pairs(pairs[1:2], ("mr", "func",
                                                                            "v_prime")).values(),
                                             tile=66)


def test_channels_last_batch_holds_the_same_values(test_pairs):
    pairs = test_pairs["CT"][:2] + test_pairs["CT"][:0]
    plain = batch_from_pairs(pairs)
    fast = batch_from_pairs(pairs, ("func", "v_prime"), channels_last=True)
    assert set(fast) == {"func", "v_prime"}
    assert fast["func"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast["func"], plain["func"], rtol=0, atol=0)


def test_device_option(test_pairs):
    pairs = [test_pairs["PET"][0]]
    np.testing.assert_array_equal(get_method("msgfusion", "cpu").fuse(pairs),
                                  get_method("msgfusion").fuse(pairs))
    np.testing.assert_array_equal(get_method("fusiongan", "cpu").fuse(pairs),
                                  get_method("fusiongan").fuse(pairs))
    assert get_method("lp", "cpu") is get_method("lp", "cpu")
    with pytest.raises(MsgFusionError, match="'lp' runs on the CPU only"):
        get_method("lp", "cuda")
    with pytest.raises(MsgFusionError, match="unknown device 'gpu0'"):
        torch_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(MsgFusionError, match="no CUDA GPU"):
            MsgFusion(device="cuda").fuse(pairs)
    else:  # a GPU machine: the same values as on the CPU
        np.testing.assert_allclose(MsgFusion(device="cuda").fuse(pairs),
                                   get_method("msgfusion").fuse(pairs), atol=1 / 255)


def test_inference_folds_merge_layers_and_keep_the_function(test_pairs):
    """fold_for_inference: BatchNorm into its conv, GV2's 1x1 into its 7x7; on a random network
    of another shape (two brightness channels, two convolutions per scale, trained BatchNorm
    statistics) as on the shipped ones."""
    from dataclasses import replace

    from torch import nn

    from msgfusion.model import MsgFusionNet, lite
    from msgfusion.model.layers import fold_for_inference

    shipped = MsgFusion().model.net("PET")
    assert isinstance(shipped.gv2.point, nn.Identity)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in shipped.modules())
    cfg = lite()
    cfg = replace(cfg, gv=replace(cfg.gv, brightness_channels=2, convs_per_scale=2))
    torch.manual_seed(0)
    net = MsgFusionNet(cfg)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
    with torch.no_grad():
        net.gv2.point.weight.normal_()
    pairs = test_pairs["SPECT"][:2]
    batch = batch_from_pairs(pairs, ("mr", "func", "v_prime"))
    with torch.no_grad():
        before = net.eval()(*batch.values())
        after = fold_for_inference(net)(*batch.values())
    assert isinstance(net.gv2.point, nn.Identity)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_traced_pass_is_the_python_pass_bit_for_bit(test_pairs):
    """From the second pass of a network on one input shape the method runs it traced
    (TorchScript): the same operations, the same bits. A shape met once is not traced."""
    python, traced = MsgFusion(), MsgFusion()
    python.trace_after = 0
    for pairs in test_pairs.values():
        np.testing.assert_array_equal(np.stack([traced.fuse([p])[0] for p in pairs[:3]]),
                                      np.stack([python.fuse([p])[0] for p in pairs[:3]]))
    assert len(traced._traced) == 3 and not python._traced
    pair = test_pairs["PET"][0]
    traced.fuse([FusionPair(mr=pair.mr[:200, :120], func=pair.func[:200, :120],
                            modality="PET")])
    assert len(traced._traced) == 3
