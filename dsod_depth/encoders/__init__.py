"""Depth encoders: registry name -> fn(depth, raw_depth, intrinsics) -> float32 [C, H, W].

Registered: ``raw`` (1 channel, metres), ``disparity`` (1, 1/m), ``jet`` (3,
colourised depth 0..255), ``normals`` (3, unit normals), ``hha`` (3, Gupta's HHA
0..255). Outputs are not normalised; the data loader applies per-channel
mean/std computed on the training split.
"""

from dsod_depth.encoders import simple as _simple  # noqa: F401  (registers raw, disparity, jet, normals)
from dsod_depth.encoders.base import (
    ENCODERS,
    encode,
    needs_camera,
    num_channels,
    register_encoder,
    validate_depth,
)
from dsod_depth.encoders.hha import hha_channels, hha_image, hha_image_torch, matlab_uint8

__all__ = [
    "ENCODERS",
    "encode",
    "hha_channels",
    "hha_image",
    "hha_image_torch",
    "matlab_uint8",
    "num_channels",
    "needs_camera",
    "register_encoder",
    "validate_depth",
]
