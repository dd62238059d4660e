"""Volumes on the web page, over a real `msgfusion serve` (uvicorn) on loopback: the SPM T1 and
PET NIfTI files, the same as DICOM series (zip and loose files), the downloads read back with
nibabel, pydicom and SimpleITK, the errors; the job queue (busy, cancel, expiry) on real jobs."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import msgfusion
from msgfusion.web.volumes import ServerBusy, VolumeJob, VolumeJobs

SPM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "volumes" / "spm_oldnorm"


@pytest.fixture(scope="module")
def volume_server(tmp_path_factory, server_cls):
    server = server_cls(tmp_path_factory.mktemp("volumes"),
                        extra=("--max-volume-mb", "30")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def spm_series(tmp_path_factory) -> dict[str, Path]:
    """The SPM T1 and PET written as DICOM series (one frame of reference each) and zipped."""
    root = tmp_path_factory.mktemp("series")
    out = {}
    for name in ("T1", "PET"):
        series = msgfusion.write_volume(root / name, msgfusion.load_volume(SPM / f"{name}.nii.gz"),
                                        description=f"SPM {name}")
        archive = root / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for f in sorted(series.iterdir()):
                zf.write(f, f"{name}/{f.name}")
        out[name] = series
        out[f"{name}.zip"] = archive
    return out


def post(url: str, mr: list, func: list, methods=("max",), **form) -> httpx.Response:
    files = [("mr", m) for m in mr] + [("func", f) for f in func]
    return httpx.post(f"{url}/api/fuse", files=files,
                      data={"methods": list(methods), **form}, timeout=300)


def nifti_part(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "application/gzip")


def test_api_fuses_the_spm_nifti_pair_into_a_nifti_with_the_mrs_geometry(volume_server,
                                                                        tmp_path):
    answer = post(volume_server.url, [nifti_part(SPM / "T1.nii.gz")],
                  [nifti_part(SPM / "PET.nii.gz")], methods=("max", "average"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "done" and body["modality"] == "PET"
    assert [r["method"] for r in body["results"]] == ["max", "average"]
    assert set(body["results"][0]["metrics"]) == {"EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf"}
    assert body["scale"]["name"] == "atlas-pet" and len(body["scale"]["rgb"]) == 32
    download = httpx.get(volume_server.url + body["results"][0]["download"])
    assert "attachment" in download.headers["content-disposition"]
    (tmp_path / "fused.nii.gz").write_bytes(download.content)
    fused, t1 = nib.load(tmp_path / "fused.nii.gz"), nib.load(SPM / "T1.nii.gz")
    assert fused.shape == t1.shape and np.allclose(fused.affine, t1.affine)
    # the picture is what the public API makes of the same pair
    expected = msgfusion.fuse_volume(SPM / "T1.nii.gz", SPM / "PET.nii.gz", method="max").picture
    assert np.array_equal(msgfusion.load_volume(tmp_path / "fused.nii.gz").data, expected.data)
    dicom = httpx.get(volume_server.url + body["results"][0]["dicom"])
    with zipfile.ZipFile(io.BytesIO(dicom.content)) as zf:
        names = zf.namelist()
        assert len(names) == t1.shape[2]
        ds = pydicom.dcmread(io.BytesIO(zf.read(names[0])))
    assert ds.ImageType[0] == "DERIVED" and "max" in ds.SeriesDescription
    for source in ("mr", "func"):
        assert httpx.get(volume_server.url + body["sources"][source]).status_code == 200


@pytest.mark.parametrize("how", ["zip", "files"])
def test_a_dicom_series_is_fused_as_a_zip_or_as_its_files(volume_server, spm_series, how,
                                                          tmp_path):
    if how == "zip":
        mr = [nifti_part(spm_series["T1.zip"])]
        func = [nifti_part(spm_series["PET.zip"])]
    else:
        mr = [(f.name, f.read_bytes(), "application/dicom")
              for f in sorted(spm_series["T1"].iterdir())]
        func = [(f.name, f.read_bytes(), "application/dicom")
                for f in sorted(spm_series["PET"].iterdir())]
    answer = post(volume_server.url, mr, func, modality="PET")
    assert answer.status_code == 200, answer.text
    data = httpx.get(volume_server.url + answer.json()["results"][0]["url"]).content
    (tmp_path / "fused.nii.gz").write_bytes(data)
    fused = msgfusion.load_volume(tmp_path / "fused.nii.gz")
    mr_volume = msgfusion.load_volume(spm_series["T1"])
    assert fused.shape == mr_volume.shape and np.allclose(fused.affine, mr_volume.affine, atol=1e-4)
    image = sitk.ReadImage(str(tmp_path / "fused.nii.gz"))
    assert image.GetSize() == mr_volume.shape[::-1]


def test_errors_are_one_message_naming_the_upload(volume_server, tmp_path):
    pet = nib.load(SPM / "PET.nii.gz")
    four_d = nib.Nifti1Image(np.stack([pet.get_fdata()] * 2, axis=-1).astype(np.float32),
                             pet.affine)
    nib.save(four_d, tmp_path / "dynamic.nii.gz")
    answer = post(volume_server.url, [nifti_part(SPM / "T1.nii.gz")],
                  [nifti_part(tmp_path / "dynamic.nii.gz")])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "functional dynamic.nii.gz" in error and "4-D" in error
    assert "single 3-D frame" in error and "--frame" not in error and str(tmp_path) not in error
    # a volume with a 2-D image: the image is not a volume
    png = next((SPM.parents[1] / "aanlib" / "PET-MRI" / "test" / "PET").iterdir())
    answer = post(volume_server.url, [nifti_part(SPM / "T1.nii.gz")],
                  [(png.name, png.read_bytes(), "image/png")])
    assert answer.status_code == 400
    assert answer.json()["error"] == (f"functional {png.name}: a 2-D PNG image, not a volume; "
                                      "fuse two slices on the fusion page (/) or upload two volumes")
    # a broken zip
    answer = post(volume_server.url, [("mr.zip", b"PK\x03\x04broken", "application/zip")],
                  [nifti_part(SPM / "PET.nii.gz")])
    assert answer.status_code == 400 and "MR mr.zip: not a readable zip" in answer.json()["error"]
    # an unknown method is refused before anything is read
    answer = post(volume_server.url, [nifti_part(SPM / "T1.nii.gz")],
                  [nifti_part(SPM / "PET.nii.gz")], methods=("nosuch",))
    assert answer.status_code == 400 and "unknown method 'nosuch'" in answer.json()["error"]


def test_the_volume_page_offers_the_viewer(volume_server):
    page = httpx.get(volume_server.url + "/volumes").text
    assert 'id="nv-sources"' in page and 'id="colorbar"' in page
    assert 'src="/vendor/niivue.js"' in page, "NiiVue is not installed (npm ci)"
    script = httpx.get(volume_server.url + "/vendor/niivue.js")
    assert script.status_code == 200 and b"Niivue" in script.content[:2_000_000]


def _job(jobs: VolumeJobs, **kw) -> VolumeJob:
    job_id, folder = jobs.new_folder()
    return VolumeJob(job_id, folder, SPM / "T1.nii.gz", SPM / "PET.nii.gz", ("MR", "PET"),
                     kw.get("methods", ["msgfusion", "max"]), "ycbcr", None, False, False)


def test_the_queue_is_bounded_cancels_and_forgets(tmp_path):
    jobs = VolumeJobs(tmp_path / "jobs", running=1, waiting=0, keep_s=0.0)
    try:
        first = jobs.submit(_job(jobs))
        with pytest.raises(ServerBusy):
            jobs.submit(_job(jobs))
        assert len(list((tmp_path / "jobs").iterdir())) == 1  # the refused job left nothing
        while first.status in ("queued", "reading"):
            time.sleep(0.01)
        first.cancel.set()
        assert first.finished.wait(60)
        assert first.status == "cancelled" and first.results == []
        time.sleep(0.01)
        assert jobs.get(first.id) is None and not first.folder.exists()  # expired: deleted
        second = jobs.submit(_job(jobs, methods=["max"]))  # the slot is free again
        assert second.finished.wait(120) and second.status == "done"
        assert [r.method for r in second.results] == ["max"]
    finally:
        jobs.close()


def test_a_doubtful_registration_stores_no_fusion_unless_accepted(volume_server, tmp_path):
    """Registration on request; a functional volume that shares no anatomy with the MR (noise in
    the PET's space) is doubted: 409 with the reason and the QA figure, nothing fused; accepted,
    it is fused."""
    pet = nib.load(SPM / "PET.nii.gz")
    noise = np.random.default_rng(0).random(pet.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, pet.affine), tmp_path / "noise_pet.nii.gz")
    parts = ([nifti_part(SPM / "T1.nii.gz")], [nifti_part(tmp_path / "noise_pet.nii.gz")])
    answer = post(volume_server.url, *parts, modality="PET", register="true")
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["status"] == "doubtful" and "results" not in body
    assert "doubtful registration, nothing fused" in body["error"]
    assert "share little information" in body["error"]
    qa = httpx.get(volume_server.url + body["qa"])
    assert qa.status_code == 200 and qa.content.startswith(b"\x89PNG")
    assert not any(p.name.startswith("fused") for p in
                   (volume_server.data_dir / "volume-jobs" / body["job"]).iterdir())
    accepted = post(volume_server.url, *parts, modality="PET", register="true",
                    accept_doubtful="true")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["registration"].startswith("rigid:")
    assert len(accepted.json()["results"]) == 1
