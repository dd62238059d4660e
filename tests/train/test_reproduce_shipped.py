"""A short training: one epoch of the shipped CT recipe reproduces the shipped log's first epoch.

The shipped weights were trained seeded on one CPU thread, so retraining from the committed
config should give the same numbers. It no longer does exactly: on the shared development
machine, after main's colour and modality changes were merged, one epoch matched the logged loss
to 1.2e-4 and the intensity_max term to 2.4e-3 relative (not investigated further; a changed loss
weight, crop or data pipeline moves them by far more than the 1 % allowed here). One epoch is enough to see that the
recipe, the data pipeline and the losses are those of the shipped networks. Slow (one epoch plus
the validation pairs): ``python -m pytest -m slow``.
"""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from msgfusion.train.experiment import SHIPPED_DIR, ExperimentConfig, train_msgfusion

LOGGED = ("loss", "ssim_saliency", "intensity_max", "gradient_max", "viff", "val_Q_S",
          "val_VIFF", "val_Qabf", "val_score")


@pytest.mark.slow
def test_first_epoch_of_the_shipped_ct_network_is_reproduced(aanlib_dir, tmp_path):
    cfg = ExperimentConfig.from_file(SHIPPED_DIR / "msgfusion_lite.json").for_pair("CT-MRI")
    cfg = replace(cfg, train=replace(cfg.train, epochs=1))
    train_msgfusion(cfg, aanlib_dir, tmp_path)
    with (tmp_path / "log.csv").open(newline="") as fh:
        (ours,) = list(csv.DictReader(fh))
    with (SHIPPED_DIR / "msgfusion_lite_log.csv").open(newline="") as fh:
        shipped = next(r for r in csv.DictReader(fh) if r["pairs"] == "CT-MRI" and r["epoch"] == "1")
    for column in LOGGED:
        assert float(ours[column]) == pytest.approx(float(shipped[column]), rel=1e-2), column
