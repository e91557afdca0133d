"""Depth decoders: NYU raw Kinect PGM, SUN RGB-D PNG, generic 16-bit PNG / .npy; real frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dsod_depth.data.depth_io import (
    nyu_raw_to_metres,
    read_depth,
    read_nyu_raw_depth,
    read_pgm,
    read_sun_depth,
    save_png_atomic,
    sun_png_to_metres,
)
from dsod_depth.encoders import ENCODERS, encode
from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics


def _write_pgm(path, values: np.ndarray, byteorder: str, comment: bool = False) -> None:
    header = b"P5\n" + (b"# written by a test\n" if comment else b"") + b"%d %d\n65535\n" % values.shape[::-1]
    path.write_bytes(header + values.astype(("<" if byteorder == "little" else ">") + "u2").tobytes())


def test_pgm_reader_honours_the_byte_order(tmp_path):
    values = np.array([[1, 256, 839], [1092, 2047, 65535]], dtype=np.uint16)
    _write_pgm(tmp_path / "big.pgm", values, "big", comment=True)
    _write_pgm(tmp_path / "little.pgm", values, "little")
    np.testing.assert_array_equal(read_pgm(tmp_path / "big.pgm"), values)
    np.testing.assert_array_equal(read_pgm(tmp_path / "little.pgm", byteorder="little"), values)
    (tmp_path / "bad.pgm").write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    with pytest.raises(KitError, match="P5"):
        read_pgm(tmp_path / "bad.pgm")
    (tmp_path / "short.pgm").write_bytes(b"P5\n4 4\n65535\n" + bytes(10))
    with pytest.raises(KitError, match="too short"):
        read_pgm(tmp_path / "short.pgm")


def test_nyu_disparity_to_metres_golden_values():
    raw = np.array([839, 1000, 1092, 1100, 2047])
    metres = nyu_raw_to_metres(raw)
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres[:2], [351.3 / (1092.5 - 839), 351.3 / 92.5], rtol=1e-6)
    assert metres[2] == 10.0  # 702.6 m clipped to the 10 m maximum
    assert metres[3] == 0.0  # beyond the model's pole: negative, clipped to 0
    assert metres[4] == 0.0  # 2047: no reading


def test_sun_rotation_round_trip():
    mm = np.array([[0, 1, 1000, 2723, 7999, 9500]], dtype=np.uint16)  # 9500 uses the top 3 bits
    stored = (mm << 3) | (mm >> 13)  # what the dataset writes: bits rotated left by 3 (uint16)
    expected = [[0.0, 0.001, 1.0, 2.723, 7.999, 8.0]]  # 9.5 m clipped at 8 m like the toolbox
    np.testing.assert_allclose(sun_png_to_metres(stored), expected, rtol=1e-6)


def test_generic_png_and_npy(tmp_path):
    mm = np.array([[0, 500, 65535], [1234, 1, 2]], dtype=np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_depth(tmp_path / "d.png", 1000), mm / 1000.0)
    np.save(tmp_path / "d.npy", mm.astype(np.float32) / 1000)
    out = read_depth(tmp_path / "d.npy", 1)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, mm / 1000.0, rtol=1e-7)


@pytest.mark.parametrize(
    ("name", "writer", "message"),
    [
        ("gray.png", lambda p: Image.fromarray(np.zeros((4, 4), np.uint8)).save(p), "8-bit image"),
        ("rgb.png", lambda p: Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(p), "colour image"),
        ("u8.npy", lambda p: np.save(p, np.zeros((4, 4), np.uint8)), "8-bit"),
        ("bool.npy", lambda p: np.save(p, np.zeros((4, 4), bool)), "dtype bool"),
        ("cube.npy", lambda p: np.save(p, np.zeros((2, 4, 4))), "2-D"),
        ("text.png", lambda p: p.write_text("not an image"), "not a readable image"),
        ("text.npy", lambda p: p.write_text("not an array"), "not a readable .npy"),
    ],
)
def test_unusable_depth_files_are_refused(tmp_path, name, writer, message):
    path = tmp_path / name
    writer(path)
    with pytest.raises(KitError, match=message):
        read_depth(path, 1000)


def test_missing_file_and_bad_scale(tmp_path):
    with pytest.raises(KitError, match="not found"):
        read_depth(tmp_path / "none.png", 1000)
    with pytest.raises(KitError, match="positive"):
        read_depth(tmp_path / "none.png", 0)
    with pytest.raises(KitError, match="not found"):
        read_sun_depth(tmp_path / "none.png")


def test_png_is_written_atomically(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    save_png_atomic(tmp_path / "x.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    with pytest.raises(KitError, match="does not exist"):
        save_png_atomic(tmp_path / "missing" / "x.png", image)


def test_real_nyu_raw_kinect_frame(shared_data):
    depth = read_nyu_raw_depth(shared_data / "rgbd_samples" / "NYU_depth.pgm")
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    valid = depth[depth > 0]
    assert valid.min() == pytest.approx(1.39, abs=0.01) and valid.max() == pytest.approx(6.69, abs=0.01)
    # Read big-endian (the PGM rule) the same bytes would be nonsense.
    assert read_pgm(shared_data / "rgbd_samples" / "NYU_depth.pgm").max() > 60000
    _encode_all(depth)


def test_real_sun_rgbd_frame(shared_data):
    depth = read_sun_depth(shared_data / "rgbd_samples" / "SUN_depth.png")
    assert depth.shape == (480, 640)
    assert (depth == 0).sum() == 56012
    assert np.median(depth[depth > 0]) == pytest.approx(2.72, abs=0.01)
    assert depth.max() <= 8.0
    _encode_all(depth)


def _encode_all(depth: np.ndarray) -> None:
    """Every encoder on a raw sensor frame (filled = raw, holes included): finite output."""
    for name in ENCODERS.list():
        out = encode(name, depth, depth, Intrinsics.nyu())
        assert np.isfinite(out).all(), name
