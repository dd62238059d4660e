"""Cohorts at scale: batches of subjects per task, unreadable subjects kept in the manifest,
a real deployment (``dask scheduler`` and ``dask worker`` processes over TCP) losing a worker."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest
from cohort_helpers import assert_no_leftovers, results_table

from msgfusion.cli import main
from msgfusion.cohort import CohortConfig, read_manifest, run_cohort

pytestmark = pytest.mark.timeout(240)
PAPER = ["EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf"]


def test_a_batch_gives_what_one_by_one_gives(cohort, threads_cluster, matches_api, tmp_path):
    """Six pairs (CT, PET, SPECT) fused by the default network as one task (one ``fuse_many``
    call) and as six tasks of one: the same files byte for byte and the same metrics, which
    are the API's own results."""
    root, rows = cohort
    runs = {}
    for size in (1, 6):
        config = CohortConfig(root / "manifest.csv", tmp_path / f"out-{size}", batch_size=size,
                              progress=False)
        runs[size] = run_cohort(config, threads_cluster)
    assert (runs[1].tasks, runs[6].tasks) == (6, 1)
    one, batch = (results_table(tmp_path / f"out-{size}").set_index("id") for size in (1, 6))
    assert list(batch["status"]) == ["done"] * 6
    assert batch[PAPER].equals(one[PAPER])
    for row in rows:
        fused = tmp_path / "out-6" / "fused" / f"{row['id']}.png"
        assert fused.read_bytes() == (tmp_path / "out-1" / "fused" / fused.name).read_bytes()
    matches_api(root, rows[2], tmp_path / "out-6" / "fused" / f"{rows[2]['id']}.png",
                "msgfusion", tmp_path, {m: batch.loc[rows[2]["id"], m] for m in PAPER})


def test_a_pair_failing_in_a_batch_fails_alone(cohort, manifest_writer, tmp_path):
    """A batch whose ``fuse_many`` call refuses one pair (8 x 8, too small for NestFuse):
    that subject fails with the reason, the others of the batch are fused one by one, each
    as ``fuse`` gives it."""
    from msgfusion import fuse, make_pair, write_image
    from msgfusion.cohort.runner import plan_jobs
    from msgfusion.cohort.tasks import run_batch
    from msgfusion.io.images import read_image

    root, rows = cohort
    write_image(root / "tiny.png", read_image(root / rows[0]["mr"])[:8, :8])
    tiny = {"id": "tiny", "mr": "tiny.png", "func": "tiny.png", "modality": "CT"}
    manifest_writer(root / "manifest.csv", [rows[0], tiny, rows[3]])
    config = CohortConfig(root / "manifest.csv", tmp_path / "out", method="nestfuse",
                          metrics="none")
    result = run_batch(list(plan_jobs(read_manifest(root / "manifest.csv"), config)))
    assert [r["status"] for r in result] == ["done", "failed", "done"]
    assert result[1]["reason"] == f"fuse: {root / 'tiny.png'}: 8x8 is too small for nestfuse, " \
                                  "which needs at least 9x9 pixels"
    for row in (rows[0], rows[3]):
        want = fuse(make_pair(root / row["mr"], root / row["func"], row["modality"]),
                    method="nestfuse")
        write_image(tmp_path / "want.png", want, overwrite=True)
        assert (tmp_path / "out" / "fused" / f"{row['id']}.png").read_bytes() == \
            (tmp_path / "want.png").read_bytes()


def test_make_manifest_keeps_going_past_an_unreadable_subject(aanlib_dir, tmp_path, capsys,
                                                              threads_cluster):
    """A truncated scan: ``make-manifest`` writes every subject, that one as a failed row with
    the file and the problem (``--no-keep-going``: one clear error, no manifest); ``cohort
    run`` records it failed and fuses the rest."""
    folder = tmp_path / "pairs"
    source = aanlib_dir / "PET-MRI" / "test"
    names = sorted(p.name for p in (source / "MRI").iterdir())[:3]
    for sub in ("MRI", "PET"):
        (folder / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(source / sub / name, folder / sub / name)
    bad = folder / "PET" / names[1]
    bad.write_bytes(bad.read_bytes()[:2000])
    manifest = tmp_path / "manifest.csv"
    assert main(["cohort", "make-manifest", str(folder), "-o", str(manifest),
                 "--no-keep-going"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and not manifest.exists()

    assert main(["cohort", "make-manifest", str(folder), "-o", str(manifest)]) == 0
    assert "3 subjects, 1 marked failed" in capsys.readouterr().err
    subjects = read_manifest(manifest)
    assert [s.id for s in subjects] == [n.split(".")[0] for n in names]
    assert [bool(s.failed) for s in subjects] == [False, True, False]
    assert str(bad) in subjects[1].failed and "\n" not in subjects[1].failed

    out = tmp_path / "out"
    assert main(["cohort", "run", str(manifest), "-o", str(out), "--method", "average",
                 "--metrics", "none", "--scheduler", threads_cluster.scheduler.address]) == 1
    table = results_table(out)
    assert list(table["status"]) == ["done", "failed", "done"]
    assert table["reason"][1] == subjects[1].failed
    assert sorted(p.name for p in (out / "fused").iterdir()) == \
        sorted(f"{s.id}.png" for s in subjects if not s.failed)


def test_a_killed_worker_process_loses_no_subject(deployment, cohort, matches_api,
                                                  tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on loopback; one worker is killed
    (SIGKILL) mid-run: the run completes on the other, every subject done exactly once (one
    row, one output, one record each, each the API's result), nothing half-written."""
    root, rows = cohort
    out = tmp_path / "out"
    with deployment(2) as (address, workers):
        config = CohortConfig(root / "manifest.csv", out, method="average", metrics="all",
                              scheduler=address, batch_size=1, progress=False)
        result = {}
        runner = threading.Thread(target=lambda: result.update(run=run_cohort(config)))
        runner.start()
        deadline = time.monotonic() + 120
        while len(list((out / "records").glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        done_before_kill = len(list((out / "records").glob("*.json")))
        os.kill(workers[0].pid, signal.SIGKILL)
        runner.join(timeout=200)
        assert not runner.is_alive()
        assert workers[0].wait(timeout=10) == -signal.SIGKILL and workers[1].poll() is None
    assert 2 <= done_before_kill < len(rows)
    ids = [r["id"] for r in rows]
    table = results_table(out)
    assert list(table["id"]) == ids and list(table["status"]) == ["done"] * len(ids)
    assert result["run"].computed == len(ids) and result["run"].tasks == len(ids)
    assert sorted(p.name for p in (out / "fused").iterdir()) == sorted(f"{i}.png" for i in ids)
    assert sorted(p.name for p in (out / "records").iterdir()) == sorted(f"{i}.json" for i in ids)
    assert table["worker"].str.startswith("tcp://127.0.0.1:").all()
    assert_no_leftovers(out)
    by_id = table.set_index("id")
    for row in rows:
        values = {m: by_id.loc[row["id"], m] for m in ("EN", "MI", "SSIM", "Qabf", "PSNR")}
        matches_api(root, row, out / "fused" / f"{row['id']}.png", "average", tmp_path, values)
