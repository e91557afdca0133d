"""The encoder registry: channel counts, values of each encoding, properties on random depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dsod_depth.encoders import ENCODERS, encode, hha_channels, hha_image, hha_image_torch, num_channels
from dsod_depth.encoders.simple import JET_RANGE_M, MIN_DISPARITY_DEPTH_M
from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics, surface_normals

CAM = Intrinsics(250.0, 260.0, 15.5, 11.5)
EXPECTED_CHANNELS = {"raw": 1, "disparity": 1, "jet": 3, "normals": 3, "hha": 3}


def _scene(shape=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]]
    depth = 1.0 + 0.05 * u + 0.02 * v + 0.01 * rng.random(shape)
    raw = np.where(rng.random(shape) < 0.2, 0.0, depth)
    return depth, raw


def test_registry_lists_the_five_encoders_with_their_channels():
    assert ENCODERS.list() == sorted(EXPECTED_CHANNELS)
    for name, channels in EXPECTED_CHANNELS.items():
        assert num_channels(name) == channels
    with pytest.raises(KitError, match="unknown depth encoder 'rgb'"):
        num_channels("rgb")


@pytest.mark.parametrize("name", sorted(EXPECTED_CHANNELS))
def test_output_is_float32_channels_first(name):
    depth, raw = _scene()
    out = encode(name, depth, raw, CAM)
    assert out.dtype == np.float32 and out.shape == (EXPECTED_CHANNELS[name], 24, 32)
    assert np.isfinite(out).all()


def test_raw_and_disparity_values():
    depth, raw = _scene()
    depth[3, 4] = 0.0
    depth[5, 6] = 0.001  # closer than 1 cm: clamped
    np.testing.assert_array_equal(encode("raw", depth, raw, CAM)[0], depth.astype(np.float32))
    disparity = encode("disparity", depth, raw, CAM)[0]
    assert disparity[3, 4] == 0.0
    assert disparity[5, 6] == np.float32(1 / MIN_DISPARITY_DEPTH_M)
    np.testing.assert_allclose(disparity[0, 0], 1.0 / depth[0, 0], rtol=1e-6)


def test_jet_has_a_fixed_range_and_black_for_missing():
    depth = np.array([[0.0, JET_RANGE_M[0] + 1e-9, 5.0, JET_RANGE_M[1], 50.0]])
    rgb = encode("jet", depth, None, CAM)  # [3, 1, 5]
    np.testing.assert_array_equal(rgb[:, 0, 0], [0.0, 0.0, 0.0])  # missing
    assert rgb[2, 0, 1] > 100 and rgb[0, 0, 1] == 0  # near: blue
    assert rgb[1, 0, 2] > 200  # middle of the range: green
    assert rgb[0, 0, 3] > 100 and rgb[2, 0, 3] == 0  # far: red
    np.testing.assert_array_equal(rgb[:, 0, 4], rgb[:, 0, 3])  # beyond the range: saturates
    assert rgb.min() >= 0 and rgb.max() <= 255


def test_normals_encoder_is_the_hha_angle_normal_with_zeros_for_undefined():
    depth, raw = _scene()
    raw[:, :12] = 0.0  # a hole wider than the window: undefined normals there
    out = encode("normals", depth, raw, CAM)
    expected = surface_normals(depth, CAM, radius=3, valid=raw > 0)
    np.testing.assert_array_equal(out, np.nan_to_num(expected).astype(np.float32))
    assert (out[:, :, :8] == 0).all()
    norms = np.linalg.norm(out[:, :, 16:], axis=0)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)


def test_hha_encoder_carries_the_uint8_values():
    depth, raw = _scene()
    np.testing.assert_array_equal(
        encode("hha", depth, raw, CAM), hha_image(depth, raw, CAM).transpose(2, 0, 1).astype(np.float32)
    )


@st.composite
def depth_with_holes(draw):
    height = draw(st.integers(4, 28))
    width = draw(st.integers(4, 28))
    depth = draw(
        hnp.arrays(np.float64, (height, width), elements=st.floats(0.02, 900.0, allow_subnormal=False))
    )
    holes = draw(hnp.arrays(np.bool_, (height, width)))
    holes[draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))] = False  # keep one valid
    fx = draw(st.floats(50.0, 2000.0))
    fy = fx * draw(st.floats(0.8, 1.25))
    cam = Intrinsics(fx, fy, draw(st.floats(-5.0, 40.0)), draw(st.floats(-5.0, 40.0)))
    return depth, np.where(holes, 0.0, depth), cam


@settings(max_examples=40, deadline=None)
@given(depth_with_holes())
def test_any_positive_depth_with_holes_encodes_to_finite_values_in_range(case):
    depth, raw, cam = case
    for name in ENCODERS.list():
        out = encode(name, depth, raw, cam)
        assert np.isfinite(out).all(), name
    assert (encode("disparity", depth, raw, cam) <= 1 / MIN_DISPARITY_DEPTH_M).all()
    assert ((encode("jet", depth, raw, cam) >= 0) & (encode("jet", depth, raw, cam) <= 255)).all()
    assert (np.abs(encode("normals", depth, raw, cam)) <= 1 + 1e-6).all()
    channels, gravity = hha_channels(depth[None], raw[None], cam.fx, cam.fy, cam.cx, cam.cy)
    assert np.isfinite(channels).all() and np.isfinite(gravity).all()
    assert (channels[:, 0] > 0).all() and (channels[:, 0] <= 310).all()  # 31000 / max(z, 100)
    assert (channels[:, 1] >= 0).all()  # above the lowest point (or the assumed floor)
    assert ((channels[:, 2] >= 38) & (channels[:, 2] <= 218)).all()  # angle + 38
    np.testing.assert_allclose(np.linalg.norm(gravity), 1.0)


@settings(max_examples=30, deadline=None)
@given(depth_with_holes())
def test_torch_and_numpy_hha_agree(case):
    depth, raw, cam = case
    pair = [torch.from_numpy(np.stack(frames)) for frames in ([depth, depth], [raw, depth])]
    batched = hha_image_torch(*pair, cam)
    np.testing.assert_array_equal(batched[0].numpy(), hha_image(depth, raw, cam))
    np.testing.assert_array_equal(batched[1].numpy(), hha_image(depth, depth, cam))
