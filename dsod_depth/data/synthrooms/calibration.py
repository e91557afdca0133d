"""How much class information SynthRooms' colour carries: a k-nearest-neighbour probe.

The probe classifies ground-truth objects from simple colour statistics of their box crops (per
channel: mean, standard deviation and the 10/25/50/75/90th percentiles, 21 numbers) with a k-NN vote
against a reference set, and reports its accuracy beside the rate of always guessing the most
common reference class. Colour that informs without encoding the label scores clearly above that
rate but far from 1; appearance independent of the class scores close to it. The appearance
calibration (CALIBRATION.md in this folder, ``benchmarks/calibrate_appearance.py``) and the tests
use it; the frames, split and k are the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.spatial import cKDTree

from dsod_depth.data.sample import RGBDSample

__all__ = ["PERCENTILES", "colour_statistics", "knn_accuracy", "colour_probe"]

PERCENTILES = (10, 25, 50, 75, 90)


def colour_statistics(rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float64 [N, 21]: per channel mean, std and :data:`PERCENTILES` of the uint8 [H, W, 3] image
    (scaled to [0, 1]) inside each float [N, 4] box (x1, y1, x2, y2 in pixel-edge coordinates)."""
    height, width = rgb.shape[:2]
    features = np.zeros((len(boxes), 3 * (2 + len(PERCENTILES))))
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64)):
        c0, c1 = int(np.clip(np.floor(x1), 0, width - 1)), int(np.clip(np.ceil(x2), 1, width))
        r0, r1 = int(np.clip(np.floor(y1), 0, height - 1)), int(np.clip(np.ceil(y2), 1, height))
        pixels = rgb[r0 : max(r1, r0 + 1), c0 : max(c1, c0 + 1)].reshape(-1, 3) / 255.0  # [P, 3]
        stats = [pixels.mean(0), pixels.std(0), *np.percentile(pixels, PERCENTILES, axis=0)]
        features[i] = np.concatenate(stats)
    return features


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, reference: np.ndarray, k: int = 5
) -> tuple[float, float]:
    """(k-NN accuracy, guessing rate) on the queries (rows where bool ``reference`` is False).

    Features are standardised with the reference rows' mean and std; each query takes the majority
    label of its k nearest reference rows (Euclidean), ties going to the label of the nearest among
    the tied. The guessing rate is the accuracy of always answering the most common reference label.
    """
    labels = np.asarray(labels)
    ref, query = np.flatnonzero(reference), np.flatnonzero(~np.asarray(reference))
    if len(ref) < k or len(query) == 0:
        raise ValueError(f"need at least {k} reference and 1 query rows, got {len(ref)} and {len(query)}")
    mean, std = features[ref].mean(0), features[ref].std(0) + 1e-9
    z = (features - mean) / std
    _, neighbours = cKDTree(z[ref]).query(z[query], k=k)
    neighbours = neighbours.reshape(len(query), k)  # [Q, k] nearest first (k = 1 returns [Q])
    votes = labels[ref][neighbours]  # [Q, k]
    correct = 0
    for row, truth in zip(votes, labels[query]):
        values, counts = np.unique(row, return_counts=True)
        tied = set(values[counts == counts.max()])
        answer = next(v for v in row if v in tied)  # the nearest of the most voted labels
        correct += int(answer == truth)
    common = np.bincount(labels[ref]).argmax()
    return correct / len(query), float(np.mean(labels[query] == common))


def colour_probe(samples: Iterable[RGBDSample], *, reference_fraction: float = 2 / 3, k: int = 5) -> dict:
    """Run the probe on frames: objects of the first ``reference_fraction`` of the frames are the
    reference set, the rest the queries (objects of one frame never sit on both sides).

    Returns {"accuracy", "guess", "ratio", "objects", "queries"}.
    """
    features, labels, frame_of = [], [], []
    for i, sample in enumerate(samples):
        if len(sample.boxes):
            features.append(colour_statistics(sample.rgb, sample.boxes))
            labels.append(np.asarray(sample.labels))
            frame_of.append(np.full(len(sample.boxes), i))
    frames = np.concatenate(frame_of)
    reference = frames < reference_fraction * (frames.max() + 1)
    accuracy, guess = knn_accuracy(np.concatenate(features), np.concatenate(labels), reference, k)
    return {"accuracy": accuracy, "guess": guess, "ratio": accuracy / guess,
            "objects": int(len(frames)), "queries": int((~reference).sum())}  # fmt: skip
