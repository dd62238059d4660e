"""k-fold cross-validation by atlas case on the train split: choosing networks without the test.

The AANLIB file names start with the atlas case (``25016``: case 25, slice 16), and the train and
test splits take slices of the same cases, so neighbouring slices of one case are near-duplicates.
Folds are therefore made of whole cases (:func:`case_folds`): a fold's pairs come from cases the
network trained on that fold never saw. For each pair type, fold and seed, one network is
trained on the other folds and scored every few epochs on its own fold exactly as the benchmark
scores the test pairs (:class:`~msgfusion.train.validation.Validator`: 8-bit luminance, the
paper metrics). The same held-out pairs are fused by pixel average and maximum and by the
registered classical methods, so that the table also gives the rank among them that a recipe
can be expected to reach on pairs no one has seen. The test split is not read.

    msgfusion train --config RECIPE.json --cv 3 --seeds 0,1 --out runs/cv-RECIPE

writes ``cv.csv`` (one row per pair type, fold, seed, evaluated epoch and method) and
``folds.json`` (the pair names of each fold) in ``--out``.
:func:`summarise` turns it into mean and spread over folds and seeds.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from msgfusion.data.datasets import load_aanlib
from msgfusion.model.msgfusion import MsgFusionNet
from msgfusion.pair import FusionPair
from msgfusion.train.data import preload
from msgfusion.train.experiment import ExperimentConfig, msgfusion_forward
from msgfusion.train.losses import FusionLoss
from msgfusion.train.trainer import Trainer
from msgfusion.train.validation import VAL_METRICS, Validator

#: The paper's metrics (MSGFUSION.md section 6), reported for every fold; ``rSFe`` is signed,
#: its magnitude the paper's |rSFe| (lower is better).
CV_METRICS: tuple[str, ...] = ("EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf")
#: Methods scored on every held-out fold beside the network: the classical methods of the
#: registry that take tens of milliseconds per pair (LatLRR and WPADCPCNN take seconds).
CV_REFERENCES: tuple[str, ...] = ("average", "max", "pca", "dwt", "lp", "gff")
CV_FILE = "cv.csv"


def case_of(name: str) -> str:
    """The atlas case of an AANLIB file stem: all but its last three digits (``2004`` -> ``2``)."""
    return name[:-3] if len(name) > 3 and name.isdigit() else name


def case_folds(names: Sequence[str], k: int) -> list[int]:
    """The fold (0 .. k-1) of each name: whole cases per fold, folds balanced in pair count.

    Cases are taken largest first (ties by case id) and each goes to the fold with the fewest
    pairs so far (ties: the lowest fold), so the assignment is deterministic.
    """
    counts: dict[str, int] = {}
    for name in names:
        counts[case_of(name)] = counts.get(case_of(name), 0) + 1
    if not 2 <= k <= len(counts):
        raise ValueError(f"cannot make {k} folds of whole cases from {len(counts)} case(s)")
    sizes = [0] * k
    fold_of: dict[str, int] = {}
    for case in sorted(counts, key=lambda c: (-counts[c], c)):
        fold = min(range(k), key=lambda f: (sizes[f], f))
        fold_of[case] = fold
        sizes[fold] += counts[case]
    return [fold_of[case_of(name)] for name in names]


def _write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["pairs", "fold", "seed", "epoch", "method",
                                                *CV_METRICS, "score"])
        if new:
            writer.writeheader()
        writer.writerows(rows)


def cross_validate(cfg: ExperimentConfig, data_root: str | os.PathLike,
                   out_dir: str | os.PathLike, k: int = 3, seeds: Sequence[int] | None = None,
                   every: int = 5, references: Sequence[str] = CV_REFERENCES) -> Path:
    """Train and score ``k`` x len(``seeds``) networks per pair type of ``cfg``; returns cv.csv.

    Each run lives in ``out_dir/<pair>/fold<F>-seed<S>/`` (resumable, as ``msgfusion train``);
    a run whose rows are already in cv.csv is skipped, so an interrupted study resumes.
    ``seeds`` defaults to the config's seed (per pair type, after its overrides).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    table = out / CV_FILE
    done = set()
    if table.exists():
        with table.open(newline="") as fh:
            done = {(r["pairs"], r["fold"], r["seed"]) for r in csv.DictReader(fh)
                    if r["method"] == "msgfusion" and r["epoch"] == "last"}
    fold_names: dict[str, list[list[str]]] = {}
    for name in cfg.pairs:
        pair_cfg = cfg.for_pair(name) if cfg.per_modality else cfg
        pair_cfg = replace(pair_cfg, pairs=(name,))
        folder = load_aanlib(data_root, "train", [name])[0]
        pairs: list[FusionPair] = list(folder)
        folds = case_folds([p.name for p in pairs], k)
        fold_names[name] = [[p.name for p, f in zip(pairs, folds) if f == fold]
                            for fold in range(k)]
        (out / "folds.json").write_text(json.dumps(fold_names, indent=1) + "\n")
        for fold in range(k):
            run_seeds = [pair_cfg.train.seed] if seeds is None else list(seeds)
            todo = [s for s in run_seeds if (name, str(fold), str(s)) not in done]
            if not todo:
                continue
            held = [p for p, f in zip(pairs, folds) if f == fold]
            kept = [p for p, f in zip(pairs, folds) if f != fold]
            validator = Validator(held, msgfusion_forward, metrics=VAL_METRICS,
                                  report=CV_METRICS, references=references)
            data = preload(kept, desc=f"{name} fold {fold}: loading {len(kept)} pairs")
            for seed in todo:
                run = out / name / f"fold{fold}-seed{seed}"
                train = replace(pair_cfg.train, seed=seed, val_pairs=0)
                torch.manual_seed(seed)
                trainer = Trainer(MsgFusionNet(pair_cfg.model), FusionLoss(pair_cfg.loss), train,
                                  forward=msgfusion_forward)
                log = trainer.fit(data, run, validate=validator, validate_every=every)
                rows: list[dict[str, object]] = []
                scored = [r for r in log if "val_score" in r]
                for r in scored:
                    epoch = "last" if r is scored[-1] else r["epoch"]
                    rows.append({"pairs": name, "fold": fold, "seed": seed, "epoch": epoch,
                                 "method": "msgfusion", "score": r["val_score"],
                                 **{m: r[f"val_{m}"] for m in CV_METRICS}})
                if seed == todo[0]:
                    rows += [{"pairs": name, "fold": fold, "seed": "", "epoch": "",
                              "method": method, "score": "", **scores}
                             for method, scores in validator.baselines.items()]
                _write_rows(table, rows)
    return table


def _better(metric: str, a: float, b: float) -> bool:
    return abs(a) < abs(b) if metric == "rSFe" else a > b


def _read(table: str | os.PathLike) -> list[dict[str, str]]:
    with open(table, newline="") as fh:
        return list(csv.DictReader(fh))


def _means(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, float]]]:
    folds: dict[tuple[str, str, str], list[dict[str, str]]] = {}  # (pair, method, fold) -> runs
    for r in rows:
        if r["method"] != "msgfusion" or r["epoch"] == "last":
            folds.setdefault((r["pairs"], r["method"], r["fold"]), []).append(r)
    per_fold: dict[str, dict[str, list[dict[str, float]]]] = {}
    for (pair, method, _), runs in folds.items():
        per_fold.setdefault(pair, {}).setdefault(method, []).append(
            {m: statistics.fmean(float(r[m]) for r in runs) for m in CV_METRICS})
    return {pair: {method: {m: statistics.fmean(f[m] for f in fold_means) for m in CV_METRICS}
                   for method, fold_means in methods.items()}
            for pair, methods in per_fold.items()}


def method_means(table: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """``{pair: {method: {metric: mean}}}``: each method's mean over the folds of its per-fold
    means (the network: its last epoch, averaged over seeds within a fold first)."""
    return _means(_read(table))


def summarise(table: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """``{pair: {metric: {"mean", "sd", "min", "max", "rank"}}}`` of the networks' last epochs
    over folds and seeds; ``rank`` is the network's place (1 = best) among itself and the
    reference methods, each averaged over the folds (rSFe: the smaller magnitude is better);
    ``score`` is the validation margin over pixel average and max."""
    rows = _read(table)
    means = _means(rows)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, methods in means.items():
        mine = [r for r in rows if r["pairs"] == name and r["method"] == "msgfusion"
                and r["epoch"] == "last"]
        summary: dict[str, dict[str, float]] = {}
        for metric in (*CV_METRICS, "score"):
            values = [float(r[metric]) for r in mine]
            entry = {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
                     "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
            if metric != "score":
                ours = methods["msgfusion"][metric]
                entry["rank"] = 1 + sum(_better(metric, v[metric], ours)
                                        for m, v in methods.items() if m != "msgfusion")
            summary[metric] = entry
        out[name] = summary
    return out
