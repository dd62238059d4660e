"""Intensity-based registration of a CT/PET/SPECT image onto the MR with SimpleITK.

The MR is always the fixed (reference) image. The method, in ITK's terms (ImageRegistrationMethod):

- **Metric**: Mattes mutual information (``histogram_bins`` bins), evaluated on a random sample
  of the MR's voxels (``sampling`` fraction, drawn with a fixed ``seed`` once per level).
- **Transform**: rigid (Euler, 6 degrees of freedom in 3-D, 3 in 2-D), similarity (+ one scale)
  or affine, rotating about the MR's centre.
- **Initialisation**: the two images' centres (``geometry``) or centres of mass (``moments``)
  are put on top of each other (``CenteredTransformInitializer``), or the scanner coordinates
  are trusted as they are (``header``). With ``search_orientation`` the start is also tried
  turned 180 degrees about each axis (a patient scanned head- and feet-first, or a phantom
  placed the other way round): each start gets a short coarse-level run and the best one wins.
- **Multi-resolution**: ``shrink`` factors with Gaussian ``smoothing`` sigmas (in voxels) per
  level, coarse to fine.
- **Optimiser**: gradient descent with the learning rate estimated from the physical shift
  every iteration and scales from the physical shift (``gradient``, the default, chosen by
  measurement in docs/registration.md); regular-step gradient descent (``regular-step``) and
  conjugate gradient with line search (``conjugate``) are the alternatives compared there.
  Every level stops at a convergence window or at ``iterations``, so the run is time-bounded.
- **Determinism**: a fixed sampling seed and, by default, one thread: the same inputs give the
  same transform bit for bit (tested).

After the run the result is checked; a likely failure (little improvement of the metric while
the image was moved far, an extreme transform, little overlap, no convergence) is a
:class:`~msgfusion.errors.MsgFusionWarning` that says what to try, and is kept in
:attr:`RegistrationResult.warnings` for the QA figure. Inputs that cannot be registered
(constant images, 2-D with 3-D, images that do not overlap at the start, or an optimiser that
drives the image out of the MR's field of view) raise :class:`~msgfusion.errors.RegistrationError`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from msgfusion.errors import MsgFusionWarning, RegistrationError
from msgfusion.register.transforms import apply, describe, homogeneous

if TYPE_CHECKING:
    import SimpleITK as sitk

KINDS = ("rigid", "similarity", "affine")
INITS = ("geometry", "moments", "header")
OPTIMIZERS = ("regular-step", "gradient", "gradient-once", "conjugate")

#: Thresholds of the failure checks (see :func:`check_result`).
MIN_OVERLAP = 0.5           # fraction of the MR's foreground that the moved image must cover
MAX_ROTATION_DEG = 45.0     # beyond the start (after any orientation search)
MAX_SHIFT_FRACTION = 0.33   # of the MR's field of view, beyond the start
MAX_SCALE_RATIO = 1.5       # largest/smallest singular value, or scale away from 1
MIN_IMPROVEMENT = 0.005     # relative metric improvement below which a long move is suspect
MIN_MI = 0.05               # |Mattes MI| below which the images share too little to trust


@dataclass(frozen=True)
class RegistrationSettings:
    """Every knob of the registration; the defaults are measured (docs/registration.md)."""

    histogram_bins: int = 32
    sampling: float = 0.1
    seed: int = 1
    shrink: tuple[int, ...] = (4, 2, 1)
    smoothing: tuple[float, ...] = (2.0, 1.0, 0.0)
    optimizer: str = "regular-step"
    learning_rate: float = 2.0
    relaxation: float = 0.5
    iterations: int = 200
    convergence: float = 1e-6
    convergence_window: int = 10
    init: str = "geometry"
    search_orientation: bool = False
    threads: int = 1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise RegistrationError(f"unknown optimiser {self.optimizer!r}; choose one of "
                                    f"{', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise RegistrationError(f"unknown initialisation {self.init!r}; choose one of "
                                    f"{', '.join(INITS)}")
        if len(self.shrink) != len(self.smoothing) or not self.shrink:
            raise RegistrationError("shrink and smoothing need one entry per level")
        if not 0 < self.sampling <= 1:
            raise RegistrationError(f"sampling is a fraction in (0, 1], got {self.sampling}")


#: Volumes: 64 bins measured better than 32 on the SPM pairs (docs/registration.md).
DEFAULTS_3D = RegistrationSettings(histogram_bins=64)
#: 2-D slices: more samples and fewer bins (a slice has few pixels; measured in the docs).
DEFAULTS_2D = RegistrationSettings(histogram_bins=16, sampling=0.5, relaxation=0.8)


@dataclass(eq=False)
class RegistrationResult:
    """A registration's outcome: the transform (MR point -> functional point, ITK's
    convention), the metric before and after, and what the QA figure needs.

    ``metric_initial``/``metric_final`` are Mattes MI as ITK reports it (negative; lower is
    better), both evaluated at full resolution on the same sample, at the start (centred, and
    oriented when searched) and at the end.
    """

    transform: sitk.Transform
    initial_transform: sitk.Transform
    kind: str
    metric_initial: float
    metric_final: float
    overlap: float
    stop_condition: str
    iterations: int
    seconds: float
    fixed: sitk.Image = field(repr=False)
    moving: sitk.Image = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"{self.kind}: {describe(self.transform)}; Mattes MI {self.metric_initial:.4f} "
                f"-> {self.metric_final:.4f}; overlap {self.overlap:.0%}; {self.iterations} "
                f"iterations, {self.seconds:.2f} s")


def _check_images(fixed: sitk.Image, moving: sitk.Image, labels: tuple[str, str]) -> None:
    import SimpleITK as sitk

    if fixed.GetDimension() != moving.GetDimension():
        raise RegistrationError(
            f"{labels[0]} is {fixed.GetDimension()}-D but {labels[1]} is "
            f"{moving.GetDimension()}-D; register a slice with a slice or a volume with a volume")
    for image, label in zip((fixed, moving), labels):
        stats = sitk.StatisticsImageFilter()
        stats.Execute(image)
        if not stats.GetMaximum() > stats.GetMinimum():
            raise RegistrationError(f"{label} is constant ({stats.GetMaximum():g} everywhere): "
                                    "there is nothing to register")
        if min(image.GetSize()) < 4:
            raise RegistrationError(f"{label} is too small to register ({image.GetSize()})")


def foreground_points(image: sitk.Image, max_points: int = 20000) -> np.ndarray:
    """Physical points of the image's foreground (Otsu), a deterministic subsample."""
    import SimpleITK as sitk

    mask = sitk.GetArrayFromImage(sitk.OtsuThreshold(image, 0, 1))
    idx = np.argwhere(mask > 0)[:, ::-1].astype(np.float64)  # array (z, y, x) -> index (x, y, z)
    step = max(1, len(idx) // max_points)
    idx = idx[::step]
    d = image.GetDimension()
    direction = np.asarray(image.GetDirection()).reshape(d, d)
    return idx * np.asarray(image.GetSpacing()) @ direction.T + np.asarray(image.GetOrigin())


def overlap_fraction(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                     points: np.ndarray | None = None) -> float:
    """The fraction of the MR's foreground that lands inside the moving image's grid."""
    pts = foreground_points(fixed) if points is None else points
    if len(pts) == 0:
        return 0.0
    d = fixed.GetDimension()
    mapped = apply(homogeneous(transform), pts)
    direction = np.asarray(moving.GetDirection()).reshape(d, d)
    index = (mapped - np.asarray(moving.GetOrigin())) @ np.linalg.inv(direction).T \
        / np.asarray(moving.GetSpacing())
    inside = np.all((index >= -0.5) & (index <= np.asarray(moving.GetSize()) - 0.5), axis=1)
    return float(inside.mean())


def _transform_class(kind: str, dimension: int) -> sitk.Transform:
    import SimpleITK as sitk

    if kind == "rigid":
        return sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
    if kind == "similarity":
        return sitk.Similarity3DTransform() if dimension == 3 else sitk.Similarity2DTransform()
    return sitk.AffineTransform(dimension)


def _rotations(dimension: int) -> list[np.ndarray]:
    """The start orientations tried by the orientation search: none, and 180 degrees about each
    axis (the turns between head-first and feet-first, or supine and prone, acquisitions)."""
    if dimension == 2:
        return [np.eye(2), -np.eye(2)]
    return [np.eye(3)] + [np.diag(np.where(np.arange(3) == axis, 1.0, -1.0)) for axis in range(3)]


def _with_rotation(rigid: sitk.Transform, rotation: np.ndarray) -> sitk.Transform:
    """A copy of a centred rigid transform with its matrix multiplied by ``rotation``."""
    import SimpleITK as sitk

    t = sitk.Euler3DTransform(rigid) if rigid.GetDimension() == 3 else sitk.Euler2DTransform(rigid)
    d = rigid.GetDimension()
    t.SetMatrix(tuple((np.asarray(rigid.GetMatrix()).reshape(d, d) @ rotation).ravel()))
    return t


def _as_kind(rigid: sitk.Transform, kind: str) -> sitk.Transform:
    """The centred rigid start expressed as a transform of the wanted kind."""
    t = _transform_class(kind, rigid.GetDimension())
    t.SetCenter(rigid.GetCenter())
    t.SetMatrix(rigid.GetMatrix())
    t.SetTranslation(rigid.GetTranslation())
    return t


def _method(settings: RegistrationSettings, levels: slice = slice(None),
            iterations: int | None = None) -> sitk.ImageRegistrationMethod:
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetNumberOfThreads(settings.threads)
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    r.SetInterpolator(sitk.sitkLinear)
    # gradients at the sample points only, not of whole images: cheaper for sparse sampling
    r.MetricUseFixedImageGradientFilterOff()
    r.MetricUseMovingImageGradientFilterOff()
    n = iterations or settings.iterations
    if settings.optimizer in ("gradient", "gradient-once"):  # learning rate re-estimated each
        r.SetOptimizerAsGradientDescent(                     # iteration, or once at the start
            learningRate=settings.learning_rate, numberOfIterations=n,
            convergenceMinimumValue=settings.convergence,
            convergenceWindowSize=settings.convergence_window,
            estimateLearningRate=r.EachIteration if settings.optimizer == "gradient" else r.Once)
    elif settings.optimizer == "regular-step":
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=settings.learning_rate, minStep=1e-4, numberOfIterations=n,
            relaxationFactor=settings.relaxation, gradientMagnitudeTolerance=1e-8)
    else:
        r.SetOptimizerAsConjugateGradientLineSearch(
            learningRate=settings.learning_rate, numberOfIterations=n,
            convergenceMinimumValue=settings.convergence,
            convergenceWindowSize=settings.convergence_window,
            estimateLearningRate=r.EachIteration)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel(list(settings.shrink[levels]))
    r.SetSmoothingSigmasPerLevel(list(settings.smoothing[levels]))
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return r


def _metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
            settings: RegistrationSettings) -> float:
    """Mattes MI of ``transform`` at full resolution (the same sample for every call)."""
    r = _method(replace(settings, shrink=(1,), smoothing=(0.0,)))
    r.SetInitialTransform(transform, inPlace=False)
    return r.MetricEvaluate(fixed, moving)


def _execute(r: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image,
             labels: tuple[str, str]) -> sitk.Transform:
    try:
        return r.Execute(fixed, moving)
    except RuntimeError as exc:
        if "outside" in str(exc) or "valid points" in str(exc):
            raise RegistrationError(
                f"registering {labels[1]} to {labels[0]} moved it out of the MR's field of view "
                "(too little overlap left to measure); check that both images show the same "
                "anatomy, try --init moments or --search-orientation") from None
        first = next((line for line in str(exc).splitlines() if line.strip()), str(exc))
        raise RegistrationError(f"registering {labels[1]} to {labels[0]} failed: {first}") from None


def _start(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
           labels: tuple[str, str]) -> sitk.Transform:
    """The rigid start: centred (or as the headers say), oriented when searched."""
    import SimpleITK as sitk

    d = fixed.GetDimension()
    rigid = _transform_class("rigid", d)
    if settings.init == "header":
        centre = fixed.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2 for s in fixed.GetSize()])
        rigid.SetCenter(centre)
    else:
        mode = (sitk.CenteredTransformInitializerFilter.GEOMETRY if settings.init == "geometry"
                else sitk.CenteredTransformInitializerFilter.MOMENTS)
        rigid = sitk.CenteredTransformInitializer(fixed, moving, rigid, mode)
    if overlap_fraction(fixed, moving, rigid) == 0:
        raise RegistrationError(
            f"{labels[0]} and {labels[1]} do not overlap in space (--init {settings.init}); "
            "try --init geometry, which puts their centres together")
    if not settings.search_orientation:
        return rigid
    coarse = replace(settings, optimizer="gradient")
    best, best_value = rigid, np.inf
    for rotation in _rotations(d):
        r = _method(coarse, slice(0, 1), iterations=30)
        r.SetInitialTransform(_with_rotation(rigid, rotation), inPlace=True)
        try:
            candidate = _execute(r, fixed, moving, labels)
        except RegistrationError:
            continue
        value = _metric(fixed, moving, candidate, settings)
        if value < best_value:
            best, best_value = _with_rotation(rigid, rotation), value
    return best


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """SimpleITK's default thread count set to ``n`` for the filters run inside (the pyramid's
    smoothing, the initialiser): with one thread the result is the same bit for bit."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


def register(fixed: sitk.Image, moving: sitk.Image, kind: str = "rigid",
             settings: RegistrationSettings | None = None,
             labels: tuple[str, str] = ("the MR", "the functional image")) -> RegistrationResult:
    """Register ``moving`` (CT/PET/SPECT, scalar) onto ``fixed`` (the MR), both SimpleITK
    images of one dimension. ``labels`` name the two inputs in messages."""
    settings = settings or (DEFAULTS_2D if fixed.GetDimension() == 2 else DEFAULTS_3D)
    with _threads(settings.threads):
        return _register(fixed, moving, kind, settings, labels)


def _register(fixed: sitk.Image, moving: sitk.Image, kind: str, settings: RegistrationSettings,
              labels: tuple[str, str]) -> RegistrationResult:
    import SimpleITK as sitk

    if kind not in KINDS:
        raise RegistrationError(f"unknown registration type {kind!r}; choose one of "
                                f"{', '.join(KINDS)}")
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    _check_images(fixed, moving, labels)
    start_clock = time.perf_counter()
    initial = _as_kind(_start(fixed, moving, settings, labels), kind)
    r = _method(settings)
    transform = _as_kind(initial, kind)  # optimised in place
    r.SetInitialTransform(transform, inPlace=True)
    iterations = [0]
    r.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    _execute(r, fixed, moving, labels)
    seconds = time.perf_counter() - start_clock
    result = RegistrationResult(
        transform=transform, initial_transform=initial, kind=kind,
        metric_initial=_metric(fixed, moving, initial, settings),
        metric_final=_metric(fixed, moving, transform, settings),
        overlap=overlap_fraction(fixed, moving, transform),
        stop_condition=r.GetOptimizerStopConditionDescription(),
        iterations=iterations[0], seconds=seconds, fixed=fixed, moving=moving)
    check_result(result, settings)
    return result


def check_result(result: RegistrationResult, settings: RegistrationSettings) -> None:
    """Flag a likely failure: each finding is appended to ``result.warnings`` and issued as a
    :class:`MsgFusionWarning` that says what to try."""
    fixed = result.fixed
    d = fixed.GetDimension()
    unit = "mm" if d == 3 else "px"
    findings = []
    if result.overlap == 0:
        raise RegistrationError("after registration the functional image does not cover the MR "
                                "at all; check the inputs, try --init moments")
    if result.overlap < MIN_OVERLAP:
        findings.append(f"the moved image covers only {result.overlap:.0%} of the MR's "
                        "foreground; check the QA figure, try --init moments")
    start = homogeneous(result.initial_transform)
    end = homogeneous(result.transform)
    change = np.linalg.solve(start, end)  # the optimiser's own move, after the start
    u, s, vt = np.linalg.svd(change[:d, :d])
    rotation = u @ vt
    angle = float(np.degrees(np.arccos(np.clip(
        (np.trace(rotation) - (1 if d == 3 else 0)) / 2, -1, 1))))
    points = foreground_points(fixed, 5000)
    move = float(np.linalg.norm(apply(end, points) - apply(start, points), axis=1).mean())
    extent = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
    if angle > MAX_ROTATION_DEG:
        findings.append(f"the registration turned the image by {angle:.0f} degrees from the "
                        "start; if the scans are not that differently oriented, check the QA "
                        "figure and try --init moments")
    if move > MAX_SHIFT_FRACTION * float(extent.max()):
        findings.append(f"the registration moved the image by {move:.0f} {unit} on average, a "
                        "large part of the field of view; check the QA figure, try --init "
                        "moments")
    if s.max() / s.min() > MAX_SCALE_RATIO or s.max() > MAX_SCALE_RATIO \
            or s.min() < 1 / MAX_SCALE_RATIO:
        findings.append(f"the registration scaled the image by {'/'.join(f'{x:.2f}' for x in s)};"
                        " check the QA figure, try --type rigid")
    improvement = (result.metric_initial - result.metric_final) / max(abs(result.metric_final),
                                                                      1e-12)
    voxel = float(np.min(fixed.GetSpacing()))
    if abs(result.metric_final) < MIN_MI:
        findings.append(f"the images share little information (Mattes MI {result.metric_final:.3f}"
                        "); check that they show the same anatomy and the QA figure")
    elif improvement < MIN_IMPROVEMENT and move > 2 * voxel:
        findings.append(f"the metric improved by only {improvement:.1%} while the image moved "
                        f"{move:.1f} {unit}; check the QA figure, try --init moments or "
                        "--search-orientation")
    if "Maximum number of iterations" in result.stop_condition:
        findings.append(f"the optimiser did not converge within {settings.iterations} "
                        "iterations at full resolution; check the QA figure, try --iterations "
                        f"{2 * settings.iterations}")
    for text in findings:
        result.warnings.append(text)
        warnings.warn(MsgFusionWarning(f"registration: {text}"), stacklevel=3)
