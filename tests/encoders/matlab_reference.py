"""A slow, literal transcription of Gupta's MATLAB HHA, used only as a test reference.

Each function follows the MATLAB file it names, step by step, with the most
direct numpy equivalent (``filter2`` as a 2-D correlation, NaN masking, boolean
set selection, ``eig``). It shares no code with the kit. Intrinsics use the
MATLAB 1-based grid: ``u = 1..W`` against ``cx + 1``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import correlate2d


def get_point_cloud_from_z(z: np.ndarray, fx: float, fy: float, cx1: float, cy1: float):
    """getPointCloudFromZ.m with a 1-based principal point."""
    height, width = z.shape
    u, v = np.arange(1, width + 1, dtype=np.float64), np.arange(1, height + 1, dtype=np.float64)
    xx, yy = np.meshgrid(u, v)
    return ((xx - cx1) * z) / fx, ((yy - cy1) * z) / fy, z


def compute_normals_square_support(depth_m, missing, radius, fx, fy, cx1, cy1):
    """computeNormalsSquareSupport.m (one superpixel, i.e. filterIt with filter2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = depth_m * 100
        xf, yf, zf = get_point_cloud_from_z(z, fx, fy, cx1, cy1)
        x, y, zz = xf.copy(), yf.copy(), zf.copy()
        x[missing], y[missing], zz[missing] = np.nan, np.nan, np.nan
        one_z, x_z, y_z = 1.0 / zz, x / zz, y / zz
        one = np.where(np.isnan(zz), np.nan, 1.0)
        x_zz, y_zz = x / (zz * zz), y / (zz * zz)
        f = np.stack([x_z * x_z, x_z * y_z, x_z, y_z * y_z, y_z, one, x_zz, y_zz, one_z])
        f[np.isnan(f)] = 0
        kernel = np.ones((2 * radius + 1, 2 * radius + 1))
        s = np.stack([correlate2d(c, kernel, mode="same") for c in f])
        a = s[:6]
        b = s[6:]
        cof = [
            a[3] * a[5] - a[4] * a[4],
            -(a[1] * a[5] - a[2] * a[4]),
            a[1] * a[4] - a[2] * a[3],
            a[0] * a[5] - a[2] * a[2],
            -(a[0] * a[4] - a[1] * a[2]),
            a[0] * a[3] - a[1] * a[1],
        ]
        n = np.stack(
            [
                cof[0] * b[0] + cof[1] * b[1] + cof[2] * b[2],
                cof[1] * b[0] + cof[3] * b[1] + cof[4] * b[2],
                cof[2] * b[0] + cof[4] * b[1] + cof[5] * b[2],
            ]
        )
        n = n / np.sqrt(np.sum(n**2, axis=0))
        sn = np.sign(n[2])
        sn[sn == 0] = 1
        n = n * sn
        sn = np.sign(np.sum(n * np.stack([xf, yf, zf]), axis=0))
        sn[np.isnan(sn)] = 1
        sn[sn == 0] = 1
        return n * sn


def get_y_dir(normals: np.ndarray) -> np.ndarray:
    """getYDir.m with yDirParam = (y0 [0 1 0], thresholds [45 15], iterations [5 5])."""
    nn = normals.reshape(3, -1)
    nn = nn[:, ~np.isnan(nn[0])]
    y = np.array([0.0, 1.0, 0.0])
    for thresh, iterations in ((45, 5), (15, 5)):
        for _ in range(iterations):
            sim = y @ nn
            nf = nn[:, np.abs(sim) > math.cos(math.radians(thresh))]
            nw = nn[:, np.abs(sim) < math.sin(math.radians(thresh))]
            values, vectors = np.linalg.eigh(nw @ nw.T - nf @ nf.T)
            new = vectors[:, np.argmin(values)]
            y = new * np.sign(y @ new)
    return y


def get_r_matrix(yi: np.ndarray, yf: np.ndarray) -> np.ndarray:
    """getRMatrix.m for two axes."""
    yi, yf = yi / np.linalg.norm(yi), yf / np.linalg.norm(yf)
    phi = math.degrees(math.acos(min(1.0, abs(yi @ yf))))
    if abs(phi) <= 0.1:
        return np.eye(3)
    ax = np.cross(yi, yf)
    ax = ax / np.linalg.norm(ax)
    phi = phi * (math.pi / 180)
    s = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    return np.eye(3) + math.sin(phi) * s + (1 - math.cos(phi)) * (s @ s)


def matlab_uint8(x: np.ndarray) -> np.ndarray:
    """uint8(): NaN -> 0, round half away from zero, saturate."""
    x = np.nan_to_num(x, nan=0.0)
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255).astype(np.uint8)


def save_hha(depth_m: np.ndarray, raw_m: np.ndarray, fx, fy, cx1, cy1) -> np.ndarray:
    """saveHHA.m + processDepthImage.m: uint8 [H, W, 3] (disparity, height, angle)."""
    missing = raw_m == 0
    z = depth_m * 100
    x, y, zc = get_point_cloud_from_z(z, fx, fy, cx1, cy1)
    n1 = compute_normals_square_support(z / 100, missing, 3, fx, fy, cx1, cy1)
    n2 = compute_normals_square_support(z / 100, missing, 10, fx, fy, cx1, cy1)
    y_dir = get_y_dir(n2)
    r = get_r_matrix(np.array([0.0, 1.0, 0.0]), y_dir)
    pc_rot = r.T @ np.stack([x, y, zc]).reshape(3, -1)  # rotatePC(pc, R')
    h = -pc_rot[1].reshape(z.shape)
    y_min = np.nanmin(h)
    if y_min > -90:
        y_min = -130
    h = h - y_min
    dot = np.sum(n1 * y_dir[:, None, None], axis=0)
    angle = np.degrees(np.arccos(np.where(np.isnan(dot), -1.0, np.clip(dot, -1.0, 1.0))))
    disparity = 31000 / np.maximum(zc, 100)
    return matlab_uint8(np.stack([disparity, h, angle + 128 - 90], -1))
