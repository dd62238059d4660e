"""``evaluate``'s mean and std rows against the published reference implementations' values.

The three max-fused PET-MRI references of ``../shared/reference/metrics`` with their EN (VIFB)
and VIFF (Han 2013) values; the mean and the sample std (n - 1) of those published numbers are
what the table must print, whatever formula the table uses internally.
"""

from __future__ import annotations

import shutil

import pytest

from msgfusion.cli import main
from msgfusion.metrics.evaluate import evaluate_folder

PET_IDS = ("25015", "25022", "25027")
VIFB = "VIFB_matlab@22b2ea9"
HAN = "Han2013_VIFF_Public_matlab(HarrisXia copy)@35d35c0"
# Per-image reference values from reference_values.json (PET-MRI_<id>/max):
# EN (VIFB) 3.4038486, 3.9886977, 4.2863455; VIFF (Han) 0.6926149, 0.5444998, 0.5094809.
# Their mean and sample standard deviation:
KNOWN_MEAN = {"EN": 3.8929639, "VIFF": 0.5821985}
KNOWN_STD = {"EN": 0.4489698, "VIFF": 0.0972132}


@pytest.fixture
def pet_folder(tmp_path, reference_metrics_dir):
    pairs, fused = tmp_path / "pairs", tmp_path / "fused"
    for sub in (pairs / "MRI", pairs / "PET", fused):
        sub.mkdir(parents=True)
    src = reference_metrics_dir
    for i in PET_IDS:
        shutil.copy(src / "inputs" / f"PET-MRI_{i}_A_MRI.png", pairs / "MRI" / f"{i}.png")
        shutil.copy(src / "inputs" / f"PET-MRI_{i}_B_PET_rgb.png", pairs / "PET" / f"{i}.png")
        shutil.copy(src / "fused" / f"PET-MRI_{i}_max.png", fused / f"{i}.png")
    return pairs, fused


def test_known_values_are_the_reference_files(reference_metrics_dir):
    import json
    import statistics

    values = json.loads((reference_metrics_dir / "reference_values.json").read_text())
    for metric, ref in (("EN", VIFB), ("VIFF", HAN)):
        per_image = [values[f"PET-MRI_{i}"]["max"][metric][ref] for i in PET_IDS]
        assert statistics.fmean(per_image) == pytest.approx(KNOWN_MEAN[metric], abs=1e-7)


def test_mean_and_std_rows_are_the_known_values(capsys, pet_folder):
    pairs, fused = pet_folder
    table = evaluate_folder(pairs, fused, ["EN", "VIFF"])
    assert table.mean() == pytest.approx([KNOWN_MEAN["EN"], KNOWN_MEAN["VIFF"]], rel=1e-6)
    assert table.std() == pytest.approx([KNOWN_STD["EN"], KNOWN_STD["VIFF"]], rel=1e-6)
    code = main(["evaluate", "--pairs", str(pairs), "--fused", str(fused),
                 "--metrics", "EN", "VIFF"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert rows["mean"] == ["3.893", "0.5822"]
    assert rows["std"] == ["0.44897", "0.097213"]
    code = main(["evaluate", "--pairs", str(pairs), "--fused", str(fused),
                 "--metrics", "EN", "VIFF", "--markdown"])
    assert "| **mean** | 3.893 | 0.5822 |" in capsys.readouterr().out
