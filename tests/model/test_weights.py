"""The trained lite weights shipped with the package load offline and fuse real pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from msgfusion.data.datasets import sample_folders
from msgfusion.model import MsgFusionNet, PerModality, lite, load_pretrained
from msgfusion.model.inputs import batch_from_pairs
from msgfusion.model.msgfusion import load_weights, save_weights


def test_shipped_weights_load_and_fuse_a_real_pair_of_each_modality() -> None:
    model = load_pretrained()
    assert not model.training
    for folder in sample_folders():
        pair = folder[0]
        with torch.inference_mode():
            out = model.net(pair.modality).forward_batch(batch_from_pairs([pair]))
        assert out.shape == (1, 1, *pair.shape)
        assert 0.05 < float(out.clamp(0, 1).mean()) < 0.95


def test_per_modality_round_trip_keeps_each_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PerModality({"CT": MsgFusionNet(lite()), "PET": MsgFusionNet(lite())}).eval()
    save_weights(model, tmp_path / "w.pt")
    loaded = load_weights(tmp_path / "w.pt")
    assert isinstance(loaded, PerModality) and set(loaded.nets) == {"CT", "PET"}
    x = (torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    with torch.inference_mode():
        for m in ("CT", "PET"):
            assert torch.allclose(model.net(m)(*x), loaded.net(m)(*x), atol=2e-2)
        assert not torch.allclose(loaded.net("CT")(*x), loaded.net("PET")(*x), atol=1e-3)
    with pytest.raises(ValueError, match="no network for SPECT"):
        loaded.net("SPECT")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MsgFusionNet(lite()).eval()
    save_weights(model, str(tmp_path / "w.pt"))
    loaded = load_weights(tmp_path / "w.pt")
    x = (torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    with torch.inference_mode():
        assert torch.allclose(model(*x), loaded(*x), atol=2e-2)  # fp16 storage
    assert loaded.cfg == model.cfg
