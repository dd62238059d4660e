"""``msgfusion evaluate``: folder matching, tables, and every error path (exit 2, one line)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msgfusion.cli import main
from msgfusion.metrics import METRICS, PAPER_METRICS, compute_metrics
from msgfusion.evaluation import evaluate_folder

from cli_helpers import assert_one_line_error, run

PET_IDS = ("25015", "25022", "25027")
VIFB = "VIFB_matlab@22b2ea9"
HAN = "Han2013_VIFF_Public_matlab(HarrisXia copy)@35d35c0"


@pytest.fixture
def pet_folder(tmp_path: Path, reference_metrics_dir: Path) -> tuple[Path, Path]:
    """A folder of pairs with the colour PET images as shipped, and the max-fused images."""
    pairs, fused = tmp_path / "pairs", tmp_path / "fused"
    for sub in (pairs / "MRI", pairs / "PET", fused):
        sub.mkdir(parents=True)
    src = reference_metrics_dir
    for i in PET_IDS:
        shutil.copy(src / "inputs" / f"PET-MRI_{i}_A_MRI.png", pairs / "MRI" / f"{i}.png")
        shutil.copy(src / "inputs" / f"PET-MRI_{i}_B_PET_rgb.png", pairs / "PET" / f"{i}.png")
        shutil.copy(src / "fused" / f"PET-MRI_{i}_max.png", fused / f"{i}.png")
    return pairs, fused


def test_csv_matches_the_references(capsys, pet_folder, reference_triples, tmp_path) -> None:
    pairs, fused = pet_folder
    out_csv = tmp_path / "table.csv"
    code, out, _ = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused,
                       "--metrics", "all", "-o", out_csv)
    assert code == 0 and f"wrote {out_csv}" in out
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["image", *METRICS]
    assert [r[0] for r in rows[1:]] == list(PET_IDS)
    refs = {t.tid.split("_")[1]: t for t in reference_triples
            if t.modality == "PET" and t.rule == "max"}
    for row in rows[1:]:
        t = refs[row[0]]
        values = dict(zip(rows[0][1:], map(float, row[1:]), strict=True))
        assert values == pytest.approx(compute_metrics(t.a, t.b, t.f), rel=1e-15)
        assert values["EN"] == pytest.approx(t.ref("EN", VIFB), rel=1e-6)
        assert values["VIFF"] == pytest.approx(t.ref("VIFF", HAN), rel=1e-6)
    lines = out.splitlines()
    assert lines[0].split() == ["image", *METRICS]
    mean_row = next(line for line in lines if line.startswith("mean")).split()[1:]
    en = [float(r[1]) for r in rows[1:]]
    assert float(mean_row[0]) == pytest.approx(np.mean(en), rel=1e-4)
    assert any(line.startswith("std") for line in lines)


def test_default_metrics_markdown_and_md_output(capsys, pet_folder, tmp_path) -> None:
    pairs, fused = pet_folder
    code, out, _ = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused, "--markdown",
                       "-o", tmp_path / "t.md")
    assert code == 0
    header = out.splitlines()[0]
    assert header.startswith("| image |") and "rSFe →0" in header and "VIFF ↑" in header
    assert [c.split()[0] for c in header.strip("| ").split(" | ")[1:]] == list(PAPER_METRICS)
    assert "| **mean** |" in out and "| **std** |" in out
    assert (tmp_path / "t.md").read_text().startswith("| image |")


def test_existing_output_needs_overwrite(capsys, pet_folder, tmp_path) -> None:
    pairs, fused = pet_folder
    out_csv = tmp_path / "t.csv"
    out_csv.write_text("keep me")
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused, "-o", out_csv)
    assert_one_line_error(code, err, str(out_csv), "--overwrite")
    assert out_csv.read_text() == "keep me"
    code, _, _ = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused, "-o", out_csv,
                     "--overwrite", "--metrics", "EN,SD")
    assert code == 0 and out_csv.read_text().splitlines()[0] == "image,EN,SD"


def test_missing_and_extra_fused_files_are_named(capsys, pet_folder) -> None:
    pairs, fused = pet_folder
    (fused / "25022.png").unlink()
    shutil.copy(fused / "25015.png", fused / "99999.png")
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused)
    assert_one_line_error(code, err, "25022.png", "no fused image", "99999.png", "match no pair")


def test_two_fused_files_for_one_pair(capsys, pet_folder) -> None:
    pairs, fused = pet_folder
    Image.open(fused / "25015.png").save(fused / "25015.tif")
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused)
    assert_one_line_error(code, err, "25015.png / 25015.tif")


def test_fused_image_of_another_size(capsys, pet_folder) -> None:
    pairs, fused = pet_folder
    Image.open(fused / "25027.png").crop((0, 0, 200, 256)).save(fused / "25027.png")
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused)
    assert_one_line_error(code, err, "25027.png", "200")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--metrics", "EN", "XYZ"], "unknown metric 'XYZ'"),
    (["--metrics", "RQ"], "RQ"),
])
def test_bad_metric_names(capsys, pet_folder, args, fragment) -> None:
    pairs, fused = pet_folder
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", fused, *args)
    assert_one_line_error(code, err, fragment)


def test_missing_folders(capsys, pet_folder, tmp_path) -> None:
    pairs, _ = pet_folder
    code, _, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", tmp_path / "nope")
    assert_one_line_error(code, err, "nope", "not a folder")


def test_evaluate_folder_api(pet_folder) -> None:
    pairs, fused = pet_folder
    table = evaluate_folder(pairs, fused, ["EN", "Qcv"])
    assert table.images == PET_IDS and table.labels == ("EN", "Qcv")
    assert table.values.shape == (3, 2)
    np.testing.assert_allclose(table.mean(), table.values.mean(axis=0))
    np.testing.assert_allclose(table.std(), table.values.std(axis=0, ddof=1))


# ``evaluate``'s mean and std rows against the published reference implementations' values: the
# three max-fused PET-MRI references of ``../shared/reference/metrics`` with their EN (VIFB) and
# VIFF (Han 2013) values; the mean and the sample std (n - 1) of those published numbers are what
# the table must print, whatever formula the table uses internally.
VIFB = "VIFB_matlab@22b2ea9"
HAN = "Han2013_VIFF_Public_matlab(HarrisXia copy)@35d35c0"
# Per-image reference values from reference_values.json (PET-MRI_<id>/max):
# EN (VIFB) 3.4038486, 3.9886977, 4.2863455; VIFF (Han) 0.6926149, 0.5444998, 0.5094809.
# Their mean and sample standard deviation:
KNOWN_MEAN = {"EN": 3.8929639, "VIFF": 0.5821985}
KNOWN_STD = {"EN": 0.4489698, "VIFF": 0.0972132}


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
