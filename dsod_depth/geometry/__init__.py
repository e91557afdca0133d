"""Camera geometry: intrinsics, back-projection, normals, gravity."""

from dsod_depth.geometry.camera import Intrinsics

__all__ = ["Intrinsics"]
