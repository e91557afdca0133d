"""Per-frame channel moments and their exact merging."""

from __future__ import annotations

import numpy as np
import pytest

from dsod_depth.data.stats import frame_moments, merge_moments, moments_to_mean_std


def direct(x: np.ndarray) -> np.ndarray:
    """(count, mean, M2) per channel, straight from the definition in float64."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    mean = flat.mean(axis=1)
    return np.stack([np.full(len(mean), flat.shape[1]), mean, ((flat - mean[:, None]) ** 2).sum(1)], 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_frame_moments_match_the_definition(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 37, 53)).astype(dtype)
    x[1] = 200  # a constant channel: M2 exactly 0
    got = frame_moments(x)
    np.testing.assert_allclose(got, direct(x), rtol=1e-12, atol=1e-9)
    assert got[1, 2] == 0.0


def test_byte_moments_of_a_strided_view():
    # HWC images are passed transposed (a strided [3, H, W] view).
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    chw = hwc.transpose(2, 0, 1)
    np.testing.assert_allclose(frame_moments(chw), direct(chw), rtol=1e-12)


def test_merged_frames_equal_the_moments_of_all_pixels():
    rng = np.random.default_rng(2)
    frames = [rng.normal(i, 1 + i, (2, 10 + i, 7)) for i in range(5)]
    merged = merge_moments(np.stack([frame_moments(f) for f in frames]))
    everything = np.concatenate([f.reshape(2, -1) for f in frames], axis=1)
    np.testing.assert_allclose(merged, direct(everything), rtol=1e-10)
    mean, std = moments_to_mean_std(merged)
    np.testing.assert_allclose(mean, everything.mean(1), rtol=1e-12)
    np.testing.assert_allclose(std, everything.std(1), rtol=1e-10)
