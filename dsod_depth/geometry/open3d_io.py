"""Conversion to and from Open3D, for users who inspect or process frames there.

Open3D uses the same pinhole convention as the kit (0-based pixel grid, x right,
y down, z forward), so intrinsics pass through unchanged. Depth goes to Open3D
as float32 metres with ``depth_scale=1`` (never as 8-bit). Open3D is imported
only when one of these functions is called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.geometry.backproject import valid_points
from dsod_depth.geometry.camera import Intrinsics


def _o3d() -> Any:
    import open3d

    return open3d


def to_open3d_intrinsics(intrinsics: Intrinsics, width: int, height: int) -> Any:
    """An ``open3d.camera.PinholeCameraIntrinsic`` for an image of ``width`` x ``height``."""
    return _o3d().camera.PinholeCameraIntrinsic(
        int(width), int(height), intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    )


def from_open3d_intrinsics(camera: Any) -> Intrinsics:
    """The kit's :class:`Intrinsics` from an ``open3d.camera.PinholeCameraIntrinsic``."""
    (fx, fy), (cx, cy) = camera.get_focal_length(), camera.get_principal_point()
    return Intrinsics(float(fx), float(fy), float(cx), float(cy))


def to_open3d_rgbd(depth: np.ndarray, rgb: np.ndarray | None = None, *, max_depth: float = 1000.0) -> Any:
    """An ``open3d.geometry.RGBDImage`` from depth in metres and an optional colour image.

    Args:
        depth: float [H, W] metres, 0 = missing.
        rgb: uint8 [H, W, 3] or None (a grey image is used).
        max_depth: metres beyond which Open3D drops depth (its ``depth_trunc``).

    Returns:
        RGBDImage with float32 depth in metres and a colour (not intensity) image.
    """
    o3d = _o3d()
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype.kind != "f":
        raise KitError(f"depth must be float metres [H, W], got {depth.dtype} {depth.shape}")
    if rgb is None:
        rgb = np.full((*depth.shape, 3), 128, np.uint8)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape != (*depth.shape, 3):
        raise KitError(f"rgb must be uint8 {(*depth.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    return o3d.geometry.RGBDImage.create_from_color_and_depth(
        o3d.geometry.Image(np.ascontiguousarray(rgb)),
        o3d.geometry.Image(np.ascontiguousarray(depth, dtype=np.float32)),
        depth_scale=1.0,
        depth_trunc=float(max_depth),
        convert_rgb_to_intensity=False,
    )


def from_open3d_rgbd(rgbd: Any) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [H, W, 3], depth float32 [H, W] metres) of an RGBDImage made with depth_scale 1."""
    color = np.asarray(rgbd.color)
    if color.dtype != np.uint8:  # Open3D keeps colour as float 0..1 in some paths
        color = np.clip(np.rint(color * 255.0), 0, 255).astype(np.uint8)
    return np.array(color), np.array(np.asarray(rgbd.depth), dtype=np.float32)


def to_open3d_pointcloud(depth: np.ndarray, intrinsics: Intrinsics, rgb: np.ndarray | None = None) -> Any:
    """An ``open3d.geometry.PointCloud`` of the pixels with depth > 0.

    Args:
        depth: float [H, W] metres; intrinsics: its camera; rgb: optional uint8 [H, W, 3].

    Returns:
        PointCloud with points in metres (camera frame) in row-major pixel order,
        and colours in [0, 1] when ``rgb`` is given.
    """
    o3d = _o3d()
    points, index = valid_points(np.asarray(depth, dtype=np.float64), intrinsics)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if rgb is not None:
        colors = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)[index] / 255.0  # [H, W, 3] -> [N, 3]
        cloud.colors = o3d.utility.Vector3dVector(colors)
    return cloud


def from_open3d_pointcloud(cloud: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(points float64 [N, 3], colours float64 [N, 3] in [0, 1] or None) of a PointCloud."""
    points = np.array(np.asarray(cloud.points), dtype=np.float64)
    colors = np.array(np.asarray(cloud.colors), dtype=np.float64) if cloud.has_colors() else None
    return points, colors
