"""Bootstrap over test images for VOC mAP: each run matched once, then scored on many resampled sets.

A **resample** of a test set of N images is a vector of counts per image (how often each image was
drawn in N draws with replacement), int64 [N]; a bootstrap is B of them, int64 [B, N]
(:func:`resample_counts`). The score of a run on a resample is its VOC mAP on the test set in which
image i appears ``counts[i]`` times. Drawing the counts once and scoring every run of a dataset on
them gives paired resamples: differences of runs (a gain Δ, a mismatch figure) are resampled with
their parts.

Why matching once is exact. Under :mod:`dsod_depth.evaluation.voc`'s rules a detection's fate (TP,
FP, ignored) depends only on its own image's GT and on the detections of that image ranked above it,
so every copy of an image has the outcomes of the original. The copies of a detection tie in score;
the evaluator ranks ties in results-file order, and here they are ranked next to each other (the
resampled file listing each detection's copies together, one valid order of it). The resampled PR
curve is then the original one with each detection weighted by its image's count:

* ``tp(j)``, ``fp(j)``: count-weighted cumulative TPs and FPs down the ranking;
* ``npos`` = Σ_i counts[i] · (non-difficult GT of the class in image i); a class with ``npos = 0`` on a
  resample is absent there and left out of that resample's mean, as the evaluator leaves out a class
  without GT (:func:`~dsod_depth.evaluation.voc.voc_result_dict`).

Only the TP detections shape the AP: recall changes only at a TP, and the precision after an FP is
below that of the TP before it, so the monotone envelope at a TP is the largest precision of the TPs
ranked at or after it, and FPs matter only through ``fp`` at each TP. Hence per class the work is a
``[B, T]`` matrix for T true positives: a cumulative sum of the counts of the TPs' images, and one
product of the counts with a sparse per-image table of the FPs between consecutive TPs, summed along
the TPs (integers in float64, so exact). VOC07 then takes, per resample, the envelope at the first TP
reaching each recall k/10 (integer test ``10 · tp >= k · npos``) and sums the 11 values exactly
(:func:`math.fsum`); VOC2010+ sums ``Δrecall · envelope`` over the TPs. The arithmetic and the
summation order are the evaluator's, so counts of all ones reproduce its AP per class and its mAP bit
for bit, and any counts the evaluator's AP of the copied set (tested).

The rules of the match (IoU ``>=`` threshold, difficult and ``iscrowd`` GT ignored, stable ranking)
are :func:`~dsod_depth.evaluation.voc.match_detections` itself, called on the run's files as
:func:`~dsod_depth.evaluation.evaluate_files` calls it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.evaluation.io import load_detections, load_ground_truth
from dsod_depth.evaluation.voc import IGNORED, TP, match_detections
from dsod_depth.evaluation.voc_inputs import check_det, check_gt

if TYPE_CHECKING:
    from scipy import sparse

__all__ = [
    "VOC_METRICS",
    "ClassCurve",
    "MatchedRun",
    "match_files",
    "resample_counts",
    "resampled_ap",
    "resampled_map",
    "mean_over_present",
    "image_positions",
]

VOC_METRICS = ("voc07", "voc12")  # the metrics a bootstrap can score
# Elements of one block of resamples × TPs (or images): resamples are scored in blocks of at most
# this many, which bounds the memory of a class with many TPs to a few arrays of 16 MB.
_BLOCK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class ClassCurve:
    """The detections of one class that shape its AP, ranked best first; T = its true positives.

    ``fp_image``/``fp_rank`` list the FPs ranked above the last TP (F of them, ranking order):
    ``fp_rank[f]`` = the number of TPs ranked above FP f, in [0, T)."""

    tp_image: np.ndarray  # int64 [T], image index of each TP, ranking order
    fp_image: np.ndarray  # int64 [F], image index of each FP above the last TP
    fp_rank: np.ndarray  # int64 [F], non-decreasing
    num_gt: int  # non-difficult GT of the class over the whole set (the evaluator's npos)

    def fp_between(self, num_images: int) -> sparse.csr_matrix:
        """Sparse float64 [N, T]: entry (i, j) = FPs of image i ranked between TP j − 1 and TP j.
        Sparse because it has at most F entries where a dense table has N · T."""
        from scipy import sparse  # on first use: importing the evaluation package stays light

        ones = np.ones(len(self.fp_image))
        shape = (num_images, len(self.tp_image))
        return sparse.csr_matrix((ones, (self.fp_image, self.fp_rank)), shape=shape)  # duplicates add up


@dataclass(frozen=True)
class MatchedRun:
    """One run's test detections matched once; N = test images, K = classes."""

    image_ids: tuple[int | str, ...]  # [N], the GT file's image ids in file order
    class_names: tuple[str, ...]  # [K]
    metric: str  # voc07 | voc12
    iou_threshold: float
    num_gt: np.ndarray  # int64 [N, K], non-difficult GT per image and class
    curves: tuple[ClassCurve, ...]  # [K]


def match_files(
    gt_path: str | os.PathLike[str], det_path: str | os.PathLike[str], *, metric: str, iou_threshold: float
) -> MatchedRun:
    """Read a run's ``gt.json`` and ``detections.json`` (COCO files, as ``eval`` writes them) and match
    them once with the evaluator's rules for ``metric`` (``voc07`` or ``voc12``) at ``iou_threshold``.
    A GT box marked ``difficult`` or ``iscrowd`` is ignored, as in
    :func:`~dsod_depth.evaluation.evaluate_files`. Raises :class:`KitError` for COCO (no bootstrap:
    pycocotools scores the set as a whole) and for malformed files."""
    if metric not in VOC_METRICS:
        raise KitError(f"the bootstrap scores VOC metrics only ({', '.join(VOC_METRICS)}); got {metric!r}")
    gt = load_ground_truth(gt_path)
    det = load_detections(det_path, gt)
    ignore = gt.difficult | gt.iscrowd
    gt_image, gt_boxes, gt_labels, ignore = check_gt(gt.image_index, gt.boxes, gt.labels, ignore)
    det_image, det_boxes, det_scores, det_labels = check_det(
        det.image_index, det.boxes, det.scores, det.labels
    )
    order, outcome = match_detections(
        gt_image, gt_boxes, gt_labels, ignore, det_image, det_boxes, det_scores, det_labels,
        iou_threshold=iou_threshold,
    )  # fmt: skip
    num_images, num_classes = len(gt.image_ids), len(gt.category_ids)
    num_gt = np.zeros((num_images, num_classes), dtype=np.int64)
    np.add.at(num_gt, (gt_image[~ignore], gt_labels[~ignore]), 1)
    bounds = np.searchsorted(det_labels[order], np.arange(num_classes + 1))  # class c: bounds[c]:bounds[c+1]
    curves = []
    for c in range(num_classes):
        ranked = order[bounds[c] : bounds[c + 1]]
        ranked = ranked[outcome[ranked] != IGNORED]  # ignored detections are not on the curve
        is_tp = outcome[ranked] == TP  # [D_c]
        tps_above = np.cumsum(is_tp) - is_tp  # [D_c], TPs ranked above each detection
        num_tp = int(is_tp.sum())
        fp = ~is_tp & (tps_above < num_tp)  # FPs below the last TP never change the AP
        curves.append(ClassCurve(
            tp_image=det_image[ranked[is_tp]], fp_image=det_image[ranked[fp]], fp_rank=tps_above[fp],
            num_gt=int(num_gt[:, c].sum()),
        ))  # fmt: skip
    return MatchedRun(
        image_ids=tuple(gt.image_ids), class_names=tuple(gt.class_names), metric=metric,
        iou_threshold=float(iou_threshold), num_gt=num_gt, curves=tuple(curves),
    )  # fmt: skip


def resample_counts(num_images: int, num_resamples: int, seed: int) -> np.ndarray:
    """B = ``num_resamples`` bootstrap resamples of ``num_images`` images: int64 [B, N], each row the
    draw counts of N draws with replacement (a multinomial), from ``numpy.random.default_rng(seed)``."""
    if num_images < 1 or num_resamples < 0:
        raise KitError(f"cannot resample {num_images} images {num_resamples} times")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=num_resamples)
    return counts.astype(np.int64)  # [B, N]


def _first_reaching(tp: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """Per row, the first column where ``tp`` reaches each ``needed`` value: float [R, T] rows
    non-decreasing, int [R, Q] → int64 [R, Q] in [0, T] (T: never reached). One ``searchsorted`` over
    the rows laid end to end, each shifted above the previous one (all values are exact integers)."""
    rows, num_tp = tp.shape
    span = float(max(tp.max(initial=0.0), needed.max(initial=0))) + 1.0
    shift = np.arange(rows, dtype=np.float64)[:, None] * span  # [R, 1]
    flat = (tp + shift).ravel()  # [R·T], sorted
    found = np.searchsorted(flat, (needed + shift).ravel(), side="left").reshape(needed.shape)  # [R, Q]
    return found - np.arange(rows)[:, None] * num_tp


def _curve_ap(curve: ClassCurve, fp_between: sparse.csr_matrix, num_gt: np.ndarray, weights: np.ndarray,
              use_07_metric: bool) -> np.ndarray:  # fmt: skip
    """AP of one class on R resamples: ``weights`` float64 [R, N] counts, ``num_gt`` float64 [N] (the
    class's column), ``fp_between`` from :meth:`ClassCurve.fp_between` → float64 [R] (NaN where
    npos = 0)."""
    npos = weights @ num_gt  # [R]
    ap = np.where(npos > 0, 0.0, np.nan)  # no TP on the curve: AP 0 (the evaluator's rule)
    num_tp = len(curve.tp_image)
    if num_tp == 0:
        return ap
    tp = np.cumsum(weights[:, curve.tp_image], axis=1)  # [R, T]
    fp = np.cumsum(weights @ fp_between, axis=1)  # [R, T], FPs ranked above each TP (exact integers)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp > 0, tp / (tp + fp), 0.0)  # [R, T]; 0/0 before any drawn TP → 0
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # [R, T]
        if use_07_metric:
            npos_int = np.rint(npos).astype(np.int64)[:, None]  # [R, 1]
            needed = -((-np.arange(11) * npos_int) // 10)  # [R, 11], tp >= ceil(k · npos / 10)
            first = _first_reaching(tp, needed)  # [R, 11]
            at_first = np.take_along_axis(envelope, np.minimum(first, num_tp - 1), axis=1)  # [R, 11]
            values = np.where(first < num_tp, at_first, 0.0)
            # Unreached thresholds add exact zeros, so fsum equals the evaluator's fsum of the reached ones.
            sums = np.fromiter(map(math.fsum, values.tolist()), dtype=np.float64, count=len(values))
            area = sums / 11.0
        else:
            recall = tp / npos[:, None]  # [R, T]
            steps = np.diff(recall, axis=1, prepend=0.0)  # recall gained at each TP
            terms = [steps * envelope]
            if num_tp != curve.num_gt:
                # The evaluator's devkit padding adds (1 − final recall) · 0 when the recall stays below
                # 1; the same zero term keeps its summation order, hence its rounding.
                terms.append(np.zeros((len(tp), 1)))
            # C order: a row sum is then numpy's pairwise sum of that row, as the evaluator's np.sum.
            area = np.minimum(1.0, np.ascontiguousarray(np.concatenate(terms, axis=1)).sum(axis=1))
    return np.where(npos > 0, area, ap)


def resampled_ap(run: MatchedRun, counts: np.ndarray) -> np.ndarray:
    """AP per class of ``run`` on each resample: counts int [B, N] (image order of ``run.image_ids``)
    → float64 [B, K], fractions in [0, 1]; NaN where the class has no non-difficult GT on the resample.
    Counts of all ones give the evaluator's AP exactly."""
    counts = np.asarray(counts)
    num_images = len(run.image_ids)
    if counts.ndim != 2 or counts.shape[1] != num_images:
        raise KitError(f"counts must have shape [B, {num_images}]; got {list(counts.shape)}")
    weights = counts.astype(np.float64)  # [B, N]; exact for any realistic count
    use_07 = run.metric == "voc07"
    ap = np.empty((len(weights), len(run.curves)))
    for c, curve in enumerate(run.curves):
        fp_between = curve.fp_between(num_images)  # sparse [N, T]
        num_gt = run.num_gt[:, c].astype(np.float64)  # [N]
        step = max(1, _BLOCK_ELEMENTS // max(1, len(curve.tp_image), num_images))  # resamples per block
        for start in range(0, len(weights), step):
            block = weights[start : start + step]
            ap[start : start + step, c] = _curve_ap(curve, fp_between, num_gt, block, use_07)
    return ap


def mean_over_present(ap: np.ndarray) -> np.ndarray:
    """Mean AP over the classes present on each resample: float [B, K] with NaN = absent → float64
    [B] (NaN where no class is present). Rows are grouped by which classes are present so that each
    mean is numpy's mean of exactly those values, as :func:`~dsod_depth.evaluation.voc.voc_result_dict`
    takes it (the same summation, hence the same last bit)."""
    present = ~np.isnan(ap)  # [B, K]
    out = np.full(len(ap), np.nan)
    patterns, which = np.unique(present, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        if pattern.any():
            rows = which.reshape(-1) == p
            out[rows] = np.ascontiguousarray(ap[np.ix_(rows, pattern)]).mean(axis=1)
    return out


def resampled_map(run: MatchedRun, counts: np.ndarray) -> np.ndarray:
    """mAP of ``run`` on each resample: counts int [B, N] → float64 [B] (see :func:`resampled_ap`)."""
    return mean_over_present(resampled_ap(run, counts))


def image_positions(reference: Sequence[int | str], image_ids: Sequence[int | str]) -> np.ndarray | None:
    """Where each of ``image_ids`` sits in ``reference``: int64 [N], or None when the two are not the
    same set of images. ``counts[:, positions]`` reorders resamples of ``reference`` for a run whose
    files list the images as ``image_ids``."""
    index = {image: i for i, image in enumerate(reference)}
    if len(index) != len(reference) or len(image_ids) != len(reference):
        return None
    positions = [index.get(image, -1) for image in image_ids]
    if -1 in positions or len(set(positions)) != len(positions):
        return None
    return np.asarray(positions, dtype=np.int64)
