"""The cheap depth encodings users compare with HHA (REFERENCE §2, last paragraph).

All take validated float64 metres and return float32 [C, H, W], not normalised:

* ``raw`` -- the filled depth in metres (1 channel);
* ``disparity`` -- 1 / depth in 1/m, 0 where the depth is 0 (1 channel);
* ``jet`` -- colourised depth (Eitel et al. 2015): depth over a fixed range mapped
  through the jet colour map, RGB values 0..255 (3 channels);
* ``normals`` -- unit surface normals (x, y, z; camera frame) from Gupta's
  7 x 7 least-squares fit, 0 where undefined (3 channels).
"""

from __future__ import annotations

import functools

import numpy as np

from dsod_depth.encoders.base import register_encoder
from dsod_depth.geometry.camera import Intrinsics
from dsod_depth.geometry.normals import surface_normals

# Depth below this is treated as this, so that disparity stays finite and bounded (100 1/m).
MIN_DISPARITY_DEPTH_M = 0.01
# Fixed depth range of the jet encoding: 0 m -> dark blue, 10 m (the NYU maximum) and
# beyond -> dark red. A fixed range (rather than per-image min/max as in Eitel et al.)
# keeps one colour meaning one distance across a dataset. Missing depth is black.
JET_RANGE_M = (0.0, 10.0)
NORMALS_RADIUS = 3  # 7 x 7 window, as for the HHA angle channel


@register_encoder("raw", num_channels=1, needs_camera=False)
def encode_raw(depth: np.ndarray, raw_depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Filled depth in metres: float32 [1, H, W]."""
    return depth[None].astype(np.float32)  # [H, W] -> [1, H, W]


@register_encoder("disparity", num_channels=1, needs_camera=False)
def encode_disparity(depth: np.ndarray, raw_depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Inverse depth in 1/m (depth clamped to >= 1 cm), 0 where depth is 0: float32 [1, H, W]."""
    disparity = np.where(depth > 0, 1.0 / np.maximum(depth, MIN_DISPARITY_DEPTH_M), 0.0)
    return disparity[None].astype(np.float32)  # [H, W] -> [1, H, W]


@functools.lru_cache(maxsize=1)
def _jet_table() -> np.ndarray:
    """The 256-entry jet colour map as float32 [256, 3], values 0..255 (matplotlib's 'jet')."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.float32)


@register_encoder("jet", num_channels=3, needs_camera=False)
def encode_jet(depth: np.ndarray, raw_depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Colourised depth: float32 [3, H, W] RGB in 0..255 over ``JET_RANGE_M``; missing = 0."""
    low, high = JET_RANGE_M
    # Quantise to the 256 colours of the table, as an 8-bit colourised image would.
    level = np.rint(np.clip((depth - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.intp)
    rgb = _jet_table()[level]  # [H, W] -> [H, W, 3]
    rgb[depth <= 0] = 0.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))  # [H, W, 3] -> [3, H, W]


@register_encoder("normals", num_channels=3)
def encode_normals(depth: np.ndarray, raw_depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Unit surface normals (x right, y down, z forward), 0 where undefined: float32 [3, H, W].

    Points come from the filled depth; missing raw pixels are left out of the fits,
    exactly as for the HHA angle channel.
    """
    normals = surface_normals(depth, intrinsics, radius=NORMALS_RADIUS, valid=raw_depth > 0)
    return np.nan_to_num(normals, nan=0.0).astype(np.float32)
