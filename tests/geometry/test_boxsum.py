"""Zero-padded box sums: parity with direct 2-D convolution, exactness, bands, torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from dsod_depth.geometry import box_sum
from dsod_depth.geometry.boxsum import FlatLayout, flat_box_sums


def _reference(x: np.ndarray, radius: int) -> np.ndarray:
    """MATLAB filter2(ones(2r+1), x) == conv2(x, ones, 'same'), by direct summation."""
    return convolve2d(x, np.ones((2 * radius + 1, 2 * radius + 1)), mode="same")


@pytest.mark.parametrize("radius", [0, 1, 3, 5, 10])
@pytest.mark.parametrize("shape", [(1, 1), (5, 4), (37, 53), (12, 90)])
def test_box_sum_matches_direct_convolution(radius, shape):
    rng = np.random.default_rng(radius * 100 + shape[0])
    x = rng.normal(size=shape)
    x[rng.random(shape) < 0.3] = 0.0
    np.testing.assert_allclose(box_sum(x, radius), _reference(x, radius), rtol=1e-12, atol=1e-12)


def test_box_sum_keeps_leading_axes():
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 20, 17))
    out = box_sum(x, 2)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[1, 2], _reference(x[1, 2], 2), rtol=1e-12)


def test_windows_with_at_most_two_values_are_summed_exactly():
    # filter2 adds zeros exactly and two values in one rounding: a window inside a
    # hole must give exactly 0 and a sparse window exactly a + b (integral images
    # would leave rounding residue from the running totals).
    rng = np.random.default_rng(2)
    x = np.zeros((60, 70))
    x[:, :20] = rng.normal(size=(60, 20)) * 1e3  # large values far away
    x[30, 50], x[33, 52] = 0.1234567891234567, 7.654321e-5
    sums = box_sum(x, 3)
    assert sums[30, 50] == 0.1234567891234567 + 7.654321e-5
    assert sums[30, 47] == 0.1234567891234567  # only the first value in the window
    assert sums[10, 60] == 0.0  # window entirely in zeros
    big = box_sum(x, 10)
    assert big[40, 60] == 0.1234567891234567 + 7.654321e-5
    assert big[5, 65] == 0.0


def test_bands_give_the_same_sums_as_the_whole_image():
    rng = np.random.default_rng(3)
    height, width = 50, 33
    layout = FlatLayout(height, width, 10)
    flat = layout.pack(rng.normal(size=(height, width)))
    whole = flat_box_sums(flat, layout, [3, 10])
    for top, bottom in [(0, 7), (7, 30), (30, 50), (49, 50)]:
        band = flat_box_sums(flat, layout, [3, 10], (top, bottom))
        for b, w in zip(band, whole):
            span = slice(top * layout.row, bottom * layout.row)
            np.testing.assert_array_equal(b, w[span])
    image = layout.unpack_rows(flat[layout.offset(0) : layout.offset(height)])
    np.testing.assert_allclose(layout.unpack_rows(whole[1]), _reference(image, 10), rtol=1e-12, atol=1e-12)


def test_radius_not_a_multiple_of_the_smallest_is_summed_directly():
    rng = np.random.default_rng(4)
    height, width = 25, 31
    layout = FlatLayout(height, width, 4)
    x = rng.normal(size=(height, width))
    small, other = flat_box_sums(layout.pack(x), layout, [1, 4])  # 9 is not a multiple of 3
    np.testing.assert_allclose(layout.unpack_rows(small), _reference(x, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layout.unpack_rows(other), _reference(x, 4), rtol=1e-12, atol=1e-12)


def test_torch_gives_bitwise_the_same_sums():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 40, 45))
    np.testing.assert_array_equal(box_sum(torch.from_numpy(x), 10).numpy(), box_sum(x, 10))


def test_invalid_radii_are_rejected():
    layout = FlatLayout(5, 5, 2)
    flat = layout.pack(np.ones((5, 5)))
    with pytest.raises(ValueError, match="margin"):
        flat_box_sums(flat, layout, [3])
    with pytest.raises(ValueError, match=">= 0"):
        flat_box_sums(flat, layout, [-1])
