"""Validation split and per-epoch scoring: held-out pairs, baselines, best-epoch weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from msgfusion.cli import main
from msgfusion.data.datasets import load_aanlib
from msgfusion.model import MsgFusionNet, lite
from msgfusion.model.msgfusion import load_weights
from msgfusion.train.data import preload
from msgfusion.train.experiment import msgfusion_forward
from msgfusion.train.losses import FusionLoss
from msgfusion.train.trainer import BEST_FILE, Trainer, TrainConfig
from msgfusion.train.validation import Validator, split_validation


class PixelMax(nn.Module):
    """The pixel-maximum rule as a 'network' (one dummy parameter, so it has a device)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, mr: torch.Tensor, func_gray: torch.Tensor) -> torch.Tensor:
        return torch.maximum(mr, func_gray)


def _max_forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(batch["mr"], batch["func_gray"])


def test_split_holds_out_evenly_spaced_pairs(aanlib_dir: Path) -> None:
    folder = load_aanlib(aanlib_dir, "train", ["CT-MRI"])[0]
    names = [f.stem for f in folder.files]
    train, val = split_validation(folder, 4)
    assert [p.name for p in val] == [names[0], names[53], names[106], names[159]]
    assert len(train) == len(folder) - 4
    assert not {p.name for p in train} & {p.name for p in val}
    with pytest.raises(ValueError, match="cannot hold out 160 of 160"):
        split_validation(folder, 160)


def test_pixel_max_scores_zero_margin_over_itself(aanlib_dir: Path) -> None:
    pairs = list(load_aanlib(aanlib_dir, "train", ["PET-MRI"])[0])[:3]
    validator = Validator(pairs, _max_forward)
    scores = validator(PixelMax())
    for metric in ("Q_S", "VIFF", "Qabf"):
        assert scores[metric] == pytest.approx(validator.baselines["max"][metric], abs=1e-12)
        assert scores[metric] > validator.baselines["average"][metric]
    assert scores["score"] == pytest.approx(0.0, abs=1e-12)


def test_fit_logs_validation_and_keeps_best_epoch(aanlib_dir: Path, tmp_path: Path) -> None:
    folder = load_aanlib(aanlib_dir, "train", ["CT-MRI"])[0]
    data = {k: v[:, :, :64, :64] for k, v in preload([folder[0], folder[1]]).items()}
    scores = iter([0.1, 0.3, 0.2])
    snapshots: list[dict[str, torch.Tensor]] = []

    def validate(model: nn.Module) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"Q_S": 0.5, "score": next(scores)}

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=3, batch_size=2, crop=32, num_threads=1, lr=1e-2)
    trainer = Trainer(MsgFusionNet(lite()), FusionLoss(), cfg, forward=msgfusion_forward)
    trainer.fit(data, tmp_path, validate=validate)
    with (tmp_path / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["val_score"] for r in rows] == ["0.1", "0.3", "0.2"] and rows[0]["val_Q_S"] == "0.5"
    assert trainer.best == (2, 0.3)
    assert trainer.load_best(tmp_path) == 2
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
    assert not torch.equal(snapshots[1]["fusion.gain"], snapshots[2]["fusion.gain"])
    fresh = Trainer(MsgFusionNet(lite()), FusionLoss(), cfg, forward=msgfusion_forward)
    fresh.fit(data, tmp_path)  # resumes at epoch 3: nothing to train, the best epoch is kept
    assert fresh.best == (2, 0.3) and (tmp_path / BEST_FILE).exists()


def test_cli_train_with_val_pairs_ships_the_best_epoch(aanlib_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "val.json"
    config.write_text(json.dumps({"pairs": ["CT-MRI"], "train": {
        "epochs": 2, "max_steps_per_epoch": 1, "batch_size": 2, "crop": 32, "lr": 0.05,
        "num_threads": 1, "val_pairs": 3}}))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", str(aanlib_dir),
                 "--out", str(run)]) == 0
    held = json.loads((run / "validation.json").read_text())
    assert len(held["pairs"]) == 3 and set(held["baselines"]) == {"average", "max"}
    with (run / "log.csv").open() as fh:
        log = list(csv.DictReader(fh))
    best = max(log, key=lambda r: float(r["val_score"]))
    state = torch.load(run / BEST_FILE, weights_only=True)
    assert state["epoch"] == int(best["epoch"])
    shipped = load_weights(run / "msgfusion.pt").state_dict()
    for key, value in state["model"].items():
        assert torch.allclose(shipped[key].float(), value.float(), rtol=1e-3, atol=1e-3)
