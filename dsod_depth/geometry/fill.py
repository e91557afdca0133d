"""Filling the holes of a raw depth map without colour: membrane (harmonic) in-painting.

The kit's datasets come with *filled* depth (NYU's colorization in-painting, SUN RGB-D's
``depth_bfx``) beside the raw sensor depth, and HHA takes both. A frame that has only raw depth is
filled by :func:`fill_depth`: the same Laplace problem as NYU's colorization fill (Levin et al. 2004,
as used by the NYU toolbox ``fill_depth_colorization``) with uniform instead of colour-derived
weights. scipy has no in-painting of this kind (its ``griddata`` triangulates every valid pixel and
is orders of magnitude slower on a 640×480 frame), so the sparse system is assembled here and solved
with scipy's conjugate gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsod_depth.errors import KitError

__all__ = ["fill_depth", "FILL_CG_ITERATIONS"]

# Conjugate-gradient steps of the membrane fill, started from the nearest valid depth. On the NYU
# frame of hha_reference (73,446 holes, a border band up to 57 px wide), against NYU's own fill at
# the holes: mean error 4.28 cm after 100 steps, 4.14 cm for the exact solution (a direct solve,
# about 4x the time), 6.03 cm for the nearest depth alone; 55 ms on one core
# (benchmarks/bench_fill.py).
FILL_CG_ITERATIONS = 100


def fill_depth(raw: np.ndarray) -> np.ndarray:
    """Fill the holes of a raw depth map by membrane (harmonic) interpolation.

    Each hole pixel takes the mean of its 4 neighbours (only those inside the image: a free
    border), valid pixels stay fixed: the discrete Laplace equation over the holes, solved by
    conjugate gradients (:data:`FILL_CG_ITERATIONS` steps) from the nearest valid depth. This is
    NYU's colorization fill with uniform weights; it needs no colour. Without colour it cannot
    keep a depth edge that runs through a hole (it blends both sides), and it extrapolates flat
    beyond the last valid pixels.

    Args:
        raw: float [H, W] metres, 0 = hole.

    Returns:
        float32 [H, W]: valid pixels unchanged, holes filled with values between the smallest
        and the largest valid depth (never 0).

    Raises:
        KitError: not a 2-D float array, NaN/inf or negative values, or no valid pixel at all.
    """
    from scipy import ndimage
    from scipy.sparse.linalg import cg

    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.dtype.kind != "f":
        raise KitError(f"raw depth must be a float [H, W] array of metres, got {raw.dtype} {list(raw.shape)}")
    if not np.all(np.isfinite(raw)) or raw.min() < 0:
        raise KitError("raw depth must be finite metres >= 0 with 0 at holes")
    holes = raw == 0
    if holes.all():
        raise KitError("raw depth has no valid pixel (all zero): there is no depth to fill the holes from")
    filled = raw.astype(np.float32)  # a copy
    valid = filled[~holes]
    low, high = valid.min(), valid.max()
    if low == high or not holes.any():  # the membrane over constant data is that constant
        filled[holes] = low
        return filled
    nearest = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)  # [2, H, W]
    system, rhs = _membrane_system(filled, holes)
    solution, _ = cg(system, rhs, x0=filled[tuple(nearest)][holes], maxiter=FILL_CG_ITERATIONS)
    # The exact solution is a weighted mean of valid depths; the clip keeps an unconverged one there too.
    filled[holes] = np.clip(solution, low, high)
    return filled


def _membrane_system(depth: np.ndarray, holes: np.ndarray) -> tuple[Any, np.ndarray]:
    """Sparse system A x = b of the Laplace equation over the hole pixels (row-major order), float32.

    Row p: ``degree(p) x_p - sum(x_q over hole neighbours q) = sum(depth over valid neighbours)``,
    4-neighbours inside the image. Symmetric positive definite: every hole region touches a valid
    pixel when any exists. float32 halves the memory traffic of the solver's products; depth needs
    no more than its 7 digits.
    """
    from scipy.sparse import coo_matrix

    height, width = holes.shape
    unknowns = np.flatnonzero(holes)  # [N] flat pixel index of each unknown
    num_holes = unknowns.size
    index = np.full(holes.size, -1, dtype=np.int64)  # [H*W] unknown number of each pixel, -1 if valid
    index[unknowns] = np.arange(num_holes)
    ys, xs = np.divmod(unknowns, width)
    flat_depth = depth.ravel()  # [H, W] -> [H*W]
    degree = np.zeros(num_holes, dtype=np.float32)
    rhs = np.zeros(num_holes, dtype=np.float32)
    rows, cols = [np.arange(num_holes)], [np.arange(num_holes)]
    for inside, step in ((xs < width - 1, 1), (xs > 0, -1), (ys < height - 1, width), (ys > 0, -width)):
        p = np.flatnonzero(inside)  # unknowns whose neighbour in this direction is in the image
        neighbour = unknowns[p] + step
        degree[p] += 1
        q = index[neighbour]
        hole = q >= 0
        rows.append(p[hole])
        cols.append(q[hole])
        rhs[p[~hole]] += flat_depth[neighbour[~hole]]  # p is unique within one direction
    num_links = sum(r.size for r in rows[1:])
    data = np.concatenate([degree, np.full(num_links, -1.0, dtype=np.float32)])
    system = coo_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(num_holes, num_holes))
    return system.tocsr(), rhs
