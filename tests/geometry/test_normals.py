"""Gupta's windowed least-squares normals: planes, a slow reference, holes, bands, torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.geometry import Intrinsics, backproject, surface_normals

CAM = Intrinsics(fx=300.0, fy=310.0, cx=19.5, cy=14.0)


def _plane_depth(normal: np.ndarray, offset: float, shape=(30, 40)) -> np.ndarray:
    """Depth of the plane n . p = offset (metres) seen by CAM."""
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rays = np.stack([(u - CAM.cx) / CAM.fx, (v - CAM.cy) / CAM.fy, np.ones_like(u)], -1)  # [H, W, 3]
    return offset / (rays @ normal)


@pytest.mark.parametrize("normal", [[0.0, 0.0, 1.0], [0.3, -0.5, 0.8], [-0.6, 0.7, 0.4]])
def test_planes_give_their_normal_pointing_away_from_the_camera(normal):
    n = np.asarray(normal) / np.linalg.norm(normal)
    depth = _plane_depth(n, 2.0)
    assert (depth > 0).all()
    est = surface_normals(depth, CAM, radius=3)
    assert est.shape == (3, 30, 40)
    # n . p = 2 > 0 for every point, so "away from the camera" is +n here.
    np.testing.assert_allclose(est, np.broadcast_to(n[:, None, None], est.shape), atol=1e-9)


def _reference_normal(points: np.ndarray, valid: np.ndarray, v: int, u: int, radius: int) -> np.ndarray:
    """Least squares for n . p = 1 over the window (numpy lstsq), oriented like the original."""
    rows = slice(max(0, v - radius), v + radius + 1)
    cols = slice(max(0, u - radius), u + radius + 1)
    p = points[rows, cols][valid[rows, cols]]  # [K, 3]
    a = np.stack([p[:, 0] / p[:, 2], p[:, 1] / p[:, 2], np.ones(len(p))], 1)  # [K, 3]
    n, *_ = np.linalg.lstsq(a, 1.0 / p[:, 2], rcond=None)
    n = n / np.linalg.norm(n)
    n = n if n[2] >= 0 else -n
    return n if n @ points[v, u] >= 0 else -n


def test_matches_an_independent_least_squares_fit_on_a_curved_surface_with_holes():
    v, u = np.mgrid[0:30, 0:40].astype(np.float64)
    depth = 2.0 + 0.3 * np.sin(u / 6.0) + 0.2 * np.cos(v / 5.0)  # smooth, not planar
    rng = np.random.default_rng(0)
    valid = rng.random(depth.shape) > 0.25
    est = surface_normals(depth, CAM, radius=3, valid=valid)
    points = backproject(depth, CAM) * 100.0  # cm, as inside
    for vv in range(0, 30, 3):
        for uu in range(0, 40, 3):
            ref = _reference_normal(points, valid, vv, uu, 3)
            np.testing.assert_allclose(est[:, vv, uu], ref, atol=1e-7)


def test_empty_windows_are_nan_and_hole_pixels_use_their_neighbours():
    depth = _plane_depth(np.array([0.0, 0.0, 1.0]), 2.0)
    valid = np.ones(depth.shape, bool)
    valid[5:25, 5:25] = False  # a hole wider than the 7 x 7 window
    est = surface_normals(depth, CAM, radius=3, valid=valid)
    assert np.isnan(est[:, 15, 15]).all()
    np.testing.assert_allclose(est[:, 6, 6], [0.0, 0.0, 1.0], atol=1e-9)  # missing, neighbours valid
    assert not np.isnan(est[:, valid]).any()


def test_lone_valid_point_reproduces_the_original_arithmetic_bit_for_bit():
    # One point makes A^T A rank 1: the "normal" is then decided by rounding alone
    # (some cofactors are exactly 0, others a rounding residue). The original sums
    # the window directly, so each sum is exactly the point's term; evaluating its
    # formulas on those terms must give our result to the last bit.
    depth = np.full((15, 15), 1.7)
    valid = np.zeros(depth.shape, bool)
    valid[7, 9] = True
    est = surface_normals(depth, CAM, radius=3, valid=valid)
    z = 1.7 * 100.0  # cm, computed as inside
    x, y = ((9 - CAM.cx) * z) / CAM.fx, ((7 - CAM.cy) * z) / CAM.fy
    xz, yz = x / z, y / z
    a1, a2, a3, a4, a5, a6 = xz * xz, xz * yz, xz, yz * yz, yz, 1.0
    b1, b2, b3 = x / (z * z), y / (z * z), 1.0 / z
    c11, c12, c13 = a4 * a6 - a5 * a5, a3 * a5 - a2 * a6, a2 * a5 - a3 * a4
    c22, c23, c33 = a1 * a6 - a3 * a3, a2 * a3 - a1 * a5, a1 * a4 - a2 * a2
    n = np.array(
        [c11 * b1 + c12 * b2 + c13 * b3, c12 * b1 + c22 * b2 + c23 * b3, c13 * b1 + c23 * b2 + c33 * b3]
    )
    assert n.any()  # at this depth a residue survives (at 2.3 m all cancel and give NaN)
    n = n / np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    n = n if n[2] >= 0 else -n
    for v, u in [(7, 9), (5, 11), (10, 6)]:  # windows holding only that point
        point = np.array([((u - CAM.cx) * z) / CAM.fx, ((v - CAM.cy) * z) / CAM.fy, z])
        expected = n if n @ point >= 0 else -n
        np.testing.assert_array_equal(est[:, v, u], expected)
    assert np.isnan(est[:, 0, 0]).all()  # no valid point in the window


def test_bands_and_torch_give_identical_normals():
    v, u = np.mgrid[0:37, 0:41].astype(np.float64)
    depth = 1.5 + 0.01 * u + 0.2 * np.sin(v / 4.0)
    depth[10:13, 5:30] = 0.0
    whole = surface_normals(depth, CAM, radius=10, band_rows=None)
    banded = surface_normals(depth, CAM, radius=10, band_rows=4)
    np.testing.assert_array_equal(whole, banded)
    batched = surface_normals(torch.from_numpy(np.stack([depth, depth[::-1].copy()])), CAM, radius=10)
    np.testing.assert_array_equal(batched[0].numpy(), whole)
    np.testing.assert_array_equal(batched[1].numpy(), surface_normals(depth[::-1].copy(), CAM, radius=10))
