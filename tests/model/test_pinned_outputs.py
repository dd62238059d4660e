"""The shipped networks' outputs, pinned on real atlas pairs.

MsgFusion's three networks (CT, PET, SPECT) and the five deep baselines' shipped weights are run
on the first test pair of each modality and compared with references committed in
``tests/reference_outputs/``: 8 x 8 block means of the float output (a 32 x 32 float32 array per
image, atol 1e-4: BLAS and thread-count differences move single pixels by ~1e-6) and the SHA-256
of the 8-bit output. The hash is allowed to differ only when the output has pixels within 1e-4 of
an 8-bit rounding boundary (where those BLAS differences can flip a level); the block means must
hold in every case. A change of weights, of the network code (an inverted frequency mask, a
swapped branch) or of the inputs (V', luminance) fails here.

Regenerate the references after an intended change (new weights) with
``PYTHONPATH=src python tests/model/test_pinned_outputs.py --write`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from msgfusion.data.datasets import load_aanlib
from msgfusion.io.color import to_uint8
from msgfusion.methods.registry import get_method
from msgfusion.pair import FusionPair

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference_outputs"
AANLIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "aanlib"
METHODS = ("msgfusion", "ifcnn", "nestfuse", "fusiondn", "fusiongan", "funfusean")
BLOCK = 8


def block_means(fused: np.ndarray) -> np.ndarray:
    """Means of BLOCK x BLOCK blocks (the image is cropped to a multiple of BLOCK)."""
    h, w = (s - s % BLOCK for s in fused.shape)
    f = fused[:h, :w].astype(np.float64)
    return f.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3)).astype(np.float32)


def sha256_8bit(fused: np.ndarray) -> str:
    return hashlib.sha256(to_uint8(fused).tobytes()).hexdigest()


def near_rounding_boundary(fused: np.ndarray, tol: float = 1e-4) -> int:
    """Pixels whose value x 255 lies within ``tol`` levels of a .5 rounding boundary."""
    scaled = np.clip(fused.astype(np.float64), 0, 1) * 255.0
    return int(np.sum(np.abs(scaled - np.floor(scaled) - 0.5) < tol))


def pinned_pairs(root: Path = AANLIB) -> list[FusionPair]:
    """The first test pair of CT-MRI, PET-MRI and SPECT-MRI."""
    return [folder[0] for folder in load_aanlib(root, "test")]


def key(method: str, pair: FusionPair) -> str:
    return f"{method}/{pair.modality}/{pair.name}"


def compute(method: str, pairs: list[FusionPair]) -> dict[str, np.ndarray]:
    """The fused intensities of ``pairs``, one forward pass per pair as a user gets them."""
    m = get_method(method)
    return {key(method, p): m.fuse([p])[0] for p in pairs}


def write_references() -> None:
    REFERENCE_DIR.mkdir(exist_ok=True)
    pairs = pinned_pairs()
    hashes: dict[str, str] = {}
    for method in METHODS:
        outputs = compute(method, pairs)
        np.savez_compressed(REFERENCE_DIR / f"{method}.npz",
                            **{k.replace("/", "__"): block_means(f) for k, f in outputs.items()})
        hashes.update({k: sha256_8bit(f) for k, f in outputs.items()})
    (REFERENCE_DIR / "sha256.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def pairs(aanlib_dir) -> list[FusionPair]:
    return pinned_pairs(aanlib_dir)


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return json.loads((REFERENCE_DIR / "sha256.json").read_text())


@pytest.mark.parametrize("method", METHODS)
def test_shipped_network_output_is_pinned(method, pairs, hashes):
    refs = np.load(REFERENCE_DIR / f"{method}.npz")
    for k, fused in compute(method, pairs).items():
        np.testing.assert_allclose(block_means(fused), refs[k.replace("/", "__")], atol=1e-4,
                                   rtol=0, err_msg=f"{k}: output moved from the pinned reference")
        if sha256_8bit(fused) != hashes[k]:
            assert near_rounding_boundary(fused) > 0, f"{k}: 8-bit output changed"


@pytest.mark.parametrize("method", METHODS[1:])
def test_deep_baseline_is_not_the_pixel_average(method, pairs):
    """The block-mean pin above would already fail; this says why it matters: a baseline that
    returned (MR + functional) / 2 passed the older plausibility checks (std, correlation)."""
    avg = get_method("average")
    for pair in pairs:
        fused = get_method(method).fuse([pair])[0]
        assert np.abs(fused - avg.fuse([pair])[0]).mean() > 0.01, f"{method} on {pair.modality}"


def test_spect_pairs_go_to_the_spect_network(pairs):
    """One PET image fused as PET and as SPECT: two different networks, two different outputs,
    and the SPECT one equals what the SPECT network gives directly."""
    pet = pairs[1]
    assert pet.modality == "PET"
    as_spect = FusionPair(mr=pet.mr, func=pet.func, modality="SPECT", name=pet.name)
    method = get_method("msgfusion")
    fused_pet, fused_spect = method.fuse([pet])[0], method.fuse([as_spect])[0]
    assert np.abs(fused_pet - fused_spect).mean() > 0.005
    import torch

    from msgfusion.model.inputs import batch_from_pairs

    with torch.inference_mode():
        direct = method.model.net("SPECT").forward_batch(batch_from_pairs([as_spect]))
    np.testing.assert_allclose(fused_spect, direct[0, 0].clamp(0, 1).numpy(), atol=1e-6)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: PYTHONPATH=src python {Path(__file__).name} --write")
    write_references()
    print(f"wrote {REFERENCE_DIR}")
