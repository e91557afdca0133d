"""Plain-text tables of evaluation results (what `dsod-depth evaluate` prints), and :func:`pct`, the
one percentage formatter of every table and report.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_table", "pct"]

_TITLES = {
    "voc07": "PASCAL VOC2007 11-point AP at IoU >= {iou:.2f} (devkit rules)",
    "voc12": "PASCAL VOC2010+ area AP at IoU >= {iou:.2f} (devkit rules)",
    "coco": "COCO box AP@[.50:.95] (pycocotools, maxDets 100)",
}

# COCO summary rows: (label, key of the result dict), in COCOeval.summarize() order.
_COCO_ROWS = (
    ("AP @[.50:.95]", "map"),
    ("AP @.50", "ap50"),
    ("AP @.75", "ap75"),
    ("AP small", "ap_small"),
    ("AP medium", "ap_medium"),
    ("AP large", "ap_large"),
    ("AR maxDets 1", "ar_1"),
    ("AR maxDets 10", "ar_10"),
    ("AR maxDets 100", "ar_100"),
    ("AR small", "ar_small"),
    ("AR medium", "ar_medium"),
    ("AR large", "ar_large"),
)


def pct(value: float | None, *, decimals: int = 2, missing: str = "-") -> str:
    """A fraction as a percentage without the sign: ``0.1234`` → ``"12.34"`` (``decimals`` places).

    ``None`` or NaN (a score that does not exist, e.g. the AP of a class without ground truth) →
    ``missing``. Each output keeps its own precision and mark: this plain-text table ``"-"`` with two
    decimals, the run report (:mod:`dsod_depth.viz.report`) ``"–"``, the comparison tables
    (:mod:`dsod_depth.experiments.tables`) ``"—"`` with one decimal.
    """
    if value is None or math.isnan(value):
        return missing
    return f"{100.0 * value:.{decimals}f}"


def format_table(result: dict[str, Any]) -> str:
    """A per-class table of a result dict from ``evaluate_files``/``evaluate_voc``/``evaluate_coco``.

    AP is shown in percent (the dict holds fractions in [0, 1]); ``-`` marks an absent class (no GT to
    score), which the mean leaves out. Columns: class, AP, number of GT (non-difficult for VOC,
    non-crowd for COCO), number of detections.
    """
    metric = result["metric"]
    title = _TITLES[metric].format(iou=result.get("iou_threshold", 0.5))
    ap = result["ap_per_class"]
    num_gt = result.get("num_gt_per_class", {})
    num_det = result.get("num_det_per_class", {})
    mean_label = "mAP" if metric != "coco" else "AP @[.50:.95]"
    labels = [label for label, _ in _COCO_ROWS] if metric == "coco" else [mean_label]
    width = max([len(name) for name in ap] + [len(label) for label in labels] + [len("class")])

    lines = [
        f"{metric}: {title}; {result.get('num_images', '?')} images, "
        f"{result.get('num_detections', '?')} detections",
        f"{'class':<{width}}  {'AP [%]':>7}  {'GT':>7}  {'det':>8}",
    ]
    rule = "-" * len(lines[1])
    lines.append(rule)
    for name, value in ap.items():
        gt_count, det_count = num_gt.get(name, ""), num_det.get(name, "")
        lines.append(f"{name:<{width}}  {pct(value):>7}  {gt_count:>7}  {det_count:>8}")
    lines.append(rule)
    present = sum(value is not None for value in ap.values())
    absent = result.get("absent_classes", [])
    note = f"mean over {present} classes"
    if absent:
        note += f"; absent (no ground truth to score): {', '.join(absent)}"
    if metric == "coco":
        for label, key in _COCO_ROWS:
            suffix = f"  {note}" if key == "map" else ""
            lines.append(f"{label:<{width}}  {pct(result.get(key)):>7}{suffix}")
    else:
        lines.append(f"{mean_label:<{width}}  {pct(result['map']):>7}  {note}")
    return "\n".join(lines)
