"""``evaluate_files``: score a COCO results file against a COCO annotation file (the `evaluate` command)."""

from __future__ import annotations

import os
from typing import Any

from dsod_depth.errors import KitError
from dsod_depth.evaluation.io import load_detections, load_ground_truth
from dsod_depth.evaluation.voc import voc_ap_from_arrays, voc_result_dict

__all__ = ["METRICS", "evaluate_files"]

METRICS = ("voc07", "voc12", "coco")


def evaluate_files(
    gt_path: str | os.PathLike[str],
    det_path: str | os.PathLike[str],
    *,
    metric: str,
    iou_threshold: float | None = None,
) -> dict[str, Any]:
    """Metrics of detections ``det_path`` (COCO results list) against ``gt_path`` (COCO annotations).

    Args:
        gt_path, det_path: JSON files in the formats of DESIGN.md "File formats".
        metric: ``voc07`` (11-point AP), ``voc12`` (area AP), both by the devkit rules of
            :mod:`dsod_depth.evaluation.voc`; or ``coco`` (pycocotools, :mod:`dsod_depth.evaluation.coco`).
        iou_threshold: for voc07/voc12, the IoU a detection needs (``>=``), default 0.5. ``coco``
            averages over IoU 0.50:0.95 and refuses a threshold.

    Returns:
        ``{"metric", "map", "ap_per_class": {name: fraction or None}, ...}`` (see :func:`voc_result_dict`
        and :func:`~dsod_depth.evaluation.coco.evaluate_coco`); classes ordered by category id.

    For VOC metrics an annotation is ignored (like a difficult one) when ``difficult`` or ``iscrowd`` is
    1, and ties between equal scores keep the order of the detections file (as the devkit's stable sort).
    Raises :class:`KitError` with one line for every malformed input.
    """
    if metric not in METRICS:
        raise KitError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if metric == "coco" and iou_threshold is not None:
        raise KitError("an IoU threshold applies to voc07/voc12 only; coco averages over IoU 0.50:0.95")
    iou = 0.5 if iou_threshold is None else float(iou_threshold)
    if not 0.0 < iou <= 1.0:
        raise KitError(f"IoU threshold must be in (0, 1]; got {iou_threshold}")

    gt = load_ground_truth(gt_path)
    det = load_detections(det_path, gt)
    if metric == "coco":
        from dsod_depth.evaluation.coco import evaluate_coco  # pycocotools only when asked for

        return evaluate_coco(gt.coco, det.coco_results())

    arrays = voc_ap_from_arrays(
        gt.image_index, gt.boxes, gt.labels, gt.difficult | gt.iscrowd,
        det.image_index, det.boxes, det.scores, det.labels,
        num_classes=len(gt.category_ids), iou_threshold=iou, use_07_metric=metric == "voc07",
    )  # fmt: skip
    return voc_result_dict(arrays, gt.class_names, metric=metric, iou_threshold=iou,
                           num_images=len(gt.image_ids))  # fmt: skip
