"""Fingerprints follow what determines a method's results: new weights, new fingerprint."""

from __future__ import annotations

from importlib import resources

import torch

from msgfusion.methods.msgfusion import SHIPPED, MsgFusion
from msgfusion.model.msgfusion import load_pretrained, save_weights


def test_msgfusion_fingerprint_follows_the_weights_file(tmp_path):
    shipped = resources.files("msgfusion.model.weights").joinpath(f"{SHIPPED}.pt").read_bytes()
    copy = tmp_path / "copy.pt"
    copy.write_bytes(shipped)
    default = MsgFusion().fingerprint()
    assert MsgFusion(weights=copy).fingerprint() == default

    retrained = load_pretrained(SHIPPED)
    with torch.no_grad():
        next(retrained.nets["CT"].parameters()).add_(0.01)  # one network, one tensor changed
    save_weights(retrained, tmp_path / "retrained.pt")
    assert MsgFusion(weights=tmp_path / "retrained.pt").fingerprint() != default
    assert MsgFusion(weights=tmp_path / "retrained.pt").fingerprint_data() != shipped
