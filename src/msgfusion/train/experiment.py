"""One training run of MsgFusion from one small config file (``msgfusion train``).

The config (JSON or TOML) has three optional sections::

    {"model": "lite" | {"preset": "lite", <MsgFusionConfig overrides>},
     "loss": {<LossConfig fields>}, "train": {<TrainConfig fields>},
     "pairs": ["CT-MRI", "PET-MRI", "SPECT-MRI"], "per_modality": false,
     "overrides": {"PET-MRI": {"loss": {...}}}}

The run writes to ``out_dir``: ``config.json`` (the full resolved config), ``log.csv``,
``checkpoint.pt`` (for resuming) and ``msgfusion.pt`` (the trained weights, fp16);
:func:`ship` copies them into the package. With ``per_modality`` one network is trained per
entry of ``pairs``, each in ``out_dir/<pair>/`` on that pair type's train split only (the same
config, each seeded the same way); ``msgfusion.pt`` then holds them all
(:class:`~msgfusion.model.msgfusion.PerModality`) and ``log.csv`` their logs, a ``pairs``
column first; ``overrides`` changes model, loss or train fields for one pair type's network.
With ``train.val_pairs`` N, N evenly spaced train pairs of each pair type are held out, every
epoch is scored on them (:class:`~msgfusion.train.validation.Validator`, ``val_*`` columns of
the log) and ``msgfusion.pt`` holds the weights of the best epoch instead of the last.
The shipped weights are reproduced by::

    msgfusion train --config src/msgfusion/model/weights/msgfusion_lite.json \
        --data ../shared/data/aanlib --out runs/lite --ship
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from msgfusion.data.datasets import AANLIB_PAIRS, load_aanlib
from msgfusion.metrics.perceptual import VIF_MIN_SIZE
from msgfusion.model.configs import (
    MsgFusionConfig,
    from_dict,
    lite,
    merge_overrides,
    model_config,
    read_config_file,
)
from msgfusion.model.inputs import Batch
from msgfusion.model.msgfusion import FusionModel, MsgFusionNet, PerModality, save_weights
from msgfusion.pair import FusionPair
from msgfusion.train.data import preload
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.trainer import Trainer, TrainConfig, write_log
from msgfusion.train.validation import Validator, split_validation

WEIGHTS_FILE = "msgfusion.pt"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "model" / "weights"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run depends on; written beside its results as config.json."""
    model: MsgFusionConfig = field(default_factory=lite)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pairs: tuple[str, ...] = AANLIB_PAIRS
    per_modality: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        unknown = set(data) - {"model", "loss", "train", "pairs", "per_modality", "overrides"}
        if unknown:
            raise ValueError(f"unknown config sections: {', '.join(sorted(unknown))}")
        cfg = cls(
            model=model_config(data.get("model", "lite")),
            loss=from_dict(LossConfig, data.get("loss", {})),
            train=from_dict(TrainConfig, data.get("train", {})),
            pairs=tuple(data.get("pairs", AANLIB_PAIRS)),
            per_modality=bool(data.get("per_modality", False)),
            overrides=dict(data.get("overrides", {})),
        )
        if cfg.loss.viff and 0 < cfg.train.crop < VIF_MIN_SIZE:
            raise ValueError(f"the viff loss needs crops of at least {VIF_MIN_SIZE} pixels "
                             f"(train.crop is {cfg.train.crop})")
        for name, override in cfg.overrides.items():
            if not cfg.per_modality or name not in cfg.pairs:
                raise ValueError(f"overrides for {name!r}: overrides name pair types of "
                                 "pairs, with per_modality true")
            cfg.for_pair(name)  # rejects unknown sections and fields now, not mid-run
        return cfg

    def for_pair(self, name: str) -> ExperimentConfig:
        """The config of the network for one pair type: its overrides applied."""
        merged = self.to_dict()
        override = self.overrides.get(name, {})
        unknown = set(override) - {"model", "loss", "train"}
        if unknown:
            raise ValueError(f"overrides for {name}: unknown sections {', '.join(sorted(unknown))}")
        merge_overrides(merged, override)
        merged.update(pairs=[name], per_modality=False, overrides={})
        return ExperimentConfig.from_dict(merged)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ExperimentConfig:
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict[str, Any]:
        return {"model": asdict(self.model), "loss": asdict(self.loss),
                "train": asdict(self.train), "pairs": list(self.pairs),
                "per_modality": self.per_modality, "overrides": self.overrides}


def msgfusion_forward(model: MsgFusionNet, batch: Batch) -> torch.Tensor:
    """The trainer's forward for MsgFusion: all its inputs come from the batch dict."""
    return model.forward_batch(batch)


def _train_one(cfg: ExperimentConfig, data_root: str | os.PathLike, out: Path,
               resume: bool) -> MsgFusionNet:
    """One network on the train split of ``cfg.pairs``, its run files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    train: list[FusionPair] = []
    val: list[FusionPair] = []
    for folder in load_aanlib(data_root, "train", cfg.pairs):
        kept, held = split_validation(folder, cfg.train.val_pairs)
        train += kept
        val += held
    data = preload(train, desc=f"loading {len(train)} train pairs")
    validator = Validator(val, msgfusion_forward) if val else None
    if validator is not None:
        (out / "validation.json").write_text(json.dumps(
            {"pairs": [p.name for p in val], "baselines": validator.baselines}, indent=2) + "\n")
    torch.manual_seed(cfg.train.seed)  # the initial weights follow the run's seed
    trainer = Trainer(MsgFusionNet(cfg.model), FusionLoss(cfg.loss), cfg.train,
                      forward=msgfusion_forward)
    trainer.fit(data, out, resume=resume, validate=validator)
    if validator is not None:
        trainer.load_best(out)
    return trainer.model.cpu()  # type: ignore[return-value]


def _merge_logs(runs: dict[str, Path], path: Path) -> None:
    """The per-modality logs in one CSV, with a ``pairs`` column first; the columns are the
    union of the runs' (their loss terms may differ), empty where a run has no such term."""
    rows: list[dict[str, str]] = []
    for name, run in runs.items():
        with (run / "log.csv").open(newline="") as fh:
            rows += [{"pairs": name, **row} for row in csv.DictReader(fh)]
    write_log(path, rows)


def train_msgfusion(cfg: ExperimentConfig, data_root: str | os.PathLike,
                    out_dir: str | os.PathLike, resume: bool = True) -> Path:
    """Train MsgFusion on the AANLIB train split; returns the path of the saved weights."""
    out = Path(out_dir)
    model: FusionModel
    if cfg.per_modality:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        runs = {name: out / name for name in cfg.pairs}
        model = PerModality({
            name.split("-")[0]: _train_one(cfg.for_pair(name), data_root, run, resume)
            for name, run in runs.items()})
        _merge_logs(runs, out / "log.csv")
    else:
        model = _train_one(cfg, data_root, out, resume)
    weights = out / WEIGHTS_FILE
    save_weights(model, str(weights))
    return weights


def ship(out_dir: str | os.PathLike, name: str = "msgfusion_lite") -> list[Path]:
    """Copy a run's weights, resolved config and log into the package as ``<name>.pt``,
    ``<name>.json`` and ``<name>_log.csv`` (the files :func:`load_pretrained` reads)."""
    out = Path(out_dir)
    copies = [(WEIGHTS_FILE, f"{name}.pt"), ("config.json", f"{name}.json"),
              ("log.csv", f"{name}_log.csv")]
    return [Path(shutil.copyfile(out / src, SHIPPED_DIR / dst)) for src, dst in copies]
