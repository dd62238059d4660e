"""Cohort runs on real Dask clusters: local, at a scheduler address, with a worker killed."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import assert_no_leftovers, results_table

from msgfusion.cli import main
from msgfusion.cohort import CohortConfig, run_cohort

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def local_cluster():
    """Two single-threaded worker processes on loopback, shared by this module's tests (the
    test that kills a worker runs last); closed afterwards."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def _volume_matches_api(row: dict[str, str], output: Path, metrics: dict[str, float]) -> None:
    """A fused volume is the API's picture on the MR's grid; its metrics are those of the
    central axial slice."""
    from msgfusion.api import fuse_volume, load_volume
    from msgfusion.metrics import evaluate_images
    from msgfusion.volume import Orientation, n_planes

    expected = fuse_volume(row["mr"], row["func"], row["modality"], "average")
    written = load_volume(output)
    np.testing.assert_array_equal(written.data, expected.picture.data)
    np.testing.assert_allclose(written.affine, expected.mr.affine, atol=1e-6)
    axial = n_planes(Orientation.of(expected.mr).view(expected.mr.data), "axial")
    want = evaluate_images(*expected.planes("axial", axial // 2), list(metrics))
    assert metrics == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("where", ["threads", pytest.param("processes", marks=pytest.mark.slow)])
def test_corrupt_subject_and_resume(where, cohort, manifest_writer, matches_api, tmp_path,
                                    request, capsys):
    """``cohort run``: a corrupt scan fails alone with its reason; a re-run recomputes what
    failed and then nothing. ``processes``: the command's own local cluster of 2 worker
    processes, then an existing one; ``threads``: a worker thread in this process (fast)."""
    if where == "processes":
        where_args, client = ["--workers", "2"], request.getfixturevalue("local_cluster")
    else:
        client = request.getfixturevalue("threads_cluster")
        where_args = ["--scheduler", client.scheduler.address]
    root, rows = cohort
    # join the six good slice subjects: a corrupt scan (truncated PNG), a colour image given as
    # CT, a volume pair (SPM T1 + PET) and a volume pair whose PET is truncated
    (root / "broken").mkdir()
    good = (root / rows[2]["func"]).read_bytes()
    (root / "broken" / "func.png").write_bytes(good[: len(good) // 3])
    shutil.copy(root / rows[2]["mr"], root / "broken" / "mr.png")
    spm = Path(__file__).resolve().parents[3] / "shared" / "data" / "volumes" / "spm_oldnorm"
    (root / "vol").mkdir()
    pet = (spm / "PET.nii.gz").read_bytes()
    (root / "vol" / "pet.nii.gz").write_bytes(pet[: len(pet) // 2])
    extra = [{"id": "broken", "mr": "broken/mr.png", "func": "broken/func.png", "modality": "PET"},
             {"id": "colour-ct", "mr": rows[2]["mr"], "func": rows[2]["func"], "modality": "CT"},
             {"id": "volume", "mr": str(spm / "T1.nii.gz"), "func": str(spm / "PET.nii.gz"),
              "modality": "PET"},
             {"id": "broken-volume", "mr": str(spm / "T1.nii.gz"), "func": "vol/pet.nii.gz",
              "modality": "PET"}]
    manifest_writer(root / "manifest.csv", rows + extra)
    out = tmp_path / "out"
    argv = ["cohort", "run", str(root / "manifest.csv"), "-o", str(out), *where_args,
            "--method", "average"]

    assert main(argv) == 1  # some subjects failed
    stdout = capsys.readouterr().out
    assert "10 subject(s): 8 done (10 computed, 0 up to date and skipped), 2 failed" in stdout
    table = results_table(out)
    assert list(table["id"]) == [r["id"] for r in rows + extra]
    by_id = table.set_index("id")
    assert list(by_id.loc[[r["id"] for r in rows], "status"]) == ["done"] * 6
    reason = by_id.loc["broken", "reason"]
    assert by_id.loc["broken", "status"] == "failed" and str(root / "broken" / "func.png") in reason
    assert "\n" not in reason and f"broken: {reason}" in stdout
    reason = by_id.loc["broken-volume", "reason"]
    assert by_id.loc["broken-volume", "status"] == "failed" and "vol/pet.nii.gz" in reason
    assert "\n" not in reason and f"broken-volume: {reason}" in stdout
    assert by_id.loc["colour-ct", "status"] == "done"  # a colour image given as CT: made grey
    assert "colour image given as CT" in by_id.loc["colour-ct", "warnings"]
    assert by_id.loc[rows[0]["id"], "warnings"] == ""
    assert len(set(table["worker"])) >= 1 and (table["total_s"] > 0).all()
    assert sorted(p.name for p in (out / "fused").iterdir()) == \
        sorted([f"{r['id']}.png" for r in rows + extra[1:2]] + ["volume.nii.gz"])
    assert_no_leftovers(out)
    labels = ["EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf"]  # --metrics paper (default)
    for row in rows:
        values = {m: by_id.loc[row["id"], m] for m in labels}
        matches_api(root, row, out / "fused" / f"{row['id']}.png", "average", tmp_path, values)
    _volume_matches_api(extra[2], out / "fused" / "volume.nii.gz",
                        {m: by_id.loc["volume", m] for m in labels})

    # the corrupt files are replaced: the re-run computes those two alone
    shutil.copy(root / rows[2]["func"], root / "broken" / "func.png")
    shutil.copy(spm / "PET.nii.gz", root / "vol" / "pet.nii.gz")
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()}
    config = CohortConfig(root / "manifest.csv", out, method="average", progress=False)
    result = run_cohort(config, client)
    assert "10 subject(s): 10 done (2 computed, 8 up to date and skipped), 0 failed" in \
        result.summary_lines()[0]
    table = results_table(out)
    assert list(table["computed"]) == [False] * 6 + [True, False, False, True]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir() if p.name in mtimes} \
        == mtimes
    matches_api(root, extra[0], out / "fused" / "broken.png", "average", tmp_path)

    # once complete, a re-run recomputes nothing and starts no cluster
    before = {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()}
    start = time.perf_counter()
    assert main(argv) == 0
    assert time.perf_counter() - start < 5
    assert "10 subject(s): 10 done (0 computed, 10 up to date and skipped), 0 failed" in \
        capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()} == before
    assert list(results_table(out)["computed"]) == [False] * 10


@pytest.mark.slow
def test_scheduler_address(cohort, matches_api, local_cluster, tmp_path, capsys):
    """The default method on a cluster reached by its scheduler's address; each worker loaded
    the weights once and runs torch on its share of the cores."""
    root, rows = cohort
    scheduler_address = local_cluster.scheduler.address
    out = tmp_path / "out"
    assert main(["cohort", "run", str(root / "manifest.csv"), "-o", str(out), "--scheduler",
                 scheduler_address, "--metrics", "none"]) == 0
    assert "6 subject(s): 6 done (6 computed" in capsys.readouterr().out
    table = results_table(out)
    assert list(table["status"]) == ["done"] * 6 and list(table["method"]) == ["msgfusion"] * 6
    for row in rows:
        matches_api(root, row, out / "fused" / f"{row['id']}.png", "msgfusion", tmp_path)

    def state() -> tuple[int, bool]:
        import torch

        from msgfusion.methods.registry import get_method

        return torch.get_num_threads(), "model" in vars(get_method("msgfusion"))

    states = local_cluster.run(state)
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert list(states.values()) == [(threads, True)] * 2


@pytest.mark.slow
def test_bench_on_the_cluster_matches_the_serial_bench(aanlib_dir, tmp_path, local_cluster,
                                                       capsys):
    """``msgfusion bench --scheduler``: method x pair work on the workers, same results."""
    from distributed import get_task_stream

    from msgfusion.bench.config import BenchConfig
    from msgfusion.bench.runner import run_bench

    tiny = tmp_path / "tiny" / "PET-MRI" / "test"
    for sub in ("MRI", "PET"):
        (tiny / sub).mkdir(parents=True)
        for f in sorted((aanlib_dir / "PET-MRI" / "test" / sub).iterdir())[:3]:
            shutil.copy(f, tiny / sub / f.name)
    config = BenchConfig(methods=["average", "max"], data=str(tiny.parents[1]),
                         metrics=["EN", "MI", "Qabf"], out=str(tmp_path / "serial"),
                         timing_repeats=1)
    serial = run_bench(config, progress=False)
    with get_task_stream(local_cluster) as stream:
        assert main(["bench", "--methods", "average", "max", "--data", str(tiny.parents[1]),
                     "--metrics", "EN", "MI", "Qabf", "-o", str(tmp_path / "dask"),
                     "--timing-repeats", "1", "--scheduler",
                     local_cluster.scheduler.address]) == 0
    assert "fused: 6 computed" in capsys.readouterr().out
    ran = Counter(t["key"].split("-")[0] for t in stream.data)
    assert ran["_fuse_batch"] == 2 and ran["_score"] == 6  # a batch per method, a score per pair
    cached = run_bench(BenchConfig(**{**config.__dict__, "out": str(tmp_path / "dask")}),
                       progress=False)
    assert cached.computed == {"fused": 0, "evaluated": 0, "timed": 0}
    assert cached.records == serial.records
    for path in (tmp_path / "serial" / "fused").rglob("*.png"):
        twin = tmp_path / "dask" / path.relative_to(tmp_path / "serial")
        assert twin.read_bytes() == path.read_bytes()


def test_register_moves_an_unaligned_subject_onto_its_mr(aanlib_dir, manifest_writer, tmp_path,
                                                        threads_cluster):
    """``register``: a PET slice moved by a known similarity transform (and on a larger grid
    than its MR) is registered in its own task before fusion; the fused picture is close to
    the fusion of the aligned pair, much closer than without registration."""
    import SimpleITK as sitk

    from msgfusion.api import fuse
    from msgfusion.io.images import read_image, write_image
    from msgfusion.register import read_transform, resample

    d = aanlib_dir / "PET-MRI" / "test"  # a pair the failure detector trusts, moved or not
    mr, pet = read_image(d / "MRI" / "41054.png"), read_image(d / "PET" / "41054.png")
    grid = np.zeros((288, 288), np.float32)  # a bigger canvas: sizes need not match
    moved = resample(pet, grid, sitk.Similarity2DTransform(1.05, np.radians(6.0), (-6.0, 8.0),
                                                             (143.5, 143.5)))
    root = tmp_path / "study"
    root.mkdir()
    write_image(root / "mr.png", mr)
    write_image(root / "moved.png", moved)
    write_image(root / "aligned.png", pet)
    manifest_writer(root / "manifest.csv", [
        {"id": "moved", "mr": "mr.png", "func": "moved.png", "modality": "PET"},
        {"id": "aligned", "mr": "mr.png", "func": "aligned.png", "modality": "PET"}])
    config = CohortConfig(root / "manifest.csv", tmp_path / "out", method="average",
                          register=True, metrics="none", progress=False)
    table = run_cohort(config, client=threads_cluster).table.set_index("id")
    assert list(table["status"]) == ["done", "done"], table["reason"].tolist()
    assert all(table["registration"].str.startswith("similarity"))
    assert (table["register_s"] > 0).all()
    for sid in table.index:  # the transform and the QA figure beside the fused picture
        transform = read_transform(tmp_path / "out" / "fused" / f"{sid}.tfm")
        assert table.loc[sid, "transform"] == str(tmp_path / "out" / "fused" / f"{sid}.tfm")
        assert transform.GetDimension() == 2
        qa = read_image(tmp_path / "out" / "fused" / f"{sid}_qa.png")
        assert table.loc[sid, "qa_figure"].endswith(f"{sid}_qa.png") and qa.shape[0] > 300
    fused = {i: read_image(tmp_path / "out" / "fused" / f"{i}.png") for i in table.index}
    # the reference is the registered unmoved pair (the atlas pairs are not aligned to the last
    # pixel in the mutual-information sense, see docs/registration.md)
    off = np.abs(fused["moved"] - fused["aligned"]).mean()
    unregistered = np.abs(fuse(mr, resample(moved, mr, sitk.Transform(2, sitk.sitkIdentity)),
                               method="average", modality="PET") - fused["aligned"]).mean()
    assert off < 0.25 * unregistered, (off, unregistered)


def test_doubtful_registration_is_a_status_with_qa_and_transform(aanlib_dir, manifest_writer,
                                                                 tmp_path, threads_cluster):
    """A functional image that shares nothing with its MR: the registration is doubted, the
    subject's status is ``doubtful`` (not done, not a plain failure), its QA figure and
    transform are written beside where the output would be, and there is no fused output."""
    from msgfusion.io.images import read_image, write_image

    root = tmp_path / "study"
    root.mkdir()
    write_image(root / "mr.png", read_image(aanlib_dir / "SPECT-MRI" / "test" / "MRI" / "11010.png"))
    write_image(root / "noise.png",
                np.random.default_rng(0).random((256, 256)).astype(np.float32))
    manifest_writer(root / "manifest.csv",
                    [{"id": "noise", "mr": "mr.png", "func": "noise.png", "modality": "CT"}])
    config = CohortConfig(root / "manifest.csv", tmp_path / "out", method="average",
                          register=True, metrics="none", progress=False)
    row = run_cohort(config, client=threads_cluster).table.set_index("id").loc["noise"]
    assert row["status"] == "doubtful" and row["reason"].startswith("register: doubtful: ")
    fused = tmp_path / "out" / "fused"
    assert not (fused / "noise.png").exists()
    assert (fused / "noise_qa.png").is_file() and (fused / "noise.tfm").is_file()
