"""Ground truth and detections side by side on every image kind a store holds (RGB, depth, HHA).

One figure per frame: a row per image kind (RGB, colourised depth, HHA — whichever the prepared
store has), ground truth in the left column and detections in the right one, boxes in class colours
with the class name (and score) on each box, a legend of the classes drawn, and the image id in the
title. The layout is computed in whole pixels (:func:`detection_figure_size`) so the PNG size is
known in advance.

Coordinates follow the kit's continuous convention (DESIGN "Data contract"): pixel ``i`` spans
``[i, i + 1]``, so images are shown with ``extent=(0, W, H, 0)`` rather than matplotlib's default
``(-0.5, W - 0.5, ...)``, which would put every box half a pixel off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from dsod_depth.viz.style import DPI, new_figure, readable_text_color

__all__ = [
    "FrameBoxes",
    "detection_figure",
    "detection_figure_size",
    "frame_panels",
    "image_panels",
    "select_frames",
    "shown_detections",
]

# Layout in pixels (see detection_figure_size).
PANEL_WIDTH = 400  # each image is drawn this wide; its height follows the frame's aspect ratio
LEFT, RIGHT, COLUMN_GAP, ROW_GAP = 34, 10, 10, 10  # LEFT holds the rotated row labels
TITLE_BAND, COLUMN_TITLE_BAND = 34, 26  # figure title; column titles above the first row
LEGEND_COLUMNS, LEGEND_ROW, LEGEND_PAD = 6, 20, 16  # legend band: rows of LEGEND_COLUMNS entries
LABEL_FONT_PT = 7  # class/score tags on the boxes
DEFAULT_MAX_DETECTIONS = 25  # detections drawn per frame at most (highest scores), for readability


@dataclass(frozen=True)
class FrameBoxes:
    """Boxes of one frame. Boxes are float [N, 4] x1, y1, x2, y2 in the stored frame's pixels
    (continuous); labels int [N] 0-based class indices; ``difficult`` bool [N]; ``scores`` float [N]."""

    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_labels: np.ndarray


def select_frames(num_frames: int, n: int) -> np.ndarray:
    """Indices of ``min(n, num_frames)`` frames spread evenly over a split (first and last included),
    so the figures sample the whole split rather than its first scenes: int64 [min(n, num_frames)]."""
    if n <= 0 or num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, num_frames - 1, min(n, num_frames)).round().astype(np.int64))


def shown_detections(scores: np.ndarray, score_threshold: float, max_detections: int) -> np.ndarray:
    """Indices of the detections a figure draws: those scoring at least ``score_threshold``, the best
    ``max_detections`` of them, best first (ties in input order): int64 [<= max_detections]."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    kept = np.flatnonzero(scores >= score_threshold)
    return kept[np.argsort(-scores[kept], kind="stable")][:max_detections]


def frame_panels(samples, index: int) -> list[tuple[str, np.ndarray]]:
    """The images of frame ``index`` of a :class:`~dsod_depth.data.store.PreparedSplit` to draw on
    (:func:`image_panels` of what the store holds). Depth is skipped for colour-only datasets (store
    attribute ``has_depth`` false: their depth is all 0)."""
    wanted = [f for f in ("rgb", "depth", "raw_depth", "hha") if f in samples.fields]
    if not samples.attrs.get("has_depth", True):
        wanted = [f for f in wanted if f not in ("depth", "raw_depth")]
    arrays = samples.read(index, wanted)
    camera = samples.camera(index) if "depth" in arrays else None
    return image_panels(
        rgb=arrays.get("rgb"), depth=arrays.get("depth"), raw_depth=arrays.get("raw_depth"),
        hha=arrays.get("hha"), camera=camera,
    )  # fmt: skip


def image_panels(
    *,
    rgb: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    raw_depth: np.ndarray | None = None,
    hha: np.ndarray | None = None,
    camera=None,
) -> list[tuple[str, np.ndarray]]:
    """``(row label, uint8 [H, W, 3])`` for each image given, in the order RGB, colourised depth (the
    ``jet`` encoder over its fixed range, the same colours the ``jet`` modality feeds a network), HHA.

    ``rgb``/``hha`` uint8 [H, W, 3]; ``depth``/``raw_depth`` float32 metres [H, W] (raw None = depth);
    ``camera`` the frame's :class:`~dsod_depth.geometry.Intrinsics` (the jet colours ignore it).
    """
    from dsod_depth.encoders import encode
    from dsod_depth.encoders.simple import JET_RANGE_M
    from dsod_depth.geometry.camera import Intrinsics

    panels = []
    if rgb is not None:
        panels.append(("RGB", rgb))
    if depth is not None:
        jet = encode("jet", depth, raw_depth, camera or Intrinsics(1.0, 1.0, 0.0, 0.0))  # float [3, H, W]
        low, high = JET_RANGE_M
        image = np.rint(jet).astype(np.uint8).transpose(1, 2, 0)  # [3, H, W] -> [H, W, 3]
        panels.append((f"depth (jet, {low:g}–{high:g} m)", image))
    if hha is not None:
        panels.append(("HHA", hha))
    return panels


def _legend_rows(num_entries: int) -> int:
    return max(1, math.ceil(num_entries / LEGEND_COLUMNS))


def detection_figure_size(
    num_panels: int, height: int, width: int, num_legend_entries: int, *, columns: int = 2
) -> tuple[int, int]:
    """(width, height) in pixels of :func:`detection_figure` for ``num_panels`` image rows of frames
    ``height`` × ``width`` pixels and a legend of ``num_legend_entries`` entries, with ``columns`` image
    columns (2: ground truth and detections; 1: detections only).

    Each image is :data:`PANEL_WIDTH` wide and ``round(PANEL_WIDTH * height / width)`` high; around
    them: the title band, the column titles, gaps between rows and columns, and the legend band
    (:data:`LEGEND_COLUMNS` entries per row).
    """
    panel_height = round(PANEL_WIDTH * height / width)
    fig_width = LEFT + columns * PANEL_WIDTH + (columns - 1) * COLUMN_GAP + RIGHT
    legend_band = LEGEND_PAD + LEGEND_ROW * _legend_rows(num_legend_entries)
    fig_height = (TITLE_BAND + COLUMN_TITLE_BAND + num_panels * panel_height + (num_panels - 1) * ROW_GAP
                  + legend_band)  # fmt: skip
    return fig_width, fig_height


def _label(ax: Axes, box: np.ndarray, text: str, color: np.ndarray, height: int, width: int) -> None:
    """Class name (and score) on a coloured tag at the box's top-left corner: above the box when
    there is room, else inside it; right-aligned on the box's right edge when the tag would run
    past the image's right border."""
    x1, y1, x2 = float(box[0]), float(box[1]), float(box[2])
    above = y1 > 0.08 * height
    # Tag width estimate: ~0.6 em per character at 7 pt, in image pixels (the panel is PANEL_WIDTH px).
    tag_width = (len(text) * 0.6 * LABEL_FONT_PT * DPI / 72 + 4) * width / PANEL_WIDTH
    right = x1 + tag_width > width
    ax.text(
        x2 if right else x1, y1, text, fontsize=LABEL_FONT_PT, color=readable_text_color(color),
        va="bottom" if above else "top", ha="right" if right else "left", clip_on=True,
        bbox={"facecolor": color, "edgecolor": "none", "alpha": 0.85, "pad": 1.0, "boxstyle": "square"},
    )  # fmt: skip


def _draw_boxes(ax, boxes, labels, texts, colors, height, width, dashed=None) -> None:
    for i, (box, label, text) in enumerate(zip(boxes, labels, texts)):
        color = colors[int(label)]
        x1, y1, x2, y2 = (float(v) for v in box)
        style = "--" if dashed is not None and dashed[i] else "-"
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.6,
                               linestyle=style))  # fmt: skip
        _label(ax, box, text, color, height, width)


def detection_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    boxes: FrameBoxes,
    *,
    class_names: Sequence[str],
    colors: np.ndarray,
    title: str,
    score_threshold: float = 0.3,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
    ground_truth: bool = True,
) -> Figure:
    """Ground truth (left) and detections (right) of one frame on each image in ``panels``.

    Args:
        panels: ``(row label, uint8 [H, W, 3])`` per image kind, all of the frame's size H × W
            (:func:`frame_panels`); at least one.
        boxes: the frame's ground truth and detections (:class:`FrameBoxes`), pixels of that frame.
        class_names: K names, label i ↔ ``class_names[i]``.
        colors: float [K, 3] RGB in [0, 1], one per class (:func:`~dsod_depth.viz.style.class_colors`).
        title: the figure title (should name the image id).
        score_threshold: detections scoring below it are not drawn.
        max_detections: at most this many detections are drawn (the highest scores).
        ground_truth: False draws the detections only, in one column (frames without annotations).

    Ground truth marked difficult is drawn dashed. Returns a figure of
    :func:`detection_figure_size` pixels.
    """
    if not panels:
        raise ValueError("detection_figure needs at least one image panel")
    height, width = panels[0][1].shape[:2]
    det_scores = np.asarray(boxes.det_scores, dtype=np.float64).reshape(-1)
    shown = shown_detections(det_scores, score_threshold, max_detections)
    gt_labels = np.asarray(boxes.gt_labels, dtype=np.int64).reshape(-1)
    gt_difficult = np.asarray(boxes.gt_difficult, dtype=bool).reshape(-1)
    det_labels = np.asarray(boxes.det_labels, dtype=np.int64).reshape(-1)[shown]
    gt_texts = [class_names[c] + (" (difficult)" if d else "") for c, d in zip(gt_labels, gt_difficult)]
    det_texts = [f"{class_names[c]} {s:.2f}" for c, s in zip(det_labels, det_scores[shown])]

    drawn = sorted(set(gt_labels.tolist()) | set(det_labels.tolist()))
    handles = [Patch(facecolor=colors[c], edgecolor=colors[c], label=class_names[c]) for c in drawn]
    if gt_difficult.any():
        handles.append(Line2D([], [], color="grey", linestyle="--", label="difficult (ignored by VOC AP)"))
    columns = 2 if ground_truth else 1
    fig_w, fig_h = detection_figure_size(len(panels), height, width, len(handles), columns=columns)
    fig = new_figure(fig_w, fig_h)
    panel_h = round(PANEL_WIDTH * height / width)

    num_gt = len(gt_labels)
    column_titles = ((
        f"ground truth: {num_gt} object{'s' if num_gt != 1 else ''}"
        + (f" ({int(gt_difficult.sum())} difficult)" if gt_difficult.any() else ""),
    ) if ground_truth else ()) + (
        f"detections, score ≥ {score_threshold:.2f}: {len(shown)} drawn of {len(det_scores)}",
    )  # fmt: skip
    for row, (label, image) in enumerate(panels):
        if image.shape[:2] != (height, width):
            raise ValueError(f"panel {label!r} is {image.shape[:2]}, expected {(height, width)}")
        top = TITLE_BAND + COLUMN_TITLE_BAND + row * (panel_h + ROW_GAP)  # pixels from the top
        for col in range(columns):
            left = LEFT + col * (PANEL_WIDTH + COLUMN_GAP)
            # add_axes takes [left, bottom, width, height] as fractions of the figure.
            bottom = 1 - (top + panel_h) / fig_h
            ax = fig.add_axes((left / fig_w, bottom, PANEL_WIDTH / fig_w, panel_h / fig_h))
            ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=10)
            if col == 0 and ground_truth:
                _draw_boxes(
                    ax, boxes.gt_boxes, gt_labels, gt_texts, colors, height, width, dashed=gt_difficult
                )
            else:
                _draw_boxes(ax, np.asarray(boxes.det_boxes).reshape(-1, 4)[shown], det_labels, det_texts,
                            colors, height, width)  # fmt: skip
            if row == 0:
                ax.set_title(column_titles[col], fontsize=10)
    fig.suptitle(title, fontsize=12, y=1 - 8 / fig_h, va="top")
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, 4 / fig_h))  # fmt: skip
    else:
        fig.text(0.5, 8 / fig_h, "no objects and no detections above the threshold", ha="center",
                 va="bottom", fontsize=9)  # fmt: skip
    return fig
