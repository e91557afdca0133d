"""HHA: horizontal disparity, height above ground, angle with gravity (Gupta et al. 2014).

Reproduces the MATLAB original (rcnn-depth ``saveHHA`` / ``processDepthImage`` with
rgbdutils) step by step, REFERENCE §2:

1. centimetres: ``z = 100 * D``; points ``((u - cx) z) / fx`` on the toolbox grid;
2. normals by least squares over 7 x 7 (angle) and 21 x 21 (gravity) windows,
   missing raw pixels left out (:mod:`dsod_depth.geometry.normals`);
3. gravity by the 45°/15° iteration, rotation by Rodrigues, height above the
   lowest point with the -90/-130 cm floor rule (:mod:`dsod_depth.geometry.gravity`);
4. angle = ``acosd(clip(n . g))`` where a NaN normal gives 180° (MATLAB's ``max``/``min``
   drop NaN: ``min(1, max(-1, NaN)) = -1``);
5. channels ``31000 / max(z, 100)``, ``h``, ``angle + 128 - 90``, rounded half away
   from zero and saturated like MATLAB ``uint8``.

Float64 throughout: the plane fits cancel many digits and the rounding to
integers must land where MATLAB's does. :func:`hha_channels` runs unchanged on
numpy (one frame) and on torch tensors (a batch, any device). On the CPU both
make the same IEEE operations in the same order and give identical images; on a
GPU the gravity sums are taken in another order and ``acos`` is CUDA's, which
can move a value that lies within ~1e-12 of a rounding boundary by one level.

Deviations from the original, for input where it breaks down: a frame without a
single usable normal keeps gravity [0, 1, 0] (the original returns an undefined
direction), and windows whose normal underflows to zero length cast no gravity
vote (the original lets infinities into its sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dsod_depth.encoders.base import register_encoder, validate_depth, validate_depth_tensor
from dsod_depth.errors import KitError
from dsod_depth.geometry import _arrays
from dsod_depth.geometry.boxsum import FlatLayout
from dsod_depth.geometry.camera import Intrinsics
from dsod_depth.geometry.gravity import (
    estimate_gravity,
    floor_height,
    heights_along_gravity,
    rotation_to_gravity,
)
from dsod_depth.geometry.normals import DEFAULT_BAND_ROWS, BandedNormals, orient_normals, point_cloud_cm

ANGLE_RADIUS = 3  # 7 x 7 window for the normals of the angle channel
GRAVITY_RADIUS = 10  # 21 x 21 window for the normals that vote for gravity
DISPARITY_NUMERATOR = 31000.0  # cm; disparity = 31000 / max(z_cm, 100)
MIN_DEPTH_CM = 100.0


def hha_channels(
    depth_m: Any, raw_m: Any, fx: Any, fy: Any, cx: Any, cy: Any, *, band_rows: int | None = None
) -> tuple[Any, Any]:
    """Unrounded HHA channels and the gravity direction.

    Args:
        depth_m: float64 [B, H, W] filled depth in metres (validated).
        raw_m: float64 [B, H, W] raw depth in metres; only ``raw == 0`` (missing) is used.
        fx, fy, cx, cy: floats or per-frame float64 [B, 1, 1], 0-based principal point.
        band_rows: work in bands of this many rows (CPU cache blocking; the result
            does not depend on it). None = whole frames.

    Returns:
        (channels, gravity): float64 [B, 3, H, W] = (disparity, height in cm,
        angle + 38 in degrees) before rounding, and float64 [B, 3] gravity.
    """
    batch, height, width = depth_m.shape
    channels = _arrays.empty(depth_m, (batch, 3, height, width))
    gravity = _encode(depth_m, raw_m, (fx, fy, cx, cy), band_rows, channels=channels)
    return channels, gravity


def _bands(height: int, band_rows: int | None) -> list[tuple[int, int]]:
    """Image rows ``(top, bottom)`` of each band."""
    step = height if band_rows is None else max(1, band_rows)
    return [(top, min(height, top + step)) for top in range(0, height, step)]


def _encode(
    depth_m: Any,
    raw_m: Any,
    camera: tuple[Any, Any, Any, Any],
    band_rows: int | None,
    *,
    channels: Any = None,
    image: Any = None,
) -> Any:
    """HHA of a batch, written into ``channels`` (unrounded) or ``image`` (uint8); returns gravity.

    Args:
        depth_m, raw_m, camera, band_rows: as for :func:`hha_channels`.
        channels: float [B, 3, H, W] to fill with the unrounded channels, or None.
        image: uint8 [B, H, W, 3] to fill with the rounded image, or None.

    Returns:
        float [B, 3] gravity directions.
    """
    xp = _arrays.namespace(depth_m)
    batch, height, width = depth_m.shape
    bands = _bands(height, band_rows)
    # Normals in the flat zero-margined layout (contiguous shifts; see boxsum), band by band.
    layout = FlatLayout(height, width, GRAVITY_RADIUS)
    # One allocation holds both normal fields (angle, gravity: image rows, flat) and
    # the solver's band buffers; the gravity half is reused for the heights once
    # gravity is known. A single large block is what malloc keeps between frames
    # (its size raises glibc's trim threshold above the rest of the frame's needs),
    # so its pages are not returned and faulted in again at every frame (many
    # separate buffers cost 4,000-7,000 page faults, 10-18 ms, per 640 x 480 frame
    # on one core of the test machines).
    field = batch * 3 * height * layout.row
    solver_size = BandedNormals.memory_size(layout, batch, bands[0][1] - bands[0][0], GRAVITY_RADIUS)
    work = _arrays.empty(depth_m, (2 * field + solver_size,))
    normals, gravity_normals = (work[k * field : (k + 1) * field].reshape(batch, 3, -1) for k in range(2))
    solver = BandedNormals(depth_m, raw_m > 0, *camera, layout, cm_round_trip=True, memory=work[2 * field :])
    for top, bottom in bands:
        local = slice(top * layout.row, bottom * layout.row)
        outs = (normals[..., local], gravity_normals[..., local])  # written in place
        (n, _), points = solver.band((top, bottom), (ANGLE_RADIUS, GRAVITY_RADIUS), (False, True), outs=outs)
        orient_normals(n, points[:, 0], points[:, 1], points[:, 2])
    # The margin columns hold no pixels: give them zero normals (no vote).
    margin = gravity_normals.reshape(batch, 3, height, layout.row)[..., width:]  # [B, 3, H, row - W] view
    margin[...] = 0.0
    # Gravity only looks at n n^T and |n . y|, so its normals need no orientation.
    gravity = estimate_gravity(gravity_normals)
    rotation = rotation_to_gravity(gravity)
    normals = layout.unpack_rows(normals)  # [B, 3, H, W] view

    # First pass: disparity and the height of every point relative to the camera
    # (the floor is the lowest point of the whole frame, known only afterwards).
    # The points come from z = 100 D itself (not the normals' round-tripped z).
    if channels is not None:
        heights = channels[:, 1]
    else:  # in the gravity normals' memory, no longer needed
        heights = gravity_normals.reshape(-1)[: batch * height * width].reshape(batch, height, width)
    for top, bottom in bands:
        z = depth_m[:, top:bottom] * 100.0
        x, y = point_cloud_cm(z, *camera, first_row=top)
        heights[:, top:bottom] = heights_along_gravity(x, y, z, rotation)
        disparity = xp.divide(DISPARITY_NUMERATOR, xp.clip(z, MIN_DEPTH_CM, None, out=z), out=z)
        if channels is not None:
            channels[:, 0, top:bottom] = disparity
        else:
            matlab_uint8(disparity, out=image[:, top:bottom, :, 0])
    floor = floor_height(heights)[:, None, None]  # [B] -> [B, 1, 1]
    # Second pass: height above the floor and the angle with gravity.
    for top, bottom in bands:
        above = heights[:, top:bottom]
        # saveHHA: angl + 128 - 90 ("keeping some slack").
        angle = angles_to_gravity(normals[:, :, top:bottom], gravity)
        angle += 128.0
        angle -= 90.0
        if channels is not None:
            above -= floor
            channels[:, 2, top:bottom] = angle
        else:
            matlab_uint8(above - floor, out=image[:, top:bottom, :, 1])
            matlab_uint8(angle, out=image[:, top:bottom, :, 2])
    return gravity


def angles_to_gravity(normals: Any, gravity: Any) -> Any:
    """Angle in degrees between each normal and gravity, 180 for a NaN normal.

    ``acosd(min(1, max(-1, n . g)))`` as saveHHA computes it: MATLAB's ``max`` and
    ``min`` drop NaN, so a NaN normal gives ``acosd(-1) = 180``.

    Args:
        normals: float [B, 3, ...]; gravity: float [B, 3].

    Returns:
        float [B, ...] degrees in [0, 180].
    """
    xp = _arrays.namespace(normals)
    g = gravity.reshape(*gravity.shape, *([1] * (normals.ndim - 2)))  # [B, 3] -> [B, 3, 1, ...]
    with _arrays.quiet():  # NaN normals (and infinite ones from underflowing windows) are expected
        cos = normals[:, 0] * g[:, 0]
        cos += normals[:, 1] * g[:, 1]
        cos += normals[:, 2] * g[:, 2]
        # max/min that drop NaN, like MATLAB's: NaN -> -1.
        cos = _arrays.clip_nan_low(cos, -1.0, 1.0, out=cos)
    return xp.rad2deg(_arrays.arccos(cos))


# MATLAB rounds half away from zero. For 0 <= x <= 255, trunc(x + (0.5 - 2^-54)) is
# that rounding exactly: ties k + 0.5 still reach k + 1 (the sum rounds up to it),
# and 0.5 - 2^-54 (the largest double below 0.5) stays below 1, where
# trunc(x + 0.5) would give 1.
_HALF_BELOW = 0.49999999999999994


def matlab_uint8(x: Any, out: Any = None) -> Any:
    """MATLAB ``uint8(x)``: round half away from zero, saturate to [0, 255], NaN -> 0.

    Args:
        x: float array (numpy or torch), any shape.
        out: optional uint8 array of the same shape to write into (numpy: may be strided).

    Returns:
        uint8 array of the same shape and kind (``out`` when given).
    """
    # Saturating first changes nothing (254.5 still rounds to 255, negatives to 0).
    x = _arrays.clip_nan_low(x, 0.0, 255.0)
    x += _HALF_BELOW
    if _arrays.is_torch(x):
        import torch

        if out is None:
            return x.to(torch.uint8)  # truncation
        out.copy_(x)
        return out
    if out is None:
        return x.astype(np.uint8)  # truncation
    np.copyto(out, x, casting="unsafe")
    return out


def hha_image(depth: Any, raw_depth: Any, intrinsics: Intrinsics) -> np.ndarray:
    """The HHA image of one frame, exactly as Gupta's MATLAB ``saveHHA``.

    Args:
        depth: float [H, W] filled depth in metres.
        raw_depth: float [H, W] raw depth in metres, 0 = missing (only its zeros are
            used: missing pixels are left out of the normal fits); ``None`` = ``depth``.
        intrinsics: the camera (0-based principal point; ``Intrinsics.nyu()`` for NYU).

    Returns:
        uint8 [H, W, 3]: channels (disparity, height above ground, angle with gravity).

    Raises:
        KitError: invalid depth (see :func:`~dsod_depth.encoders.base.validate_depth`).
    """
    d = validate_depth(depth, what="depth")
    r = d if raw_depth is None else validate_depth(raw_depth, what="raw depth")
    if r.shape != d.shape:
        raise KitError(f"depth {d.shape} and raw depth {r.shape} must have the same shape")
    image = np.empty((1, *d.shape, 3), dtype=np.uint8)  # [1, H, W, 3]
    camera = (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy)
    _encode(d[None], r[None], camera, DEFAULT_BAND_ROWS, image=image)
    return image[0]


@register_encoder("hha", num_channels=3)
def encode_hha(depth: np.ndarray, raw_depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """HHA as float32 [3, H, W] with the uint8 image's values (0..255)."""
    return hha_image(depth, raw_depth, intrinsics).transpose(2, 0, 1).astype(np.float32)  # -> [3, H, W]


def hha_image_torch(depth: Any, raw_depth: Any, intrinsics: Intrinsics | Sequence[Intrinsics]) -> Any:
    """Batched HHA on torch tensors (CPU or GPU); the same images as :func:`hha_image`.

    Args:
        depth: float tensor [B, H, W] (or [H, W]) filled depth in metres.
        raw_depth: float tensor like ``depth``, 0 = missing; ``None`` = use ``depth``.
        intrinsics: one :class:`Intrinsics` for the whole batch or one per frame.

    Returns:
        uint8 tensor [B, H, W, 3] (or [H, W, 3]) on the input's device, channels
        (disparity, height, angle).
    """
    import torch

    single = depth.ndim == 2
    raw_depth = depth if raw_depth is None else raw_depth
    d = validate_depth_tensor(depth[None] if single else depth, what="depth")
    r = validate_depth_tensor(raw_depth[None] if single else raw_depth, what="raw depth")
    if d.shape != r.shape:
        raise KitError(f"depth {tuple(d.shape)} and raw depth {tuple(r.shape)} must have the same shape")
    cams = [intrinsics] * d.shape[0] if isinstance(intrinsics, Intrinsics) else list(intrinsics)
    if len(cams) != d.shape[0]:
        raise KitError(f"got {len(cams)} intrinsics for a batch of {d.shape[0]} depth images")
    fx, fy, cx, cy = (_arrays.as_column(d, [getattr(c, k) for c in cams]) for k in ("fx", "fy", "cx", "cy"))
    band_rows = DEFAULT_BAND_ROWS if d.device.type == "cpu" else None  # cache blocking helps CPUs only
    out = d.new_empty((*d.shape, 3), dtype=torch.uint8)  # [B, H, W, 3]
    _encode(d, r, (fx, fy, cx, cy), band_rows, image=out)
    return out[0] if single else out
