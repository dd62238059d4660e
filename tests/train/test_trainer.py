"""The shared trainer: a two-step smoke run on real pairs, resuming, determinism, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from msgfusion.cli import main
from msgfusion.data.datasets import load_aanlib
from msgfusion.model import MsgFusionNet, PerModality, lite
from msgfusion.model.msgfusion import load_weights
from msgfusion.train.data import preload, random_crop_flip
from msgfusion.train.experiment import ExperimentConfig, msgfusion_forward
from msgfusion.train.losses import FusionLoss
from msgfusion.train.trainer import Trainer, TrainConfig


def _few_pairs(aanlib_dir: Path, n: int = 2) -> dict[str, torch.Tensor]:
    pairs = [folder[i] for folder in load_aanlib(aanlib_dir, "train") for i in range(n)]
    return preload(pairs)


def test_two_steps_on_real_pairs_lower_the_loss(aanlib_dir: Path) -> None:
    data = _few_pairs(aanlib_dir)
    assert data["func"].shape == (6, 3, 256, 256)
    cfg = TrainConfig(lr=1e-2, crop=64, flip=False, num_threads=1, seed=0)
    trainer = Trainer(MsgFusionNet(lite()), FusionLoss(), cfg, forward=msgfusion_forward)
    gen = torch.Generator().manual_seed(0)
    batch = random_crop_flip(data, 64, False, gen)
    first = trainer.train_step(batch)["loss"]
    trainer.train_step(batch)
    trainer.model.eval()
    with torch.no_grad():
        after = float(FusionLoss()(trainer.model.forward_batch(batch), batch)[0])
    assert after < first


def test_fit_writes_log_and_checkpoint_and_resumes_identically(aanlib_dir: Path,
                                                               tmp_path: Path) -> None:
    data = {k: v[:, :, :64, :64] for k, v in _few_pairs(aanlib_dir, 1).items()}

    def run(out: Path, stop_at: int | None = None) -> Trainer:
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=2, batch_size=2, crop=32, num_threads=1, seed=3)
        t = Trainer(MsgFusionNet(lite()), FusionLoss(), cfg, forward=msgfusion_forward)
        t.fit(data, out, stop_at=stop_at)
        return t

    straight = run(tmp_path / "a")
    run(tmp_path / "b", stop_at=1)
    resumed = run(tmp_path / "b")  # picks up the checkpoint of epoch 1
    with (tmp_path / "b" / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "ssim" in rows[0]
    for p, q in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(p.float(), q.float())
    # a restart (resume=False) starts a new log instead of appending to the old one
    Trainer(MsgFusionNet(lite()), FusionLoss(), TrainConfig(epochs=1, batch_size=2, crop=32,
            num_threads=1), forward=msgfusion_forward).fit(data, tmp_path / "b", resume=False)
    with (tmp_path / "b" / "log.csv").open() as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]


def test_log_keeps_every_value_under_its_column_when_some_epochs_are_scored(
        aanlib_dir: Path, tmp_path: Path) -> None:
    """Scoring every second epoch adds columns mid-run: the log is rewritten under the wider
    header instead of rows longer than their header."""
    data = {k: v[:, :, :64, :64] for k, v in _few_pairs(aanlib_dir, 1).items()}
    calls = iter([0.25, 0.5])

    def validate(model: torch.nn.Module) -> dict[str, float]:
        return {"score": next(calls)}

    cfg = TrainConfig(epochs=4, batch_size=2, crop=32, num_threads=1, seed=0)
    trainer = Trainer(MsgFusionNet(lite()), FusionLoss(), cfg, forward=msgfusion_forward)
    trainer.fit(data, tmp_path, validate=validate, validate_every=2)
    with (tmp_path / "log.csv").open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert {len(line) for line in lines} == {len(lines[0])}  # no row longer than the header
    assert lines[0][-1] == "seconds"
    rows = [dict(zip(lines[0], line)) for line in lines[1:]]
    assert [r["val_score"] for r in rows] == ["", "0.25", "", "0.5"]
    assert all(float(r["seconds"]) >= 0 for r in rows)


def test_crop_flip_keeps_the_pair_aligned() -> None:
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    out = random_crop_flip({"a": x, "b": x.clone()}, 8, True, torch.Generator().manual_seed(1))
    assert out["a"].shape == (2, 1, 8, 8) and torch.equal(out["a"], out["b"])


def test_cli_train_one_tiny_epoch(aanlib_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"pairs": ["CT-MRI"], "train": {
        "epochs": 1, "max_steps_per_epoch": 1, "batch_size": 2, "crop": 32, "num_threads": 1}}))
    assert main(["train", "--config", str(config), "--data", str(aanlib_dir),
                 "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "msgfusion.pt").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pairs"] == ["CT-MRI"]


def test_cli_train_per_modality_trains_one_network_per_pair_type(aanlib_dir: Path,
                                                                  tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"pairs": ["CT-MRI", "SPECT-MRI"], "per_modality": True,
                                  "train": {"epochs": 1, "max_steps_per_epoch": 1,
                                            "batch_size": 2, "crop": 48, "num_threads": 1},
                                  "overrides": {"SPECT-MRI": {"loss": {"viff": 0.5}}}}))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", str(aanlib_dir),
                 "--out", str(run)]) == 0
    model = load_weights(run / "msgfusion.pt")
    assert isinstance(model, PerModality) and set(model.nets) == {"CT", "SPECT"}
    with (run / "log.csv").open() as fh:
        log = list(csv.DictReader(fh))
    assert [r["pairs"] for r in log] == ["CT-MRI", "SPECT-MRI"]
    assert log[0]["viff"] == "" and float(log[1]["viff"]) > 0  # only SPECT has the viff term
    assert all(float(r["seconds"]) > 0 for r in log)
    for name, viff in (("CT-MRI", 0.0), ("SPECT-MRI", 0.5)):
        sub = json.loads((run / name / "config.json").read_text())
        assert sub["pairs"] == [name] and not sub["per_modality"]
        assert sub["loss"]["viff"] == viff  # the override reaches its network only


def test_overrides_need_per_modality_and_known_fields() -> None:
    with pytest.raises(ValueError, match="per_modality"):
        ExperimentConfig.from_dict({"overrides": {"PET-MRI": {"loss": {"viff": 1.0}}}})
    with pytest.raises(ValueError, match="nope"):
        ExperimentConfig.from_dict({"per_modality": True,
                                    "overrides": {"PET-MRI": {"loss": {"nope": 1.0}}}})


def test_cli_train_bad_config_is_one_line_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "bad.json"
    config.write_text('{"train": {"epochs": 1, "nope": 2}}')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "nope" in capsys.readouterr().err
