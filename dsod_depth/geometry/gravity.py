"""Gravity direction, the rotation that aligns it, and height above the floor.

Gupta et al. 2014 (REFERENCE §2 steps 3-5; rgbdutils ``getYDir``, ``getRMatrix``,
rcnn-depth ``processDepthImage``): gravity is the direction to which the most
normals are either parallel (floors, table tops) or perpendicular (walls). Start
from the camera's down axis y = [0, 1, 0]; in each iteration split the normals
into the set nearly parallel to y (|n.y| > cos t) and the set nearly perpendicular
(|n.y| < sin t), and take as the new y the eigenvector of the smallest eigenvalue
of ``sum_perp n n^T - sum_par n n^T`` (the direction most perpendicular to the
walls and most parallel to the floors), sign-aligned with the previous y. Five
iterations with t = 45° then five with t = 15°.

Works on numpy arrays and torch tensors, batched [B, ...]. On the CPU the
iteration updates its sums with the normals that change set (same sets, much
less work); on a GPU it sums all normals in every iteration (no host syncs).
Camera frame: x right, y down, z forward; y (gravity) points down.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsod_depth.geometry import _arrays

# (angle threshold in degrees, iterations) of the two stages (yDirParam in processDepthImage).
GRAVITY_STAGES: tuple[tuple[float, int], ...] = ((45.0, 5), (15.0, 5))
# Rotations smaller than this many degrees are skipped (getRMatrix).
MIN_ROTATION_DEG = 0.1
# Normals whose |n . y| is this close to a threshold are re-tested while y moves
# by less than half of it (the others cannot change set); CPU path only.
_MARGIN = 0.02
# Floor rule (cm): if the lowest point is less than 90 cm below the camera, the
# floor is assumed to be out of view and placed 130 cm below it.
FLOOR_RULE_CM = (-90.0, -130.0)


def estimate_gravity(normals: Any, stages: tuple[tuple[float, int], ...] = GRAVITY_STAGES) -> Any:
    """Gravity direction from a normal field (Gupta's two-stage iteration).

    Args:
        normals: float [B, 3, ...] unit normals per frame (any pixel layout after
            the component axis); NaN marks "no normal" and is ignored. Sign does
            not matter (only n n^T and |n . y| are used).
        stages: (threshold degrees, iterations) per stage.

    Returns:
        float [B, 3] unit gravity directions (pointing down, camera frame).
        A frame without any usable normal keeps y = [0, 1, 0] (the original
        would return an undefined direction there).
    """
    xp = _arrays.namespace(normals)
    batch = normals.shape[0]
    nn = normals.reshape(batch, 3, -1)  # [B, 3, ...] -> [B, 3, P]
    # A NaN normal becomes the zero vector: it then adds exactly 0 to every sum,
    # which is the same as leaving it out (MATLAB drops NaN columns).
    if bool(xp.isnan(nn).any()):
        nn = xp.where(xp.isnan(nn), 0.0, nn)
    if _arrays.is_torch(nn) and nn.device.type != "cpu":
        return _gravity_dense(nn, stages)  # GPU: dense sums, no host syncs
    # CPU (numpy, or torch through a zero-copy numpy view): the faster sparse updates.
    frames = nn.detach().numpy() if _arrays.is_torch(nn) else nn
    y = np.stack([_gravity_sparse(frame, stages) for frame in frames], 0)  # [B, 3]
    return xp.from_numpy(y) if _arrays.is_torch(nn) else y


def _next_direction(a: Any, y: Any) -> Any:
    """Eigenvector of the smallest eigenvalue of ``a`` [..., 3, 3], sign-aligned with ``y`` [..., 3]."""
    xp = _arrays.namespace(a)
    _, vectors = _arrays.eigh(a)
    new = vectors[..., :, 0]  # eigenvalues ascend: column 0 belongs to the smallest
    # sign(y . new) with sign(0) = +1 (MATLAB would zero the vector, which only
    # happens for degenerate input).
    align = xp.where((new * y).sum(-1) < 0, -1.0, 1.0)
    # No normal in either set (A = 0): keep y rather than an arbitrary eigenvector.
    usable = (a != 0).reshape(*a.shape[:-2], 9).any(-1)  # [..., 3, 3] -> [..., 9] -> [...]
    return xp.where(usable[..., None], new * align[..., None], y)


def _gravity_dense(nn: Any, stages: tuple[tuple[float, int], ...]) -> Any:
    """The iteration as written, batched: every iteration sums over all normals.

    Args:
        nn: float [B, 3, P] normals (zero = none). Returns float [B, 3].
    """
    xp = _arrays.namespace(nn)
    y = _arrays.zeros(nn, (nn.shape[0], 3))
    y[:, 1] = 1.0
    nn_t = nn.transpose(1, 2) if _arrays.is_torch(nn) else nn.transpose(0, 2, 1)  # [B, P, 3] view
    for thresh_deg, iterations in stages:
        cos_t, sin_t = math.cos(math.radians(thresh_deg)), math.sin(math.radians(thresh_deg))
        for _ in range(iterations):
            sim = xp.abs(y[:, None, :] @ nn)[:, 0]  # [B, 1, 3] @ [B, 3, P] -> [B, P]
            # +1 for the perpendicular set (walls), -1 for the parallel set (floors):
            # A = sum_perp n n^T - sum_par n n^T = (n * weight) @ n^T.
            weight = _arrays.to_float(sim < sin_t, nn) - _arrays.to_float(sim > cos_t, nn)
            a = (nn * weight[:, None, :]) @ nn_t  # [B, 3, P] @ [B, P, 3] -> [B, 3, 3]
            y = _next_direction(a, y)
    return y


def _gravity_sparse(nn: np.ndarray, stages: tuple[tuple[float, int], ...]) -> np.ndarray:
    """The same iteration for one frame on the CPU, touching only normals that change set.

    Exactly the sets of the dense iteration, found faster:

    * after the first iteration A is updated by the normals whose set changed
      instead of being summed again over all P normals;
    * when y has moved less than ``_MARGIN / 2`` since the last full pass, only the
      normals whose |n . y| was within ``_MARGIN`` of a threshold can change set
      (|n . y| moves by at most |y - y_ref| for a unit n), so only those are tested;
    * an iteration in which no normal changes set leaves A, and so y, as they
      were: the remaining iterations of the stage would repeat it and are skipped.

    Args:
        nn: float64 [3, P] normals (zero = none). Returns float64 [3].
    """
    y = np.array([0.0, 1.0, 0.0])
    a = np.zeros((3, 3))
    weight = None  # int8 [P]: +1 perpendicular set, -1 parallel set, 0 neither
    full_sim = np.empty(nn.shape[1])  # |n . y| of every normal, reused by each full pass
    for thresh_deg, iterations in stages:
        cos_t, sin_t = math.cos(math.radians(thresh_deg)), math.sin(math.radians(thresh_deg))
        ref_y, ref_sim, candidates = None, None, None
        for _ in range(iterations):
            if ref_y is not None and np.linalg.norm(y - ref_y) < _MARGIN / 2:
                if candidates is None:
                    near = (np.abs(ref_sim - cos_t) < _MARGIN) | (np.abs(ref_sim - sin_t) < _MARGIN)
                    candidates = np.flatnonzero(near)
                    candidate_nn = nn[:, candidates]  # [3, K]
                sim = np.abs(y @ candidate_nn)  # [K]
                index = candidates
            else:
                sim = np.abs(np.matmul(y, nn, out=full_sim), out=full_sim)  # [P]
                ref_y, ref_sim, candidates = y, sim, None
                index = slice(None)
            new_weight = (sim < sin_t).view(np.int8) - (sim > cos_t).view(np.int8)
            if weight is None:
                a = _weighted_gram(nn, new_weight)
                weight = new_weight
            else:
                change = new_weight - weight[index]
                changed = np.flatnonzero(change)
                if changed.size == 0:
                    break
                which = changed if candidates is None else candidates[changed]
                picked = nn[:, which]  # [3, K]
                a = a + (picked * change[changed]) @ picked.T  # [3, K] @ [K, 3] -> [3, 3]
                weight[which] = new_weight[changed]
            y = _next_direction(a, y)
    return y


def _weighted_gram(nn: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(nn * weight) @ nn.T`` for nn [3, P], weight [P] -> [3, 3].

    Six dot products: BLAS is much slower on a 3 x P x 3 matrix product. One
    weighted row at a time: no [3, P] temporary.
    """
    w = weight.astype(nn.dtype)  # [P]
    weighted = np.empty_like(w)  # row i of nn * w
    a = np.empty((3, 3))
    for i in range(3):
        np.multiply(nn[i], w, out=weighted)
        for j in range(i, 3):
            a[i, j] = a[j, i] = weighted @ nn[j]
    return a


def rotation_to_gravity(gravity: Any) -> Any:
    """Rotation R that turns the camera's y axis [0, 1, 0] onto ``gravity`` (getRMatrix).

    Rodrigues' formula about ``[0, 1, 0] x g`` by ``acosd(|[0, 1, 0] . g|)`` degrees;
    the identity when that angle is at most 0.1°. Points are levelled with
    ``R^T p`` (their y coordinate then measures height along gravity).

    Args:
        gravity: float [B, 3] directions (need not be unit length).

    Returns:
        float [B, 3, 3] rotation matrices.
    """
    xp = _arrays.namespace(gravity)
    g = gravity / _arrays.sqrt((gravity * gravity).sum(1))[:, None]
    # axis = [0, 1, 0] x g = (g_z, 0, -g_x), normalised.
    axis = _arrays.zeros(g, tuple(g.shape))
    axis[:, 0] = g[:, 2]
    axis[:, 2] = -g[:, 0]
    axis_norm = _arrays.sqrt((axis * axis).sum(1))
    axis = axis / xp.where(axis_norm > 0, axis_norm, 1.0)[:, None]
    phi_deg = xp.rad2deg(_arrays.arccos(xp.clip(xp.abs(g[:, 1]), 0.0, 1.0)))
    phi = phi_deg * (math.pi / 180.0)
    skew = _arrays.zeros(g, (g.shape[0], 3, 3))
    skew[:, 0, 1], skew[:, 0, 2] = -axis[:, 2], axis[:, 1]
    skew[:, 1, 0], skew[:, 1, 2] = axis[:, 2], -axis[:, 0]
    skew[:, 2, 0], skew[:, 2, 1] = -axis[:, 1], axis[:, 0]
    eye = _arrays.zeros(g, (g.shape[0], 3, 3))
    eye[:, 0, 0] = eye[:, 1, 1] = eye[:, 2, 2] = 1.0
    sin = _arrays.sin(phi)[:, None, None]
    one_minus_cos = (1.0 - _arrays.cos(phi))[:, None, None]
    rot = eye + sin * skew + one_minus_cos * (skew @ skew)
    return xp.where((phi_deg > MIN_ROTATION_DEG)[:, None, None], rot, eye)


def height_above_floor(
    x: Any, y: Any, z: Any, rotation: Any, floor_rule: tuple[float, float] = FLOOR_RULE_CM
) -> Any:
    """Height of every point above the lowest point (the floor), along gravity.

    ``h = -(R^T p)_y`` (up positive), then ``h - min(h)``; when the lowest point is
    less than ``-floor_rule[0]`` below the camera, the floor is taken to be
    ``-floor_rule[1]`` below it instead (processDepthImage's yMin rule).

    Args:
        x, y, z: float [B, H, W] camera-frame points, in the unit of ``floor_rule``
            (cm for the default rule).
        rotation: float [B, 3, 3] from :func:`rotation_to_gravity`.
        floor_rule: (threshold, assumed floor) heights relative to the camera.

    Returns:
        float [B, H, W] heights above the floor.
    """
    h = heights_along_gravity(x, y, z, rotation)
    return h - floor_height(h, floor_rule)[:, None, None]


def heights_along_gravity(x: Any, y: Any, z: Any, rotation: Any) -> Any:
    """``h = -(R^T p)_y``: height of each point relative to the camera, up positive.

    Args:
        x, y, z: float [B, ...] camera-frame points; rotation: float [B, 3, 3].

    Returns:
        float [B, ...] in the unit of the points.
    """
    r = rotation[:, :, 1].reshape(*rotation.shape[:2], *([1] * (x.ndim - 1)))  # column 1 of R: [B, 3, 1, ...]
    return -(r[:, 0] * x + r[:, 1] * y + r[:, 2] * z)


def floor_height(heights: Any, floor_rule: tuple[float, float] = FLOOR_RULE_CM) -> Any:
    """The floor's height per frame: the lowest of ``heights`` [B, ...], or the assumed floor -> [B].

    See :func:`height_above_floor` for the rule.
    """
    xp = _arrays.namespace(heights)
    lowest = _arrays.amin_per_item(heights)
    threshold, assumed = floor_rule
    return xp.where(lowest > threshold, assumed, lowest)
