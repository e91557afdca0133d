"""Kinect-like sensor model, hole filling and appearance randomisation of SynthRooms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dsod_depth.data.synthrooms import KinectModel, SynthRooms, SynthRoomsConfig
from dsod_depth.data.synthrooms.appearance import hue_blend_materials
from dsod_depth.data.synthrooms.sensor import fill_nearest, projector_shadow, simulate_raw_depth

QUIET = KinectModel(speckle=0.0, edge_dropout=0.0, projector_shadows=False)


def _flat(z, shape=(200, 200)):
    return np.full(shape, z, dtype=np.float32)


def test_depth_noise_grows_with_z_squared():
    rng = np.random.default_rng(0)
    lum, cos = np.full((200, 200), 0.5), np.ones((200, 200))
    stds = {}
    for z in (1.0, 2.0, 4.0):
        raw = simulate_raw_depth(_flat(z), lum, cos, rng, QUIET)
        stds[z] = float(raw[raw > 0].std())
    # σ_z = z² σ_d / (b f): doubling z quadruples the noise (quantisation blurs it at 1 m).
    assert stds[4.0] / stds[2.0] == pytest.approx(4.0, rel=0.3)
    assert stds[2.0] > stds[1.0]
    expected_4m = 4.0**2 * QUIET.disparity_noise / (QUIET.baseline * QUIET.focal_640)
    assert stds[4.0] == pytest.approx(expected_4m, rel=0.3)


def test_output_is_quantised_disparity_in_whole_millimetres():
    rng = np.random.default_rng(1)
    raw = simulate_raw_depth(_flat(3.0), np.full((200, 200), 0.5), np.ones((200, 200)), rng, QUIET)
    values = raw[raw > 0].astype(np.float64)
    mm = np.rint(values * 1000)
    assert np.allclose(values * 1000, mm, atol=1e-3)  # whole millimetres
    # Every value is b·f / (k / 8) for an integer k, rounded to the millimetre.
    bf = QUIET.baseline * QUIET.focal_640
    k = np.rint(bf / (mm / 1000.0) / QUIET.disparity_step)
    np.testing.assert_allclose(mm, np.rint(bf * 1000 / (k * QUIET.disparity_step)), atol=0.5)
    assert len(np.unique(mm)) < 12  # a handful of depth levels around 3 m, 4-5 cm apart


def test_holes_near_far_dark_and_grazing():
    rng = np.random.default_rng(2)
    shape = (100, 100)
    z = _flat(2.0, shape)
    z[:, :10] = 0.3  # too near
    z[:, 90:] = 11.0  # beyond far_end
    lum = np.full(shape, 0.6)
    lum[:50, 40:60] = 0.0  # black surface
    cos = np.ones(shape)
    cos[60:, 40:60] = 0.0  # grazing
    raw = simulate_raw_depth(z, lum, cos, rng, QUIET)
    assert np.all(raw[:, :10] == 0) and np.all(raw[:, 90:] == 0)
    assert (raw[:50, 40:60] == 0).mean() > 0.8
    assert np.all(raw[60:, 40:60] == 0)
    assert (raw[:, 10:40] == 0).mean() == 0.0


def test_projector_shadow_width_is_the_disparity_difference():
    disparity = np.full((3, 60), 5.0)
    disparity[:, 20:30] = 17.0  # a nearer strip: 12 px more disparity
    shadow = projector_shadow(disparity)
    # Shadowed: the 12 background pixels right of the strip (projector on the left).
    expected = np.zeros(60, dtype=bool)
    expected[30:42] = True
    np.testing.assert_array_equal(shadow[0], expected)


def test_fill_nearest_matches_a_brute_force_reference():
    rng = np.random.default_rng(3)
    raw = rng.uniform(1.0, 3.0, (20, 24)).astype(np.float32)
    raw[rng.random(raw.shape) < 0.4] = 0
    filled = fill_nearest(raw)
    valid = np.argwhere(raw > 0)
    for r, c in np.argwhere(raw == 0):
        d2 = ((valid - [r, c]) ** 2).sum(1)
        nearest = valid[d2 == d2.min()]
        assert filled[r, c] in {raw[a, b] for a, b in nearest}
    np.testing.assert_array_equal(filled[raw > 0], raw[raw > 0])


def test_generated_depth_layers_are_consistent(small_frames):
    for frame in small_frames:
        s = frame.sample
        assert np.all(s.depth > 0)  # filled everywhere in a closed room
        measured = s.raw_depth > 0
        np.testing.assert_array_equal(s.raw_depth[measured], s.depth[measured])
        assert 0.0 < 1.0 - measured.mean() < 0.5
        # Raw depth is the exact depth plus sensor error (a few cm at room distances).
        err = np.abs(s.raw_depth[measured] - frame.exact_depth[measured])
        assert np.median(err / frame.exact_depth[measured] ** 2) < 0.01
        holes = ~measured
        assert ndimage.binary_dilation(holes).sum() > holes.sum()  # holes are not the whole image


def test_appearance_randomness_controls_class_colour():
    fixed = [hue_blend_materials(np.random.default_rng(s), 3, 12, 0.0) for s in range(5)]
    for m in fixed[1:]:
        np.testing.assert_array_equal(m.colour, fixed[0].colour)
        assert np.all(m.contrast == 0)
    free = [hue_blend_materials(np.random.default_rng(s), 3, 12, 1.0).colour for s in range(5)]
    assert np.std(np.stack(free)[:, 0], axis=0).mean() > 0.1


def test_appearance_randomness_zero_renders_class_coloured_objects():
    config = SynthRoomsConfig(width=64, height=48, appearance_randomness=0.0, appearance_model="hue-blend")
    rooms = SynthRooms(config, seed=2)
    frame = rooms.frame(0)
    assert frame.sample.rgb.dtype == np.uint8 and frame.sample.rgb.std() > 5
