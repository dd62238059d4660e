"""Intensity-based registration of a CT/PET/SPECT image onto the MR with SimpleITK.

The MR is always the fixed (reference) image. The method, in ITK's terms (ImageRegistrationMethod):

- **Metric**: Mattes mutual information (``histogram_bins`` bins), evaluated on a random sample
  of the MR's voxels (``sampling`` fraction, drawn with a fixed ``seed`` once per level), within
  the MR's foreground dilated by ``mask_margin`` (when >= 0), so the empty background does not
  pull the scale.
- **Transform**: rigid (Euler, 6 degrees of freedom in 3-D, 3 in 2-D), similarity (+ one scale)
  or affine, rotating about the MR's centre.
- **Multi-start**: every start -- each centring (``init``: ``auto`` tries the images' centres
  and their centres of mass; ``geometry``, ``moments`` or ``header`` one of them) times the 2-D
  start ``angles`` and ``scales``, and the 180-degree turns about each axis when
  ``search_orientation`` is on (by default: when the DICOM frames of reference differ) -- gets
  the coarsest level; the ``refine`` best distinct ones the finer levels; the best by the one
  criterion throughout (Mattes MI at full resolution on one fixed sample) wins, and the
  runner-ups stay in the result for the failure detector.
- **Multi-resolution**: ``shrink`` factors with Gaussian ``smoothing`` sigmas (in voxels) per
  level, coarse to fine; regular-step gradient descent (``regular-step``, measured best in
  docs/registration.md), or gradient descent / conjugate gradient; every level stops at
  ``iterations``, so the run is time-bounded.
- **Determinism**: fixed starts, a fixed sampling seed and, by default, one thread: the same
  inputs give the same transform bit for bit (tested).

After the run the failure detector (:func:`assess`) looks for doubt: another start that ends
elsewhere with nearly the same metric, a low independent similarity (normalised MI on every
pixel), little overlap, little shared information, an extreme scale. A doubtful result raises
:class:`~msgfusion.errors.RegistrationDoubtful` (carrying the result) unless
``accept_doubtful``; each :class:`Doubt` says what to try. Inputs that cannot be registered
(constant images, 2-D with 3-D, images that do not overlap at the start, or an optimiser that
drives the image out of the MR's field of view from every start) raise
:class:`~msgfusion.errors.RegistrationError`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from msgfusion.errors import MsgFusionWarning, RegistrationDoubtful, RegistrationError
from msgfusion.register.transforms import apply, describe, homogeneous

if TYPE_CHECKING:
    import SimpleITK as sitk

KINDS = ("rigid", "similarity", "affine")
INITS = ("auto", "geometry", "moments", "header")
OPTIMIZERS = ("regular-step", "gradient", "gradient-once", "conjugate")

MIN_OVERLAP = 0.5           # fraction of the MR's foreground that the moved image must cover
MIN_MI = 0.05               # |Mattes MI| below which the images share too little to trust
AMBIGUOUS_DISTANCE = 2.0    # voxels: a runner-up start further away is another pose


@dataclass(frozen=True)
class Thresholds:
    """The failure detector's calibrated thresholds (:func:`assess`)."""

    gap: float          # a runner-up pose within this fraction of the best metric: ambiguous
    nmi_margin: float   # a runner-up pose whose NMI beats the chosen one's by more: disagreement
    min_nmi: float      # normalised MI (1 = independent, 2 = identical) below this: doubtful
    max_scale: float    # a scale beyond this (or 1/this), or this much anisotropy: doubtful


#: Per dimension. 2-D: the sweep of ``benchmarks/registration.py --sections calibrate`` on
#: seeded moves of the atlas *train* pairs, the fewest misses with at most 10 % false alarms
#: (docs/registration.md). 3-D: none of the seeded SPM moves failed, so there is nothing to
#: calibrate on; permissive thresholds, measured on the SPM moves and the phantom there (the
#: NMI disagreement is off: on the phantom the right pose has the lower NMI of the two).
THRESHOLDS = {2: Thresholds(gap=0.01, nmi_margin=0.0, min_nmi=1.01, max_scale=1.1),
              3: Thresholds(gap=0.02, nmi_margin=float("inf"), min_nmi=1.0, max_scale=1.5)}

#: How each setting a doubt suggests is spelt on the command line and in Python.
_CLI = {"type": "--type", "init": "--init", "search_orientation": "--search-orientation",
        "iterations": "--iterations"}
_PYTHON = {"type": "kind"}


@dataclass(frozen=True)
class Doubt:
    """One reason to doubt a registration, and the settings worth trying: ``tries`` holds
    (setting, value) pairs, value None for a switch (``search_orientation``)."""

    reason: str
    tries: tuple[tuple[str, str | None], ...] = ()

    def render(self, style: str = "cli", options: set[str] | None = None) -> str:
        """The reason and what to try, spelt for the command line (``cli``: only the options
        in ``options`` when given) or for Python (``python``)."""
        if style == "cli":
            spelt = [f"{_CLI[k]}{'' if v is None else ' ' + v}" for k, v in self.tries
                     if options is None or _CLI[k] in options]
        else:
            spelt = [f"{_PYTHON.get(k, k)}={True if v is None else repr(v)}"
                     for k, v in self.tries]
        what = f"try {' or '.join(spelt)}, and " if spelt else ""
        return f"{self.reason}; {what}look at the QA figure"


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
    init: str = "auto"
    search_orientation: bool | None = None
    angles: tuple[float, ...] = (0.0,)
    scales: tuple[float, ...] = (1.0,)
    refine: int = 2
    mask_margin: float = -1.0
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
        if self.refine < 1 or not self.angles:
            raise RegistrationError("refine must be at least 1 and angles name one start "
                                    "at least")
        if not 0 < self.sampling <= 1:
            raise RegistrationError(f"sampling is a fraction in (0, 1], got {self.sampling}")


#: Volumes: 64 bins measured better than 32 on the SPM pairs (docs/registration.md).
DEFAULTS_3D = RegistrationSettings(histogram_bins=64)
#: 2-D slices: more samples and fewer bins (a slice has few pixels), the metric within the MR's
#: foreground (5 px margin), starts at three angles; chosen on atlas *train* pairs
#: (docs/registration.md).
DEFAULTS_2D = RegistrationSettings(histogram_bins=16, sampling=0.5, relaxation=0.8,
                                   mask_margin=5.0, angles=(-10.0, 0.0, 10.0))


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
    starts: int = 1
    #: the other refined starts: (metric - the best metric, mean distance from the chosen
    #: pose in mm or px, their normalised MI)
    alternatives: list[tuple[float, float, float]] = field(default_factory=list)
    doubts: list[Doubt] = field(default_factory=list)
    nmi: float = float("nan")
    oriented: bool = False

    @property
    def warnings(self) -> list[str]:
        """The doubts as sentences with what to try (command-line options)."""
        return [d.render() for d in self.doubts]

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

    d = rigid.GetDimension()
    if d == 3:
        t = sitk.Euler3DTransform(rigid)
    elif np.isclose(abs(np.linalg.det(rotation)), 1.0):
        t = sitk.Euler2DTransform(rigid)
    else:  # a start scale
        t = sitk.Similarity2DTransform()
        t.SetCenter(rigid.GetCenter())
        t.SetTranslation(rigid.GetTranslation())
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
            iterations: int | None = None, mask: sitk.Image | None = None
            ) -> sitk.ImageRegistrationMethod:
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetNumberOfThreads(settings.threads)
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    if mask is not None:
        r.SetMetricFixedMask(mask)
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
            settings: RegistrationSettings, mask: sitk.Image | None = None) -> float:
    """Mattes MI of ``transform`` at full resolution (the same sample for every call)."""
    r = _method(replace(settings, shrink=(1,), smoothing=(0.0,)), mask=mask)
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


def _centred(fixed: sitk.Image, moving: sitk.Image, init: str) -> sitk.Transform:
    """A rigid transform with the centres put together (``geometry``: the grids' centres;
    ``moments``: the centres of mass) or the scanner coordinates trusted (``header``)."""
    import SimpleITK as sitk

    rigid = _transform_class("rigid", fixed.GetDimension())
    if init == "header":
        rigid.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2 for s in fixed.GetSize()]))
        return rigid
    mode = (sitk.CenteredTransformInitializerFilter.GEOMETRY if init == "geometry"
            else sitk.CenteredTransformInitializerFilter.MOMENTS)
    return sitk.CenteredTransformInitializer(fixed, moving, rigid, mode)


def _starts(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
            labels: tuple[str, str], turn: bool, scaled: bool) -> list[sitk.Transform]:
    """The rigid starts: each centring (``init``; ``auto`` tries geometry and moments) times
    each start rotation (2-D: ``angles``; 3-D, and 2-D when ``turn``: also 180 degrees about
    each axis). Deterministic, in a fixed order."""
    inits = ("geometry", "moments") if settings.init == "auto" else (settings.init,)
    d = fixed.GetDimension()
    scales = settings.scales if scaled else (1.0,)
    rotations = [_rotation_2d(a) * k for a in settings.angles for k in scales] \
        if d == 2 else [np.eye(3)]
    if turn:
        rotations += [r @ flip for flip in _rotations(d)[1:] for r in rotations[:1]]
    starts = []
    for init in inits:
        centred = _centred(fixed, moving, init)
        if overlap_fraction(fixed, moving, centred) == 0:
            continue
        starts += [_with_rotation(centred, rotation) for rotation in rotations]
    if not starts:
        raise RegistrationError(
            f"{labels[0]} and {labels[1]} do not overlap in space (--init {settings.init}); "
            "try --init geometry, which puts their centres together")
    return starts


def _foreground_mask(image: sitk.Image, margin: float) -> sitk.Image:
    """The image's foreground (Otsu), dilated by ``margin`` mm (px in 2-D): where the metric
    is measured, so that the empty background does not pull the scale."""
    import SimpleITK as sitk

    mask = sitk.OtsuThreshold(image, 0, 1)
    radius = [int(round(margin / s)) for s in image.GetSpacing()]
    return sitk.BinaryDilate(mask, radius) if max(radius) > 0 else mask


def _rotation_2d(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def pose_distance(a: sitk.Transform, b: sitk.Transform, points: np.ndarray) -> float:
    """Mean distance between where two transforms map the points (mm, or px in 2-D)."""
    return float(np.linalg.norm(apply(homogeneous(a), points) - apply(homogeneous(b), points),
                                axis=1).mean())


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
             labels: tuple[str, str] = ("the MR", "the functional image"),
             frames_differ: bool = False, accept_doubtful: bool = False) -> RegistrationResult:
    """Register ``moving`` (CT/PET/SPECT, scalar) onto ``fixed`` (the MR), both SimpleITK
    images of one dimension. ``labels`` name the two inputs in messages; ``frames_differ``
    (the scanners' frames of reference differ) lets the orientation search run by default.

    Raises :class:`~msgfusion.errors.RegistrationDoubtful` (carrying the result) when the
    failure detector doubts the result, unless ``accept_doubtful``; the doubts are then in
    :attr:`RegistrationResult.doubts` and issued as warnings."""
    settings = settings or (DEFAULTS_2D if fixed.GetDimension() == 2 else DEFAULTS_3D)
    with _threads(settings.threads):
        result = _register(fixed, moving, kind, settings, labels, frames_differ)
    check_result(result, settings)
    if result.doubts and not accept_doubtful:
        raise RegistrationDoubtful(result.doubts, result)
    for doubt in result.doubts:
        warnings.warn(MsgFusionWarning(f"registration: {doubt.render()}"), stacklevel=2)
    return result


def _refine(fixed: sitk.Image, moving: sitk.Image, start: sitk.Transform, kind: str,
            settings: RegistrationSettings, levels: slice, iterations: int | None,
            labels: tuple[str, str], mask: sitk.Image | None
            ) -> tuple[sitk.Transform, int, str]:
    """``start`` (any kind) optimised as ``kind`` over the pyramid ``levels``: (transform,
    iterations, the optimiser's stop condition)."""
    import SimpleITK as sitk

    r = _method(settings, levels, iterations, mask)
    transform = _as_kind(start, kind)
    r.SetInitialTransform(transform, inPlace=True)
    count = [0]
    r.AddCommand(sitk.sitkIterationEvent, lambda: count.__setitem__(0, count[0] + 1))
    _execute(r, fixed, moving, labels)
    return transform, count[0], r.GetOptimizerStopConditionDescription()


def _register(fixed: sitk.Image, moving: sitk.Image, kind: str, settings: RegistrationSettings,
              labels: tuple[str, str], frames_differ: bool) -> RegistrationResult:
    """Multi-start: every start gets the coarsest level, the ``refine`` best distinct ones
    (by the full-resolution metric, the one criterion throughout) the finer levels, and the
    best of those wins. The runner-up stays in the result for the failure detector."""
    import SimpleITK as sitk

    if kind not in KINDS:
        raise RegistrationError(f"unknown registration type {kind!r}; choose one of "
                                f"{', '.join(KINDS)}")
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    _check_images(fixed, moving, labels)
    start_clock = time.perf_counter()
    points = foreground_points(fixed, 2000)
    voxel = float(np.min(fixed.GetSpacing()))
    turn = settings.search_orientation if settings.search_orientation is not None \
        else frames_differ
    coarse_kind = "rigid" if kind == "rigid" else "similarity"
    mask = _foreground_mask(fixed, settings.mask_margin) if settings.mask_margin >= 0 else None
    iterations = [0]

    def run_all(starts: list[sitk.Transform], run_kind: str, levels: slice
                ) -> list[tuple[float, sitk.Transform, sitk.Transform, str]]:
        """Each start optimised over ``levels``: (full-resolution metric, transform, start,
        stop condition), best first; a start that leaves the field of view drops out."""
        done = []
        for start in starts:
            try:
                t, n, stop = _refine(fixed, moving, start, run_kind, settings, levels,
                                     settings.iterations, labels, mask)
            except RegistrationError:
                continue
            iterations[0] += n
            done.append((_metric(fixed, moving, t, settings, mask), t, start, stop))
        if not done:
            raise RegistrationError(
                f"registering {labels[1]} to {labels[0]} moved it out of the MR's field of "
                "view from every start (too little overlap left to measure); check that both "
                "images show the same anatomy")
        return sorted(done, key=lambda c: c[0])

    coarse = run_all(_starts(fixed, moving, settings, labels, turn, kind != "rigid"),
                     coarse_kind, slice(0, 1))
    chosen: list[tuple[float, sitk.Transform, sitk.Transform, str]] = []
    for candidate in coarse:
        if all(pose_distance(candidate[1], c[1], points) > 2 * voxel for c in chosen):
            chosen.append(candidate)
        if len(chosen) == settings.refine:
            break
    if len(settings.shrink) > 1:
        refined = run_all([t for _, t, _, _ in chosen], kind, slice(1, None))
        origin = {id(t): start for _, t, start, _ in chosen}  # each refined run's first start
        finals = [(m, t, origin[id(s)], stop) for m, t, s, stop in refined]
    else:
        finals = [(m, _as_kind(t, kind), start, stop) for m, t, start, stop in chosen]
    best_metric, transform, start, stop = finals[0]
    alternatives = [(m - best_metric, pose_distance(t, transform, points),
                     _independent_similarity(fixed, moving, t)) for m, t, _, _ in finals[1:]]
    seconds = time.perf_counter() - start_clock
    return RegistrationResult(
        transform=transform, initial_transform=_as_kind(start, kind), kind=kind,
        metric_initial=_metric(fixed, moving, start, settings, mask), metric_final=best_metric,
        overlap=overlap_fraction(fixed, moving, transform), stop_condition=stop,
        iterations=iterations[0], seconds=seconds, fixed=fixed, moving=moving,
        starts=len(coarse), alternatives=alternatives, oriented=turn)


def _independent_similarity(fixed: sitk.Image, moving: sitk.Image,
                            transform: sitk.Transform) -> float:
    """Normalised mutual information (Studholme: (H(A) + H(B)) / H(A, B), 32 bins) of the MR and
    the moved image over the MR's foreground where the moved image has data: a measure the
    optimiser did not climb (other bins, every pixel, no sampling), for the failure detector."""
    import SimpleITK as sitk

    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    covered = sitk.GetArrayFromImage(
        sitk.Resample(ones, fixed, transform, sitk.sitkNearestNeighbor, 0)) > 0
    moved = sitk.GetArrayFromImage(
        sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0))
    mask = covered & (sitk.GetArrayFromImage(sitk.OtsuThreshold(fixed, 0, 1)) > 0)
    if mask.sum() < 16:
        return 0.0
    joint, _, _ = np.histogram2d(sitk.GetArrayFromImage(fixed)[mask], moved[mask], bins=32)
    joint = joint / joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(joint.sum(axis=0)) + entropy(joint.sum(axis=1))) / entropy(joint)


def check_result(result: RegistrationResult, settings: RegistrationSettings) -> None:
    """The failure detector: each finding is appended to ``result.doubts`` (see
    :func:`assess`), with what to try, less what was already in effect."""
    fixed = result.fixed
    d = fixed.GetDimension()
    if result.overlap == 0:
        raise RegistrationError("after registration the functional image does not cover the MR "
                                "at all; check that both images show the same anatomy")
    result.nmi = _independent_similarity(fixed, result.moving, result.transform)
    in_effect = {("type", result.kind), ("init", settings.init)}
    if settings.init == "auto":  # both centrings were tried
        in_effect |= {("init", "geometry"), ("init", "moments")}
    if result.oriented:
        in_effect.add(("search_orientation", None))
    scales = np.linalg.svd(homogeneous(result.transform)[:d, :d], compute_uv=False)
    if d == 2 and fixed.GetSize() != result.moving.GetSize():
        # pixel images of different sizes carry no pixel size: a resized image and a padded
        # canvas look alike, so any scale is plausible and not checked
        scales = np.ones(d)
    for doubt in assess(overlap=result.overlap, metric=result.metric_final, nmi=result.nmi,
                        alternatives=result.alternatives, scales=tuple(scales),
                        voxel=float(np.min(fixed.GetSpacing())), unit="mm" if d == 3 else "px"):
        result.doubts.append(Doubt(doubt.reason,
                                   tuple(t for t in doubt.tries if t not in in_effect)))


def assess(overlap: float, metric: float, nmi: float,
           alternatives: list[tuple[float, float, float]],
           scales: tuple[float, ...], voxel: float, unit: str) -> list[Doubt]:
    """The detector's verdict from a registration's features (kept apart so that the
    benchmark re-applies it to recorded features). Its thresholds (module constants) were
    calibrated on seeded moves of the atlas *train* pairs (docs/registration.md): another
    start that lands elsewhere with nearly the same metric (two poses fit almost equally
    well), a low independent similarity (NMI), little overlap, little shared information, an
    extreme scale."""
    limits = THRESHOLDS[len(scales)]
    doubts = []
    if overlap < MIN_OVERLAP:
        doubts.append(Doubt(f"the moved image covers only {overlap:.0%} of the MR's "
                            "foreground", (("search_orientation", None), ("init", "moments"))))
    s = np.asarray(scales)
    if s.max() / s.min() > limits.max_scale or s.max() > limits.max_scale \
            or s.min() < 1 / limits.max_scale:
        doubts.append(Doubt(f"the registration scaled the image by "
                            f"{'/'.join(f'{x:.2f}' for x in s)}", (("type", "rigid"),)))
    if abs(metric) < MIN_MI:
        doubts.append(Doubt(f"the images share little information (Mattes MI {metric:.3f}): "
                            "do they show the same anatomy?"))
    gap = max(abs(metric), 1e-12) * limits.gap
    for delta, distance, other_nmi in alternatives:
        if distance <= AMBIGUOUS_DISTANCE * voxel:
            continue
        if delta < gap:
            doubts.append(Doubt(
                f"another start ends {distance:.1f} {unit} away with nearly the same metric "
                f"({delta / max(abs(metric), 1e-12):.1%} worse): two poses fit almost equally "
                "well", (("search_orientation", None), ("type", "rigid"))))
            break
        if other_nmi > nmi + limits.nmi_margin:
            doubts.append(Doubt(
                f"another start ends {distance:.1f} {unit} away, worse by the metric but better "
                f"by normalised mutual information ({other_nmi:.3f} against {nmi:.3f}): the "
                "two measures disagree", (("search_orientation", None), ("type", "rigid"))))
            break
    if nmi < limits.min_nmi:
        doubts.append(Doubt(f"after registration the images agree little (normalised mutual "
                            f"information {nmi:.3f}, below {limits.min_nmi})",
                            (("search_orientation", None), ("init", "moments"))))
    return doubts
