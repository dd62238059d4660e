"""The ``msgfusion`` method: registered, the default, batched, offline shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msgfusion.cli import main
from msgfusion.data.datasets import sample_folders
from msgfusion.methods.registry import DEFAULT_METHOD, fuse_pairs, get_method, list_methods
from msgfusion.pair import FusionPair


def test_registered_and_default() -> None:
    assert "msgfusion" in [m.name for m in list_methods()]
    assert DEFAULT_METHOD == "msgfusion"


def test_batched_fusion_of_the_samples_matches_one_by_one() -> None:
    method = get_method("msgfusion")
    pairs = [folder[0] for folder in sample_folders()]
    batch = method.fuse(pairs)
    assert batch.shape == (3, 256, 256) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    single = method.fuse(pairs[1:2])[0]
    assert np.allclose(batch[1], single, atol=1e-5)


def test_odd_size_pair() -> None:
    rng = np.random.default_rng(0)
    pair = FusionPair(mr=rng.random((255, 181)), func=rng.random((255, 181, 3)), modality="PET")
    (fused,) = fuse_pairs(get_method("msgfusion"), [pair])
    assert fused.shape == (255, 181)


def test_fused_keeps_both_sources() -> None:
    """The fusion follows the functional image over the head about as closely as the pixel
    maximum does (which keeps it wherever it is the brighter source; on the sample pairs the
    max rule's correlation is 0.83 / 0.42 / 0.33 for CT / PET / SPECT, since the MR anatomy
    fills the rest), and the MR anatomy outside the functional highlights (V' < 1/2: not bone,
    not the hottest uptake), where the MR is the detail to keep. (Over the whole head the MR
    correlation of a max-like fusion of CT-MRI is low: the bright bone, dark in MR, dominates
    it; the pixel max rule scores 0.09 there.)"""
    for folder in sample_folders():
        pair = folder[0]
        fused = get_method("msgfusion").fuse([pair])[0]
        by_max = get_method("max").fuse([pair])[0]
        head = (pair.mr > 0.05) | (pair.func_gray > 0.05)
        anatomy = head & (pair.v_prime < 0.5)
        follows = np.corrcoef(fused[head], pair.func_gray[head])[0, 1]
        assert follows > 0.8 * np.corrcoef(by_max[head], pair.func_gray[head])[0, 1]
        assert np.corrcoef(fused[anatomy], pair.mr[anatomy])[0, 1] > 0.3


def test_fingerprint_is_stable() -> None:
    method = get_method("msgfusion")
    assert method.fingerprint() == method.fingerprint()


def test_cli_fuse_uses_the_model_by_default(tmp_path: Path) -> None:
    folder = sample_folders()[1]
    f = folder.files[0]
    out = tmp_path / "fused.png"
    assert main(["fuse", "--mr", str(f.mr_path), "--func", str(f.func_path), "-o", str(out)]) == 0
    assert out.is_file()
