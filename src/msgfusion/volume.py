"""Volume: voxels plus physical geometry, the 3-D counterpart of an image file (DESIGN.md).

Physical convention (ITK's, also DICOM's): world coordinates in millimetres in the patient's
LPS frame (x grows to the patient's Left, y to Posterior, z to Superior). A voxel with index
``(i, j, k)`` along the array's ``(x, y, z)`` axes lies at

    p = origin + direction @ (spacing * (i, j, k))

``data`` is stored as SimpleITK's ``GetArrayFromImage`` gives it: shape ``(z, y, x)`` for a
scalar volume and ``(z, y, x, 3)`` for an RGB one, so ``data[k]`` is the axial slice ``k`` of an
axially acquired scan. ``spacing``, ``origin`` are ``(x, y, z)``; ``direction`` is the 3 x 3
matrix whose columns are the directions of the x, y and z index axes. NIfTI's RAS affines are
converted on reading (nibabel), so every reader and writer meets here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # SimpleITK is imported lazily: it is not needed for 2-D work
    import SimpleITK as sitk


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image: ``data`` (z, y, x[, 3]) with its spacing, origin and direction (LPS, mm)."""

    data: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if not (data.ndim == 3 or (data.ndim == 4 and data.shape[3] == 3)):
            raise ValueError(f"a Volume is z x y x x or z x y x x x 3, got shape {data.shape}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction",
                           np.asarray(self.direction, dtype=np.float64).reshape(3, 3))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)``: the number of voxels along each array axis."""
        return self.data.shape[:3]  # type: ignore[return-value]

    @property
    def is_rgb(self) -> bool:
        return self.data.ndim == 4

    @property
    def affine(self) -> np.ndarray:
        """4 x 4 matrix from the index ``(i, j, k, 1)`` (x, y, z order) to LPS millimetres."""
        a = np.eye(4)
        a[:3, :3] = self.direction * np.asarray(self.spacing)
        a[:3, 3] = self.origin
        return a

    @property
    def axcodes(self) -> str:
        """Where the x, y and z index axes point, one letter each (``"LPS"``: i to the patient's
        Left, j to Posterior, k to Superior; ``"RAS"`` as nibabel's ``aff2axcodes`` says)."""
        letters = ("LR", "PA", "SI")
        codes = []
        for column in self.direction.T:
            axis = int(np.argmax(np.abs(column)))
            codes.append(letters[axis][0 if column[axis] > 0 else 1])
        return "".join(codes)

    def __repr__(self) -> str:
        """One line, as nibabel's images print: shape, voxel type, spacing, orientation,
        modality and source (never the voxels or the DICOM headers)."""
        spacing = " x ".join(f"{s:g}" for s in self.spacing)
        parts = [f"shape={self.shape}{' x 3 (RGB)' if self.is_rgb else ''}",
                 f"dtype={self.data.dtype}", f"spacing={spacing} mm", f"axes={self.axcodes}"]
        for key in ("modality", "path"):
            if self.meta.get(key):
                parts.append(f"{'source' if key == 'path' else key}={self.meta[key]!r}")
        return f"Volume({', '.join(parts)})"

    def with_data(self, data: np.ndarray, **meta: Any) -> Volume:
        """The same geometry with other voxels of the same grid (e.g. a fused result)."""
        if np.shape(data)[:3] != self.shape:
            raise ValueError(f"voxels of shape {np.shape(data)[:3]} do not fit the grid {self.shape}")
        return Volume(data, self.spacing, self.origin, self.direction, {**self.meta, **meta})

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.data, isVector=self.is_rgb)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, **meta: Any) -> Volume:
        """A Volume from a 3-D SimpleITK image (scalar or 3-component)."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"a Volume is 3-D, got a {image.GetDimension()}-D image")
        return cls(sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(),
                   np.asarray(image.GetDirection()).reshape(3, 3), meta)


# --- Orientation: the volume seen in the canonical anatomical layout ---------------------------

#: Slicing planes: the anatomical axis each one is perpendicular to.
AXES: tuple[str, ...] = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class Orientation:
    """How a volume's array maps to the canonical layout ``(S, P, L)`` (inferior to superior,
    anterior to posterior, right to left), found from its direction matrix.

    The canonical array is a *view* (transposes and reversals only), so slices written into it
    land in the original array: fusion works on anatomically oriented slices and its result is
    stored on the MR's own grid, whose geometry is never touched. ``axes[c]`` is the array axis
    shown as canonical axis ``c``; ``flips[c]`` says whether it runs backwards. Oblique volumes
    take the nearest anatomical axes.
    """

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @classmethod
    def of(cls, volume: Volume) -> Orientation:
        d = np.abs(volume.direction)  # rows: world L, P, S; columns: index axes x, y, z
        index_of_world: dict[int, int] = {}
        for flat in np.argsort(-d, axis=None):  # largest cosines first: a greedy assignment
            world, index = divmod(int(flat), 3)
            if world not in index_of_world and index not in index_of_world.values():
                index_of_world[world] = index
        axes, flips = [], []
        for world in (2, 1, 0):  # canonical order S, P, L
            index = index_of_world[world]
            axes.append(2 - index)  # index axis x, y, z is array axis 2, 1, 0
            flips.append(bool(volume.direction[world, index] < 0))
        return cls(tuple(axes), tuple(flips))  # type: ignore[arg-type]

    def view(self, data: np.ndarray) -> np.ndarray:
        """``data`` (z, y, x[, 3]) as a canonical (S, P, L[, 3]) view."""
        view = np.transpose(data, self.axes + tuple(range(3, data.ndim)))
        return view[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]


def plane(canonical: np.ndarray, axis: str, index: int) -> np.ndarray:
    """Slice ``index`` of a canonical view along ``axis``, displayed the radiological way
    (anterior or superior at the top, the patient's right on the left); a view."""
    if axis == "axial":
        return canonical[index]
    if axis == "coronal":
        return canonical[::-1, index]
    if axis == "sagittal":
        return canonical[::-1, :, index]
    raise ValueError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")


def n_planes(canonical: np.ndarray, axis: str) -> int:
    """How many slices :func:`plane` can take along ``axis``."""
    return canonical.shape[AXES.index(axis)]


def plane_spacing(volume: Volume, axis: str) -> tuple[float, float]:
    """(row, column) spacing in mm of the slices :func:`plane` takes from ``volume``."""
    orient = Orientation.of(volume)
    canonical_spacing = [volume.spacing[2 - a] for a in orient.axes]  # S, P, L
    rows, cols = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}[axis]
    return canonical_spacing[rows], canonical_spacing[cols]


# --- Physical space: overlap and resampling onto the MR grid -----------------------------------

def _corners(volume: Volume) -> np.ndarray:
    """The 8 corners (LPS mm) of the box covered by the voxels (half a voxel beyond the centres)."""
    z, y, x = volume.shape
    idx = np.array([[i, j, k] for i in (-0.5, x - 0.5) for j in (-0.5, y - 0.5)
                    for k in (-0.5, z - 0.5)])
    return idx @ (volume.direction * np.asarray(volume.spacing)).T + np.asarray(volume.origin)


def _box(volume: Volume) -> str:
    corners = _corners(volume)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return ", ".join(f"{a} {lo[i]:.0f}..{hi[i]:.0f}" for i, a in enumerate("xyz")) + " mm"


def check_same_space(reference: Volume, moving: Volume, transform: Any = None) -> None:
    """Raise :class:`SpaceMismatchError` unless ``moving`` covers part of ``reference``'s space.

    Without a transform the two must share a frame of reference (when both name one: DICOM's
    FrameOfReferenceUID) and their boxes must overlap. With a SimpleITK ``transform`` (mapping
    reference points to moving points, as registration gives it) the reference corners are mapped
    first. The corners' bounding boxes are compared in the moving volume's index space.
    """
    from msgfusion.errors import SpaceMismatchError

    ref_name = reference.meta.get("path", "the MR volume")
    mov_name = moving.meta.get("path", "the functional volume")
    hint = "register them first (a transform onto the MR) or check that the files belong together"
    ref_for = reference.meta.get("frame_of_reference")
    mov_for = moving.meta.get("frame_of_reference")
    if transform is None and ref_for and mov_for and ref_for != mov_for:
        raise SpaceMismatchError(
            f"{mov_name} and {ref_name} have different DICOM frames of reference, so their "
            f"coordinates are not comparable; {hint}")
    corners = _corners(reference)
    if transform is not None:
        corners = np.array([transform.TransformPoint(tuple(float(v) for v in c)) for c in corners])
    inv = np.linalg.inv(moving.direction * np.asarray(moving.spacing))
    idx = (corners - np.asarray(moving.origin)) @ inv.T  # continuous (x, y, z) indices
    z, y, x = moving.shape
    upper = np.array([x, y, z]) - 0.5
    if np.any(idx.max(axis=0) <= -0.5) or np.any(idx.min(axis=0) >= upper):
        raise SpaceMismatchError(
            f"{mov_name} ({_box(moving)}) and {ref_name} ({_box(reference)}) do not overlap in "
            f"physical space; {hint}")


def same_grid(a: Volume, b: Volume, tol: float = 1e-6) -> bool:
    """Whether two volumes have the same voxel grid (shape, spacing, origin, direction)."""
    return (a.shape == b.shape and np.allclose(a.spacing, b.spacing, rtol=0, atol=tol)
            and np.allclose(a.origin, b.origin, rtol=0, atol=tol)
            and np.allclose(a.direction, b.direction, rtol=0, atol=tol))


def resample_to(moving: Volume, reference: Volume, transform: Any = None,
                default: float = 0.0) -> Volume:
    """``moving`` resampled (linear interpolation, float32) onto ``reference``'s grid.

    ``transform`` (a SimpleITK transform from reference to moving points, e.g. from
    registration; identity when None) is the hook for volumes that do not share a space.
    Voxels outside ``moving`` get ``default``. A volume already on the grid is only cast.
    Raises :class:`SpaceMismatchError` when the two do not overlap (see :func:`check_same_space`).
    """
    check_same_space(reference, moving, transform)
    if moving.is_rgb:
        raise ValueError("resample_to takes a scalar volume")
    if transform is None and same_grid(moving, reference):
        return Volume(moving.data.astype(np.float32, copy=False), reference.spacing,
                      reference.origin, reference.direction, dict(moving.meta))
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(moving.data.astype(np.float32, copy=False))
    image.SetSpacing(moving.spacing)
    image.SetOrigin(moving.origin)
    image.SetDirection(tuple(moving.direction.ravel()))
    z, y, x = reference.shape
    out = sitk.Resample(image, (x, y, z), transform or sitk.Transform(), sitk.sitkLinear,
                        reference.origin, reference.spacing, tuple(reference.direction.ravel()),
                        default, sitk.sitkFloat32)
    return Volume(sitk.GetArrayFromImage(out), reference.spacing, reference.origin,
                  reference.direction, dict(moving.meta))
