"""Pinhole camera intrinsics on a 0-based pixel grid.

Convention used everywhere in the kit: pixel (u, v) with u, v = 0, 1, ... is the
pixel whose centre back-projects to ``x = (u - cx) * z / fx``. The NYU and SUN
RGB-D toolboxes are MATLAB code with a 1-based grid; their principal points are
converted on load (subtract 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsod_depth.errors import KitError

# NYU Depth v2 colour camera (the labeled depths are registered to it), from the
# NYU toolbox camera_params.m; the principal point there is 1-based.
_NYU_FX = 518.85790117450188
_NYU_FY = 519.46961112127485
_NYU_CX_1BASED = 325.58244941119034
_NYU_CY_1BASED = 253.73616633400465
NYU_SIZE = (640, 480)  # (width, height) of the frames the NYU intrinsics belong to


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point in pixels, for a 0-based pixel grid."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def nyu(cls) -> Intrinsics:
        """The NYU Depth v2 colour camera at 640×480 (toolbox values, principal point made 0-based)."""
        return cls(_NYU_FX, _NYU_FY, _NYU_CX_1BASED - 1.0, _NYU_CY_1BASED - 1.0)

    @classmethod
    def from_matrix(cls, K: np.ndarray, *, one_based: bool = False) -> Intrinsics:
        """From a 3×3 camera matrix; ``one_based=True`` for MATLAB-toolbox matrices."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"camera matrix must be 3×3, got shape {K.shape}")
        shift = 1.0 if one_based else 0.0
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) - shift, float(K[1, 2]) - shift)

    def matrix(self) -> np.ndarray:
        """The 3×3 camera matrix (float64) for the 0-based grid."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.fx, self.fy, self.cx, self.cy)

    def crop(self, x0: int, y0: int) -> Intrinsics:
        """Intrinsics of the image cropped so that pixel (x0, y0) becomes (0, 0)."""
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0)

    def resize(self, scale_x: float, scale_y: float) -> Intrinsics:
        """Intrinsics after resizing the image by (scale_x, scale_y).

        Pixel centres map as ``u' + 0.5 = s (u + 0.5)`` (the continuous convention
        where pixel i spans [i, i + 1]).
        """
        return Intrinsics(
            self.fx * scale_x,
            self.fy * scale_y,
            (self.cx + 0.5) * scale_x - 0.5,
            (self.cy + 0.5) * scale_y - 0.5,
        )

    def flip_horizontal(self, width: int) -> Intrinsics:
        """Intrinsics of the mirrored image (u' = width - 1 - u); the scene is mirrored in x."""
        return Intrinsics(self.fx, self.fy, width - 1.0 - self.cx, self.cy)

    @classmethod
    def parse(cls, spec: str) -> Intrinsics:
        """From a command-line value: ``nyu`` or ``FX,FY,CX,CY`` (pixels, 0-based principal point).

        Raises:
            KitError: anything else, or non-positive/non-finite focal lengths.
        """
        text = spec.strip()
        if text.lower() == "nyu":
            return cls.nyu()
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise KitError(
                f"camera {spec!r} is not 'nyu' or four numbers FX,FY,CX,CY (e.g. 518.9,519.5,324.6,252.7)"
            )
        fx, fy, cx, cy = values
        if fx <= 0 or fy <= 0:
            raise KitError(f"camera {spec!r}: focal lengths FX and FY must be positive")
        return cls(fx, fy, cx, cy)


def read_sunrgbd_intrinsics(path: str | Path) -> Intrinsics:
    """Read a SUN RGB-D ``intrinsics.txt``: the 3x3 camera matrix, row-major, 9 numbers.

    The SUN RGB-D toolbox (MATLAB) uses a 1-based pixel grid, so the principal
    point is converted to the kit's 0-based grid (minus 1).

    Raises:
        KitError: missing file, or not nine numbers forming [[fx 0 cx] [0 fy cy] [0 0 1]].
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise KitError(f"cannot read camera intrinsics {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise KitError(f"{path}: not text; expected the 9 numbers of a 3x3 camera matrix") from None
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        values = []
    if len(values) != 9 or not all(math.isfinite(v) for v in values):
        raise KitError(f"{path}: expected the 9 numbers of a 3x3 camera matrix (row-major)")
    K = np.array(values).reshape(3, 3)  # row-major: [fx 0 cx; 0 fy cy; 0 0 1]
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise KitError(
            f"{path}: not a camera matrix [[fx 0 cx] [0 fy cy] [0 0 1]] with positive focal lengths"
        )
    return Intrinsics.from_matrix(K, one_based=True)
