"""Precision–recall curves per class and training curves from ``metrics.jsonl``.

The PR curves are computed with the evaluator's own matching
(:func:`dsod_depth.evaluation.match_detections`) and AP
(:func:`dsod_depth.evaluation.average_precision`) on the same COCO files, so the AP in each legend is
the very number in ``eval/<split>/metrics.json`` — not a second implementation that could drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dsod_depth.engine.run_dir import read_metrics_log
from dsod_depth.errors import KitError
from dsod_depth.evaluation.io import DetectionsFile, GroundTruthFile
from dsod_depth.evaluation.voc import IGNORED, TP, average_precision, match_detections
from dsod_depth.viz.style import class_colors, new_figure

__all__ = ["PRCurve", "pr_curves", "pr_figure", "pr_figure_size", "read_log", "training_figure"]

read_log = read_metrics_log  # the records of a run's metrics.jsonl (one reader: engine.run_dir)

PR_AXES = (70, 80, 640, 520)  # left, bottom, width, height of the PR axes in pixels
PR_LEGEND_WIDTH = 300  # pixels per legend column, right of the axes
PR_LEGEND_ROWS = 28  # legend entries per column before another column is added
TRAINING_SIZE = (1500, 460)  # pixels


@dataclass(frozen=True)
class PRCurve:
    """One class's precision–recall curve. D = its detections that are not ignored (a detection whose
    best GT is difficult is ignored by the devkit rules), in descending score order."""

    name: str
    recall: np.ndarray  # float64 [D], TP so far / number of non-difficult GT
    precision: np.ndarray  # float64 [D], TP so far / detections so far
    ap: float  # the evaluator's AP as a fraction; NaN when the class has no non-difficult GT
    num_gt: int  # non-difficult GT (the devkit's npos)
    num_det: int  # all detections of the class, ignored ones included

    @property
    def interpolated_precision(self) -> np.ndarray:
        """float64 [D]: the highest precision at this recall or beyond, the monotone envelope the VOC AP
        is computed on (VOC2010+ AP is the area under it as a step function of recall)."""
        return np.maximum.accumulate(self.precision[::-1])[::-1]


def pr_curves(
    gt: GroundTruthFile, det: DetectionsFile, *, metric: str = "voc07", iou_threshold: float = 0.5
) -> list[PRCurve]:
    """Per-class PR curves and AP of COCO-format detections, by the evaluator's rules.

    Args:
        gt, det: checked files from :func:`~dsod_depth.evaluation.load_ground_truth` /
            :func:`~dsod_depth.evaluation.load_detections`.
        metric: ``voc07`` (11-point AP) or ``voc12`` (area AP); the curves are the same for both.
        iou_threshold: IoU a detection needs with its best GT (``>=``).

    Returns:
        One :class:`PRCurve` per category, in category-id order. As in ``evaluate_files``, an
        annotation flagged ``difficult`` or ``iscrowd`` is ignored.
    """
    if metric not in ("voc07", "voc12"):
        raise KitError(f"PR curves follow the VOC rules; metric must be voc07 or voc12, got {metric!r}")
    ignore = gt.difficult | gt.iscrowd  # the same ignore set as evaluate_files
    order, outcome = match_detections(
        gt.image_index, gt.boxes, gt.labels, ignore,
        det.image_index, det.boxes, det.scores, det.labels, iou_threshold=iou_threshold,
    )  # fmt: skip
    num_classes = len(gt.category_ids)
    num_gt = np.bincount(gt.labels[~ignore], minlength=num_classes)  # [K]
    # order is class-major then descending score, so class c owns order[bounds[c]:bounds[c + 1]].
    bounds = np.searchsorted(det.labels[order], np.arange(num_classes + 1))  # [K + 1]
    curves = []
    for c, name in enumerate(gt.class_names):
        sequence = outcome[order[bounds[c] : bounds[c + 1]]]  # int8 [D_c], best score first
        kept = sequence[sequence != IGNORED]
        tp = np.cumsum(kept == TP)  # [D]
        npos = int(num_gt[c])
        ap = average_precision(sequence, npos, use_07_metric=metric == "voc07") if npos else math.nan
        curves.append(PRCurve(
            name=name,
            recall=tp / npos if npos else np.zeros(len(kept)),
            precision=tp / np.arange(1, len(kept) + 1),
            ap=ap, num_gt=npos, num_det=len(sequence),
        ))  # fmt: skip
    return curves


def pr_figure(curves: Sequence[PRCurve], *, title: str, colors: np.ndarray | None = None) -> Figure:
    """All classes' PR curves on one plot; the legend gives each class's AP (%) and GT count.

    Classes without non-difficult GT have no AP and are named in a note under the plot instead.
    ``colors`` float [K, 3] (default :func:`class_colors`). Size: :func:`pr_figure_size` pixels.
    """
    colors = class_colors(len(curves)) if colors is None else colors
    scored = [(c, curve) for c, curve in enumerate(curves) if curve.num_gt > 0]
    absent = [curve.name for curve in curves if curve.num_gt == 0]
    width, height = pr_figure_size(len(scored))
    fig = new_figure(width, height)
    left, bottom, ax_w, ax_h = PR_AXES
    ax = fig.add_axes((left / width, bottom / height, ax_w / width, ax_h / height))
    for c, curve in scored:
        label = f"{curve.name}: AP {100 * curve.ap:.1f} ({curve.num_gt} GT, {curve.num_det} det)"
        if len(curve.recall) == 0:  # no detection: nothing to draw, but the class keeps its legend entry
            ax.plot([], [], color=colors[c], linewidth=1.8, label=label)
            continue
        # The envelope as a step function: on (r[i-1], r[i]] it equals envelope[i] ("steps-pre"), from
        # recall 0, so the area under the solid line is the VOC2010+ AP. The raw curve is drawn faintly.
        recall = np.concatenate(([0.0], curve.recall))
        envelope = curve.interpolated_precision
        ax.plot(recall, np.concatenate(([envelope[0]], envelope)), color=colors[c], linewidth=1.8,
                drawstyle="steps-pre", label=label)  # fmt: skip
        ax.plot(curve.recall, curve.precision, color=colors[c], linewidth=0.8, alpha=0.35)
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall", fontsize=11)
    ax.set_ylabel("precision", fontsize=11)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=12, y=1 - 10 / height, va="top")  # over the whole width: titles are long
    ax.text(0.01, 0.01, "solid: interpolated precision (monotone envelope); faint: raw precision",
            transform=ax.transAxes, fontsize=8, color="dimgrey", va="bottom")  # fmt: skip
    if scored:
        columns = math.ceil(len(scored) / PR_LEGEND_ROWS)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, ncol=columns, frameon=False)
    if absent:
        fig.text(left / width, 10 / height, "no ground truth to score (no AP): " + ", ".join(absent),
                 fontsize=8, va="bottom", wrap=True)  # fmt: skip
    return fig


def pr_figure_size(num_scored_classes: int) -> tuple[int, int]:
    """(width, height) pixels of :func:`pr_figure`: the axes plus one legend column per
    :data:`PR_LEGEND_ROWS` scored classes (at least one)."""
    left, bottom, ax_w, ax_h = PR_AXES
    columns = max(1, math.ceil(num_scored_classes / PR_LEGEND_ROWS))
    return left + ax_w + 30 + PR_LEGEND_WIDTH * columns, bottom + ax_h + 50


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps int64 [T], values float64 [T]) of the records holding a finite number under ``key``
    (the logger writes non-finite values as null)."""
    pairs = [(r["step"], float(r[key])) for r in records
             if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
             and math.isfinite(r[key])]  # fmt: skip
    steps = np.array([p[0] for p in pairs], dtype=np.int64)
    return steps, np.array([p[1] for p in pairs], dtype=np.float64)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="grey")


def training_figure(records: Sequence[dict[str, Any]], *, title: str) -> Figure:
    """Training curves: losses (``loss``, ``loss_loc``, ``loss_conf``), learning rate, and every
    ``eval/*_map`` series (in %) against the optimiser step. :data:`TRAINING_SIZE` pixels."""
    fig = new_figure(*TRAINING_SIZE)
    axes = fig.subplots(1, 3, gridspec_kw={"left": 0.05, "right": 0.985, "bottom": 0.13, "top": 0.85,
                                           "wspace": 0.25})  # fmt: skip
    ax_loss, ax_lr, ax_map = axes
    plotted = False
    for key, style in (("loss", "-"), ("loss_loc", "--"), ("loss_conf", ":")):
        steps, values = _series(records, key)
        if len(steps):
            ax_loss.plot(steps, values, style, linewidth=1.6, marker="." if len(steps) < 30 else None,
                         label=key)  # fmt: skip
            plotted = True
    if plotted:
        ax_loss.legend(fontsize=9)
        _, all_loss = _series(records, "loss")
        if len(all_loss) and all_loss.min() > 0 and all_loss.max() / all_loss.min() > 20:
            ax_loss.set_yscale("log")  # early losses dwarf the rest on a linear axis
    else:
        _empty(ax_loss, "no losses logged")
    ax_loss.set_title("training loss", fontsize=11)

    steps, lr = _series(records, "lr")
    if len(steps):
        ax_lr.plot(steps, lr, linewidth=1.6, marker="." if len(steps) < 30 else None, color="tab:purple")
    else:
        _empty(ax_lr, "no learning rate logged")
    ax_lr.set_title("learning rate", fontsize=11)

    map_keys = sorted({k for r in records for k in r if k.startswith("eval/") and k.endswith("_map")})
    for key in map_keys:
        steps, values = _series(records, key)
        ax_map.plot(steps, 100 * values, marker="o", linewidth=1.6, label=key.removeprefix("eval/"))
    if map_keys:
        ax_map.legend(fontsize=9)
        best = max((100 * _series(records, key)[1]).max(initial=0.0) for key in map_keys)
        ax_map.set_ylim(0, max(1.0, 1.15 * best))  # from 0, so that progress reads as a fraction
    else:
        _empty(ax_map, "no evaluation logged")
    ax_map.set_title("evaluation mAP [%]", fontsize=11)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_xlabel("optimiser step", fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=12)
    return fig
