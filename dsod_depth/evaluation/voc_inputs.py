"""Checks and flattening of the in-memory VOC evaluator's inputs (see :func:`evaluate_voc`).

Every failure is a one-line :class:`KitError` naming the array and what it should be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dsod_depth.errors import KitError


def as_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like; torch tensors (CPU or GPU) are detached and copied to the CPU."""
    if type(x) is np.ndarray:
        return x
    if hasattr(x, "detach"):  # a torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def class_names_or_default(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """``num_classes`` distinct names; ``"0"``, ``"1"``, ... when none are given."""
    if num_classes < 1:
        raise KitError(f"num_classes must be >= 1; got {num_classes}")
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes or len(set(names)) != num_classes:
        raise KitError(f"class_names must be {num_classes} distinct names; got {names}")
    return names


def concat(per_image: Sequence[Sequence[Any]], what: str) -> tuple[np.ndarray, ...]:
    """Per-image ``(boxes [n, 4], a [n], b [n])`` → image index int64 [T], boxes float64 [T, 4], a [T],
    b [T] (a, b = labels, difficult or scores, labels, in their own dtypes; the checks cast them)."""
    sizes, boxes, first, second = [], [], [], []
    for i, item in enumerate(per_image):  # Python per image only; all per-box work is vectorised
        if len(item) != 3:
            raise KitError(f"{what} of image {i} must be a 3-tuple; see evaluate_voc's docstring")
        b, x, y = as_numpy(item[0]), as_numpy(item[1]), as_numpy(item[2])
        n = x.size
        if b.shape != (n, 4) or y.size != n:
            if b.size or n:
                raise KitError(f"{what} of image {i}: boxes of shape {list(b.shape)}, want [{n}, 4]")
            b = b.reshape(0, 4)  # an empty list has shape [0]
        sizes.append(n)
        boxes.append(b)
        first.append(x.reshape(-1))
        second.append(y.reshape(-1))
    if not sizes:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    image = np.repeat(np.arange(len(sizes)), sizes)  # [T]
    return image, np.concatenate(boxes), np.concatenate(first), np.concatenate(second)


def check_boxes(boxes: np.ndarray, n: int, what: str) -> np.ndarray:
    """Array-like → float64 [n, 4] xyxy with finite coordinates and x2 >= x1, y2 >= y1."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0 and n == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.shape != (n, 4):
        raise KitError(f"{what} boxes must have shape [{n}, 4]; got {list(np.shape(boxes))}")
    if not np.isfinite(boxes).all():
        raise KitError(f"{what} boxes contain NaN or infinite coordinates")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise KitError(f"{what} boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
    return boxes


def check_gt(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GT arrays → image int64 [G] (>= 0), boxes float64 [G, 4], labels int64 [G], difficult bool [G]."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    image = np.asarray(image, dtype=np.int64).reshape(-1)
    difficult = np.asarray(difficult, dtype=bool).reshape(-1)
    if len(image) != n or len(difficult) != n:
        raise KitError(f"ground truth: {n} labels but {len(image)} image indices and {len(difficult)} flags")
    if n and image.min() < 0:
        raise KitError("ground-truth image indices must be >= 0 (0-based image positions)")
    return image, check_boxes(boxes, n, "ground-truth"), labels, difficult


def check_det(
    image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detection arrays → image int64 [D] (>= 0), boxes float64 [D, 4], scores float64 [D] (finite),
    labels int64 [D]."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    image = np.asarray(image, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(image) != n or len(scores) != n:
        raise KitError(f"detections: {n} labels but {len(image)} image indices and {len(scores)} scores")
    if n and image.min() < 0:
        raise KitError("detection image indices must be >= 0 (0-based image positions)")
    if not np.isfinite(scores).all():
        raise KitError("detection scores contain NaN or infinite values")
    return image, check_boxes(boxes, n, "detection"), scores, labels


def check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
    """Every int64 [N] label must lie in [0, num_classes)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise KitError(f"{what} label {bad} is outside [0, {num_classes}) (labels are 0-based class indices)")
