"""Training a deep baseline from its :class:`~msgfusion.train.recipes.Recipe` (``msgfusion
train-baseline``): AANLIB train split, the shared seeded :class:`~msgfusion.train.trainer.Trainer`.

A run writes to ``out_dir``: ``config.json`` (method, architecture, training settings, pairs),
``log.csv`` and ``checkpoint.pt`` (written by the trainer; a run resumes from it), ``<name>.pt``
(the weights, fp16) and ``<name>.json`` (the config plus the measured training time and the
parameter count). ``ship=True`` copies the weights, ``<name>.json`` and the log
(``<name>.log.csv``) into the package's weights folder, where the methods load them from.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from msgfusion.data.datasets import AANLIB_PAIRS, load_aanlib
from msgfusion.methods.deep.base import WEIGHTS_PACKAGE
from msgfusion.model.inputs import Batch
from msgfusion.train.data import preload
from msgfusion.train.recipes import Recipe, get_recipe, save_weights
from msgfusion.train.trainer import Trainer, TrainConfig


def initial_model(recipe: Recipe, seed: int) -> nn.Module:
    """The network of ``recipe`` as initialised before training (depends on the seed only)."""
    torch.manual_seed(seed)
    return recipe.network.build(recipe.network.arch)


def make_trainer(recipe: Recipe, train: TrainConfig | None = None) -> Trainer:
    """The seeded, freshly initialised network of ``recipe`` in its trainer."""
    cfg = train or recipe.train
    return recipe.trainer(initial_model(recipe, cfg.seed), recipe.loss(), cfg,
                          forward=recipe.train_forward)


def _summary(recipe: Recipe, cfg: TrainConfig, pairs: Sequence[str], out: Path,
             trainer: Trainer | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"method": recipe.name, "arch": asdict(recipe.network.arch),
                               "train": asdict(cfg), "data": "AANLIB train split",
                               "pairs": list(pairs)}
    if trainer is not None:
        with (out / "log.csv").open(newline="") as fh:
            seconds = sum(float(row["seconds"]) for row in csv.DictReader(fh))
        summary["train_seconds"] = round(seconds, 1)
        summary["parameters"] = sum(p.numel() for p in trainer.model.parameters())
    return summary


def train_baseline(name: str, data_root: str | os.PathLike, out_dir: str | os.PathLike,
                   train: TrainConfig | None = None, pairs: Sequence[str] = AANLIB_PAIRS,
                   resume: bool = True, ship: bool = False) -> Path:
    """Train the baseline ``name`` on the AANLIB train split; returns the path of the weights."""
    recipe = get_recipe(name)
    cfg = train or recipe.train
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(_summary(recipe, cfg, pairs, out), indent=2) + "\n")
    folders = load_aanlib(data_root, "train", pairs)
    data: Batch = preload((pair for folder in folders for pair in folder),
                          desc=f"loading {sum(len(f) for f in folders)} train pairs")
    trainer = make_trainer(recipe, cfg)
    start = time.perf_counter()
    trainer.fit(data, out, resume=resume)
    print(f"{name}: trained in {time.perf_counter() - start:.0f} s (this run)")
    weights = out / f"{name}.pt"
    save_weights(trainer.model.cpu(), recipe.network.arch, weights)
    summary = _summary(recipe, cfg, pairs, out, trainer)
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    if ship:
        target = Path(str(resources.files(WEIGHTS_PACKAGE)))
        shutil.copyfile(weights, target / weights.name)
        shutil.copyfile(out / f"{name}.json", target / f"{name}.json")
        shutil.copyfile(out / "log.csv", target / f"{name}.log.csv")
    return weights
