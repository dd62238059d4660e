"""The registry, the shared input validation, and evaluation of images as read."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from msgfusion.errors import MsgFusionError
from msgfusion.io.images import read_image
from msgfusion.metrics import (
    METRICS,
    PAPER_METRICS,
    UnknownMetricError,
    as_gray255,
    compute_metrics,
    compute_metrics_many,
    evaluate_images,
    resolve_names,
    vif,
)

TABLE_ORDER = ["EN", "SD", "SF", "AG", "MI", "SCD", "CC", "VIF", "VIFF", "Qabf", "Nabf", "SSIM",
               "rSFe", "Q_S", "Q_W", "Qcb", "Qcv", "PSNR"]
SINGLE_IMAGE = {"EN", "SD", "SF", "AG"}


def test_registry_lists_the_metrics_table_in_order() -> None:
    assert list(METRICS) == TABLE_ORDER
    assert PAPER_METRICS == ("EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf")
    assert {k for k, m in METRICS.items() if not m.needs_sources} == SINGLE_IMAGE
    directions = {k: m.direction for k, m in METRICS.items()}
    assert {k for k, d in directions.items() if d == "lower"} == {"Nabf", "Qcv"}
    assert {k for k, d in directions.items() if d == "zero"} == {"rSFe"}
    assert set(directions.values()) == {"higher", "lower", "zero"}


@pytest.mark.parametrize("label", TABLE_ORDER)
def test_every_metric_is_documented(label) -> None:
    m = METRICS[label]
    assert m.label == label and m.description and m.reference
    doc = inspect.getdoc(m.func)
    for part in ("Reference", "Direction", "Range", "="):
        assert part in doc, (label, part)
    params = list(inspect.signature(m.func).parameters)
    assert params[:3] == (["f"] if label in SINGLE_IMAGE else ["a", "b", "f"])


def test_resolve_names() -> None:
    assert resolve_names(None) == TABLE_ORDER
    assert resolve_names("all") == TABLE_ORDER
    assert resolve_names(["paper"]) == list(PAPER_METRICS)
    assert resolve_names(["en", "SM,qabf", "EN", "Q_S"]) == ["EN", "Q_S", "Qabf"]
    assert resolve_names("rsfe psnr") == ["rSFe", "PSNR"]


@pytest.mark.parametrize(("names", "fragment"), [
    (["EN", "Foo"], "unknown metric 'Foo'"),
    (["RQ"], "could not be identified"),
    ([" , "], "no metric selected"),
])
def test_unknown_metric_names(names, fragment) -> None:
    with pytest.raises(UnknownMetricError, match=fragment) as info:
        resolve_names(names)
    assert isinstance(info.value, MsgFusionError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownMetricError):
        compute_metrics(np.zeros((64, 64)), np.zeros((64, 64)), np.zeros((64, 64)), names)


def test_compute_metrics_equals_the_functions(ct_triple) -> None:
    t = ct_triple
    values = compute_metrics(t.a, t.b, t.f)
    assert list(values) == TABLE_ORDER
    for label, m in METRICS.items():
        expected = m.func(t.a, t.b, t.f) if m.needs_sources else m.func(t.f)
        assert type(expected) is float and values[label] == expected
    assert list(compute_metrics(t.a, t.b, t.f, ["Qcv", "EN"])) == ["Qcv", "EN"]
    many = compute_metrics_many([(t.a, t.b, t.f), (t.b, t.a, t.a)], "paper")
    assert many[0] == compute_metrics(t.a, t.b, t.f, PAPER_METRICS)
    assert many[1] == compute_metrics(t.b, t.a, t.a, PAPER_METRICS)


# ---- validation: one shared helper, clear ValueErrors for every metric ---------------------------

def _call(label: str, a, b, f) -> float:
    return METRICS[label](np.asarray(a), np.asarray(b), np.asarray(f))


GOOD = np.random.default_rng(3).integers(0, 256, (48, 48)).astype(np.float64)


def _with_nan() -> np.ndarray:
    x = GOOD.copy()
    x[5, 7] = np.nan
    return x


@pytest.mark.parametrize("label", TABLE_ORDER)
@pytest.mark.parametrize(("f", "fragment"), [
    (_with_nan(), "NaN"),
    (np.where(GOOD > 100, np.inf, GOOD), "NaN or infinite"),
    (np.zeros((0, 48)), "empty"),
    (np.stack([GOOD] * 3, axis=-1), "2-D grey image"),
    (GOOD[0], "2-D grey image"),
    (GOOD.astype(complex), "real numeric"),
])
def test_bad_fused_image_is_rejected(label, f, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        _call(label, GOOD, GOOD, f)


@pytest.mark.parametrize("label", sorted(set(TABLE_ORDER) - SINGLE_IMAGE))
def test_bad_sources_are_rejected(label) -> None:
    with pytest.raises(ValueError, match=r"same shape.*A is 48 x 48.*F is 48 x 47"):
        _call(label, GOOD, GOOD, GOOD[:, :47])
    with pytest.raises(ValueError, match="image B: contains NaN"):
        _call(label, GOOD, _with_nan(), GOOD)
    with pytest.raises(ValueError, match="image A: expected a 2-D"):
        _call(label, GOOD[None], GOOD, GOOD)


def test_compute_metrics_checks_shapes_for_single_image_metrics() -> None:
    with pytest.raises(ValueError, match="same shape"):
        compute_metrics(GOOD, GOOD[:40], GOOD, ["EN"])


@pytest.mark.parametrize(("label", "size"), [("VIF", 41), ("VIFF", 41), ("SSIM", 11),
                                             ("Q_S", 11), ("Q_W", 11), ("SF", 2), ("rSFe", 2)])
def test_minimum_sizes(label, size) -> None:
    ok = GOOD[:size, :size]
    assert math.isfinite(_call(label, ok, ok[::-1], ok.T))
    small = GOOD[: size - 1, :size]
    with pytest.raises(ValueError, match=f"at least {size} x {size}"):
        _call(label, small, small, small)


# ---- images as read ----------------------------------------------------------------------

def test_as_gray255_quantises_and_takes_opencv_luma() -> None:
    grey = np.array([[0.0, 0.5 / 255, 1.5 / 255, 1.2]])  # round half to even, clip
    assert as_gray255(grey).tolist() == [[0.0, 0.0, 2.0, 255.0]]
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]])
    assert as_gray255(rgb).tolist() == [[76.0, 150.0, 29.0, 255.0]]  # cv2 RGB2YCrCb channel 0
    for bad, fragment in [(np.zeros((4, 4, 2)), "H x W x 3"), (np.zeros((0, 3)), "empty"),
                          (np.full((2, 2), np.nan), "NaN")]:
        with pytest.raises(ValueError, match=fragment):
            as_gray255(bad, "fused image")


def test_evaluate_images_reads_colour_like_the_references(reference_metrics_dir,
                                                          reference_triples) -> None:
    """The colour PET as read -> its luminance equals the Y image the references used."""
    inputs = reference_metrics_dir / "inputs"
    t = next(t for t in reference_triples if t.tid == "PET-MRI_25015" and t.rule == "max")
    mr = read_image(inputs / "PET-MRI_25015_A_MRI.png")
    pet = read_image(inputs / "PET-MRI_25015_B_PET_rgb.png")
    assert pet.ndim == 3
    assert np.array_equal(as_gray255(pet), t.b)
    fused = t.f / 255.0
    expected = compute_metrics(t.a, t.b, t.f)
    assert evaluate_images(mr, pet, fused) == expected
    # a grey fused image given as RGB, and sub-quantum noise, change nothing
    noisy_rgb = np.stack([fused] * 3, axis=-1) + 0.3 / 255
    assert evaluate_images(mr, pet, noisy_rgb, ["EN", "VIFF"]) == {
        k: expected[k] for k in ("EN", "VIFF")}


def test_evaluate_images_rejects_bad_input(ct_triple) -> None:
    a = ct_triple.a / 255
    with pytest.raises(ValueError, match="fused image: contains NaN"):
        evaluate_images(a, a, np.full_like(a, np.nan))
    with pytest.raises(ValueError, match="same shape"):
        evaluate_images(a, a, a[:100])
    assert vif(ct_triple.a, ct_triple.b, ct_triple.f) == evaluate_images(
        a, ct_triple.b / 255, ct_triple.f / 255, "VIF")["VIF"]
