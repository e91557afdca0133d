"""`RGBDSample`: one annotated frame, as numpy arrays, before any transform (DESIGN "Data contract").

Units and conventions (contract):

- depth is float32 metres, filled (in-painted), 0 = invalid; never 8-bit, never divided by 255;
- raw_depth is float32 metres as measured by the sensor, 0 = missing (holes);
- intrinsics are for a 0-based pixel grid (pixel u back-projects to ``x = (u - cx) z / fx``);
- boxes are continuous pixel coordinates x1, y1, x2, y2 where pixel i spans [i, i + 1], so the
  tight box of a mask whose columns run from a to b (inclusive) is [a, b + 1];
- labels are 0-based indices into the dataset's class list (the detector adds background itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = ["RGBDSample"]


@dataclass(eq=False)
class RGBDSample:
    """One RGB-D frame with its 2D boxes.

    Attributes:
        rgb: uint8 [H, W, 3] colour image, or None for depth-only datasets.
        depth: float32 [H, W] filled depth in metres, 0 = invalid.
        raw_depth: float32 [H, W] sensor depth in metres, 0 = missing; equals ``depth`` when the
            dataset has no raw depth.
        intrinsics: camera of this frame on the 0-based pixel grid.
        boxes: float32 [N, 4] x1, y1, x2, y2 in continuous pixel coordinates, inside [0, W] × [0, H]
            with x1 < x2 and y1 < y2.
        labels: int64 [N] 0-based class indices.
        difficult: bool [N].
        image_id: stable identifier, unique within the dataset.
        hha: optional uint8 [H, W, 3] HHA image (disparity, height, angle) precomputed at preparation.
        meta: optional per-frame extras as float arrays, e.g. ``gravity`` (float64 [3], unit vector in
            the camera frame pointing down) and ``camera_to_world`` (float64 [4, 4]) for SynthRooms.

    The constructor validates everything and raises :class:`KitError` naming the sample.
    """

    rgb: np.ndarray | None
    depth: np.ndarray
    raw_depth: np.ndarray
    intrinsics: Intrinsics
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: str
    hha: np.ndarray | None = None
    meta: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def validate(self, num_classes: int | None = None) -> RGBDSample:
        """Check shapes, dtypes, units and ranges; ``num_classes`` also bounds the labels.

        Returns self so that calls can be chained. Raises :class:`KitError` with the image id.
        """
        if not isinstance(self.image_id, str) or not self.image_id:
            raise KitError(f"sample image_id must be a non-empty string, got {self.image_id!r}")
        name = f"sample {self.image_id!r}"
        depth = _check_depth(self.depth, f"{name}: depth")
        if depth.dtype != np.float32 or depth.ndim != 2:
            raise KitError(
                f"{name}: depth must be float32 [H, W] metres, got {depth.dtype} {list(depth.shape)}"
            )
        height, width = depth.shape
        raw = _check_depth(self.raw_depth, f"{name}: raw_depth")
        if raw.dtype != np.float32 or raw.shape != depth.shape:
            raise KitError(
                f"{name}: raw_depth must be float32 {[height, width]} metres like depth, "
                f"got {raw.dtype} {list(raw.shape)}"
            )
        for key, image in (("rgb", self.rgb), ("hha", self.hha)):
            if image is None:
                continue
            if (
                not isinstance(image, np.ndarray)
                or image.dtype != np.uint8
                or image.shape != (height, width, 3)
            ):
                got = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image)
                raise KitError(f"{name}: {key} must be uint8 [{height}, {width}, 3] like depth, got {got}")
        if not isinstance(self.intrinsics, Intrinsics):
            raise KitError(f"{name}: intrinsics must be a dsod_depth.geometry.Intrinsics")
        if (
            not all(np.isfinite(v) for v in self.intrinsics.as_tuple())
            or min(self.intrinsics.fx, self.intrinsics.fy) <= 0
        ):
            raise KitError(
                f"{name}: intrinsics must be finite with positive focal lengths, got {self.intrinsics}"
            )
        self._validate_boxes(name, height, width, num_classes)
        for key, value in self.meta.items():
            if not isinstance(value, np.ndarray) or not np.all(np.isfinite(value)):
                raise KitError(f"{name}: meta[{key!r}] must be a finite numpy array")
        return self

    def _validate_boxes(self, name: str, height: int, width: int, num_classes: int | None) -> None:
        boxes, labels, difficult = self.boxes, self.labels, self.difficult
        if (
            not isinstance(boxes, np.ndarray)
            or boxes.dtype != np.float32
            or boxes.ndim != 2
            or boxes.shape[1] != 4
        ):
            got = f"{boxes.dtype} {list(boxes.shape)}" if isinstance(boxes, np.ndarray) else type(boxes)
            raise KitError(f"{name}: boxes must be float32 [N, 4] (x1, y1, x2, y2 pixels), got {got}")
        num = boxes.shape[0]
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (num,):
            got = f"{labels.dtype} {list(labels.shape)}" if isinstance(labels, np.ndarray) else type(labels)
            raise KitError(f"{name}: labels must be int64 [{num}] like boxes, got {got}")
        if not isinstance(difficult, np.ndarray) or difficult.dtype != np.bool_ or difficult.shape != (num,):
            got = (
                f"{difficult.dtype} {list(difficult.shape)}"
                if isinstance(difficult, np.ndarray)
                else type(difficult)
            )
            raise KitError(f"{name}: difficult must be bool [{num}] like boxes, got {got}")
        if num == 0:
            return
        if not np.all(np.isfinite(boxes)):
            raise KitError(f"{name}: boxes contain NaN or infinite values")
        x1, y1, x2, y2 = boxes.T
        bad = (x1 < 0) | (y1 < 0) | (x2 > width) | (y2 > height) | (x2 <= x1) | (y2 <= y1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise KitError(
                f"{name}: box {i} = {boxes[i].tolist()} is empty or outside the {width}×{height} image "
                "(expected 0 ≤ x1 < x2 ≤ W and 0 ≤ y1 < y2 ≤ H in pixels)"
            )
        if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else "≥ 0"
            raise KitError(f"{name}: labels must be 0-based class indices in {bound}, got {labels.tolist()}")


def _check_depth(depth: object, what: str) -> np.ndarray:
    """Reject non-arrays, 8-bit depth, NaN/inf and negative values with one clear message."""
    if not isinstance(depth, np.ndarray):
        raise KitError(f"{what} must be a numpy array, got {type(depth).__name__}")
    if depth.dtype in (np.uint8, np.int8):
        raise KitError(
            f"{what} is 8-bit; depth must be float32 metres (convert the sensor's units, never /255)"
        )
    if depth.dtype.kind == "f" and not np.all(np.isfinite(depth)):
        raise KitError(f"{what} contains NaN or infinite values; use 0 for invalid pixels")
    if depth.size and depth.min() < 0:
        raise KitError(f"{what} has negative values; depth is metres ≥ 0 with 0 = invalid")
    return depth
