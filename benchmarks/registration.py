"""Measure registration against known transforms and write ``docs/registration.md``.

Ground truth: seeded random transforms A applied to real, already aligned pairs, then recovered.
A is the resampling transform (ITK's convention: moved(q) = func(A(q))), so a registration T
(MR point -> functional point) of the moved pair should equal A^-1 o T_unmoved, where T_unmoved
is what the same registration finds for the unmoved pair (the pairs are not aligned to the last
millimetre in the mutual-information sense). TRE = mean over points p of the MR's foreground
(Otsu) of |T_moved(p) - A^-1(T_unmoved(p))|; the distance of T_unmoved from the identity is
reported on its own.

- 3-D: ``../shared/data/volumes/spm_oldnorm`` PET, SPECT, T2, PD -> T1; ``--n3d`` rigid
  transforms each (rotations uniform in +-15 degrees per axis, translations +-20 mm), the moved
  volume resampled (B-spline) onto the functional grid padded by 32 mm so nothing is cut off.
- 2-D: the atlas test pairs (``--pairs2d`` per modality) CT/PET/SPECT -> MR, ``--n2d``
  similarity transforms each (+-10 degrees, +-15 px, scale 0.9-1.1), the moved image resampled
  onto its own 256 x 256 grid (what a user would have).
- Settings compared on a subset (``--compare-n``): optimisers and histogram bins.
- Fusion after registration: the paper's metrics of a fast fusion method on misaligned,
  registered and aligned pairs, all scored against the MR and the aligned functional image.
- The MRI-DIR phantom CT -> T2 MR (DICOM): registered with the orientation search, QA figure.

    python benchmarks/registration.py                     # full counts, writes docs/registration.md
    python benchmarks/registration.py --n3d 5 --n2d 2 --pairs2d 8 --output /tmp/reg.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from msgfusion.data.datasets import PairFolder  # noqa: E402
from msgfusion.errors import MsgFusionError, MsgFusionWarning  # noqa: E402
from msgfusion.io.color import luminance  # noqa: E402
from msgfusion.io.images import write_image  # noqa: E402
from msgfusion.metrics import PAPER_METRICS, evaluate_images  # noqa: E402
from msgfusion.register import (  # noqa: E402
    RegistrationSettings,
    qa_figure,
    register,
    register_images,
    resample,
)
from msgfusion.register.engine import _foreground_points  # noqa: E402
from msgfusion.register.transforms import apply, homogeneous  # noqa: E402
from msgfusion.api import fuse  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SPM = DATA / "volumes" / "spm_oldnorm"
MRIDIR = DATA / "volumes" / "mridir"
AANLIB = DATA / "aanlib"
FIGURES = REPO / "docs" / "figures"
MODALITIES_3D = ("PET", "SPECT", "T2", "PD")
FUSION_METHOD = "average"


# ----------------------------------------------------------------------------------- helpers
def tre(t_moved: sitk.Transform, t_unmoved: sitk.Transform, a: sitk.Transform,
        points: np.ndarray) -> float:
    """Mean |T_moved(p) - A^-1(T_unmoved(p))| over the points."""
    reference = np.linalg.inv(homogeneous(a)) @ homogeneous(t_unmoved)
    return float(np.linalg.norm(apply(homogeneous(t_moved), points) - apply(reference, points),
                                axis=1).mean())


def from_identity(t: sitk.Transform, points: np.ndarray) -> float:
    return float(np.linalg.norm(apply(homogeneous(t), points) - points, axis=1).mean())


def centre_of(image: sitk.Image) -> tuple[float, ...]:
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])


def random_rigid(rng: np.random.Generator, centre: tuple[float, ...]) -> sitk.Transform:
    t = sitk.Euler3DTransform()
    t.SetCenter(centre)
    t.SetRotation(*np.radians(rng.uniform(-15, 15, 3)))
    t.SetTranslation(tuple(rng.uniform(-20, 20, 3)))
    return t


def random_similarity(rng: np.random.Generator, centre: tuple[float, ...]) -> sitk.Transform:
    t = sitk.Similarity2DTransform()
    t.SetCenter(centre)
    t.SetAngle(float(np.radians(rng.uniform(-10, 10))))
    t.SetTranslation(tuple(rng.uniform(-15, 15, 2)))
    t.SetScale(float(rng.uniform(0.9, 1.1)))
    return t


def padded_grid(image: sitk.Image, pad_mm: float) -> sitk.Image:
    pad = [int(np.ceil(pad_mm / s)) for s in image.GetSpacing()]
    return sitk.ConstantPad(image, pad, pad, 0.0)


def move(image: sitk.Image, a: sitk.Transform, grid: sitk.Image) -> sitk.Image:
    return sitk.Resample(image, grid, a, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)


def quiet_register(fixed: sitk.Image, moving: sitk.Image, kind: str,
                   settings: RegistrationSettings) -> tuple[sitk.Transform, float, list[str]]:
    """(transform, seconds, warnings); a registration error counts as a failure (None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MsgFusionWarning)
        start = time.perf_counter()
        try:
            result = register(fixed, moving, kind, settings)
        except MsgFusionError as exc:
            return None, time.perf_counter() - start, [str(exc)]
        return result.transform, time.perf_counter() - start, result.warnings


def stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = np.where(np.isfinite(v), v, np.inf)
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


# ----------------------------------------------------------------------------------- studies
def load_3d() -> tuple[sitk.Image, dict[str, sitk.Image]]:
    t1 = sitk.ReadImage(str(SPM / "T1.nii.gz"), sitk.sitkFloat32)
    return t1, {m: sitk.ReadImage(str(SPM / f"{m}.nii.gz"), sitk.sitkFloat32)
                for m in MODALITIES_3D}


def study_3d(n: int, settings: RegistrationSettings, modalities=MODALITIES_3D, seed: int = 0,
             kind: str = "rigid") -> dict[str, dict]:
    t1, funcs = load_3d()
    points = _foreground_points(t1)
    out = {}
    for modality in modalities:
        func = funcs[modality]
        grid = padded_grid(func, 32.0)
        t_unmoved, _, _ = quiet_register(t1, func, kind, settings)
        rng = np.random.default_rng([seed, MODALITIES_3D.index(modality)])
        tres, times, warned = [], [], 0
        for _ in range(n):
            a = random_rigid(rng, centre_of(func))
            t_moved, seconds, found = quiet_register(t1, move(func, a, grid), kind, settings)
            tres.append(np.inf if t_moved is None else tre(t_moved, t_unmoved, a, points))
            times.append(seconds)
            warned += bool(found)
        out[modality] = {"identity": from_identity(t_unmoved, points), "tre": tres,
                         "seconds": times, "warned": warned}
        print(f"3-D {modality}: {stats(tres)} {np.median(times):.2f} s", flush=True)
    return out


def atlas_pairs(per_modality: int) -> list:
    pairs = []
    for name in ("CT-MRI", "PET-MRI", "SPECT-MRI"):
        folder = PairFolder(AANLIB / name / "test")
        step = max(1, len(folder) // per_modality)
        pairs += [folder[i] for i in range(0, len(folder), step)][:per_modality]
    return pairs


def study_2d(pairs: list, n: int, settings: RegistrationSettings, seed: int = 0,
             kind: str = "similarity") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for index, pair in enumerate(pairs):
        mr = sitk.GetImageFromArray(pair.mr)
        func = sitk.GetImageFromArray(pair.func_gray)
        points = _foreground_points(mr)
        t_unmoved, _, _ = quiet_register(mr, func, kind, settings)
        rng = np.random.default_rng([seed, index])
        row = out.setdefault(pair.modality, {"identity": [], "tre": [], "seconds": [],
                                             "warned": 0})
        row["identity"].append(from_identity(t_unmoved, points))
        for _ in range(n):
            a = random_similarity(rng, centre_of(func))
            t_moved, seconds, found = quiet_register(mr, move(func, a, func), kind, settings)
            row["tre"].append(np.inf if t_moved is None else tre(t_moved, t_unmoved, a, points))
            row["seconds"].append(seconds)
            row["warned"] += bool(found)
    for modality, row in out.items():
        print(f"2-D {modality}: {stats(row['tre'])} {np.median(row['seconds']):.3f} s",
              flush=True)
    return out
