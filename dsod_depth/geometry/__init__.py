"""Camera geometry: intrinsics, back-projection, normals, gravity (numpy and torch), box sums, and
filling the holes of raw depth (:mod:`.fill`)."""

from dsod_depth.geometry.backproject import backproject, valid_points
from dsod_depth.geometry.boxsum import box_sum
from dsod_depth.geometry.camera import Intrinsics, read_sunrgbd_intrinsics
from dsod_depth.geometry.gravity import estimate_gravity, height_above_floor, rotation_to_gravity
from dsod_depth.geometry.normals import surface_normals

__all__ = [
    "Intrinsics",
    "backproject",
    "box_sum",
    "estimate_gravity",
    "height_above_floor",
    "read_sunrgbd_intrinsics",
    "rotation_to_gravity",
    "surface_normals",
    "valid_points",
]
