"""Gravity estimation, the aligning rotation and height above the floor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsod_depth.geometry import estimate_gravity, height_above_floor, rotation_to_gravity
from dsod_depth.geometry.gravity import GRAVITY_STAGES, _gravity_dense


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _literal_get_y_dir(normals: np.ndarray) -> np.ndarray:
    """rgbdutils getYDir written out literally: NaN columns dropped, sets by boolean selection."""
    nn = normals[:, ~np.isnan(normals[0])]
    y = np.array([0.0, 1.0, 0.0])
    for thresh, iterations in GRAVITY_STAGES:
        for _ in range(iterations):
            sim = y @ nn
            parallel = nn[:, np.abs(sim) > math.cos(math.radians(thresh))]
            perpendicular = nn[:, np.abs(sim) < math.sin(math.radians(thresh))]
            a = perpendicular @ perpendicular.T - parallel @ parallel.T
            values, vectors = np.linalg.eigh(a)
            new = vectors[:, np.argmin(values)]
            y = new * np.sign(y @ new)
    return y


def _room_normals(gravity: np.ndarray, num: int, seed: int) -> np.ndarray:
    """[3, num] normals: 40 % floor/ceiling (+-g), 40 % walls (_|_ g), 20 % clutter, some NaN."""
    rng = np.random.default_rng(seed)
    side = _unit(np.cross(gravity, [0.0, 0.0, 1.0]))
    front = np.cross(side, gravity)
    kind = rng.random(num)
    angle = rng.uniform(0, 2 * np.pi, num)
    walls = np.cos(angle)[:, None] * side + np.sin(angle)[:, None] * front
    floors = np.where(rng.random(num) < 0.7, -1.0, 1.0)[:, None] * gravity
    clutter = rng.normal(size=(num, 3))
    n = np.where((kind < 0.4)[:, None], floors, np.where((kind < 0.8)[:, None], walls, clutter))
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    n[rng.random(num) < 0.05] = np.nan
    return n.T


@pytest.mark.parametrize("tilt", [(0.0, 1.0, 0.0), (0.1, 0.95, 0.25), (-0.3, 0.9, -0.2)])
def test_recovers_gravity_and_matches_the_literal_algorithm(tilt):
    truth = _unit(tilt)
    normals = _room_normals(truth, 20000, seed=1)
    est = estimate_gravity(normals[None])[0]  # numpy path (incremental sets)
    literal = _literal_get_y_dir(normals)
    np.testing.assert_allclose(est, literal, atol=1e-12)
    assert math.degrees(math.acos(min(1.0, est @ truth))) < 0.5  # clutter pulls a little
    on_torch = estimate_gravity(torch.from_numpy(normals[None]))[0].numpy()  # CPU tensors: same algorithm
    np.testing.assert_array_equal(on_torch, est)
    # The GPU variant (all normals summed in every iteration), run here on the CPU.
    clean = np.nan_to_num(normals[None], nan=0.0)
    dense = _gravity_dense(torch.from_numpy(clean), GRAVITY_STAGES)[0].numpy()
    np.testing.assert_allclose(dense, est, atol=1e-12)


def test_exact_room_gives_exact_gravity_and_field_shapes_are_flexible():
    truth = _unit([0.2, 0.9, -0.1])
    side = _unit(np.cross(truth, [0.0, 0.0, 1.0]))
    front = np.cross(side, truth)
    angle = np.linspace(0, 2 * np.pi, 4000)
    walls = np.cos(angle)[:, None] * side + np.sin(angle)[:, None] * front  # [4000, 3]
    floors = np.repeat(truth[None], 2000, 0)
    clean = np.concatenate([walls, floors, -floors]).T  # [3, 8000]
    est = estimate_gravity(clean.reshape(1, 3, 80, 100))  # any pixel layout after the component axis
    assert est.shape == (1, 3)
    np.testing.assert_allclose(est[0], truth, atol=1e-12)


def test_frames_without_normals_keep_the_camera_axis():
    empty = np.full((2, 3, 10), np.nan)
    np.testing.assert_array_equal(estimate_gravity(empty), [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def test_rotation_turns_the_camera_axis_onto_gravity():
    rng = np.random.default_rng(3)
    g = np.stack([_unit([rng.uniform(-0.5, 0.5), 1.0, rng.uniform(-0.5, 0.5)]) for _ in range(5)])
    rot = rotation_to_gravity(g)
    for r, gi in zip(rot, g):
        np.testing.assert_allclose(r @ [0.0, 1.0, 0.0], gi, atol=1e-12)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
    # Below 0.1 degrees the original keeps the identity.
    tiny = _unit([math.sin(math.radians(0.05)), math.cos(math.radians(0.05)), 0.0])
    np.testing.assert_array_equal(rotation_to_gravity(tiny[None])[0], np.eye(3))
    np.testing.assert_array_equal(rotation_to_gravity(np.array([[0.0, 1.0, 0.0]]))[0], np.eye(3))


def test_height_uses_the_lowest_point_or_the_assumed_floor():
    y = np.array([[[-50.0, 0.0], [30.0, 120.0]]])  # cm below the camera (y down)
    x = np.zeros_like(y)
    z = np.full_like(y, 300.0)
    eye = np.eye(3)[None]
    # Lowest point 120 cm below the camera: it is the floor.
    np.testing.assert_allclose(height_above_floor(x, y, z, eye), 120.0 - y)
    # Lowest point only 60 cm below: the floor is assumed 130 cm below the camera.
    np.testing.assert_allclose(height_above_floor(x, y - 60.0, z, eye), 130.0 - (y - 60.0))
