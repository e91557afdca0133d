"""Back-projection (numpy, torch, batched) and the Open3D conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics, backproject, valid_points

CAM = Intrinsics(fx=500.0, fy=480.0, cx=31.5, cy=20.25)


def _depth(seed: int = 0, shape=(24, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 5.0, shape)
    depth[rng.random(shape) < 0.2] = 0.0
    return depth


def test_pixel_formula_and_missing_pixels():
    depth = _depth()
    points = backproject(depth, CAM)
    assert points.shape == (24, 32, 3)
    v, u = 7, 19
    z = depth[v, u]
    expected = [(u - CAM.cx) * z / CAM.fx, (v - CAM.cy) * z / CAM.fy, z]
    np.testing.assert_allclose(points[v, u], expected, rtol=1e-15)
    assert (points[depth == 0] == 0).all()
    # The principal point back-projects onto the optical axis.
    on_axis = backproject(np.ones((3, 3)), Intrinsics(100.0, 100.0, 1.0, 1.0))
    np.testing.assert_array_equal(on_axis[1, 1], [0.0, 0.0, 1.0])


def test_batched_torch_matches_numpy_per_frame():
    depths = np.stack([_depth(1), _depth(2)])
    cams = [CAM, CAM.crop(3, 2)]
    batched = backproject(torch.from_numpy(depths), cams)
    assert isinstance(batched, torch.Tensor) and batched.shape == (2, 24, 32, 3)
    for i in range(2):
        np.testing.assert_array_equal(batched[i].numpy(), backproject(depths[i], cams[i]))


def test_points_move_with_crop_and_flip_consistently():
    depth = _depth(3)
    full = backproject(depth, CAM)
    cropped = backproject(depth[4:, 5:], CAM.crop(5, 4))
    np.testing.assert_allclose(cropped, full[4:, 5:], rtol=1e-12, atol=1e-12)
    flipped = backproject(depth[:, ::-1].copy(), CAM.flip_horizontal(32))
    mirrored = full[:, ::-1] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(flipped, mirrored, rtol=1e-12, atol=1e-12)


def test_valid_points_lists_the_nonzero_pixels():
    depth = _depth(4)
    points, index = valid_points(depth, CAM)
    assert len(points) == (depth > 0).sum()
    np.testing.assert_array_equal(points, backproject(depth, CAM).reshape(-1, 3)[index])


def test_errors():
    with pytest.raises(KitError, match="batch of 2"):
        backproject(np.ones((2, 4, 4)), [CAM])
    with pytest.raises(KitError, match="float"):
        backproject(np.ones((4, 4), dtype=np.uint16), CAM)
    with pytest.raises(KitError, match="H, W"):
        backproject(np.ones(4), CAM)


def test_open3d_point_cloud_agrees_with_open3d_back_projection():
    o3d = pytest.importorskip("open3d")
    from dsod_depth.geometry.open3d_io import (
        from_open3d_intrinsics,
        from_open3d_pointcloud,
        to_open3d_intrinsics,
        to_open3d_pointcloud,
    )

    depth = _depth(5)
    rgb = np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ours = to_open3d_pointcloud(depth, CAM, rgb)
    theirs = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth.astype(np.float32)),
        to_open3d_intrinsics(CAM, 32, 24),
        depth_scale=1.0,
        depth_trunc=100.0,
    )
    points, colors = from_open3d_pointcloud(ours)
    # Open3D back-projects float32 depth, hence the tolerance.
    np.testing.assert_allclose(points, np.asarray(theirs.points), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(colors * 255.0, rgb.reshape(-1, 3)[(depth > 0).ravel()], atol=1e-9)
    assert from_open3d_intrinsics(to_open3d_intrinsics(CAM, 32, 24)) == CAM


def test_open3d_rgbd_round_trip():
    pytest.importorskip("open3d")
    from dsod_depth.geometry.open3d_io import from_open3d_rgbd, to_open3d_rgbd

    depth = _depth(6).astype(np.float32)
    rgb = np.random.default_rng(6).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    back_rgb, back_depth = from_open3d_rgbd(to_open3d_rgbd(depth, rgb))
    np.testing.assert_array_equal(back_rgb, rgb)
    np.testing.assert_array_equal(back_depth, depth)
    with pytest.raises(KitError, match="float metres"):
        to_open3d_rgbd((depth * 1000).astype(np.uint16))
