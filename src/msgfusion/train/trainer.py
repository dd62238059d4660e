"""A trainer for any fusion network: MsgFusion and the deep baselines share it.

Generic over a ``torch.nn.Module``, a loss ``(output, batch) -> (total, {term: value})`` and a
``forward(model, batch) -> output``; data is a preloaded batch dict (:mod:`msgfusion.train.data`).
Seeded and deterministic on the CPU, ``torch.set_num_threads`` respected, GPU used when present;
writes ``checkpoint.pt`` after every epoch and resumes from it, and ``log.csv`` (one row per
epoch: mean of every loss term, learning rate, seconds). With a ``validate`` callable (e.g.
:class:`msgfusion.train.validation.Validator`) each epoch is also scored on held-out pairs, the
scores logged as ``val_<name>`` columns, and the weights of the epoch with the highest
``score`` kept in ``best.pt``. The released MsgFusion script used Adam,
lr 1e-3, StepLR(50, 0.1), 251 epochs, batch 2 (MSGFUSION.md section 4).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from msgfusion.model.inputs import Batch, Forward, grey_pair_forward
from msgfusion.progress import progress_bar
from msgfusion.train.data import jitter_intensity, random_crop_flip, subset
from msgfusion.train.losses import LossFn

Validate = Callable[[nn.Module], dict[str, float]]
BEST_FILE = "best.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (Adam); ``schedule``: cosine, step (StepLR) or constant."""

    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_size: int = 50  # StepLR, in epochs
    gamma: float = 0.1
    crop: int = 128  # random square crops for training (0: whole images)
    flip: bool = True
    transpose: bool = False  # with flip: all 8 symmetries of the square (rotations by 90 degrees)
    jitter: float = 0.0  # per-sample gamma and gain of each source (data.jitter_intensity)
    seed: int = 0
    num_threads: int = 2
    device: str = "auto"  # "auto": CUDA when available, else CPU
    max_steps_per_epoch: int = 0  # 0: one pass over the data
    val_pairs: int = 0  # msgfusion train: train pairs held out per pair type, best epoch kept


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """``Trainer(model, loss, cfg).fit(data, out_dir)``; see the module docstring."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, cfg: TrainConfig | None = None,
                 forward: Forward = grey_pair_forward) -> None:
        self.cfg = cfg or TrainConfig()
        torch.manual_seed(self.cfg.seed)
        torch.set_num_threads(self.cfg.num_threads)
        self.device = pick_device(self.cfg.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.forward = forward
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.cfg.lr,
                                          weight_decay=self.cfg.weight_decay)
        self.scheduler = self._scheduler()
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.epoch = 0
        self.best: tuple[int, float] | None = None  # (epoch, validation score) of best.pt

    def _scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        c = self.cfg
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, max(c.epochs, 1))
        if c.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, c.step_size, c.gamma)
        if c.schedule == "constant":
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        raise ValueError(f"unknown schedule {c.schedule!r}; choose cosine, step or constant")

    def state(self) -> dict:
        return {"epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(), "config": asdict(self.cfg),
                "best": self.best}

    def load_state(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.best = state.get("best")

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimiser step on a batch (already on the device); returns the loss terms."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, terms = self.loss_fn(self.forward(self.model, batch), batch)
        total.backward()
        self.optimizer.step()
        return {"loss": float(total.detach()), **terms}

    def run_epoch(self, data: Batch, bar: tqdm | None = None) -> dict[str, float]:
        """One pass over ``data`` in shuffled batches of random crops; mean of each term."""
        c = self.cfg
        n = len(next(iter(data.values())))
        order = torch.randperm(n, generator=self.generator)
        steps = math.ceil(n / c.batch_size)
        if c.max_steps_per_epoch:
            steps = min(steps, c.max_steps_per_epoch)
        sums: dict[str, float] = {}
        for s in range(steps):
            batch = subset(data, order[s * c.batch_size: (s + 1) * c.batch_size])
            batch = jitter_intensity(batch, c.jitter, self.generator)
            batch = random_crop_flip(batch, c.crop, c.flip, self.generator, c.transpose)
            terms = self.train_step({k: v.to(self.device) for k, v in batch.items()})
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}")
        return {key: value / steps for key, value in sums.items()}

    def fit(self, data: Batch, out_dir: str | Path, resume: bool = True,
            stop_at: int | None = None, validate: Validate | None = None,
            validate_every: int = 1) -> list[dict[str, float]]:
        """Train to ``cfg.epochs``, resuming from ``out_dir/checkpoint.pt`` when present.

        ``stop_at`` ends the session after that many epochs (for time-boxed sessions); a later
        ``fit`` resumes where it stopped, with the same schedule. ``validate(model)`` scores
        the model after every epoch (``seconds`` in the log is the training time without it).
        """
        last = min(self.cfg.epochs, stop_at) if stop_at else self.cfg.epochs
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ckpt, log_path = out / "checkpoint.pt", out / "log.csv"
        if resume and ckpt.exists():
            self.load_state(torch.load(ckpt, map_location=self.device, weights_only=False))
        else:  # a fresh start: the log and best epoch of an earlier run would mix two runs
            log_path.unlink(missing_ok=True)
            (out / BEST_FILE).unlink(missing_ok=True)
        rows: list[dict[str, float]] = []
        n = len(next(iter(data.values())))
        per_epoch = math.ceil(n / self.cfg.batch_size)
        if self.cfg.max_steps_per_epoch:
            per_epoch = min(per_epoch, self.cfg.max_steps_per_epoch)
        with progress_bar(total=per_epoch * self.cfg.epochs, initial=per_epoch * self.epoch,
                          desc="training", unit="step") as bar:
            while self.epoch < last:
                start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                terms = self.run_epoch(data, bar)
                self.scheduler.step()
                self.epoch += 1
                row = {"epoch": self.epoch, "lr": lr, **terms,
                       "seconds": round(time.perf_counter() - start, 2)}
                if validate is not None and (self.epoch % validate_every == 0
                                             or self.epoch == self.cfg.epochs):
                    scores = validate(self.model)
                    row.update({f"val_{k}": round(v, 6) for k, v in scores.items()})
                    if self.best is None or scores["score"] > self.best[1]:
                        self.best = (self.epoch, scores["score"])
                        torch.save({"epoch": self.epoch, "model": self.model.state_dict()},
                                   out / BEST_FILE)
                rows.append(row)
                self._append_log(log_path, row)
                torch.save(self.state(), ckpt)
        return rows

    def load_best(self, out_dir: str | Path) -> int:
        """Load the weights of ``best.pt`` in ``out_dir`` into the model; returns its epoch."""
        state = torch.load(Path(out_dir) / BEST_FILE, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        return int(state["epoch"])

    @staticmethod
    def _append_log(path: Path, row: dict[str, float]) -> None:
        """Append one epoch's row. A row with columns the file lacks (the first validated epoch
        when only every n-th epoch is scored) rewrites the file under the wider header
        (:func:`write_log`), so that every value stays under its own name."""
        header: list[str] = []
        if path.exists():
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
        if header and set(row) <= set(header):
            with path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=header, restval="").writerow(row)
            return
        rows: list[dict] = []
        if header:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        write_log(path, [*rows, row])


def write_log(path: Path, rows: list[dict]) -> None:
    """A training log as CSV: the columns of all ``rows`` in order of appearance, ``seconds``
    last as in every run's log, empty where a row has no such column."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    columns = [c for c in columns if c != "seconds"] + [c for c in columns if c == "seconds"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
