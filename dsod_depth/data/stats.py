"""Per-channel mean and standard deviation over a split, mergeable frame by frame.

Each frame contributes its own (count, mean, M2) per channel, where M2 is the sum of squared
deviations from the frame's mean. Frames merge exactly with the pairwise formula of Chan, Golub
and LeVeque (1979) — no catastrophic cancellation from accumulating raw sums of squares — and in
any order, so an interrupted preparation that resumes gives the same statistics bit for bit
once the per-frame moments are stored with the frame.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_moments", "merge_moments", "moments_to_mean_std"]


def frame_moments(channels: np.ndarray) -> np.ndarray:
    """Moments of one frame.

    Args:
        channels: [C, H, W] (or [C, ...]) values of one channel group, any real dtype.

    Returns:
        float64 [C, 3]: per channel (pixel count, mean, M2 = Σ (x - mean)²).
    """
    if channels.dtype == np.uint8:
        return _byte_moments(channels.reshape(channels.shape[0], -1))
    x = channels.reshape(channels.shape[0], -1).astype(np.float64)  # [C, ...] → [C, P]
    mean = x.mean(axis=1)
    m2 = np.square(x - mean[:, None]).sum(axis=1)
    return np.stack([np.full_like(mean, x.shape[1]), mean, m2], axis=1)


def _byte_moments(x: np.ndarray) -> np.ndarray:
    """:func:`frame_moments` of uint8 [C, P] from a 256-bin histogram per channel.

    Exact sums over 256 values instead of float64 passes over P pixels (RGB and HHA of every
    prepared frame): several times faster, the same numbers to rounding.
    """
    levels = np.arange(256, dtype=np.float64)
    out = np.empty((x.shape[0], 3))
    for c, values in enumerate(x):
        counts = np.bincount(values, minlength=256).astype(np.float64)  # [256]
        n = counts.sum()
        mean = counts @ levels / n if n else 0.0
        out[c] = n, mean, counts @ np.square(levels - mean)
    return out


def merge_moments(moments: np.ndarray) -> np.ndarray:
    """Merge per-frame moments float64 [F, C, 3] into float64 [C, 3] for all F frames together.

    N = Σ n_f, mean = Σ n_f mean_f / N, M2 = Σ M2_f + Σ n_f (mean_f - mean)².
    """
    n, mean, m2 = moments[..., 0], moments[..., 1], moments[..., 2]  # each [F, C]
    total = n.sum(axis=0)  # [C]
    safe = np.maximum(total, 1.0)
    grand = (n * mean).sum(axis=0) / safe
    spread = m2.sum(axis=0) + (n * np.square(mean - grand)).sum(axis=0)
    return np.stack([total, grand, spread], axis=1)


def moments_to_mean_std(moments: np.ndarray, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """float64 [C, 3] merged moments → (mean [C], population std [C]) with std ≥ ``min_std``.

    The floor keeps a constant channel (e.g. an encoder that is flat on some dataset) from
    dividing by zero at normalisation time.
    """
    n = np.maximum(moments[:, 0], 1.0)
    return moments[:, 1].copy(), np.maximum(np.sqrt(moments[:, 2] / n), min_std)
