"""The Markdown report of a run: its settings, its metrics table, and links to every figure.

Links are relative to the report's folder, so the folder can be moved or published as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsod_depth.evaluation.tables import pct
from dsod_depth.viz.style import atomic_output

__all__ = ["ReportFigures", "metrics_table", "write_run_report"]

_METRIC_TITLES = {
    "voc07": "PASCAL VOC2007 11-point AP at IoU ≥ {iou:g}",
    "voc12": "PASCAL VOC2010+ area AP at IoU ≥ {iou:g}",
    "coco": "COCO AP averaged over IoU 0.50:0.95",
}


@dataclass
class ReportFigures:
    """Paths of the figures a report links to (any may be missing)."""

    training: Path | None = None  # training curves PNG
    pr: Path | None = None  # precision–recall PNG
    detections: list[tuple[str, Path]] = field(default_factory=list)  # (image id, PNG)
    clouds: list[tuple[str, Path, Path]] = field(default_factory=list)  # (image id, PNG, PLY)


_MISSING = "–"  # en dash: the report's mark for a score that does not exist (class without GT)


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def metrics_table(metrics: dict[str, Any]) -> str:
    """A Markdown table of a metrics dict written by the evaluator (``eval/<split>/metrics.json``).

    One row per class (AP in %, ``–`` for a class without ground truth, which the mean leaves out;
    the number of GT and of detections), then the mean; for COCO also AP@0.5 and AP@0.75.
    """
    metric = metrics.get("metric", "?")
    gt_counts = metrics.get("num_gt_per_class", {})
    det_counts = metrics.get("num_det_per_class", {})
    lines = ["| class | AP [%] | GT | detections |", "|---|---:|---:|---:|"]
    for name, ap in metrics.get("ap_per_class", {}).items():
        counts = f"{gt_counts.get(name, '')} | {det_counts.get(name, '')}"
        lines.append(f"| {_cell(name)} | {pct(ap, missing=_MISSING)} | {counts} |")
    mean_label = "AP@[.50:.95]" if metric == "coco" else "mAP"
    lines.append(f"| **{mean_label}** | **{pct(metrics.get('map'), missing=_MISSING)}** | | |")
    if metric == "coco":
        for label, key in (("AP@0.50", "ap50"), ("AP@0.75", "ap75")):
            if key in metrics:
                lines.append(f"| {label} | {pct(metrics[key], missing=_MISSING)} | | |")
    return "\n".join(lines)


def _link(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder``, with forward slashes (Markdown links are URLs)."""
    return Path(os.path.relpath(target, folder)).as_posix()


def write_run_report(
    path: str | os.PathLike,
    *,
    title: str,
    settings: Sequence[tuple[str, Any]],
    metrics: dict[str, Any],
    figures: ReportFigures,
    score_threshold: float,
) -> Path:
    """Write the Markdown report to ``path`` (atomically) and return it.

    Args:
        path: the report file, e.g. ``RUN_DIR/figures/report.md``; figure links are relative to its
            folder.
        title: the top heading.
        settings: ``(name, value)`` rows describing the run (model, modality, budget, ...).
        metrics: the evaluator's metrics dict (:func:`metrics_table`).
        figures: the figures to link.
        score_threshold: the detection score threshold the detection figures used.
    """
    path = Path(path)
    folder = path.parent
    metric = metrics.get("metric", "?")
    heading = _METRIC_TITLES.get(metric, metric).format(iou=metrics.get("iou_threshold", 0.5))
    out = [f"# {title}", "", "| setting | value |", "|---|---|"]
    out += [f"| {_cell(name)} | {_cell(value)} |" for name, value in settings]
    out += ["", f"## Metrics: {heading}", ""]
    out += [f"{metrics.get('num_images', '?')} images, {metrics.get('num_detections', '?')} detections.", ""]
    out += [metrics_table(metrics), ""]
    if figures.training is not None:
        out += ["## Training curves", "", f"![training curves]({_link(figures.training, folder)})", ""]
    if figures.pr is not None:
        out += ["## Precision–recall per class", "",
                "Computed with the evaluator's matching; the AP in the legend is the AP of the table.", "",
                f"![precision-recall curves]({_link(figures.pr, folder)})", ""]  # fmt: skip
    if figures.detections:
        out += ["## Detections", "",
                f"Ground truth (left) and detections with score ≥ {score_threshold:g} (right) on each "
                "image kind of the store; dashed boxes are ground truth marked difficult.", ""]  # fmt: skip
        for image_id, png in figures.detections:
            out += [f"### {_cell(image_id)}", "", f"![{_cell(image_id)}]({_link(png, folder)})", ""]
    if figures.clouds:
        out += ["## 3D view", "",
                "Back-projected point cloud; points whose pixel lies inside a detected box (score ≥ "
                f"{score_threshold:g}) take the class colour.", ""]  # fmt: skip
        for image_id, png, ply in figures.clouds:
            out += [f"### {_cell(image_id)}", "", f"![3D view]({_link(png, folder)})", "",
                    f"Point cloud: [{ply.name}]({_link(ply, folder)}) (PLY, metres, camera frame; open it "
                    "with Open3D, MeshLab or CloudCompare).", ""]  # fmt: skip
    text = "\n".join(out).rstrip() + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
