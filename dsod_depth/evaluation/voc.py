"""PASCAL VOC detection AP, by the rules of the official devkit (REFERENCE §5, ``VOCevaldet.m``).

Rules, per class independently:

1. ``npos`` = number of non-difficult ground-truth (GT) boxes of the class.
2. All detections of the class, over the whole set, sorted by descending score. The sort is
   **stable**: tied scores keep the input order (for files: the order of the results file; for the
   per-image API: image order, then the order inside each image). MATLAB's ``sort`` is stable, so this
   is what the devkit does with the same results file; py-faster-rcnn's ``np.argsort(-conf)``
   (quicksort) leaves ties in an unspecified order.
3. Each detection is compared with **every** GT of its class in its image (difficult and already
   matched ones included) and goes to the one with the highest IoU; on equal IoU the first GT in
   annotation order wins (the devkit's ``if ov > ovmax``).
4. If that IoU is ``>= iou_threshold`` (the devkit; py-faster-rcnn uses ``>``): a difficult GT makes the
   detection *ignored* (neither TP nor FP); an unmatched GT makes it a TP and marks the GT; an already
   matched GT makes it a FP (duplicate). Otherwise it is a FP. There is no fallback to the second-best GT.
5. VOC2007: 11-point AP, the mean over t = 0, 0.1, ..., 1 of the highest precision at recall >= t.
   VOC2010+ ("voc12"): area under the monotone (non-increasing) envelope of the PR curve.

Coordinates: boxes are continuous ``(x1, y1, x2, y2)`` with a pixel ``i`` spanning ``[i, i + 1]``, and the
IoU has no ``+1``. A devkit box with 1-based inclusive pixel corners ``(X1, Y1, X2, Y2)`` is the continuous
box ``(X1 - 1, Y1 - 1, X2, Y2)``: its width ``X2 - X1 + 1`` is exactly the devkit's, so the IoU is too.

Choices where the devkit is silent or ill-defined (documented, tested):

* Ignored detections are left out of the PR curve. The devkit keeps them as points that repeat the
  previous (recall, precision), or ``0/0 = NaN`` before the first TP/FP; ``max`` skips NaN, so every AP is
  unchanged, except a class whose detections are all ignored: devkit NaN, here 0.
* The 11-point thresholds are compared exactly (``10 * tp >= k * npos`` in integers). Floating ``0:0.1:1``
  (MATLAB) or ``np.arange(0, 1.1, 0.1)`` (py-faster-rcnn) turn 0.3 into 0.30000000000000004, which only
  matters when the recall lands exactly on such a threshold.
* AP is kept inside [0, 1]: the 11 precisions are summed exactly before dividing by 11, and the area
  is capped at 1 (the devkit's float accumulation can end one ulp above 1). This moves AP by at most a
  few 1e-16 from the devkit's arithmetic.
* A class with no non-difficult GT has no defined AP (the devkit divides by ``npos = 0``): it is reported
  as absent (NaN here, ``None`` in the result dict) and left out of the mean.

Why it is fast: by rule 3 the GT a detection goes to does not depend on the other detections; only
"who claims a GT first" does, and that is the earliest claimant in the sorted order. So the evaluation is
a sort, one IoU over the (detection, GT of the same image and class) pairs, one segmented argmax and one
first-occurrence search, with no Python loop over detections (``benchmarks/bench_eval.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.evaluation.voc_inputs import check_det, check_gt, check_labels, class_names_or_default, concat

__all__ = [
    "TP",
    "FP",
    "IGNORED",
    "VocAP",
    "match_detections",
    "average_precision",
    "voc_ap_from_arrays",
    "evaluate_voc",
    "voc_result_dict",
]

# Outcome codes of :func:`match_detections`.
TP, FP, IGNORED = 1, 0, -1


class VocAP(NamedTuple):
    """Per-class output of :func:`voc_ap_from_arrays`; K = number of classes."""

    ap: np.ndarray  # float64 [K], AP as a fraction in [0, 1]; NaN for a class without non-difficult GT
    num_gt: np.ndarray  # int64 [K], non-difficult GT boxes per class (the devkit's npos)
    num_det: np.ndarray  # int64 [K], detections per class


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a[i]`` with box ``b[i]``: [P, 4] xyxy, [P, 4] xyxy → float64 [P].

    Hand-written on purpose: ``torchvision.ops.box_iou`` gives all-pairs matrices, whereas here the
    pairs are ragged (each detection against the GT of its own image and class only), so an
    element-wise IoU over a flat list of pairs avoids any per-image loop. Same arithmetic as the devkit:
    the intersection counts only when both its sides are positive, ``union = area_a + area_b - inter``.
    """
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    # A positive intersection implies a positive union; 0 / 0 (two empty boxes) counts as no overlap.
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices sorting float [D] scores in descending order, ties in input order → int64 [D].

    Same result as ``np.argsort(-scores, kind="stable")``, about 3× faster on large inputs: an unstable
    quicksort, then only if equal scores exist, a re-sort of positions by (run of equal scores, index).
    """
    order = np.argsort(-scores)
    ordered = scores[order]
    tie = ordered[1:] == ordered[:-1]
    if tie.any():
        run = np.concatenate(([0], np.cumsum(~tie)))  # [D], id of each position's run of equal scores
        order = order[np.argsort(run * len(scores) + order)]  # unique keys: any sort is stable
    return order


def match_detections(
    gt_image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray,
    det_image: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_labels: np.ndarray,
    *,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Classify every detection as TP, FP or ignored by the devkit rules 2-4 (module docstring).

    Args:
        gt_image: int64 [G], 0-based image index of each GT box.
        gt_boxes: float64 [G, 4], xyxy continuous pixel coordinates.
        gt_labels: int64 [G], 0-based class index.
        gt_difficult: bool [G].
        det_image: int64 [D], 0-based image index of each detection (same numbering as ``gt_image``).
        det_boxes: float64 [D, 4], xyxy.
        det_scores: float64 [D], finite.
        det_labels: int64 [D], 0-based class index.
        iou_threshold: a detection needs IoU ``>=`` this with its best GT.

    Returns:
        ``(order, outcome)``: order int64 [D] = detection indices sorted by class, then descending score
        (stable, so ties keep input order); outcome int8 [D] in input order, one of ``TP``, ``FP``,
        ``IGNORED``.
    """
    num_det = len(det_scores)
    # Rule 2, class-major: a stable sort by class of the score order keeps each class's score order.
    by_score = _descending_order(det_scores)
    labels_by_score = det_labels[by_score]
    if len(labels_by_score) and labels_by_score.max() < np.iinfo(np.int16).max:
        labels_by_score = labels_by_score.astype(np.int16)  # numpy's stable sort is a radix sort here
    order = by_score[np.argsort(labels_by_score, kind="stable")]
    outcome = np.full(num_det, FP, dtype=np.int8)
    if num_det == 0 or len(gt_labels) == 0:
        return order, outcome

    # Group GT by (image, class) key; a stable sort keeps annotation order inside a group. A dense
    # table over keys (num_images × num_classes entries) gives each detection its group by one lookup.
    num_keys = int(max(gt_labels.max(), det_labels.max())) + 1
    gt_key = gt_image.astype(np.int64) * num_keys + gt_labels  # [G]
    det_key = det_image.astype(np.int64) * num_keys + det_labels  # [D]
    gt_order = np.argsort(gt_key, kind="stable")  # [G]
    group_size = np.bincount(gt_key, minlength=int(max(gt_key.max(), det_key.max())) + 1)  # [keys]
    group_start = np.cumsum(group_size) - group_size  # [keys], position in gt_order
    first_gt = group_start[det_key]  # [D]
    count = group_size[det_key]  # [D], GT of the detection's image and class

    # Rule 3: one flat list of (detection, candidate GT) pairs, detection-major.
    num_pairs = int(count.sum())
    pair_start = np.cumsum(count) - count  # [D], where each detection's pairs begin
    pair_det = np.repeat(np.arange(num_det), count)  # [P]
    pair_gt = np.repeat(first_gt - pair_start, count) + np.arange(num_pairs)  # [P], index into gt_order
    iou = _paired_iou(det_boxes[pair_det], gt_boxes[gt_order[pair_gt]])  # [P]

    has_gt = count > 0
    if not has_gt.any():
        return order, outcome
    starts = pair_start[has_gt]  # segments are non-empty and contiguous, as reduceat needs
    best_iou = np.full(num_det, -np.inf)
    best_iou[has_gt] = np.maximum.reduceat(iou, starts)
    # First GT (annotation order) among those reaching the maximum: the devkit's strict `ov > ovmax`.
    candidates = np.where(iou == best_iou[pair_det], pair_gt, num_pairs + len(gt_order))
    best_gt = np.zeros(num_det, dtype=np.int64)
    best_gt[has_gt] = gt_order[np.minimum.reduceat(candidates, starts)]

    # Rule 4.
    claims = best_iou >= iou_threshold
    ignored = claims & gt_difficult[best_gt]
    claims &= ~ignored
    claimants = order[claims[order]]  # claiming detections in sorted order
    _, first = np.unique(best_gt[claimants], return_index=True)  # the earliest claimant of each GT
    outcome[claimants[first]] = TP
    outcome[ignored] = IGNORED
    return order, outcome


def average_precision(outcome_sorted: np.ndarray, num_gt: int, *, use_07_metric: bool) -> float:
    """AP of one class from its outcomes in descending-score order.

    Args:
        outcome_sorted: int8 [D_c], ``TP``/``FP``/``IGNORED`` of the class's detections, best score first.
        num_gt: the class's number of non-difficult GT (npos), > 0.
        use_07_metric: True for VOC2007 11-point AP, False for the VOC2010+ area.

    Returns:
        AP as a fraction in [0, 1].
    """
    kept = outcome_sorted[outcome_sorted != IGNORED]
    if len(kept) == 0:
        return 0.0
    tp = np.cumsum(kept == TP)  # int [D_c]
    precision = tp / np.arange(1, len(kept) + 1)  # tp / (tp + fp)
    # Monotone envelope: the highest precision at this recall or any higher recall.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if use_07_metric:
        # recall >= k/10  <=>  tp >= ceil(k * npos / 10): exact integer comparison.
        needed = -((-np.arange(11) * num_gt) // 10)  # [11]
        first = np.searchsorted(tp, needed, side="left")  # first point reaching each threshold
        # Thresholds never reached add p = 0. One exactly rounded sum, then one division: a perfect class
        # scores exactly 1.0 (the devkit's running `ap = ap + p / 11` ends at 1.0000000000000002).
        return math.fsum(envelope[first[first < len(tp)]].tolist()) / 11.0
    # Devkit 2010+: recall padded with 0 and 1, precision with 0 and 0; sum of steps where recall changes.
    recall = np.concatenate(([0.0], tp / num_gt, [1.0]))
    envelope = np.concatenate(([envelope[0]], envelope, [0.0]))
    change = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    # min: the recall steps telescope to at most 1, but their float sum may round one ulp above it.
    return min(1.0, float(np.sum((recall[change] - recall[change - 1]) * envelope[change])))


def voc_ap_from_arrays(
    gt_image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray,
    det_image: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_labels: np.ndarray,
    *,
    num_classes: int,
    iou_threshold: float = 0.5,
    use_07_metric: bool = True,
) -> VocAP:
    """Per-class VOC AP from flat arrays (shapes and units as in :func:`match_detections`).

    Labels must lie in ``[0, num_classes)``. Tied scores keep the order of the ``det_*`` arrays.
    Returns a :class:`VocAP`; ``ap[c]`` is NaN when class ``c`` has no non-difficult GT.
    """
    gt_image, gt_boxes, gt_labels, gt_difficult = check_gt(gt_image, gt_boxes, gt_labels, gt_difficult)
    det_image, det_boxes, det_scores, det_labels = check_det(det_image, det_boxes, det_scores, det_labels)
    check_labels(gt_labels, num_classes, "ground-truth")
    check_labels(det_labels, num_classes, "detection")
    if not 0.0 < iou_threshold <= 1.0:
        raise KitError(f"IoU threshold must be in (0, 1]; got {iou_threshold}")

    order, outcome = match_detections(
        gt_image, gt_boxes, gt_labels, gt_difficult,
        det_image, det_boxes, det_scores, det_labels, iou_threshold=iou_threshold,
    )  # fmt: skip
    num_gt = np.bincount(gt_labels[~gt_difficult], minlength=num_classes).astype(np.int64)
    num_det = np.bincount(det_labels, minlength=num_classes).astype(np.int64)
    bounds = np.searchsorted(det_labels[order], np.arange(num_classes + 1))  # class c: bounds[c]:bounds[c+1]
    ap = np.full(num_classes, np.nan)
    for c in np.flatnonzero(num_gt):
        ap[c] = average_precision(outcome[order[bounds[c] : bounds[c + 1]]], int(num_gt[c]),
                                  use_07_metric=use_07_metric)  # fmt: skip
    return VocAP(ap=ap, num_gt=num_gt, num_det=num_det)


def evaluate_voc(
    gt: Sequence[Sequence[Any]],
    det: Sequence[Sequence[Any]],
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    use_07_metric: bool = True,
) -> dict[str, Any]:
    """VOC AP of per-image predictions, in memory (the per-image API beside :func:`evaluate_files`).

    Args:
        gt: one ``(boxes [N, 4] xyxy float pixels, labels [N] int 0-based, difficult [N] bool)`` per image;
            numpy arrays, lists or CPU/GPU tensors.
        det: one ``(boxes [M, 4] xyxy, scores [M], labels [M] int 0-based)`` per image, same image order.
        num_classes: number of object classes (no background).
        class_names: ``num_classes`` names for the result; default ``"0"``, ``"1"``, ...
        iou_threshold: IoU a detection needs with its best GT (``>=``), in (0, 1].
        use_07_metric: VOC2007 11-point AP (True) or VOC2010+ area (False).

    Returns:
        The dict of :func:`voc_result_dict`. Tied scores keep image order, then in-image order.
    """
    if len(gt) != len(det):
        raise KitError(f"got ground truth for {len(gt)} images but detections for {len(det)}")
    names = class_names_or_default(class_names, num_classes)
    gt_image, gt_boxes, gt_labels, gt_difficult = concat(gt, "ground truth")
    det_image, det_boxes, det_scores, det_labels = concat(det, "detections")
    arrays = voc_ap_from_arrays(
        gt_image, gt_boxes, gt_labels, gt_difficult,
        det_image, det_boxes, det_scores, det_labels,
        num_classes=num_classes, iou_threshold=iou_threshold, use_07_metric=use_07_metric,
    )  # fmt: skip
    return voc_result_dict(
        arrays,
        names,
        metric="voc07" if use_07_metric else "voc12",
        iou_threshold=iou_threshold,
        num_images=len(gt),
    )


def voc_result_dict(
    arrays: VocAP, class_names: Sequence[str], *, metric: str, iou_threshold: float, num_images: int
) -> dict[str, Any]:
    """JSON-ready result: ``metric``, ``map``, ``ap_per_class`` ({name: fraction or None}),
    ``absent_classes``, ``iou_threshold``, ``num_images``, ``num_detections``, ``num_gt_per_class``,
    ``num_det_per_class``.

    ``map`` is the mean over the classes that have non-difficult GT. Raises :class:`KitError` when no
    class has any: there is nothing to score.
    """
    present = ~np.isnan(arrays.ap)
    if not present.any():
        raise KitError("the ground truth has no non-difficult object of any class; there is nothing to score")
    return {
        "metric": metric,
        "map": float(arrays.ap[present].mean()),
        "ap_per_class": {n: (float(a) if ok else None) for n, a, ok in zip(class_names, arrays.ap, present)},
        "absent_classes": [n for n, ok in zip(class_names, present) if not ok],
        "iou_threshold": float(iou_threshold),
        "num_images": int(num_images),
        "num_detections": int(arrays.num_det.sum()),
        "num_gt_per_class": {n: int(v) for n, v in zip(class_names, arrays.num_gt)},
        "num_det_per_class": {n: int(v) for n, v in zip(class_names, arrays.num_det)},
    }
