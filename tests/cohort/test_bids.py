"""BIDS in and out: a small BIDS dataset made from the SPM templates, read with pybids, fused
into a BIDS derivatives dataset that pybids reads back."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import assert_no_leftovers, results_table

import msgfusion
from msgfusion.cli import main
from msgfusion.cohort import read_manifest

SPM = Path(__file__).resolve().parents[3] / "shared" / "data" / "volumes" / "spm_oldnorm"
#: file in the dataset -> SPM template (None: a damaged file)
DATASET = {
    "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz": "T1",
    "sub-01/ses-01/pet/sub-01_ses-01_trc-FDG_pet.nii.gz": "PET",
    "sub-01/ses-02/anat/sub-01_ses-02_T2w.nii.gz": "T2",
    "sub-01/ses-02/spect/sub-01_ses-02_spect.nii.gz": "SPECT",
    "sub-02/anat/sub-02_T1w.nii.gz": "T1",
    "sub-02/pet/sub-02_pet.nii.gz": "PET",
    "sub-03/anat/sub-03_T1w.nii.gz": "T1",
    "sub-03/pet/sub-03_pet.nii.gz": None,
    "sub-04/anat/sub-04_T1w.nii.gz": "T1",
}


@pytest.fixture
def bids_dataset(tmp_path) -> Path:
    """T1w + PET and T2w + SPECT in two sessions of sub-01; T1w + PET without sessions
    (sub-02); an unreadable PET (sub-03); an MR alone (sub-04)."""
    root = tmp_path / "rawdata"
    for name, template in DATASET.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if template is None:
            (root / name).write_bytes(gzip.compress(b"not a NIfTI image" * 40))
        else:
            shutil.copy(SPM / f"{template}.nii.gz", root / name)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "msgfusion test", "BIDSVersion": "1.10.0"}))
    return root


def test_bids_dataset_in_derivatives_out(bids_dataset, tmp_path, capsys, threads_cluster):
    from bids import BIDSLayout

    manifest = tmp_path / "manifest.csv"
    assert main(["cohort", "make-manifest", str(bids_dataset), "-o", str(manifest)]) == 0
    err = capsys.readouterr().err
    assert "sub-04: skipped" in err and "4 subjects, 1 marked failed" in err
    subjects = {s.id: s for s in read_manifest(manifest)}
    assert list(subjects) == ["sub-01_ses-01_trc-FDG_pet", "sub-01_ses-02_spect", "sub-02_pet",
                              "sub-03_pet"]
    assert [(s.mr.name, s.modality) for s in list(subjects.values())[:3]] == [
        ("sub-01_ses-01_T1w.nii.gz", "PET"), ("sub-01_ses-02_T2w.nii.gz", "SPECT"),
        ("sub-02_T1w.nii.gz", "PET")]
    assert "sub-03_pet.nii.gz: cannot read the NIfTI header" in subjects["sub-03_pet"].failed

    out = tmp_path / "derivatives" / "msgfusion"
    assert main(["cohort", "run", str(manifest), "-o", str(out), "--method", "average",
                 "--metrics", "none", "--scheduler", threads_cluster.scheduler.address]) == 1
    table = results_table(out).set_index("id")
    assert list(table["status"]) == ["done", "done", "done", "failed"]

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "msgfusion"
    assert description["GeneratedBy"][0]["Version"] == msgfusion.__version__
    layout = BIDSLayout(bids_dataset, derivatives=out, validate=False)
    fused = layout.derivatives.get_pipeline("msgfusion").get(desc="fused",
                                                             extension=".nii.gz")
    assert sorted(f.relpath for f in fused) == [
        "sub-01/ses-01/pet/sub-01_ses-01_trc-FDG_desc-fused_pet.nii.gz",
        "sub-01/ses-02/spect/sub-01_ses-02_desc-fused_spect.nii.gz",
        "sub-02/pet/sub-02_desc-fused_pet.nii.gz"]
    by_output = {path: sid for sid, path in table["output"].items()}
    for f in fused:
        sid = by_output[f.path]
        sidecar = f.get_metadata()
        assert sidecar["FusionMethod"] == "average" and sidecar["ColorMode"] == "ycbcr"
        assert sidecar["MethodFingerprint"] == msgfusion.method_fingerprint("average")
        assert sidecar["Registration"] == "none"
        expected = msgfusion.fuse_volume(subjects[sid].mr, subjects[sid].func,
                                         subjects[sid].modality, "average")
        np.testing.assert_array_equal(msgfusion.load_volume(f.path).data,
                                      expected.picture.data)
    assert_no_leftovers(out)
    # the BIDS validator: the derivatives are BIDS but for SPECT, which BIDS does not define
    validator = Path(sys.executable).with_name("bids-validator-deno")  # pip's bids-validator-deno
    report = subprocess.run([str(validator), "--format", "json", str(out)], capture_output=True,
                            text=True, timeout=120)
    errors = [(i["code"], i.get("location", "")) for i in json.loads(report.stdout)["issues"][
        "issues"] if i["severity"] == "error"]
    assert errors and all(code == "NOT_INCLUDED" and "spect" in where
                          for code, where in errors), errors
