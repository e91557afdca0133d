"""``visualize_run``: every figure of a trained and evaluated run, and the report linking them.

Reads what ``dsod-depth train`` / ``dsod-depth eval`` write in a run directory (DESIGN "File
formats"): ``config.yaml``, ``metrics.jsonl``, ``eval/<split>/{gt,detections,metrics}.json``, plus the
prepared store named in the config for the images. Writes into ``RUN_DIR/figures`` (or ``out_dir``)::

    training_curves.png          losses, learning rate, evaluation mAP against the step
    pr_curves.png                precision-recall per class, AP in the legend
    detections/<image id>.png    ground truth | detections on RGB, colourised depth, HHA
    cloud/<image id>.{png,ply}   3D view of one frame, points in detected boxes highlighted
    report.md                    settings, metrics table, links to all of the above
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsod_depth.engine.init import init_label
from dsod_depth.engine.run_dir import RunDir, read_metrics_log, run_lock
from dsod_depth.errors import KitError
from dsod_depth.viz.style import class_colors, save_figure

__all__ = ["RunEvaluation", "VisualizationResult", "load_run", "visualize_run"]


@dataclass(frozen=True)
class RunEvaluation:
    """A run directory's config, training log and evaluation files on one split."""

    run_dir: Path
    split: str
    config: Any  # dsod_depth.config.ExperimentConfig
    gt: Any  # dsod_depth.evaluation.io.GroundTruthFile
    det: Any  # dsod_depth.evaluation.io.DetectionsFile
    metrics: dict[str, Any]  # eval/<split>/metrics.json (recomputed from the files when absent)
    records: list[dict[str, Any]]  # metrics.jsonl, [] when absent


@dataclass(frozen=True)
class VisualizationResult:
    report: Path  # the Markdown report
    figures: list[Path]  # every PNG and PLY written, in report order


def load_run(run_dir: str | Path, split: str = "test") -> RunEvaluation:
    """Read a run directory's config, log and ``eval/<split>`` files; a :class:`KitError` names what is
    missing and the command that makes it."""
    from dsod_depth.config import load_config
    from dsod_depth.evaluation import evaluate_files, load_detections, load_ground_truth

    run = RunDir(run_dir)
    run_dir = run.path
    if not run_dir.is_dir():
        raise KitError(f"run directory {run_dir} not found; pass a directory written by `dsod-depth train`")
    if not run.is_run():
        raise KitError(f"{run_dir} has no config.yaml; pass a run directory written by `dsod-depth train`")
    missing = [path for path in (run.eval_gt(split), run.eval_detections(split)) if not path.is_file()]
    if missing:
        raise KitError(f"{run_dir} has no evaluation on split {split!r} ({missing[0]} not found); "
                       f"run `dsod-depth eval {run_dir} --split {split}` first")  # fmt: skip
    config = load_config(run.config)
    gt = load_ground_truth(run.eval_gt(split))
    det = load_detections(run.eval_detections(split), gt)
    metrics_path = run.eval_metrics(split)
    if metrics_path.is_file():
        import json

        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise KitError(
                f"{metrics_path}: invalid JSON ({err.msg}); rerun `dsod-depth eval {run_dir}`"
            ) from None
    else:
        metrics = evaluate_files(run.eval_gt(split), run.eval_detections(split),
                                 metric=config.train.eval_metric)  # fmt: skip
    records = read_metrics_log(run)
    return RunEvaluation(run_dir, split, config, gt, det, metrics, records)


def file_stems(image_ids: list[str]) -> dict[str, str]:
    """A distinct file stem (no extension) per image id: ids may hold path separators (SUN RGB-D
    folders) or other characters unfit for file names; those become ``_``, and a stem that two ids
    would share gets the frame's position appended."""
    stems: dict[str, str] = {}
    for position, image_id in enumerate(image_ids):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._") or "frame"
        stems[image_id] = f"{stem}_{position}" if stem in stems.values() else stem
    return stems


def _write_cloud(samples, index: int, boxes, stem: Path, *, title: str, class_names, colors,
                 score_threshold: float) -> tuple[Path, Path]:  # fmt: skip
    """3D view of frame ``index`` of the store: ``<stem>.ply`` and ``<stem>.png``, highlighting the
    detections the frame's 2D figure draws. Returns (png, ply)."""
    from dsod_depth.viz.cloud import render_cloud, save_ply, shown_frame_cloud
    from dsod_depth.viz.detections import frame_panels

    depth = samples.read(index, ["depth"])["depth"]
    base = frame_panels(samples, index)[0][1]  # RGB when the store has it, else the colourised depth
    cloud, shown = shown_frame_cloud(
        depth, samples.camera(index), base_colors=base, boxes=boxes.det_boxes, labels=boxes.det_labels,
        scores=boxes.det_scores, class_colors=colors, score_threshold=score_threshold,
    )  # fmt: skip
    # Suffixes appended, not substituted: an image id may itself contain a dot.
    ply = save_ply(cloud, stem.parent / f"{stem.name}.ply")
    title += (f": {len(cloud.points):,} points; those in the {shown} detected boxes "
              f"(score ≥ {score_threshold:.2f}) in class colours")  # fmt: skip
    fig = render_cloud(cloud, title=title, class_names=class_names, class_colors=colors)
    return save_figure(fig, stem.parent / f"{stem.name}.png"), ply


def _settings(run: RunEvaluation, samples) -> list[tuple[str, Any]]:
    cfg = run.config
    steps = [r["step"] for r in run.records if "loss" in r]
    losses = [r["loss"] for r in run.records if isinstance(r.get("loss"), (int, float))]
    budget = (
        f"{cfg.train.iters} steps × {cfg.train.batch_size} images × {cfg.optim.accumulate} accumulation, "
        f"lr {cfg.optim.lr:g} ({cfg.optim.schedule})"
    )
    return [
        ("run", f"`{run.run_dir}`"),
        ("dataset / split", f"{samples.dataset or '?'} / {run.split} ({len(run.gt.image_ids)} images)"),
        ("store", f"`{samples.path.parent}`"),
        ("model", cfg.model.name),
        ("modality", cfg.data.modality),
        ("initialisation", cfg.model.init),
        ("input size", f"{cfg.data.input_size} px"),
        ("budget", budget),
        ("steps logged", str(max(steps)) if steps else "none"),
        ("final training loss", f"{losses[-1]:.4f}" if losses else "not logged"),
    ]


def _frame_boxes(run: RunEvaluation, image: int):
    from dsod_depth.viz.detections import FrameBoxes

    g = np.flatnonzero(run.gt.image_index == image)  # [n_gt] annotations of this image
    d = np.flatnonzero(run.det.image_index == image)  # [n_det]
    return FrameBoxes(
        # iscrowd annotations are ignored by the VOC metrics exactly like difficult ones.
        gt_boxes=run.gt.boxes[g], gt_labels=run.gt.labels[g],
        gt_difficult=run.gt.difficult[g] | run.gt.iscrowd[g],
        det_boxes=run.det.boxes[d], det_scores=run.det.scores[d], det_labels=run.det.labels[d],
    )  # fmt: skip


def visualize_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    num_frames: int = 16,
    score_threshold: float = 0.3,
    out_dir: str | Path | None = None,
    store: str | Path | None = None,
    progress: bool = True,
) -> VisualizationResult:
    """Write every figure of a run and its Markdown report (layout in the module docstring).

    Args:
        run_dir: a run directory evaluated on ``split`` (``dsod-depth eval``).
        split: the evaluated split whose files and images are drawn.
        num_frames: detection figures for this many frames, spread evenly over the split (>= 1).
        score_threshold: detections below this score are not drawn nor highlighted, in [0, 1].
        out_dir: where the figures go (default ``RUN_DIR/figures``).
        store: prepared store holding the images (default the run config's ``data.store``).
        progress: show a progress bar over frames.
    """
    from dsod_depth.data.store import load_prepared
    from dsod_depth.viz.curves import pr_curves, pr_figure, training_figure
    from dsod_depth.viz.detections import (
        DEFAULT_MAX_DETECTIONS,
        detection_figure,
        frame_panels,
        select_frames,
        shown_detections,
    )
    from dsod_depth.viz.report import ReportFigures, write_run_report

    if num_frames < 1:
        raise KitError(f"the number of frames to draw (--n) must be at least 1; got {num_frames}")
    if not 0.0 <= score_threshold <= 1.0:
        raise KitError(f"the score threshold (--score) must lie in [0, 1]; got {score_threshold}")
    run = load_run(run_dir, split)
    out = Path(out_dir) if out_dir is not None else RunDir(run.run_dir).figures
    samples, store_classes = load_prepared(store or run.config.data.store, split)
    names = run.gt.class_names
    if list(store_classes) != list(names):
        raise KitError(f"the store {samples.path} has other classes than {run.run_dir}'s evaluation; "
                       "pass the store the run was evaluated on")  # fmt: skip
    store_index = {image_id: i for i, image_id in enumerate(samples.image_ids)}
    absent = [i for i in run.gt.image_ids if str(i) not in store_index]
    if absent:
        raise KitError(f"image {absent[0]!r} of the evaluation is not in {samples.path}; "
                       "pass the store the run was evaluated on")  # fmt: skip
    # The evaluation files are read: the figures are written under the run's lock (one writer).
    with run_lock(run.run_dir):
        colors = class_colors(len(names))
        name = run.config.name
        cfg = run.config
        label = f"run {name} ({cfg.model.name}, {cfg.data.modality}, {init_label(cfg.model.init)})"  # titles
        figures = ReportFigures()

        figures.training = save_figure(training_figure(run.records, title=f"Training curves · {label}"),
                                       out / "training_curves.png")  # fmt: skip
        metric = run.metrics.get("metric", "voc07")
        iou = float(run.metrics.get("iou_threshold", 0.5))
        if metric in ("voc07", "voc12"):
            kind = "VOC07 11-point" if metric == "voc07" else "VOC12 area"
            pr_title = f"Precision–recall · {label} · {split} · {kind} AP@{iou:g}"
            pr_title += f" · mAP {100 * run.metrics['map']:.1f}"
        else:  # COCO averages over IoU thresholds; the curves show IoU 0.5 with the area AP
            metric, iou = "voc12", 0.5
            pr_title = f"Precision–recall · {label} · {split} · area AP@0.5 (the run was scored with COCO AP)"
        curves = pr_curves(run.gt, run.det, metric=metric, iou_threshold=iou)
        figures.pr = save_figure(pr_figure(curves, title=pr_title, colors=colors), out / "pr_curves.png")

        frames = select_frames(len(run.gt.image_ids), num_frames)
        file_names = file_stems([str(run.gt.image_ids[i]) for i in frames])
        counts = []
        for image in tqdm(frames, desc="figures", unit="frame", disable=not progress, leave=False):
            image_id = str(run.gt.image_ids[image])
            boxes = _frame_boxes(run, int(image))
            counts.append(len(shown_detections(boxes.det_scores, score_threshold, DEFAULT_MAX_DETECTIONS)))
            fig = detection_figure(
                frame_panels(samples, store_index[image_id]), boxes, class_names=names, colors=colors,
                title=f"{image_id} · {label} · {split} split", score_threshold=score_threshold,
            )  # fmt: skip
            png = save_figure(fig, out / "detections" / f"{file_names[image_id]}.png")
            figures.detections.append((image_id, png))

        if samples.attrs.get("has_depth", True) and len(frames):
            # The frame with the most detections drawn (the first on ties) shows the most.
            image = int(frames[int(np.argmax(counts))])
            image_id = str(run.gt.image_ids[image])
            png, ply = _write_cloud(
                samples, store_index[image_id], _frame_boxes(run, image),
                out / "cloud" / file_names[image_id], title=f"{image_id} · {label}", class_names=names,
                colors=colors, score_threshold=score_threshold,
            )  # fmt: skip
            figures.clouds.append((image_id, png, ply))

        report = write_run_report(
            out / "report.md", title=f"Run {name} · {split} split", settings=_settings(run, samples),
            metrics=run.metrics, figures=figures, score_threshold=score_threshold,
        )  # fmt: skip
        written = [figures.training, figures.pr, *(p for _, p in figures.detections)]
        written += [p for _, png, ply in figures.clouds for p in (png, ply)]
    return VisualizationResult(report=report, figures=written)
