"""HHA of analytic rooms: known camera height, pitch and roll give known channels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from dsod_depth.encoders import hha_channels, hha_image, hha_image_torch
from dsod_depth.geometry import Intrinsics

from .matlab_reference import save_hha
from .scenes import CEILING, FLOOR, WALLS, Room, render

CAM = Intrinsics.nyu()
POSES = [(12.0, 4.0), (0.0, 0.0), (25.0, -8.0), (-5.0, 10.0)]  # (pitch down, roll) degrees


def _interior(label: np.ndarray, ids) -> np.ndarray:
    """Pixels of the given surfaces at least 4 pixels (Chebyshev) from any other surface."""
    mask = np.isin(label, ids)
    # Each surface on its own, so that edges between two walls are excluded too.
    return np.any([ndimage.binary_erosion(label == i, np.ones((3, 3)), iterations=4) for i in ids], 0) & mask


@pytest.mark.parametrize(("pitch", "roll"), POSES)
def test_room_seen_from_a_known_pose(pitch, roll):
    room = Room(camera_height=1.2)
    scene = render(room, CAM, (480, 640), pitch, roll)
    _, gravity = hha_channels(scene.depth[None], scene.depth[None], CAM.fx, CAM.fy, CAM.cx, CAM.cy)
    error_deg = math.degrees(math.acos(min(1.0, float(gravity[0] @ scene.gravity))))
    assert error_deg < 1.0

    hha = hha_image(scene.depth, scene.depth, CAM)
    disparity, height, angle = (hha[..., k].astype(int) for k in range(3))
    floor = _interior(scene.label, [FLOOR])
    walls = _interior(scene.label, WALLS)
    assert floor.sum() > 1000 and walls.sum() > 1000
    # Height: the floor is the lowest surface (1.2 m below the camera), so floor
    # pixels read 0 and wall pixels their height above it in cm.
    assert np.abs(height[floor]).max() <= 2
    on_walls = walls & (scene.height_cm > 10) & (scene.height_cm < 245)
    assert np.abs(height[on_walls] - scene.height_cm[on_walls]).max() <= 2
    # Angle + 38: floors are parallel to gravity (0 deg), walls perpendicular (90 deg).
    assert (angle[floor] == 38).all()
    assert (angle[walls] == 128).all()
    ceiling = _interior(scene.label, [CEILING])
    assert (angle[ceiling] == 218).all()  # its normal points up, against gravity
    expected_disparity = np.clip(np.floor(31000 / np.maximum(scene.depth * 100, 100) + 0.5), 0, 255)
    np.testing.assert_array_equal(disparity, expected_disparity)


def test_floor_out_of_view_is_assumed_130_cm_below_the_camera():
    # Looking 20 degrees up at the back wall from 1.2 m: the lowest visible point is
    # less than 90 cm below the camera, so the original places the floor at -130 cm.
    scene = render(Room(camera_height=1.2), CAM, (480, 640), -20.0, 0.0)
    assert (scene.label != FLOOR).all()
    lowest_below_camera = (120.0 - scene.height_cm).max()
    assert lowest_below_camera < 90.0
    height = hha_image(scene.depth, scene.depth, CAM)[..., 1].astype(int)
    walls = _interior(scene.label, WALLS)
    expected = 130.0 - (120.0 - scene.height_cm)  # height relative to the assumed floor
    assert np.abs(height[walls] - np.clip(expected[walls], 0, 255)).max() <= 2


def test_scene_with_holes_matches_the_literal_transcription_away_from_holes():
    scene = render(Room(), CAM, (120, 160), 10.0, 3.0)
    cam = CAM.crop(0, 0)
    rng = np.random.default_rng(0)
    raw = scene.depth.copy()
    raw[ndimage.binary_dilation(rng.random(raw.shape) < 0.01, iterations=3)] = 0.0  # blobs of missing depth
    ours = hha_image(scene.depth, raw, cam)
    ref = save_hha(scene.depth, raw, cam.fx, cam.fy, cam.cx + 1, cam.cy + 1)
    diff = np.abs(ours.astype(int) - ref.astype(int)).max(axis=2)
    near_holes = ndimage.binary_dilation(raw == 0, structure=np.ones((5, 5), bool))
    assert diff[~near_holes].max() <= 1
    assert (diff == 0).mean() > 0.99


def test_torch_batch_with_different_cameras_equals_numpy_per_frame():
    a = render(Room(), CAM, (96, 128), 8.0, 2.0)
    cam_b = Intrinsics(300.0, 305.0, 70.0, 40.0)
    b = render(Room(camera_height=1.5), cam_b, (96, 128), 15.0, -6.0)
    raw_b = np.where(np.arange(128) % 17 == 0, 0.0, b.depth)  # some missing columns
    depth = torch.from_numpy(np.stack([a.depth, b.depth]))
    batch = hha_image_torch(depth, torch.from_numpy(np.stack([a.depth, raw_b])), [CAM, cam_b])
    np.testing.assert_array_equal(batch[0].numpy(), hha_image(a.depth, a.depth, CAM))
    np.testing.assert_array_equal(batch[1].numpy(), hha_image(b.depth, raw_b, cam_b))
    single = hha_image_torch(torch.from_numpy(b.depth).float(), None, cam_b)  # float32 input is promoted
    assert single.shape == (96, 128, 3)
