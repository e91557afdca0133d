"""Encoder registry and the checks every depth encoder applies to its input.

An encoder maps ``(depth, raw_depth, intrinsics)`` -- filled depth in metres
[H, W], raw depth in metres [H, W] with 0 where the sensor gave nothing, and the
camera (:class:`~dsod_depth.geometry.Intrinsics`, 0-based) -- to float32
[C, H, W] for the network, not normalised (per-channel mean/std are applied by
the data loader). Encoders are registered with :func:`register_encoder`, which
wraps them with :func:`validate_depth` so that every call through the registry
refuses 8-bit images, NaN, negative or all-invalid depth with a clear error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.geometry import _arrays
from dsod_depth.geometry.camera import Intrinsics
from dsod_depth.registry import Registry

EncoderFn = Callable[[np.ndarray, np.ndarray, Intrinsics], np.ndarray]

ENCODERS: Registry[EncoderFn] = Registry("depth encoder")
_NUM_CHANNELS: dict[str, int] = {}
_NEEDS_CAMERA: dict[str, bool] = {}

# Larger values are not metres (a 16-bit PNG read without its depth scale reaches 65535).
MAX_DEPTH_M = 1000.0


def _fix_hint(what: str) -> str:
    return (
        f"pass {what} as float metres; read depth files with "
        "dsod_depth.data.depth_io.read_depth(path, depth_scale=...)"
    )


def validate_depth(depth: Any, *, what: str = "depth") -> np.ndarray:
    """Check a depth map and return it as float64 [H, W] metres.

    Args:
        depth: array-like [H, W], float metres, 0 = missing.
        what: name used in error messages ("depth", "raw depth", ...).

    Returns:
        float64 [H, W] (no copy when it already is).

    Raises:
        KitError: not 2-D; 8-bit, integer, boolean or non-numeric dtype; NaN or
            inf; negative values; values above ``MAX_DEPTH_M``; no valid pixel.
    """
    arr = np.asarray(depth)
    if arr.ndim != 2:
        raise KitError(f"{what} must be a 2-D array [H, W] in metres, got shape {arr.shape}")
    if arr.dtype.itemsize == 1 and arr.dtype.kind in "iub":
        raise KitError(
            f"{what} is 8-bit ({arr.dtype}): 8-bit images cannot hold metric depth; {_fix_hint(what)}"
        )
    if arr.dtype.kind != "f":
        raise KitError(f"{what} has dtype {arr.dtype}, expected float metres; {_fix_hint(what)}")
    return _check_values(arr, what).astype(np.float64, copy=False)


def _check_values(arr: Any, what: str) -> Any:
    """Value checks shared by the numpy and torch validators (``arr``: float, any shape)."""
    if not bool(_arrays.namespace(arr).isfinite(arr).all()):
        raise KitError(f"{what} contains NaN or infinite values; mark missing pixels with 0 instead")
    low, high = float(arr.min()), float(arr.max())
    if low < 0:
        raise KitError(f"{what} has negative values (minimum {low:g}); depth is >= 0 metres, 0 = missing")
    if high > MAX_DEPTH_M:
        raise KitError(
            f"{what} reaches {high:g}, which is not a depth in metres (millimetres or raw sensor units?); "
            "divide by the depth scale"
        )
    if high == 0:
        raise KitError(f"{what} has no valid pixel (all zero)")
    return arr


def validate_depth_tensor(depth: Any, *, what: str = "depth") -> Any:
    """Torch counterpart of :func:`validate_depth` for a batch [B, H, W]; returns float64.

    Every frame of the batch must have a valid pixel.
    """
    import torch

    if not isinstance(depth, torch.Tensor):
        raise KitError(f"{what} must be a torch tensor, got {type(depth).__name__}")
    if depth.ndim != 3:
        raise KitError(
            f"{what} must be a tensor [B, H, W] (or [H, W]) in metres, got shape {tuple(depth.shape)}"
        )
    if not depth.is_floating_point():
        raise KitError(f"{what} has dtype {depth.dtype}, expected float metres; {_fix_hint(what)}")
    _check_values(depth, what)
    empty = depth.reshape(depth.shape[0], -1).amax(dim=1) == 0  # [B, H, W] -> [B, H*W] -> [B]
    if bool(empty.any()):
        frames = torch.nonzero(empty).flatten().tolist()
        raise KitError(f"{what} has no valid pixel (all zero) in frame(s) {frames}")
    return depth.to(torch.float64)


def register_encoder(
    name: str, num_channels: int, *, needs_camera: bool = True
) -> Callable[[EncoderFn], EncoderFn]:
    """Register an encoder ``fn(depth, raw_depth, intrinsics) -> float32 [C, H, W]``;
    ``needs_camera=False`` declares that it ignores ``intrinsics`` (so frames without a known camera
    can be encoded with any :class:`Intrinsics`).

    The registered callable validates its inputs first (``raw_depth=None`` means
    "same as depth") and checks the output's shape and dtype.
    """

    def add(fn: EncoderFn) -> EncoderFn:
        @functools.wraps(fn)
        def encoder(depth: Any, raw_depth: Any, intrinsics: Intrinsics) -> np.ndarray:
            d = validate_depth(depth, what="depth")
            r = d if raw_depth is None else validate_depth(raw_depth, what="raw depth")
            if r.shape != d.shape:
                raise KitError(f"depth {d.shape} and raw depth {r.shape} must have the same shape")
            if not isinstance(intrinsics, Intrinsics):
                kind = type(intrinsics).__name__
                raise KitError(f"intrinsics must be a dsod_depth.geometry.Intrinsics, got {kind}")
            out = fn(d, r, intrinsics)
            if out.shape != (num_channels, *d.shape) or out.dtype != np.float32:
                raise AssertionError(f"encoder {name!r} returned {out.dtype} {out.shape}")
            return out

        ENCODERS.register(name)(encoder)
        _NUM_CHANNELS[name] = num_channels
        _NEEDS_CAMERA[name] = needs_camera
        return fn

    return add


def num_channels(name: str) -> int:
    """Number of output channels of a registered encoder (KitError for an unknown name)."""
    ENCODERS.get(name)
    return _NUM_CHANNELS[name]


def needs_camera(name: str) -> bool:
    """Whether a registered encoder uses the camera intrinsics (KitError for an unknown name)."""
    ENCODERS.get(name)
    return _NEEDS_CAMERA[name]


def encode(name: str, depth: Any, raw_depth: Any, intrinsics: Intrinsics) -> np.ndarray:
    """Encode one frame with the named encoder.

    Args:
        name: a registered encoder (``ENCODERS.list()``).
        depth: float [H, W] filled depth, metres.
        raw_depth: float [H, W] raw depth, metres, 0 = missing (None = ``depth``).
        intrinsics: the camera, 0-based pixel grid.

    Returns:
        float32 [C, H, W], not normalised.
    """
    return ENCODERS.get(name)(depth, raw_depth, intrinsics)
