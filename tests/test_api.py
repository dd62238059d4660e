"""The README's Python API: ``msgfusion.fuse`` and what it calls, on real atlas pairs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

import msgfusion
from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.io.images import read_image
from msgfusion.methods.registry import get_method
from msgfusion.pair import load_pair


@pytest.fixture(scope="module")
def pet_files(aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "test"
    return d / "MRI" / "25015.png", d / "PET" / "25015.png"


def test_fuse_defaults_to_msgfusion_with_the_default_colour(pet_files):
    """``msgfusion.fuse(mr, func)`` is the MsgFusion network of the PET modality, restored with
    the one default colour mode of every entry point (ycbcr, docs/colour.md)."""
    assert DEFAULT_COLOR_MODE == "ycbcr"
    fused = msgfusion.fuse(*pet_files)
    pair = load_pair(*pet_files)
    network = get_method("msgfusion").fuse([pair])[0]
    np.testing.assert_array_equal(fused, restore_color(network, pair.func, "ycbcr"))
    average = restore_color(get_method("average").fuse([pair])[0], pair.func, "ycbcr")
    assert np.abs(fused - average).mean() > 0.01


def test_fuse_from_arrays_equals_fuse_from_files(pet_files):
    mr, func = (read_image(p) for p in pet_files)
    np.testing.assert_array_equal(msgfusion.fuse(mr, func, method="max"),
                                  msgfusion.fuse(*pet_files, method="max"))
    with pytest.raises(TypeError, match="as arrays or both as file paths"):
        msgfusion.fuse(mr, pet_files[1])


def test_fuse_modality_and_colour_arguments(pet_files):
    """``modality="SPECT"`` sends the pair to the SPECT network; ``color`` picks the restore."""
    pair = load_pair(*pet_files)
    as_spect = msgfusion.fuse(*pet_files, color="gray", modality="SPECT")
    as_pet = msgfusion.fuse(*pet_files, color="gray")
    assert as_spect.ndim == 2 and np.abs(as_spect - as_pet).mean() > 0.005
    spect_pair = load_pair(*pet_files, modality="SPECT")
    np.testing.assert_array_equal(as_spect, get_method("msgfusion").fuse([spect_pair])[0])
    (intensity,) = msgfusion.fuse_intensity([pair], "max")
    np.testing.assert_array_equal(msgfusion.fuse(pair, method="max", color="ycbcr"),
                                  restore_color(intensity, pair.func, "ycbcr"))


@pytest.mark.parametrize("method", ["msgfusion", "max"])
def test_fuse_folder_in_parallel_equals_one_pair_at_a_time(aanlib_dir, tmp_path, method):
    """Several workers (and several pairs per call) write the same files as one worker fusing
    one pair at a time: the pairs are independent, whichever thread fuses them."""
    folder = aanlib_dir / "SPECT-MRI" / "test"
    serial = msgfusion.fuse_folder(folder, tmp_path / "serial", method, workers=1,
                                   progress=False)
    for workers, batch in ((2, 1), (3, 4)):
        out = tmp_path / f"w{workers}b{batch}"
        result = msgfusion.fuse_folder(folder, out, method, workers=workers, batch_size=batch,
                                       progress=False)
        assert [p.name for p in result.written] == [p.name for p in serial.written]
        assert len(result.written) == 24 and not result.failed
        for path in serial.written:
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name


def test_fuse_folder_keeps_going_past_a_pair_that_fails_in_a_worker(aanlib_dir, tmp_path):
    """A pair that passes the header checks but fails to decode is reported and the others are
    written, whichever worker meets it; without keep_going it raises and says how many were
    written."""
    src = aanlib_dir / "PET-MRI" / "test"
    folder = tmp_path / "pairs"
    for sub in ("MRI", "PET"):
        (folder / sub).mkdir(parents=True)
        for name in ("25015", "25022", "25027", "25038"):
            (folder / sub / f"{name}.png").write_bytes((src / sub / f"{name}.png").read_bytes())
    img = Image.open(src / "PET" / "25022.png").convert("RGB")
    img.save(folder / "PET" / "25022.jpg")  # a JPEG (no checksum) cut short
    (folder / "PET" / "25022.png").unlink()
    data = (folder / "PET" / "25022.jpg").read_bytes()
    (folder / "PET" / "25022.jpg").write_bytes(data[: len(data) // 3])
    failed = []
    result = msgfusion.fuse_folder(folder, tmp_path / "out", "max", keep_going=True, workers=2,
                                   on_failure=lambda name, reason: failed.append(name),
                                   progress=False)
    assert failed == ["25022"] and list(result.failed) == ["25022"]
    assert sorted(p.name for p in result.written) == ["25015.png", "25027.png", "25038.png"]
    with pytest.raises(msgfusion.MsgFusionError, match="25022"):
        msgfusion.fuse_folder(folder, tmp_path / "out2", "max", workers=2, progress=False)
    assert not any(p.name.endswith(".part") for p in (tmp_path / "out2").glob(".*"))


def test_two_runs_into_one_folder_write_each_image_once(aanlib_dir, tmp_path):
    """Two fuse_folder runs into one folder at once (keep_going): images are committed by the
    writer threads, and each output is linked into place by exactly one run; the other reports
    it as existing, before its work or when its write comes. No temporary file is left."""
    src, out = aanlib_dir / "CT-MRI" / "test", tmp_path / "out"
    results: list = []
    runs = [threading.Thread(target=lambda: results.append(msgfusion.fuse_folder(
        src, out, "max", keep_going=True, progress=False))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    first, second = results
    assert not set(first.written) & set(second.written)
    assert sorted(first.written + second.written) == sorted(out.iterdir())
    assert len(list(out.iterdir())) == 24
    for result in results:
        assert len(result.written) + len(result.failed) == 24
        assert all(reason.endswith("already exists") for reason in result.failed.values())
