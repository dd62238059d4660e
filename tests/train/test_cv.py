"""Cross-validation by atlas case: folds of whole cases, the CV table, its summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from msgfusion.cli import main
from msgfusion.data.datasets import load_aanlib
from msgfusion.io.color import luminance, v_prime
from msgfusion.train.cv import CV_METRICS, case_folds, case_of, summarise
from msgfusion.train.data import jitter_intensity, preload, random_crop_flip


def test_case_of_atlas_names() -> None:
    assert [case_of(n) for n in ("25016", "2004", "41101", "mr_a")] == ["25", "2", "41", "mr_a"]


@pytest.mark.parametrize("pair, k", [("PET-MRI", 3), ("CT-MRI", 3), ("SPECT-MRI", 5)])
def test_folds_hold_whole_cases_and_are_balanced(aanlib_dir: Path, pair: str, k: int) -> None:
    names = [f.stem for f in load_aanlib(aanlib_dir, "train", [pair])[0].files]
    folds = case_folds(names, k)
    assert case_folds(names, k) == folds  # deterministic
    cases: dict[str, set[int]] = {}
    for name, fold in zip(names, folds):
        cases.setdefault(case_of(name), set()).add(fold)
    assert all(len(f) == 1 for f in cases.values())  # no case is split across folds
    sizes = [folds.count(f) for f in range(k)]
    assert min(sizes) > 0 and max(sizes) - min(sizes) <= max(
        sum(case_of(n) == c for n in names) for c in cases)  # within one case of each other
    if pair == "PET-MRI":  # three atlas cases: leave one case out
        assert sorted(sizes) == [73, 86, 86]


def test_folds_need_enough_cases() -> None:
    with pytest.raises(ValueError, match="cannot make 3 folds of whole cases from 2"):
        case_folds(["25016", "25017", "30001"], 3)


def test_transpose_swaps_axes_of_every_tensor_alike() -> None:
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    batch = {"mr": x, "v_prime": x + 100}
    swapped = 0
    for seed in range(8):
        out = random_crop_flip(batch, 0, False, torch.Generator().manual_seed(seed), True)
        for i in range(2):
            assert torch.equal(out["v_prime"][i], out["mr"][i] + 100)
            assert torch.equal(out["mr"][i], x[i]) or torch.equal(out["mr"][i], x[i].mT)
            swapped += not torch.equal(out["mr"][i], x[i])
    assert 0 < swapped < 16


@pytest.mark.parametrize("pair_type", ["PET-MRI", "CT-MRI"])
def test_jitter_changes_each_case_and_keeps_derived_views_exact(aanlib_dir: Path,
                                                                 pair_type: str) -> None:
    pairs = list(load_aanlib(aanlib_dir, "train", [pair_type])[0])[:3]
    batch = preload(pairs)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert jitter_intensity(batch, 0.0, generator) is batch
    assert torch.equal(generator.get_state(), state)  # off: no random number drawn
    out = jitter_intensity(batch, 0.3, generator)
    for i, pair in enumerate(pairs):
        func = out["func"][i].permute(1, 2, 0).numpy()
        grey = func[..., 0] if not pair.is_color else func
        assert not torch.allclose(out["mr"][i], batch["mr"][i])
        assert not torch.allclose(out["func"][i], batch["func"][i])
        assert out["mr"][i].max() <= 1 and out["func"][i].max() <= 1
        # the views a FusionPair derives, recomputed from the changed functional image
        assert np.array_equal(out["func_gray"][i, 0].numpy(), luminance(func))
        assert np.allclose(out["v_prime"][i, 0].numpy(), v_prime(grey), atol=1e-6)
    assert torch.equal(batch["mr"], preload(pairs)["mr"])  # the input is not changed


def _row(pair: str, fold: int, method: str, value: float, epoch: str = "last") -> dict:
    return {"pairs": pair, "fold": fold, "seed": 0 if method == "msgfusion" else "",
            "epoch": epoch if method == "msgfusion" else "", "method": method,
            **{m: value for m in CV_METRICS}, "score": 0.01 if method == "msgfusion" else ""}


def test_summary_ranks_the_fold_means(tmp_path: Path) -> None:
    rows = [_row("PET-MRI", 0, "msgfusion", 0.5), _row("PET-MRI", 1, "msgfusion", 0.7),
            _row("PET-MRI", 0, "msgfusion", 0.0, epoch="5"),  # not the last epoch: ignored
            _row("PET-MRI", 0, "max", 0.7), _row("PET-MRI", 1, "max", 0.7),  # 0.7 > 0.6
            _row("PET-MRI", 0, "average", 0.1), _row("PET-MRI", 1, "average", 0.1)]
    table = tmp_path / "cv.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    s = summarise(table)["PET-MRI"]
    assert s["VIFF"]["mean"] == pytest.approx(0.6) and s["VIFF"]["rank"] == 2
    assert s["VIFF"]["min"] == 0.5 and s["VIFF"]["max"] == 0.7
    assert s["VIFF"]["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert s["rSFe"]["rank"] == 2  # |rSFe|: lower is better, 0.1 beats 0.6
    assert s["score"]["mean"] == pytest.approx(0.01)


def _atlas_subset(aanlib_dir: Path, root: Path, names: list[str]) -> Path:
    """A copy of a few CT-MRI train pairs in the AANLIB layout."""
    for modality in ("MRI", "CT"):
        folder = root / "CT-MRI" / "train" / modality
        folder.mkdir(parents=True)
        for name in names:
            (folder / f"{name}.png").write_bytes(
                (aanlib_dir / "CT-MRI" / "train" / modality / f"{name}.png").read_bytes())
    return root


def test_cli_cross_validation_by_case_resumes(aanlib_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = _atlas_subset(aanlib_dir, tmp_path / "data",
                         ["16003", "16004", "20005", "20006", "2005", "2006"])
    config = tmp_path / "cv.json"
    config.write_text(json.dumps({"pairs": ["CT-MRI"], "loss": {"viff": 0.0}, "train": {
        "epochs": 2, "max_steps_per_epoch": 1, "batch_size": 2, "crop": 32, "num_threads": 1}}))
    args = ["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "cv"),
            "--cv", "3", "--cv-every", "1"]
    assert main(args) == 0
    assert "CT-MRI: EN" in capsys.readouterr().out
    folds = json.loads((tmp_path / "cv" / "folds.json").read_text())["CT-MRI"]
    assert sorted(map(sorted, folds)) == [["16003", "16004"], ["20005", "20006"],
                                          ["2005", "2006"]]
    with (tmp_path / "cv" / "cv.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ours = [r for r in rows if r["method"] == "msgfusion"]
    assert sorted((r["fold"], r["epoch"]) for r in ours) == [
        ("0", "1"), ("0", "last"), ("1", "1"), ("1", "last"), ("2", "1"), ("2", "last")]
    assert {r["method"] for r in rows} == {"msgfusion", "average", "max", "pca", "dwt", "lp",
                                           "gff"}
    assert main(args) == 0  # every run is in the table: nothing is trained again
    with (tmp_path / "cv" / "cv.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    assert main([*args[:-4], "--cv", "3", "--ship"]) == 2
