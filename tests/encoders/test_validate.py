"""Input checks shared by every encoder: clear KitErrors for depth that is not metres."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.encoders import ENCODERS, encode, hha_image, hha_image_torch, validate_depth
from dsod_depth.encoders.base import validate_depth_tensor
from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics

CAM = Intrinsics(200.0, 200.0, 15.5, 11.5)
GOOD = np.full((24, 32), 2.0)


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (np.full((24, 32), 200, np.uint8), "8-bit"),
        (np.full((24, 32), 2000, np.uint16), "dtype uint16"),
        (np.ones((24, 32), bool), "8-bit"),
        (np.full((2, 24, 32), 2.0), "2-D"),
        (np.full(5, 2.0), "2-D"),
        (np.where(np.eye(24, 32) > 0, np.nan, 2.0), "NaN or infinite"),
        (np.where(np.eye(24, 32) > 0, np.inf, 2.0), "NaN or infinite"),
        (np.where(np.eye(24, 32) > 0, -1.0, 2.0), "negative"),
        (np.zeros((24, 32)), "no valid pixel"),
        (np.full((24, 32), 2000.0), "not a depth in metres"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_bad_depth_is_refused_by_every_entry_point(depth, message):
    with pytest.raises(KitError, match=message):
        validate_depth(depth)
    with pytest.raises(KitError, match=message):
        hha_image(depth, None, CAM)
    for name in ENCODERS.list():
        with pytest.raises(KitError, match=message):
            encode(name, depth, None, CAM)


def test_raw_depth_is_checked_too_and_shapes_must_match():
    with pytest.raises(KitError, match="raw depth has no valid pixel"):
        encode("hha", GOOD, np.zeros_like(GOOD), CAM)
    with pytest.raises(KitError, match="same shape"):
        encode("raw", GOOD, GOOD[:10], CAM)
    with pytest.raises(KitError, match="Intrinsics"):
        encode("raw", GOOD, None, (200.0, 200.0, 15.5, 11.5))


def test_valid_depth_is_returned_as_float64():
    out = validate_depth(GOOD.astype(np.float32))
    assert out.dtype == np.float64 and out.shape == GOOD.shape
    assert validate_depth(GOOD) is GOOD  # no copy when already float64


def test_torch_validation_reports_the_empty_frame():
    batch = torch.from_numpy(np.stack([GOOD, np.zeros_like(GOOD)]))
    with pytest.raises(KitError, match=r"frame\(s\) \[1\]"):
        validate_depth_tensor(batch)
    with pytest.raises(KitError, match="float metres"):
        hha_image_torch(batch.to(torch.int32), None, CAM)
    with pytest.raises(KitError, match="2 depth images"):
        hha_image_torch(torch.from_numpy(np.stack([GOOD, GOOD])), None, [CAM])
