"""Membrane in-painting of depth holes: exactness where it must be, closeness to NYU's own fill."""

from __future__ import annotations

import numpy as np
import pytest

from dsod_depth.data.depth_io import read_depth
from dsod_depth.errors import KitError
from dsod_depth.geometry.fill import fill_depth


def test_fill_fills_every_hole_and_keeps_valid_pixels():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 6.0, (40, 50)).astype(np.float32)
    raw = np.where(rng.random(depth.shape) < 0.6, 0, depth).astype(np.float32)
    raw[:, :12] = 0  # a band along the border
    raw_before = raw.copy()
    filled = fill_depth(raw)
    valid = raw > 0
    assert filled.dtype == np.float32 and filled.shape == raw.shape
    np.testing.assert_array_equal(filled[valid], raw[valid])
    assert filled[~valid].min() >= raw[valid].min() and filled[~valid].max() <= raw[valid].max()
    np.testing.assert_array_equal(raw, raw_before)  # the input is not modified


def test_fill_reproduces_a_plane_inside_a_hole():
    """The membrane is harmonic: a hole surrounded by a plane (linear in u, v) is filled by that plane."""
    v, u = np.mgrid[0:60, 0:80]
    plane = (1.5 + 0.01 * u + 0.02 * v).astype(np.float32)
    raw = plane.copy()
    raw[20:40, 25:55] = 0
    np.testing.assert_allclose(fill_depth(raw), plane, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fill_single_valid_pixel_no_hole_and_empty(dtype):
    raw = np.zeros((30, 40), dtype)
    raw[7, 9] = 2.5
    np.testing.assert_array_equal(fill_depth(raw), np.full((30, 40), 2.5, np.float32))
    full = np.linspace(1, 2, 12, dtype=dtype).reshape(3, 4)
    np.testing.assert_array_equal(fill_depth(full), full.astype(np.float32))
    with pytest.raises(KitError, match="no valid pixel"):
        fill_depth(np.zeros((5, 5), dtype))
    with pytest.raises(KitError, match="float"):
        fill_depth(np.zeros((5, 5), np.uint16))


def test_fill_is_close_to_nyu_colorization_fill(shared_data):
    """Error against NYU's own colour-guided filling at the raw holes (benchmarks/bench_fill.py has more)."""
    ref = shared_data / "hha_reference"
    raw = read_depth(ref / "0_raw.png", 10000).astype(np.float32)
    nyu = read_depth(ref / "0.png", 10000).astype(np.float32)
    holes = raw == 0
    assert int(holes.sum()) == 73446
    error_cm = np.abs(fill_depth(raw)[holes] - nyu[holes]) * 100
    print(f"fill vs NYU at holes: mean {error_cm.mean():.2f} cm, median {np.median(error_cm):.2f} cm")
    assert error_cm.mean() < 5.0 and np.median(error_cm) < 2.0  # measured 4.28 and 1.60
