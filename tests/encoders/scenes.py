"""Analytic test scenes: the depth of a box-shaped room seen from a known camera pose.

Each pixel's ray is intersected with the floor, the walls and the ceiling
(numpy ray-plane intersection, float64), so depth, surface class, true height
above the floor and the true gravity direction are all known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsod_depth.geometry import Intrinsics

# Surface ids: each plane has its own, so that eroding a mask keeps away from every edge.
FLOOR, CEILING, BACK_WALL, LEFT_WALL, RIGHT_WALL = 1, 2, 3, 4, 5
WALLS = (BACK_WALL, LEFT_WALL, RIGHT_WALL)


@dataclass(frozen=True)
class Room:
    """A room in a world frame with y pointing down (along gravity), camera at the origin.

    Distances in metres from the camera: floor ``camera_height`` below it, ceiling
    ``ceiling_above`` above, back wall ``back`` ahead, side walls ``left`` / ``right``.
    """

    camera_height: float = 1.2
    ceiling_above: float = 1.4
    back: float = 4.0
    left: float = 2.0
    right: float = 2.5


@dataclass(frozen=True)
class Rendered:
    depth: np.ndarray  # float64 [H, W] metres (z in the camera frame)
    label: np.ndarray  # int [H, W]: the surface id of each pixel
    height_cm: np.ndarray  # float64 [H, W] true height above the floor
    gravity: np.ndarray  # float64 [3] true gravity direction in the camera frame (down)


def camera_to_world(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation [3, 3] taking camera-frame vectors to the world frame.

    Pitch tilts the optical axis down towards the floor; roll turns the image
    about the optical axis.
    """
    p, r = np.radians(pitch_deg), np.radians(roll_deg)
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), np.sin(p)], [0.0, -np.sin(p), np.cos(p)]])
    roll = np.array([[np.cos(r), -np.sin(r), 0.0], [np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return pitch @ roll


def render(
    room: Room, intrinsics: Intrinsics, size: tuple[int, int], pitch_deg: float, roll_deg: float
) -> Rendered:
    """Render the room from the origin with the given pose; ``size`` = (height, width)."""
    height, width = size
    rot = camera_to_world(pitch_deg, roll_deg)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)  # [H, W] each
    rays = np.stack(
        [(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones_like(u)], -1
    )  # [H, W, 3]
    world = rays @ rot.T  # [H, W, 3] ray directions in the world frame (camera z component = 1)
    planes = [  # (axis, coordinate, label)
        (1, room.camera_height, FLOOR),
        (1, -room.ceiling_above, CEILING),
        (2, room.back, BACK_WALL),
        (0, -room.left, LEFT_WALL),
        (0, room.right, RIGHT_WALL),
    ]
    best = np.full((height, width), np.inf)
    label = np.zeros((height, width), dtype=int)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, coordinate, kind in planes:
            t = coordinate / world[..., axis]
            hit = (t > 0) & (t < best)
            best[hit] = t[hit]
            label[hit] = kind
    if not np.isfinite(best).all():
        raise ValueError("some rays leave the room")
    y_world = best * world[..., 1]  # metres below the camera
    return Rendered(
        depth=best,  # the ray's camera z component is 1, so t is the depth
        label=label,
        height_cm=(room.camera_height - y_world) * 100.0,
        gravity=rot.T @ np.array([0.0, 1.0, 0.0]),
    )
