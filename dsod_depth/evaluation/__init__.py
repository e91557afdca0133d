"""Detection evaluation: VOC07/VOC12 AP by the devkit rules, COCO AP through pycocotools.

* :func:`evaluate_voc` — in memory, per-image arrays (what training calls);
  :func:`voc_ap_from_arrays` — the same on flat arrays.
* :func:`evaluate_files` — COCO JSON ground truth + COCO results list, metric ``voc07``/``voc12``/``coco``.
* :func:`format_table` — readable per-class table; :func:`write_json_atomic` — results to JSON safely.

pycocotools is imported only when the ``coco`` metric runs.
"""

from dsod_depth.evaluation.files import METRICS, evaluate_files
from dsod_depth.evaluation.io import load_detections, load_ground_truth, write_json_atomic
from dsod_depth.evaluation.tables import format_table
from dsod_depth.evaluation.voc import (
    VocAP,
    average_precision,
    evaluate_voc,
    match_detections,
    voc_ap_from_arrays,
)

__all__ = [
    "METRICS",
    "VocAP",
    "average_precision",
    "evaluate_files",
    "evaluate_voc",
    "format_table",
    "load_detections",
    "load_ground_truth",
    "match_detections",
    "voc_ap_from_arrays",
    "write_json_atomic",
]
