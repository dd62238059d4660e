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
