"""``matlab_uint8`` rounds like MATLAB's ``uint8`` at every tie and next to it."""

from __future__ import annotations

import numpy as np
import torch

from dsod_depth.encoders import matlab_uint8


def _matlab(x: np.ndarray) -> np.ndarray:
    """uint8(): NaN -> 0, saturate, round half away from zero (exact floor-based form)."""
    x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 255.0)
    floor = np.floor(x)
    return (floor + (x - floor >= 0.5)).astype(np.uint8)


def _edge_values() -> np.ndarray:
    ties = np.arange(-2, 258) + 0.5
    near = np.concatenate([ties, np.nextafter(ties, -np.inf), np.nextafter(ties, np.inf)])
    integers = np.arange(-2.0, 258.0)
    special = np.array([0.49999999999999994, 0.5, -0.0, -0.4, 254.5, 255.49, np.nan, np.inf, -np.inf, 1e300])
    random = np.random.default_rng(0).uniform(-10, 270, 10_000)
    return np.concatenate([near, integers, np.nextafter(integers, -np.inf), special, random])


def test_ties_and_their_neighbours_round_like_matlab():
    x = _edge_values()
    np.testing.assert_array_equal(matlab_uint8(x), _matlab(x))
    assert matlab_uint8(np.array([0.49999999999999994, 0.5, 2.5]))[:3].tolist() == [0, 1, 3]


def test_torch_and_strided_output_agree():
    x = _edge_values()
    np.testing.assert_array_equal(matlab_uint8(torch.from_numpy(x.copy())).numpy(), _matlab(x))
    out = np.zeros((x.size, 3), dtype=np.uint8)
    matlab_uint8(x, out=out[:, 1])
    np.testing.assert_array_equal(out[:, 1], _matlab(x))
    assert not out[:, [0, 2]].any()
