"""RGBDSample validation: every contract violation is a KitError naming the sample."""

from __future__ import annotations

import numpy as np
import pytest

from dsod_depth.data import RGBDSample
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics


def make(**overrides):
    fields = dict(
        rgb=np.zeros((4, 6, 3), np.uint8),
        depth=np.full((4, 6), 2.0, np.float32),
        raw_depth=np.full((4, 6), 2.0, np.float32),
        intrinsics=Intrinsics(5.0, 5.0, 2.5, 1.5),
        boxes=np.array([[0, 0, 6, 4], [1.5, 1, 2, 3]], np.float32),
        labels=np.array([0, 3], np.int64),
        difficult=np.array([False, True]),
        image_id="frame-1",
    )
    fields.update(overrides)
    return RGBDSample(**fields)


def test_valid_sample_and_properties():
    s = make()
    assert (s.height, s.width, s.num_boxes) == (4, 6, 2)
    assert (
        make(
            rgb=None,
            boxes=np.zeros((0, 4), np.float32),
            labels=np.zeros(0, np.int64),
            difficult=np.zeros(0, bool),
        ).num_boxes
        == 0
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": np.full((4, 6), 2, np.uint8)}, "8-bit"),
        ({"depth": np.full((4, 6), 2.0, np.float64)}, "float32"),
        ({"depth": np.full((4, 6), np.nan, np.float32)}, "NaN"),
        ({"raw_depth": np.full((4, 6), -1.0, np.float32)}, "negative"),
        ({"raw_depth": np.zeros((4, 5), np.float32)}, "raw_depth"),
        ({"rgb": np.zeros((4, 6, 3), np.float32)}, "rgb must be uint8"),
        ({"hha": np.zeros((4, 6), np.uint8)}, "hha must be uint8"),
        ({"boxes": np.array([[0, 0, 7, 4], [1, 1, 2, 3]], np.float32)}, "outside"),
        ({"boxes": np.array([[2, 0, 2, 4], [1, 1, 2, 3]], np.float32)}, "empty"),
        ({"boxes": np.zeros((2, 4), np.float64)}, "float32"),
        ({"labels": np.array([0, -1], np.int64)}, "0-based"),
        ({"labels": np.array([0, 1, 2], np.int64)}, "labels must be int64 \\[2\\]"),
        ({"difficult": np.array([0, 1])}, "difficult must be bool"),
        ({"image_id": ""}, "image_id"),
        ({"intrinsics": (5.0, 5.0, 2.5, 1.5)}, "Intrinsics"),
    ],
)
def test_violations_raise_a_clear_error(overrides, message):
    with pytest.raises(KitError, match=message) as err:
        make(**overrides)
    if overrides.get("image_id", "frame-1"):
        assert "frame-1" in str(err.value)


def test_labels_are_checked_against_the_class_count():
    s = make()
    s.validate(num_classes=4)
    with pytest.raises(KitError, match=r"\[0, 3\)"):
        s.validate(num_classes=3)
