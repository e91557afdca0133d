"""COCO box AP through pycocotools (``COCO``, ``COCOeval``): the official evaluator, not a re-implementation.

What is passed to pycocotools is the ground-truth file as read, with three gaps filled so that a lean
annotation file (DESIGN.md only asks for ``image_id``, ``category_id``, ``bbox``) works:

* annotation ``id`` is renumbered 1..N in file order: pycocotools keeps matches in arrays where 0 means
  "unmatched", so a GT with id 0 could be matched any number of times; ids never reach the metrics.
* a missing ``area`` becomes w·h of the box, a missing ``iscrowd`` becomes 0.

The ``difficult`` flag is a VOC notion that pycocotools does not read; regions to ignore in COCO are
marked ``iscrowd: 1``. Parameters are pycocotools' defaults for boxes: IoU 0.50:0.05:0.95, 101 recall
points, maxDets 1/10/100 (detections beyond the 100 best per image are not scored), areas small < 32²,
medium < 96², large. pycocotools' progress and summary prints are silenced (``verbose=False``); the
same twelve numbers are returned and shown by :func:`dsod_depth.evaluation.format_table`.
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

from dsod_depth.errors import KitError

__all__ = ["COCO_STATS", "evaluate_coco", "normalise_gt"]

# Names of COCOeval.stats[0..11] for iouType "bbox", in order.
COCO_STATS = (
    "map",  # AP @[.50:.95], area all, maxDets 100
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar_1",
    "ar_10",
    "ar_100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


def normalise_gt(dataset: dict[str, Any]) -> dict[str, Any]:
    """The COCO annotation dict handed to pycocotools (see the module docstring for what changes).

    The input was checked by :func:`dsod_depth.evaluation.io.load_ground_truth`; it is not modified.
    """
    annotations = []
    for new_id, ann in enumerate(dataset["annotations"], start=1):
        ann = dict(ann)
        ann["id"] = new_id
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
        annotations.append(ann)
    return {
        "images": list(dataset["images"]),
        "annotations": annotations,
        "categories": list(dataset["categories"]),
    }


def evaluate_coco(
    gt_dataset: dict[str, Any],
    detections: list[dict[str, Any]],
    *,
    verbose: bool = False,
) -> dict[str, Any]:
    """COCO box metrics of a results list against a COCO annotation dict.

    Args:
        gt_dataset: COCO annotation dict (``images``, ``annotations``, ``categories``), already checked.
        detections: COCO results, each ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
        verbose: let pycocotools print its progress and summary to stdout.

    Returns:
        ``metric`` "coco", ``map`` = AP@[.50:.95], the other eleven :data:`COCO_STATS` (fractions, or
        ``None`` where pycocotools has nothing to average, e.g. no small objects), ``ap_per_class``
        {name: AP@[.50:.95] or None}, ``absent_classes``, ``num_images``, ``num_detections``,
        ``num_gt_per_class`` (non-crowd GT) and ``num_det_per_class``.
    """
    from pycocotools.coco import COCO  # imported here: only the coco metric needs it
    from pycocotools.cocoeval import COCOeval

    gt_dataset = normalise_gt(gt_dataset)
    # loadRes annotates the dicts it gets (area, id, segmentation): give it copies.
    detections = copy.deepcopy(detections)
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_gt = COCO()
        coco_gt.dataset = gt_dataset
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            # loadRes reads anns[0] to detect the result type and fails on an empty list.
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt_dataset["images"], "categories": gt_dataset["categories"],
                               "annotations": []}  # fmt: skip
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    stats = [float(s) for s in evaluator.stats]
    if stats[0] < 0:
        raise KitError("the ground truth has no non-crowd object of any class; there is nothing to score")
    cat_ids = list(evaluator.params.catIds)  # ascending ids: the order of the precision array's K axis
    names = {c["id"]: c["name"] for c in gt_dataset["categories"]}
    # precision: [T=10 IoUs, R=101 recalls, K classes, A=4 areas (all first), M=3 maxDets (100 last)],
    # -1 where a class has no GT to score. Per-class AP as in detectron2's COCOEvaluator.
    precision = evaluator.eval["precision"]
    ap_per_class: dict[str, float | None] = {}
    for k, cid in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]  # [T, R]
        ap_per_class[names[cid]] = float(p[p > -1].mean()) if (p > -1).any() else None

    num_gt = {names[c]: 0 for c in cat_ids}
    for ann in gt_dataset["annotations"]:
        if not ann["iscrowd"]:
            num_gt[names[ann["category_id"]]] += 1
    det_cats = np.array([d["category_id"] for d in detections], dtype=np.int64)
    result: dict[str, Any] = {"metric": "coco"}
    result.update({key: (value if value >= 0 else None) for key, value in zip(COCO_STATS, stats)})
    result.update(
        ap_per_class=ap_per_class,
        absent_classes=[name for name, ap in ap_per_class.items() if ap is None],
        num_images=len(gt_dataset["images"]),
        num_detections=len(detections),
        num_gt_per_class=num_gt,
        num_det_per_class={names[c]: int((det_cats == c).sum()) for c in cat_ids},
    )
    return result
