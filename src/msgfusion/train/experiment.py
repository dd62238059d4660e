"""One training run of MsgFusion from one small config file (``msgfusion train``).

The config (JSON or TOML) has three optional sections::

    {"model": "lite" | {"preset": "lite", <MsgFusionConfig overrides>},
     "loss": {<LossConfig fields>}, "train": {<TrainConfig fields>},
     "pairs": ["CT-MRI", "PET-MRI", "SPECT-MRI"]}

The run writes to ``out_dir``: ``config.json`` (the full resolved config), ``log.csv``,
``checkpoint.pt`` (for resuming) and ``msgfusion.pt`` (the trained weights, fp16);
:func:`ship` copies them into the package. The shipped weights are reproduced by::

    msgfusion train --config src/msgfusion/model/weights/msgfusion_lite.json \
        --data ../shared/data/aanlib --out runs/lite --ship
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from msgfusion.data.datasets import AANLIB_PAIRS, load_aanlib
from msgfusion.model.configs import MsgFusionConfig, from_dict, lite, model_config, read_config_file
from msgfusion.model.inputs import Batch
from msgfusion.model.msgfusion import MsgFusionNet, save_weights
from msgfusion.train.data import preload
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.trainer import Trainer, TrainConfig

WEIGHTS_FILE = "msgfusion.pt"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "model" / "weights"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run depends on; written beside its results as config.json."""
    model: MsgFusionConfig = field(default_factory=lite)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pairs: tuple[str, ...] = AANLIB_PAIRS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        unknown = set(data) - {"model", "loss", "train", "pairs"}
        if unknown:
            raise ValueError(f"unknown config sections: {', '.join(sorted(unknown))}")
        return cls(
            model=model_config(data.get("model", "lite")),
            loss=from_dict(LossConfig, data.get("loss", {})),
            train=from_dict(TrainConfig, data.get("train", {})),
            pairs=tuple(data.get("pairs", AANLIB_PAIRS)),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ExperimentConfig:
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict[str, Any]:
        return {"model": asdict(self.model), "loss": asdict(self.loss),
                "train": asdict(self.train), "pairs": list(self.pairs)}


def msgfusion_forward(model: MsgFusionNet, batch: Batch) -> torch.Tensor:
    """The trainer's forward for MsgFusion: all its inputs come from the batch dict."""
    return model.forward_batch(batch)


def train_msgfusion(cfg: ExperimentConfig, data_root: str | os.PathLike,
                    out_dir: str | os.PathLike, resume: bool = True) -> Path:
    """Train MsgFusion on the AANLIB train split; returns the path of the saved weights."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    folders = load_aanlib(data_root, "train", cfg.pairs)
    data = preload((pair for folder in folders for pair in folder),
                   desc=f"loading {sum(len(f) for f in folders)} train pairs")
    trainer = Trainer(MsgFusionNet(cfg.model), FusionLoss(cfg.loss), cfg.train,
                      forward=msgfusion_forward)
    trainer.fit(data, out, resume=resume)
    weights = out / WEIGHTS_FILE
    save_weights(trainer.model.cpu(), str(weights))  # type: ignore[arg-type]
    return weights


def ship(out_dir: str | os.PathLike, name: str = "msgfusion_lite") -> list[Path]:
    """Copy a run's weights, resolved config and log into the package as ``<name>.pt``,
    ``<name>.json`` and ``<name>_log.csv`` (the files :func:`load_pretrained` reads)."""
    out = Path(out_dir)
    copies = [(WEIGHTS_FILE, f"{name}.pt"), ("config.json", f"{name}.json"),
              ("log.csv", f"{name}_log.csv")]
    return [Path(shutil.copyfile(out / src, SHIPPED_DIR / dst)) for src, dst in copies]
