"""The command line on the findings of issue 14: argument checks, evaluate on bad fused images,
fuse-dir checking every pair before writing, --keep-going, --skip-existing, one partner rule,
bench isolating an unreadable pair, the folder-above-a-split hint, --version, -q, comma lists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import msgfusion

from msgfusion.cli import build_parser, main
from msgfusion.io.images import read_image

from cli_helpers import assert_one_line_error, run

#: the source tree of the msgfusion under test (subprocesses run the same code)
SRC = Path(msgfusion.__file__).resolve().parents[1]


@pytest.fixture
def pairs(aanlib_dir, tmp_path):
    """A copy of six PET-MRI test pairs."""
    src = aanlib_dir / "PET-MRI" / "test"
    root = tmp_path / "pairs"
    names = sorted(p.name for p in (src / "MRI").iterdir())[:6]
    for sub in ("MRI", "PET"):
        (root / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(src / sub / n, root / sub / n)
    return root


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 300] ^= 4
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", ["0", "-1"])
def test_batch_size_must_be_positive(capsys, pairs, tmp_path, size):
    code, _, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "out", "--batch-size", size)
    assert_one_line_error(code, err, "--batch-size", "must be at least 1")
    assert not (tmp_path / "out").exists()  # -1 used to exit 0 and write nothing


def test_fuse_dir_checks_every_pair_before_writing_anything(capsys, pairs, tmp_path):
    bad = sorted((pairs / "PET").iterdir())[4]
    corrupt(bad)
    code, _, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "out", "--method", "average")
    assert_one_line_error(code, err, bad, "CRC")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_keep_going_then_skip_existing_resumes(capsys, pairs, tmp_path, aanlib_dir):
    bad = sorted((pairs / "PET").iterdir())[4]
    corrupt(bad)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", out, "--method", "average",
                            "--keep-going")
    assert_one_line_error(code, err, bad)
    assert "wrote 5 fused PET-MRI images" in stdout and "1 pair(s) failed" in stdout
    assert len(list(out.iterdir())) == 5 and not (out / bad.name).exists()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    shutil.copy(aanlib_dir / "PET-MRI" / "test" / "PET" / bad.name, bad)  # repaired
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", out, "--method", "average")
    assert_one_line_error(code, err, "5 output(s) already exist", "--skip-existing")
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", out, "--method", "average",
                            "--skip-existing")
    assert code == 0 and "wrote 1 fused" in stdout and "kept 5 that existed" in stdout, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before
    assert len(list(out.iterdir())) == 6


def test_fuse_dir_and_evaluate_match_partners_by_one_rule(capsys, pairs, tmp_path):
    first = sorted((pairs / "PET").iterdir())[0]
    Image.open(first).save(first.with_suffix(".tif"))  # the partner in another format
    first.unlink()
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", out, "--method", "average")
    assert code == 0 and "wrote 6" in stdout, err  # used to be "no partner"
    for p in list(out.iterdir())[:2]:  # evaluate matches fused files by stem as well
        Image.open(p).save(p.with_suffix(".bmp"))
        p.unlink()
    code, stdout, err = run(capsys, "evaluate", "--pairs", pairs, "--fused", out, "--metrics",
                            "EN,SD")
    assert code == 0 and stdout.count("\n") == 6 + 6, err
    Image.open(first.with_suffix(".tif")).save(first.with_suffix(".jpg"))
    code, _, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "o2")
    assert_one_line_error(code, err, "several images share a name", ".jpg / ", ".tif")


def test_evaluate_on_too_small_nan_and_unwritable_output(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for size in (8, 64):
        root = tmp_path / f"p{size}"
        (root / "MRI").mkdir(parents=True)
        (root / "CT").mkdir()
        (root / "fused").mkdir()
        for sub in ("MRI", "CT", "fused"):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
                root / sub / "a.png")
    code, _, err = run(capsys, "evaluate", "--pairs", tmp_path / "p8", "--fused",
                       tmp_path / "p8" / "fused", "--metrics", "Q_S")
    assert_one_line_error(code, err, tmp_path / "p8" / "fused" / "a.png", "needs at least 11 x 11")
    nan = np.full((64, 64), 0.5, dtype=np.float32)
    nan[1, 1] = np.nan
    (tmp_path / "p64" / "fused" / "a.png").unlink()
    Image.fromarray(nan, "F").save(tmp_path / "p64" / "fused" / "a.tif")
    code, _, err = run(capsys, "evaluate", "--pairs", tmp_path / "p64", "--fused",
                       tmp_path / "p64" / "fused")
    assert_one_line_error(code, err, "a.tif", "NaN")
    (tmp_path / "blocker").write_text("x")
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(tmp_path / "p64" / "fused" / "a.png")
    (tmp_path / "p64" / "fused" / "a.tif").unlink()
    code, _, err = run(capsys, "evaluate", "--pairs", tmp_path / "p64", "--fused",
                       tmp_path / "p64" / "fused", "--metrics", "EN", "-o",
                       tmp_path / "blocker" / "t.csv")
    assert_one_line_error(code, err, "t.csv", "blocker is a file")


def test_bench_isolates_an_unreadable_pair(capsys, pairs, tmp_path):
    bad = sorted((pairs / "MRI").iterdir())[2]
    corrupt(bad)
    code, out, err = run(capsys, "bench", "--data", pairs, "--methods", "average,max",
                         "--metrics", "EN", "--timing-repeats", "1", "-o", tmp_path / "res",
                         "--peers", tmp_path / "none.md")
    assert code == 0, err
    assert f"input on PET-MRI/{bad.stem}" in out and "CRC" in out  # used to abort the run
    fused = sorted(p.name for p in (tmp_path / "res" / "fused" / "average" / "PET-MRI").iterdir())
    assert len(fused) == 5 and f"{bad.stem}.png" not in fused


def test_folder_above_a_split_hints_at_the_splits(capsys, aanlib_dir, tmp_path):
    code, _, err = run(capsys, "fuse-dir", aanlib_dir / "PET-MRI", "-o", tmp_path / "o")
    assert_one_line_error(code, err, "folders of pairs inside it: test, train", "PET-MRI/test")


def test_comma_lists_version_and_quiet():
    parser = build_parser()
    args = parser.parse_args(["bench", "--methods", "average,max", "lp", "--metrics", "EN,SD"])
    assert args.methods == ["average", "max", "lp"] and args.metrics == ["EN", "SD"]
    assert parser.parse_args(["-q", "methods"]).quiet
    assert parser.parse_args(["methods", "-q"]).quiet
    assert not parser.parse_args(["methods"]).quiet
    assert parser.parse_args(["--max-pixels", "99", "methods"]).max_pixels == 99
    proc = subprocess.run([sys.executable, "-m", "msgfusion", "--version"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.returncode == 0 and proc.stdout.strip() == "msgfusion 0.1.0"


def test_max_pixels_option_and_quiet_fuse(capsys, tmp_path, aanlib_dir):
    d = aanlib_dir / "CT-MRI" / "test"
    argv = ["fuse", "--mr", d / "MRI/16009.png", "--func", d / "CT/16009.png", "--method", "max"]
    code, _, err = run(capsys, "--max-pixels", "1000", *argv, "-o", tmp_path / "a.png")
    assert_one_line_error(code, err, "16009.png", "above the limit of 1,000", "--max-pixels")
    code, _, err = run(capsys, "-q", *argv, "-o", tmp_path / "a.png")
    assert code == 0 and err == "" and read_image(tmp_path / "a.png").shape == (256, 256)


def test_evaluate_table_on_a_full_file_system_leaves_nothing(pairs, tmp_path):
    """A real write failure: the file-size limit makes the table write fail (EFBIG), as a full
    disk would (ENOSPC); it used to leave a 0-byte table."""
    import resource
    import signal

    fused = tmp_path / "fused"
    assert main(["-q", "fuse-dir", str(pairs), "-o", str(fused), "--method", "average"]) == 0

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    table = tmp_path / "tables" / "t.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "msgfusion", "evaluate", "--pairs", str(pairs), "--fused",
         str(fused), "--metrics", "EN", "-o", str(table)], preexec_fn=limit, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert_one_line_error(proc.returncode, proc.stderr, "t.csv", "cannot write")
    assert list(table.parent.iterdir()) == []
