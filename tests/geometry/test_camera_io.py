"""Camera parsing for the CLI and SUN RGB-D ``intrinsics.txt`` reading."""

from __future__ import annotations

import pytest

from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics, read_sunrgbd_intrinsics


def test_parse_nyu_and_numbers():
    assert Intrinsics.parse("nyu") == Intrinsics.nyu()
    assert Intrinsics.parse(" NYU ") == Intrinsics.nyu()
    assert Intrinsics.parse("500,510.5, 320,-2") == Intrinsics(500.0, 510.5, 320.0, -2.0)


BAD_CAMERAS = ["", "kinect", "1,2,3", "1,2,3,4,5", "a,b,c,d", "500,nan,1,1", "0,500,1,1", "500,-1,1,1"]


@pytest.mark.parametrize("spec", BAD_CAMERAS)
def test_parse_rejects_malformed_cameras(spec):
    with pytest.raises(KitError, match="camera"):
        Intrinsics.parse(spec)


def test_sunrgbd_intrinsics_are_made_zero_based(tmp_path):
    # A kv2 camera matrix as stored by SUN RGB-D: row-major, 1-based principal point.
    path = tmp_path / "intrinsics.txt"
    path.write_text("529.5 0 365.0\n0 529.5 265.0\n0 0 1\n")
    cam = read_sunrgbd_intrinsics(path)
    assert cam == Intrinsics(529.5, 529.5, 364.0, 264.0)
    # The toolbox's first pixel (u = 1) and the kit's (u = 0) are the same pixel.
    assert (1 - 365.0) / 529.5 == (0 - cam.cx) / cam.fx


def test_sunrgbd_intrinsics_errors(tmp_path):
    with pytest.raises(KitError, match="cannot read"):
        read_sunrgbd_intrinsics(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("529.5 0 365.0 0 529.5 265.0")
    with pytest.raises(KitError, match="9 numbers"):
        read_sunrgbd_intrinsics(bad)
    bad.write_text("529.5 0 365 0 529.5 265 0 1 1")
    with pytest.raises(KitError, match="not a camera matrix"):
        read_sunrgbd_intrinsics(bad)
