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


def test_weights_file_problems_are_named(tmp_path, aanlib_dir):
    import pytest

    from msgfusion.data.datasets import load_aanlib
    from msgfusion.errors import WeightsError

    pair = load_aanlib(aanlib_dir, "test", ["CT-MRI"])[0][0]
    with pytest.raises(WeightsError, match=r"missing\.pt: no such weights file"):
        MsgFusion(weights=tmp_path / "missing.pt").fuse([pair])
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"junk\.pt: not a MsgFusion weights file"):
        MsgFusion(weights=tmp_path / "junk.pt").fuse([pair])


def test_weights_without_the_pairs_modality_are_named(tmp_path, aanlib_dir):
    import pytest

    from msgfusion.data.datasets import load_aanlib
    from msgfusion.errors import WeightsError
    from msgfusion.model.msgfusion import PerModality

    ct_only = PerModality({"CT": load_pretrained(SHIPPED).net("CT")})
    save_weights(ct_only, tmp_path / "ct_only.pt")
    pet = load_aanlib(aanlib_dir, "test", ["PET-MRI"])[0][0]
    with pytest.raises(WeightsError, match=r"ct_only\.pt: no network for PET pairs"):
        MsgFusion(weights=tmp_path / "ct_only.pt").fuse([pet])
