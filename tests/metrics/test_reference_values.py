"""Every metric against the reference implementation whose convention it adopts (METRICS.md).

Reference values were computed by the reference code itself on 9 atlas pairs x {avg, max} fusion
(../shared/reference/metrics). Tolerances: relative 1e-6 against MATLAB/Octave (double
precision), 1e-5 against the float32 CDDFuse evaluator. Where our definition deliberately
differs from a reference, see test_deviations.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from msgfusion.metrics import METRICS, mutual_information

VIFB = "VIFB_matlab@22b2ea9"
CDDFUSE = "CDDFuse_Evaluator_py@fd8da1f"
TANG = "Tang_Evaluation-for-Image-Fusion_matlab@0e87153"
LIU = "Liu_imageFusionMetrics_matlab@d6f7f1a"
HAN = "Han2013_VIFF_Public_matlab(HarrisXia copy)@35d35c0"
KUMAR_NABF = ("ShreyamshaKumar_objective_fusion_perform_fn_matlab(VIFB/methods/CBF)@22b2ea9"
              "[NABF, modified by Kumar]")
TANG_NABF_FIXED = TANG + "[VARIANT: argument order fixed]"

MATLAB_RTOL = 1e-6
CDDFUSE_RTOL = 1e-5

# (our label, metric key in the JSON, reference name, relative tolerance)
CASES = [
    ("EN", "EN", VIFB, MATLAB_RTOL),
    ("EN", "EN", TANG, MATLAB_RTOL),
    ("EN", "EN", CDDFUSE, CDDFUSE_RTOL),
    ("SD", "SD", VIFB, MATLAB_RTOL),
    ("SD", "SD", TANG, MATLAB_RTOL),
    ("SD", "SD", CDDFUSE, CDDFUSE_RTOL),
    ("SF", "SF", TANG, MATLAB_RTOL),
    ("SF", "SF", CDDFUSE, CDDFUSE_RTOL),
    ("AG", "AG", VIFB, MATLAB_RTOL),
    ("AG", "AG", TANG, MATLAB_RTOL),
    ("MI", "MI", TANG, MATLAB_RTOL),
    ("SCD", "SCD", TANG, MATLAB_RTOL),
    ("SCD", "SCD", CDDFUSE, CDDFUSE_RTOL),
    ("CC", "CC", TANG, MATLAB_RTOL),
    ("CC", "CC", CDDFUSE, CDDFUSE_RTOL),
    ("VIF", "VIF", TANG, MATLAB_RTOL),
    ("VIF", "VIF", CDDFUSE + "[Evaluator.VIFF]", CDDFUSE_RTOL),
    ("VIFF", "VIFF", HAN, MATLAB_RTOL),
    ("Qabf", "Qabf", VIFB, MATLAB_RTOL),
    ("Qabf", "Qabf", TANG, MATLAB_RTOL),
    ("Qabf", "Qabf", CDDFUSE, CDDFUSE_RTOL),
    ("Nabf", "Nabf", KUMAR_NABF, MATLAB_RTOL),
    ("Nabf", "Nabf", TANG_NABF_FIXED, MATLAB_RTOL),
    ("SSIM", "SSIM", VIFB, MATLAB_RTOL),
    ("rSFe", "rSFe", LIU, MATLAB_RTOL),
    ("Qcv", "Qcv", VIFB, MATLAB_RTOL),
    ("Qcv", "Qcv", LIU, MATLAB_RTOL),
    ("PSNR", "PSNR", TANG, MATLAB_RTOL),
]
# Q_S, Q_W and Qcb agree with Liu/VIFB on the CT-MRI and SPECT-MRI triples; on PET-MRI the
# references' values depend on floating-point round-off (see test_deviations.py).
ROUNDOFF_SENSITIVE = [
    ("Q_S", "Piella_Q", LIU),
    ("Q_W", "Piella_Qw", LIU),
    ("Qcb", "Qcb", VIFB),
    ("Qcb", "Qcb", LIU),
]
PSNR_TANG_OFFSET = 20.0 * math.log10(255.0)  # Tang's MSE is on 0..1 images, its peak 255


def _expected(triple, key: str, reference: str) -> float:
    value = triple.ref(key, reference)
    return value - PSNR_TANG_OFFSET if key == "PSNR" else value


def test_every_metric_has_a_reference_case() -> None:
    covered = {c[0] for c in CASES} | {c[0] for c in ROUNDOFF_SENSITIVE}
    assert covered == set(METRICS)


@pytest.mark.parametrize(("label", "key", "reference", "rtol"), CASES,
                         ids=[f"{c[0]}-{c[2].split('_')[0]}" for c in CASES])
def test_matches_reference(reference_triples, label, key, reference, rtol) -> None:
    metric = METRICS[label]
    ours = [metric(t.a, t.b, t.f) for t in reference_triples]
    expected = [_expected(t, key, reference) for t in reference_triples]
    np.testing.assert_allclose(ours, expected, rtol=rtol, atol=0,
                               err_msg=f"{label} vs {reference}")


@pytest.mark.parametrize(("label", "key", "reference"), ROUNDOFF_SENSITIVE,
                         ids=[f"{c[0]}-{c[2].split('_')[0]}" for c in ROUNDOFF_SENSITIVE])
def test_matches_reference_outside_pet(reference_triples, label, key, reference) -> None:
    triples = [t for t in reference_triples if t.modality != "PET"]
    assert len(triples) == 12
    ours = [METRICS[label](t.a, t.b, t.f) for t in triples]
    np.testing.assert_allclose(ours, [t.ref(key, reference) for t in triples],
                               rtol=MATLAB_RTOL, atol=0)


@pytest.mark.parametrize(("reference", "rtol"), [(VIFB, MATLAB_RTOL), (CDDFUSE, CDDFUSE_RTOL)])
def test_mutual_information_in_nats(reference_triples, reference, rtol) -> None:
    ours = [mutual_information(t.a, t.b, t.f, base=math.e) for t in reference_triples]
    np.testing.assert_allclose(ours, [t.ref("MI", reference) for t in reference_triples],
                               rtol=rtol, atol=0)
