"""The deep baselines (IFCNN, NestFuse, FusionDN, FusionGAN, FunFuseAn) on real atlas pairs."""

from __future__ import annotations

import csv
import math
import numpy as np
import pytest
import torch

from msgfusion.cli import main
from msgfusion.data.datasets import load_aanlib
from msgfusion.io.images import read_image
from msgfusion.methods.deep.base import ShippedNetworkMethod, shipped_weights
from msgfusion.methods.deep.nestfuse import attention_fuse
from msgfusion.train.baselines import initial_model, make_trainer
from msgfusion.train.recipes import BASELINES, get_recipe, save_weights
from msgfusion.train.recipes.fusiondn import FusionDNLoss
from msgfusion.methods.registry import get_method, list_methods
from msgfusion.model.inputs import batch_from_pairs
from msgfusion.pair import FusionPair
from msgfusion.train.trainer import TrainConfig

NAMES = ("ifcnn", "nestfuse", "fusiondn", "fusiongan", "funfusean")


@pytest.fixture(scope="module")
def pairs(aanlib_dir):
    """One test pair of each modality (CT, PET, SPECT), all 256 x 256."""
    return [folder[0] for folder in load_aanlib(aanlib_dir, "test")]


@pytest.fixture(scope="module")
def train_pairs(aanlib_dir):
    """Two train pairs (CT and PET) for the training smoke tests."""
    folders = load_aanlib(aanlib_dir, "train", ["CT-MRI", "PET-MRI"])
    return [folder[0] for folder in folders]


def test_all_five_listed_with_references():
    listed = {m.name: m for m in list_methods()}
    assert set(NAMES) <= set(listed)
    networks = {m.name for m in list_methods() if issubclass(m.load(), ShippedNetworkMethod)}
    assert networks == set(BASELINES) == set(NAMES)
    assert all(get_recipe(name).network is get_method(name).network for name in NAMES)
    for name in NAMES:
        assert listed[name].reference and listed[name].description
        assert listed[name].module.endswith(name)


@pytest.mark.parametrize("name", NAMES)
def test_fuses_real_pairs_deterministically(name, pairs):
    method = get_method(name)
    fused = method.fuse(pairs)
    assert fused.shape == (3, 256, 256) and fused.dtype == np.float32
    assert fused.min() >= 0.0 and fused.max() <= 1.0
    np.testing.assert_array_equal(fused, method.fuse(pairs))
    for f, p in zip(fused, pairs):
        assert f.std() > 0.05, f"{name} on {p.modality}: nearly constant output"
        # not blank, not inverted: follows the sources where they are (background stays dark)
        both = (p.mr + p.func_gray) / 2
        assert np.corrcoef(f.ravel(), both.ravel())[0, 1] > 0.6, f"{name} on {p.modality}"


@pytest.mark.parametrize("name", NAMES)
def test_any_input_size(name, pairs):
    p = pairs[1]  # PET, colour
    small = FusionPair(mr=p.mr[:255, :181], func=p.func[:255, :181], modality=p.modality)
    (fused,) = get_method(name).fuse([small])
    assert fused.shape == (255, 181)
    assert 0.0 <= fused.min() and fused.max() <= 1.0 and fused.std() > 0.05


@pytest.mark.parametrize("name", NAMES)
def test_ships_trained_weights(name, tmp_path):
    blob = shipped_weights(name)
    assert len(blob) < 2 * 1024 * 1024
    method = get_method(name)
    recipe = get_recipe(name)
    loaded = method.model.state_dict()
    initial = initial_model(recipe, recipe.train.seed).state_dict()
    assert loaded.keys() == initial.keys()
    changed = [k for k in loaded if loaded[k].is_floating_point()
               and not torch.allclose(loaded[k], initial[k].float())]
    assert len(changed) > len(loaded) // 2, "the shipped weights look like the random init"
    # the fingerprint follows the weights
    same, untrained = tmp_path / "same.pt", tmp_path / "untrained.pt"
    same.write_bytes(blob)
    save_weights(initial_model(recipe, recipe.train.seed), recipe.network.arch, untrained)
    assert type(method)(weights=same).fingerprint() == method.fingerprint()
    assert type(method)(weights=untrained).fingerprint() != method.fingerprint()


@pytest.mark.parametrize("name", NAMES)
def test_training_smoke(name, train_pairs, tmp_path):
    recipe = get_recipe(name)
    cfg = TrainConfig(epochs=1, batch_size=2, crop=64, max_steps_per_epoch=2, num_threads=1)
    trainer = make_trainer(recipe, cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit(batch_from_pairs(train_pairs), tmp_path)
    with (tmp_path / "log.csv").open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert math.isfinite(float(row["loss"]))
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k])
               for k in before if before[k].is_floating_point())
    assert (tmp_path / "checkpoint.pt").exists()
    # a second fit with the same config resumes at the end: nothing more to do
    resumed = make_trainer(recipe, cfg)
    assert resumed.fit(batch_from_pairs(train_pairs), tmp_path) == []
    assert resumed.epoch == 1


def test_gan_trainer_trains_the_discriminator_too(train_pairs, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=2, crop=64, max_steps_per_epoch=1, num_threads=1)
    trainer = make_trainer(get_recipe("fusiongan"), cfg)
    before = [p.clone() for p in trainer.discriminator.parameters()]
    trainer.fit(batch_from_pairs(train_pairs), tmp_path)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))
    assert "discriminator" in torch.load(tmp_path / "checkpoint.pt", weights_only=False)


def test_fusiondn_weights_favour_the_informative_source(pairs):
    p = pairs[1]
    batch = batch_from_pairs([FusionPair(mr=p.mr, func=np.full_like(p.mr, 0.5), modality="CT")])
    w = FusionDNLoss().weights(batch["mr"], batch["func_gray"])
    assert w.shape == (2, 1) and torch.allclose(w.sum(dim=0), torch.ones(1))
    assert w[0, 0] > 0.9  # a flat image has no entropy and no gradient


def test_nestfuse_attention_fusion_of_identical_features_is_identity():
    a = torch.rand(2, 5, 8, 8)
    torch.testing.assert_close(attention_fuse(a, a), a, atol=1e-4, rtol=1e-4)


def test_cli_fuse_with_each_baseline(aanlib_dir, tmp_path, capsys):
    d = aanlib_dir / "SPECT-MRI" / "test"
    mr, spect = sorted((d / "MRI").iterdir())[0], sorted((d / "SPECT").iterdir())[0]
    for name in NAMES:
        out = tmp_path / f"{name}.png"
        assert main(["fuse", "--mr", str(mr), "--func", str(spect), "--method", name,
                     "-o", str(out)]) == 0
        image = read_image(out)
        assert image.shape == (256, 256, 3) and image.std() > 0.05
    assert "method funfusean" in capsys.readouterr().out


def test_unknown_baseline_is_a_clear_error(capsys):
    assert main(["train-baseline", "nope", "--out", "unused"]) == 2
    assert "no trainable baseline named 'nope'" in capsys.readouterr().err

