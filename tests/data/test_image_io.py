"""The dataset colour reader: every Pillow mode becomes uint8 RGB; a damaged file is one KitError."""

import numpy as np
import pytest
from PIL import Image

from dsod_depth.data.image_io import read_dataset_rgb
from dsod_depth.errors import KitError


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_dataset_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA"])
def test_other_modes_become_rgb(tmp_path, mode):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = Image.fromarray(grey, mode="L").convert(mode)
    image.save(tmp_path / "a.png")
    out = read_dataset_rgb(tmp_path / "a.png")
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


def test_jpeg_reads_like_pillow(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=90)
    with Image.open(tmp_path / "a.jpg") as im:
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_dataset_rgb(tmp_path / "a.jpg"), expected)


@pytest.mark.parametrize("content", [b"", b"not an image", None])
def test_damaged_or_missing_file_names_the_file(tmp_path, content):
    path = tmp_path / "frame.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KitError, match=r"frame\.jpg is unreadable .*extract it again, then rerun"):
        read_dataset_rgb(path)


def test_truncated_jpeg_names_the_file(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(KitError, match="is unreadable"):
        read_dataset_rgb(tmp_path / "a.jpg")


def test_a_16_bit_depth_image_is_refused_by_the_dataset_reader_too(tmp_path):
    # One decoder for datasets and users' frames: a depth PNG filed as the colour image is named.
    Image.fromarray(np.full((8, 8), 1500, dtype=np.uint16)).save(tmp_path / "depth_as_colour.png")
    with pytest.raises(KitError, match=r"depth_as_colour\.png is a 16-bit single-channel image .*swapped"):
        read_dataset_rgb(tmp_path / "depth_as_colour.png")
