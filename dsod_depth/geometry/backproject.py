"""Back-projection of depth images to camera-frame point clouds (numpy and torch, batched).

Pinhole model on the kit's 0-based pixel grid (see :mod:`dsod_depth.geometry.camera`):
pixel (u, v) with depth z goes to ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``,
``z`` -- camera frame with x right, y down, z forward, in the depth's unit. This
is also Open3D's convention (``PointCloud.create_from_depth_image``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.geometry import _arrays
from dsod_depth.geometry.camera import Intrinsics


def _per_frame(like: Any, intrinsics: Intrinsics | Sequence[Intrinsics], batch: int) -> list[Any]:
    """fx, fy, cx, cy as arrays [B, 1, 1] matching ``like`` (one camera or one per frame)."""
    cams = [intrinsics] * batch if isinstance(intrinsics, Intrinsics) else list(intrinsics)
    if len(cams) != batch:
        raise KitError(f"got {len(cams)} intrinsics for a batch of {batch} depth images")
    return [_arrays.as_column(like, [getattr(c, k) for c in cams]) for k in ("fx", "fy", "cx", "cy")]


def backproject(depth: Any, intrinsics: Intrinsics | Sequence[Intrinsics]) -> Any:
    """Camera-frame point of every pixel.

    Args:
        depth: float [H, W] or [B, H, W] (numpy array or torch tensor, any
            device), e.g. metres; 0 = missing.
        intrinsics: the camera, or one per frame of a batch.

    Returns:
        float [H, W, 3] or [B, H, W, 3] of the same kind, dtype and device:
        (x, y, z) per pixel; a missing pixel gives (0, 0, 0).
    """
    single = depth.ndim == 2
    d = depth[None] if single else depth  # [H, W] -> [1, H, W]
    if d.ndim != 3:
        raise KitError(f"depth must be [H, W] or [B, H, W], got shape {tuple(depth.shape)}")
    if not (d.is_floating_point() if _arrays.is_torch(d) else np.issubdtype(d.dtype, np.floating)):
        raise KitError(f"depth must be a float array, got {d.dtype}")
    batch, height, width = d.shape
    fx, fy, cx, cy = _per_frame(d, intrinsics, batch)
    u = _arrays.arange(d, width)  # [W]
    v = _arrays.arange(d, height).reshape(height, 1)  # [H] -> [H, 1]
    xp = _arrays.namespace(d)
    points = xp.stack([((u - cx) * d) / fx, ((v - cy) * d) / fy, d], -1)  # 3 x [B, H, W] -> [B, H, W, 3]
    return points[0] if single else points


def valid_points(depth: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """The points of the pixels with depth > 0, as a list.

    Args:
        depth: float [H, W] numpy depth (0 = missing).
        intrinsics: the camera.

    Returns:
        (points, index): float [N, 3] points in row-major pixel order and int64
        [N] flat pixel indices ``v * W + u`` they come from.
    """
    points = backproject(np.asarray(depth), intrinsics)  # [H, W, 3]
    index = np.flatnonzero(np.asarray(depth) > 0)
    return points.reshape(-1, 3)[index], index  # [H, W, 3] -> [H*W, 3] -> [N, 3]
