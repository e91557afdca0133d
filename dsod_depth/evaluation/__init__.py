"""Detection evaluation: VOC07/VOC12 AP by the devkit rules, COCO AP through pycocotools.

* :func:`evaluate_voc` — in memory, per-image arrays (the per-image API; the parity tests and
  ``benchmarks/bench_eval.py`` score through it);
  :func:`voc_ap_from_arrays` — the same on flat arrays.
* :func:`evaluate_files` — COCO JSON ground truth + COCO results list, metric ``voc07``/``voc12``/``coco``.
* :func:`coco_results`, :func:`coco_image`, :func:`coco_ground_truth` — the COCO entries ``eval`` and
  ``detect`` write (:mod:`dsod_depth.evaluation.io`, beside the readers).
* :func:`format_table` — readable per-class table; :func:`write_json_atomic` — results to JSON safely.
* :func:`match_files`, :func:`resample_counts`, :func:`resampled_ap`, :func:`resampled_map` — VOC AP
  of a run's files on bootstrap resamples of its test images (:mod:`.bootstrap`, for ``compare``'s
  intervals).

pycocotools is imported only when the ``coco`` metric runs.
"""

from dsod_depth.evaluation.bootstrap import match_files, resample_counts, resampled_ap, resampled_map
from dsod_depth.evaluation.files import METRICS, evaluate_files
from dsod_depth.evaluation.io import (
    coco_ground_truth,
    coco_image,
    coco_results,
    load_detections,
    load_ground_truth,
    write_json_atomic,
)
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
    "coco_ground_truth",
    "coco_image",
    "coco_results",
    "evaluate_files",
    "evaluate_voc",
    "format_table",
    "load_detections",
    "load_ground_truth",
    "match_detections",
    "match_files",
    "resample_counts",
    "resampled_ap",
    "resampled_map",
    "voc_ap_from_arrays",
    "write_json_atomic",
]
