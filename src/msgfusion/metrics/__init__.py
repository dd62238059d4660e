"""Fusion-quality metrics matching the field's reference implementations (METRICS.md).

Each metric is a pure function of grey images on 0..255 (numpy arrays, computed in float64):
``(f) -> float`` for single-image metrics, ``(a, b, f) -> float`` otherwise, grouped by family:
:mod:`~msgfusion.metrics.information` (EN, MI), :mod:`~msgfusion.metrics.statistics` (SD, CC,
SCD, PSNR), :mod:`~msgfusion.metrics.gradient` (SF, AG, rSFe, Qabf, Nabf),
:mod:`~msgfusion.metrics.structural` (SSIM, Q_S, Q_W) and :mod:`~msgfusion.metrics.perceptual`
(VIF, VIFF, Qcb, Qcv). :mod:`~msgfusion.metrics.registry` lists them with their direction and
computes a chosen set; :func:`evaluate_images` takes images as read (float [0, 1], grey or RGB).
Nothing here reads or writes a file: folder evaluation (``msgfusion evaluate``) lives a floor up,
in :mod:`msgfusion.evaluation`.
:func:`entropy_ceiling` is not a metric: it bounds EN for a pair of sources.
"""

from msgfusion.metrics.gradient import average_gradient, nabf, qabf, rsfe, spatial_frequency
from msgfusion.metrics.information import entropy, entropy_ceiling, mutual_information
from msgfusion.metrics.inputs import as_gray255, check_images
from msgfusion.metrics.perceptual import qcb, qcv, vif, viff
from msgfusion.metrics.registry import (
    ALIASES,
    METRICS,
    PAPER_METRICS,
    Metric,
    UnknownMetricError,
    compute_metrics,
    compute_metrics_many,
    evaluate_images,
    resolve_names,
)
from msgfusion.metrics.statistics import correlation_coefficient, psnr, scd, standard_deviation
from msgfusion.metrics.structural import piella_q, piella_qw, ssim

__all__ = [
    "ALIASES",
    "METRICS",
    "PAPER_METRICS",
    "Metric",
    "UnknownMetricError",
    "as_gray255",
    "average_gradient",
    "check_images",
    "compute_metrics",
    "compute_metrics_many",
    "correlation_coefficient",
    "entropy",
    "entropy_ceiling",
    "evaluate_images",
    "mutual_information",
    "nabf",
    "piella_q",
    "piella_qw",
    "psnr",
    "qabf",
    "qcb",
    "qcv",
    "resolve_names",
    "rsfe",
    "scd",
    "spatial_frequency",
    "ssim",
    "standard_deviation",
    "vif",
    "viff",
]
