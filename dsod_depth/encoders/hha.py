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
from dsod_depth.geometry.gravity import estimate_gravity, height_above_floor, rotation_to_gravity
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
        band_rows: compute the normals in bands of this many rows (CPU cache
            blocking; the result does not depend on it). None = whole frames.

    Returns:
        (channels, gravity): float64 [B, 3, H, W] = (disparity, height in cm,
        angle + 38 in degrees) before rounding, and float64 [B, 3] gravity.
    """
    xp = _arrays.namespace(depth_m)
    batch, height, width = depth_m.shape
    z = depth_m * 100.0
    # computeNormalsSquareSupport receives z ./ 100 and multiplies by 100 again;
    # the round trip can move z by an ulp, so it is repeated here.
    z_n = (z / 100.0) * 100.0
    # Normals work in the flat zero-margined layout (contiguous shifts; see boxsum).
    layout = FlatLayout(height, width, GRAVITY_RADIUS)
    zf = layout.grid(layout.pack(z_n))  # [B, rows, row]
    valid = (layout.grid(layout.pack(raw_m)) > 0) & (zf > 0)
    xf, yf = point_cloud_cm(zf, fx, fy, cx, cy, first_row=-layout.pad - 1)
    solver = BandedNormals(zf, valid, xf, yf, layout)
    points = [a.reshape(batch, layout.length) for a in (xf, yf, zf)]  # [B, rows, row] -> [B, L]

    normals = _arrays.empty(z, (batch, 3, height * layout.row))  # angle normals, image rows, flat
    gravity_normals = _arrays.empty(z, (batch, 3, height * layout.row))
    step = height if band_rows is None else max(1, band_rows)
    for top in range(0, height, step):
        rows = (top, min(height, top + step))
        span = slice(layout.offset(rows[0]), layout.offset(rows[1]))
        local = slice(rows[0] * layout.row, rows[1] * layout.row)
        outs = (normals[..., local], gravity_normals[..., local])  # written in place
        n, _ = solver.band(rows, (ANGLE_RADIUS, GRAVITY_RADIUS), (False, True), outs=outs)
        orient_normals(n, *(p[:, span] for p in points))
    # The margin columns hold no pixels: give them zero normals (no vote).
    margin = gravity_normals.reshape(batch, 3, height, layout.row)[..., width:]  # [B, 3, H, row - W] view
    margin[...] = 0.0
    # Gravity only looks at n n^T and |n . y|, so its normals need no orientation.
    gravity = estimate_gravity(gravity_normals)
    rotation = rotation_to_gravity(gravity)

    if bool((z_n == z).all()):  # the usual case: reuse the points
        image = slice(layout.offset(0), layout.offset(height))
        x, y = (layout.unpack_rows(p[:, image]) for p in points[:2])
    else:
        x, y = point_cloud_cm(z, fx, fy, cx, cy)
    channels = _arrays.empty(z, (batch, 3, height, width))
    xp.divide(DISPARITY_NUMERATOR, xp.clip(z, MIN_DEPTH_CM, None), out=channels[:, 0])
    channels[:, 1] = height_above_floor(x, y, z, rotation)
    # saveHHA: angl + 128 - 90 ("keeping some slack").
    channels[:, 2] = (angles_to_gravity(layout.unpack_rows(normals), gravity) + 128.0) - 90.0
    return channels, gravity


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
        cos = normals[:, 0] * g[:, 0] + normals[:, 1] * g[:, 1] + normals[:, 2] * g[:, 2]
        cos = xp.where(xp.isnan(cos), -1.0, xp.clip(cos, -1.0, 1.0))
    return xp.rad2deg(_arrays.arccos(cos))


def matlab_uint8(x: Any) -> Any:
    """MATLAB ``uint8(x)``: round half away from zero, saturate to [0, 255], NaN -> 0.

    Args:
        x: float array (numpy or torch), any shape.

    Returns:
        uint8 array of the same shape and kind.
    """
    xp = _arrays.namespace(x)
    if bool(xp.isnan(x).any()):
        x = xp.where(xp.isnan(x), 0.0, x)
    # Saturating first changes nothing (254.5 still rounds to 255, negatives to 0).
    x = xp.clip(x, 0.0, 255.0)
    floor = xp.floor(x)
    # x - floor(x) is exact, so ties are detected exactly (floor(x + 0.5) would
    # round 0.49999999999999994 up).
    rounded = floor + _arrays.to_float(x - floor >= 0.5, x)
    if _arrays.is_torch(rounded):
        import torch

        return rounded.to(torch.uint8)
    return rounded.astype(np.uint8)


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
    channels, _ = hha_channels(
        d[None],
        r[None],
        intrinsics.fx,
        intrinsics.fy,
        intrinsics.cx,
        intrinsics.cy,
        band_rows=DEFAULT_BAND_ROWS,
    )
    return np.ascontiguousarray(matlab_uint8(channels[0]).transpose(1, 2, 0))  # [3, H, W] -> [H, W, 3]


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
    channels, _ = hha_channels(d, r, fx, fy, cx, cy, band_rows=band_rows)
    out = matlab_uint8(channels).permute(0, 2, 3, 1).contiguous()  # [B, 3, H, W] -> [B, H, W, 3]
    return out[0] if single else out
