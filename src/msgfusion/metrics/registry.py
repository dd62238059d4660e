"""The registry of fusion-quality metrics, and computing a chosen set for (A, B, F) triples.

Labels are the short names used as registry keys, table columns and CSV headers (METRICS.md).
Directions: ``higher`` / ``lower`` is better, or ``zero`` (closer to zero is better, e.g. the
signed rSFe: compare absolute values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from msgfusion.errors import UnknownMetricError
from msgfusion.metrics import gradient, information, perceptual, statistics, structural
from msgfusion.metrics.inputs import as_gray255, check_images

Direction = Literal["higher", "lower", "zero"]


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    ``func`` is ``(f) -> float`` when ``needs_sources`` is false, else ``(a, b, f) -> float``;
    images are grey 2-D arrays on 0..255.
    """

    label: str
    func: Callable[..., float]
    direction: Direction
    needs_sources: bool
    description: str
    reference: str

    def __call__(self, a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
        """The metric of the triple (A, B, F), whichever images it uses."""
        return float(self.func(a, b, f) if self.needs_sources else self.func(f))


_ALL = (
    Metric("EN", information.entropy, "higher", False, "Shannon entropy of F (bits)",
       "Roberts et al., J. Appl. Remote Sens. 2008; = VIFB, CDDFuse, Tang"),
    Metric("SD", statistics.standard_deviation, "higher", False, "standard deviation of F",
       "Rao 1997 (as cited by VIFB); = VIFB, CDDFuse, Tang"),
    Metric("SF", gradient.spatial_frequency, "higher", False,
       "spatial frequency of F (mean over the differences)",
       "Eskicioglu & Fisher, IEEE TCOM 1995; = Tang, CDDFuse"),
    Metric("AG", gradient.average_gradient, "higher", False, "average gradient of F",
       "Cui et al., Opt. Commun. 2015; = VIFB, Tang"),
    Metric("MI", information.mutual_information, "higher", True,
       "mutual information MI(A,F) + MI(B,F) (bits)",
       "Qu et al., Electron. Lett. 2002; = Tang (bits), VIFB/CDDFuse (nats)"),
    Metric("SCD", statistics.scd, "higher", True, "sum of the correlations of differences",
       "Aslantas & Bendes, AEU 2015; = CDDFuse, Tang"),
    Metric("CC", statistics.correlation_coefficient, "higher", True,
       "mean correlation coefficient of F with A and B", "= CDDFuse, Tang"),
    Metric("VIF", perceptual.vif, "higher", True,
       "visual information fidelity VIF(A,F) + VIF(B,F), pixel domain",
       "Sheikh & Bovik, IEEE TIP 2006; = CDDFuse, Tang"),
    Metric("VIFF", perceptual.viff, "higher", True, "visual information fidelity for fusion",
       "Han et al., Information Fusion 2013; = VIFF_Public.m"),
    Metric("Qabf", gradient.qabf, "higher", True, "gradient-based edge transfer Q^AB/F",
       "Xydeas & Petrovic, Electron. Lett. 2000; = VIFB, CDDFuse, Tang"),
    Metric("Nabf", gradient.nabf, "lower", True, "fusion artefacts N^AB/F (modified)",
       "Shreyamsha Kumar, SIVP 2013; = objective_fusion_perform_fn NABF"),
    Metric("SSIM", structural.ssim, "higher", True, "structural similarity SSIM(A,F) + SSIM(B,F)",
       "Wang et al., IEEE TIP 2004; = VIFB"),
    Metric("rSFe", gradient.rsfe, "zero", True, "ratio of spatial-frequency error (signed)",
       "Zheng et al., Information Fusion 2007; = Liu metricZheng"),
    Metric("Q_S", structural.piella_q, "higher", True,
       "Piella's structural-similarity fusion index (the paper's SM, our reading)",
       "Piella & Heijmans, ICIP 2003; = Liu metricPeilla sw=1"),
    Metric("Q_W", structural.piella_qw, "higher", True, "Piella's weighted fusion quality index",
       "Piella & Heijmans, ICIP 2003; = Liu metricPeilla sw=2"),
    Metric("Qcb", perceptual.qcb, "higher", True, "Chen-Blum perceptual contrast preservation",
       "Chen & Blum, Image Vis. Comput. 2009; = VIFB, Liu metricChenBlum"),
    Metric("Qcv", perceptual.qcv, "lower", True, "Chen-Varshney perceptual regional distortion",
       "Chen & Varshney, Information Fusion 2007; = VIFB, Liu metricChen"),
    Metric("PSNR", statistics.psnr, "higher", True, "peak signal-to-noise ratio to A and B (dB)",
       "8-bit PSNR with MSE = (MSE(A,F) + MSE(B,F)) / 2; = Tang - 20 log10(255)"),
)

METRICS: dict[str, Metric] = {m.label: m for m in _ALL}
"""Every metric by label, in the table order of METRICS.md."""

PAPER_METRICS: tuple[str, ...] = ("EN", "SD", "MI", "rSFe", "Q_S", "VIFF", "Qabf")
"""MsgFusion's reported metrics that could be identified (EN, SD, MI, rSFe, SM -> Q_S, VIFF),
plus Qabf, which the project also reports. The paper's RQ could not be identified."""

ALIASES: dict[str, str] = {"SM": "Q_S"}
"""Other names accepted for a metric: the MsgFusion paper's "SM" is read as Piella's Q_S."""

_KEYWORDS: dict[str, tuple[str, ...]] = {"all": tuple(METRICS), "paper": PAPER_METRICS}
_BY_LOWER = {label.lower(): label for label in METRICS} | {k.lower(): v for k, v in ALIASES.items()}


def resolve_names(names: str | Iterable[str] | None = None) -> list[str]:
    """Metric labels for a user's selection, in the order given, without duplicates.

    ``names``: ``None`` (every metric), or labels (case-insensitive; several may be given in one
    string separated by commas or spaces), the alias ``SM`` (= Q_S), and the keywords ``all``
    and ``paper`` (:data:`PAPER_METRICS`). Raises :class:`UnknownMetricError` for anything else.
    """
    if names is None:
        return list(METRICS)
    if isinstance(names, str):
        names = [names]
    tokens = [t for item in names for t in item.replace(",", " ").split()]
    if not tokens:
        raise UnknownMetricError("no metric selected; available: " + ", ".join(METRICS))
    out: list[str] = []
    for token in tokens:
        key = token.lower()
        if key in _KEYWORDS:
            labels: Sequence[str] = _KEYWORDS[key]
        elif key in _BY_LOWER:
            labels = (_BY_LOWER[key],)
        elif key == "rq":
            raise UnknownMetricError(
                "RQ (reported by the MsgFusion paper) could not be identified from any public "
                "source and is not implemented; see docs/metrics.md"
            )
        else:
            raise UnknownMetricError(
                f"unknown metric {token!r}; available: {', '.join(METRICS)} "
                "(or 'all', 'paper')"
            )
        out.extend(label for label in labels if label not in out)
    return out


def compute_metrics(a: ArrayLike, b: ArrayLike, f: ArrayLike,
                    names: str | Iterable[str] | None = None) -> dict[str, float]:
    """The chosen metrics (default: all) of one triple of grey 0..255 images, by label.

    A and B are the sources (MR and CT / PET-SPECT luminance), F the fused image. Raises
    :class:`ValueError` for invalid images and :class:`UnknownMetricError` for unknown names.
    """
    labels = resolve_names(names)
    a, b, f = check_images(a, b, f)
    return {label: METRICS[label](a, b, f) for label in labels}


def compute_metrics_many(triples: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
                         names: str | Iterable[str] | None = None) -> list[dict[str, float]]:
    """:func:`compute_metrics` for many (A, B, F) triples, one dict per triple, in order."""
    labels = resolve_names(names)
    return [compute_metrics(a, b, f, labels) for a, b, f in triples]


def evaluate_images(mr: ArrayLike, func: ArrayLike, fused: ArrayLike,
                    names: str | Iterable[str] | None = None) -> dict[str, float]:
    """The chosen metrics of a fused image, from images as read (float in [0, 1]).

    ``mr`` grey, ``func`` grey (CT) or RGB (PET/SPECT), ``fused`` grey or RGB, all H x W
    (x 3) in [0, 1] as :func:`msgfusion.io.images.read_image` returns them. Each is quantised to
    8 bits (as if written to PNG) and an RGB image reduced to its BT.601 luma Y (OpenCV-exact),
    then the metrics are computed on 0..255 (:func:`msgfusion.metrics.inputs.as_gray255`).
    """
    labels = resolve_names(names)
    return compute_metrics(as_gray255(mr, "MR image"), as_gray255(func, "functional image"),
                           as_gray255(fused, "fused image"), labels)
