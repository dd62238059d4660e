"""Manifests (reading, checking, building from folders), fingerprints, errors: no cluster."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from msgfusion.cli import main
from msgfusion.cohort import CohortConfig, make_manifest, read_manifest
from msgfusion.cohort.runner import plan_jobs
from msgfusion.errors import DatasetError

SPM = Path(__file__).resolve().parents[3] / "shared" / "data" / "volumes" / "spm_oldnorm"


def test_read_manifest_resolves_paths_against_its_folder(cohort, manifest_writer, monkeypatch,
                                                         tmp_path):
    root, rows = cohort
    rows[1]["method"], rows[2]["color"] = "max", "ycbcr"
    manifest_writer(root / "manifest.csv", rows)
    monkeypatch.chdir(tmp_path)  # not the manifest's folder
    subjects = read_manifest(Path("study") / "manifest.csv")
    assert [s.id for s in subjects] == [r["id"] for r in rows]
    assert subjects[0].mr == root / rows[0]["id"] / "mr.png" and subjects[0].mr.is_file()
    assert subjects[0].func.is_file() and subjects[0].kind == "slice"
    assert [s.modality for s in subjects] == ["CT", "CT", "PET", "PET", "SPECT", "SPECT"]
    assert subjects[0].options == {} and subjects[1].options == {"method": "max"}
    assert subjects[2].options == {"color": "ycbcr"}


@pytest.mark.parametrize("text, fragments", [
    ("id,mr,func\na,m.png,f.png\n", ["lacks the column(s) modality"]),
    ("id,mr,func,modality,age\na,m.png,f.png,CT,3\n", ["unknown manifest column(s) age"]),
    ("id,mr,func,modality\na,m.png,f.png,CT\na,n.png,g.png,CT\n",
     ["line 3", "'a' already used on line 2"]),
    ("id,mr,func,modality\n../x,m.png,f.png,CT\n", ["line 2", "'../x'", "output files"]),
    ("id,mr,func,modality\na,m.png,f.png,MRI\n", ["line 2", "unknown modality 'MRI'"]),
    ("id,mr,func,modality,method\na,m.png,f.png,CT,nope\n", ["line 2", "unknown method 'nope'"]),
    ("id,mr,func,modality,color\na,m.png,f.png,CT,pink\n", ["line 2", "unknown color 'pink'"]),
    ("id,mr,func,modality\na,,f.png,CT\n", ["line 2", "empty mr path"]),
    ("id,mr,func,modality\n", ["no subjects"]),
])
def test_bad_manifest_is_one_clear_error(tmp_path, text, fragments):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(DatasetError) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_make_manifest_of_a_folder_of_pairs(aanlib_dir, tmp_path):
    folder = aanlib_dir / "PET-MRI" / "test"
    text, warnings = make_manifest(folder)
    rows = _rows(text)
    names = sorted(p.stem for p in (folder / "MRI").iterdir())
    assert [r["id"] for r in rows] == names and warnings == []
    assert {r["modality"] for r in rows} == {"PET"}
    assert Path(rows[0]["mr"]).is_absolute()
    assert Path(rows[0]["func"]).resolve() == (folder / "PET" / f"{names[0]}.png").resolve()
    # written next to a manifest file: relative to it, and read back to the same files
    out = tmp_path / "manifests" / "pet.csv"
    assert main(["cohort", "make-manifest", str(folder), "-o", str(out)]) == 0
    subjects = read_manifest(out)
    assert not Path(_rows(out.read_text())[0]["mr"]).is_absolute()
    assert [s.id for s in subjects] == names
    assert all(s.mr.resolve() == (folder / "MRI" / f"{s.id}.png").resolve() for s in subjects)
    assert main(["cohort", "make-manifest", str(folder), "-o", str(out)]) == 2  # exists


def test_make_manifest_of_the_atlas_tree(aanlib_dir, capsys):
    assert main(["cohort", "make-manifest", str(aanlib_dir)]) == 0
    rows = _rows(capsys.readouterr().out)
    expected = sum(len(list((d / "MRI").iterdir())) for d in aanlib_dir.glob("*-MRI/*"))
    assert len(rows) == expected == len({r["id"] for r in rows})
    assert "PET-MRI_test_25015" in {r["id"] for r in rows}
    assert {r["modality"] for r in rows} == {"CT", "PET", "SPECT"}


def test_make_manifest_of_a_folder_of_volume_pairs(tmp_path):
    for sub, source in (("MRI", "T1"), ("SPECT", "SPECT")):
        (tmp_path / sub).mkdir()
        for name in ("s01", "s02"):
            os.symlink(SPM / f"{source}.nii.gz", tmp_path / sub / f"{name}.nii.gz")
    rows = _rows(make_manifest(tmp_path)[0])
    assert [(r["id"], r["modality"]) for r in rows] == [("s01", "SPECT"), ("s02", "SPECT")]
    assert rows[1]["func"] == str(tmp_path / "SPECT" / "s02.nii.gz")


def test_make_manifest_of_an_unknown_layout(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["cohort", "make-manifest", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("msgfusion: error:") and "no folder of pairs" in err
    assert len(err.splitlines()) == 1


def test_fingerprint_follows_method_options_and_inputs(cohort):
    root, _ = cohort
    subjects = read_manifest(root / "manifest.csv")
    base = CohortConfig(root / "manifest.csv", root / "out", method="average")

    def prints(**changes):
        config = CohortConfig(**{**base.__dict__, **changes})
        return [j.fingerprint for j in plan_jobs(subjects, config)]

    first = prints()
    assert prints() == first and len(set(first)) == len(first)
    for change in ({"method": "max"}, {"color": "hsv"}, {"metrics": "all"}, {"register": True}):
        assert all(a != b for a, b in zip(prints(**change), first)), change
    os.utime(subjects[2].func, ns=(0, 0))  # an input changed: that subject alone
    assert [a != b for a, b in zip(prints(), first)] == [False, False, True, False, False, False]


def test_cli_errors_are_one_line(cohort, capsys):
    root, _ = cohort
    manifest, out = str(root / "manifest.csv"), str(root / "out")
    for argv, fragment in [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--workers", "0"], "--workers must be at least 1"),
    ]:
        assert main(["cohort", "run", manifest, "-o", out, *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("msgfusion: error:") and fragment in err, err
        assert len(err.splitlines()) == 1
    assert not (root / "out" / "fused").exists()


def test_unreachable_scheduler_is_one_clear_error(cohort, capsys):
    import dask

    root, _ = cohort
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["cohort", "run", str(root / "manifest.csv"), "-o", str(root / "out"),
                     "--scheduler", "tcp://127.0.0.1:9", "--method", "average"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("msgfusion: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
