"""A 3D view of one frame: the back-projected point cloud, with the points inside detected boxes
highlighted in class colours; saved as PLY (Open3D) and rendered to PNG (matplotlib).

A 2D box selects a frustum: every pixel whose centre lies in the box, at any depth. So the highlight
covers the object and whatever lies behind it inside the box (wall, floor), exactly what a
frustum-based 3D method would start from.

The PNG is drawn with matplotlib's 3D scatter: Open3D's offscreen renderer needs EGL/OpenGL, which
headless machines often lack, and matplotlib is already a dependency. Matplotlib draws points one by
one, so the picture uses a random subset (:data:`MAX_RENDERED_POINTS`); the PLY keeps every point.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dsod_depth.errors import KitError
from dsod_depth.geometry.backproject import valid_points
from dsod_depth.geometry.camera import Intrinsics
from dsod_depth.viz.style import atomic_output, new_figure

__all__ = ["FrameCloud", "box_label_image", "frame_cloud", "render_cloud", "save_ply"]

MAX_RENDERED_POINTS = 20_000  # points drawn in the PNG (a subset; matplotlib is slow beyond this)
CLOUD_SIZE = (1400, 720)  # pixels of the rendered PNG
# (title, elevation, azimuth) of the two views, in the plotting frame x right, z forward, up.
# azimuth -90 looks along +forward, i.e. roughly from the camera; the second view is oblique.
VIEWS = (("seen from the camera", 8.0, -90.0), ("oblique view", 28.0, -50.0))


@dataclass(frozen=True)
class FrameCloud:
    """The points of the pixels with depth > 0, in row-major pixel order (N of them)."""

    points: np.ndarray  # float64 [N, 3], camera frame in metres: x right, y down, z forward
    colors: np.ndarray  # float64 [N, 3], RGB in [0, 1] (class colour for highlighted points)
    labels: np.ndarray  # int64 [N], class index of the detection whose box holds the pixel; -1 none
    pixel_index: np.ndarray  # int64 [N], flat pixel index v * W + u


def box_label_image(
    shape: tuple[int, int], boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """Class index per pixel whose centre lies inside a box, -1 elsewhere: int64 [H, W].

    Args:
        shape: (H, W) of the frame.
        boxes: float [D, 4] x1, y1, x2, y2 continuous pixels; labels: int [D]; scores: float [D].

    Pixel (u, v) spans [u, u + 1] × [v, v + 1]; it belongs to a box when its centre (u + 0.5, v + 0.5)
    does. Where boxes overlap, the higher-scoring detection's class wins.
    """
    height, width = shape
    image = np.full((height, width), -1, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    # A Python loop over boxes (a few dozen at most) writing rectangles is simpler and no slower than a
    # [D, H, W] mask; ascending score order lets the best detection overwrite the others.
    for i in np.argsort(np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable"):
        x1, y1, x2, y2 = boxes[i]
        # centre u + 0.5 in [x1, x2]  <=>  ceil(x1 - 0.5) <= u <= floor(x2 - 0.5)
        u0, u1 = max(0, int(np.ceil(x1 - 0.5))), min(width, int(np.floor(x2 - 0.5)) + 1)
        v0, v1 = max(0, int(np.ceil(y1 - 0.5))), min(height, int(np.floor(y2 - 0.5)) + 1)
        if u0 < u1 and v0 < v1:
            image[v0:v1, u0:u1] = labels[i]
    return image


def frame_cloud(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    base_colors: np.ndarray,
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    det_scores: np.ndarray,
    class_colors: np.ndarray,
) -> FrameCloud:
    """Back-project a frame and colour it, highlighting the frustums of the given detections.

    Args:
        depth: float [H, W] filled depth in metres, 0 = missing (those pixels give no point).
        intrinsics: the frame's camera (0-based pixel grid).
        base_colors: uint8 [H, W, 3], the colour of every pixel: the RGB image, or the colourised
            depth for depth-only datasets.
        det_boxes, det_labels, det_scores: detections to highlight (already filtered by score),
            float [D, 4] pixels, int [D], float [D].
        class_colors: float [K, 3] in [0, 1], one colour per class.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or base_colors.shape != (*depth.shape, 3):
        raise KitError(
            f"depth [H, W] and colours [H, W, 3] must match; got {depth.shape}, {base_colors.shape}"
        )
    points, index = valid_points(depth.astype(np.float64), intrinsics)  # [N, 3], [N]
    colors = base_colors.reshape(-1, 3)[index].astype(np.float64) / 255.0  # [H, W, 3] -> [H*W, 3] -> [N, 3]
    labels = box_label_image(depth.shape, det_boxes, det_labels, det_scores).reshape(-1)[index]  # [N]
    inside = labels >= 0
    colors[inside] = np.asarray(class_colors, dtype=np.float64)[labels[inside]]
    return FrameCloud(points=points, colors=colors, labels=labels, pixel_index=index)


def shown_frame_cloud(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    base_colors: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    class_colors: np.ndarray,
    score_threshold: float,
) -> tuple[FrameCloud, int]:
    """:func:`frame_cloud` highlighting the detections a 2D figure of the frame draws (score ≥
    ``score_threshold``, at most :data:`~dsod_depth.viz.detections.DEFAULT_MAX_DETECTIONS`), so the 3D
    view and the figure agree; returns the cloud and how many detections it highlights."""
    from dsod_depth.viz.detections import DEFAULT_MAX_DETECTIONS, shown_detections

    keep = shown_detections(scores, score_threshold, DEFAULT_MAX_DETECTIONS)
    cloud = frame_cloud(
        depth, intrinsics, base_colors=base_colors, det_boxes=boxes[keep], det_labels=labels[keep],
        det_scores=scores[keep], class_colors=class_colors,
    )  # fmt: skip
    return cloud, len(keep)


def save_ply(cloud: FrameCloud, path: str | os.PathLike) -> Path:
    """Write the cloud (points in metres, colours) as a binary PLY with Open3D, atomically."""
    import open3d as o3d

    path = Path(path)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.colors = o3d.utility.Vector3dVector(cloud.colors)
    if path.suffix.lower() != ".ply":
        raise KitError(f"{path}: a point cloud file must end in .ply")
    with atomic_output(path) as tmp:  # tmp ends in .ply too: Open3D picks the format by extension
        if not o3d.io.write_point_cloud(str(tmp), pcd, write_ascii=False):
            raise KitError(f"Open3D could not write {path}; check that the folder is writable")
    return path


def render_cloud(
    cloud: FrameCloud,
    *,
    title: str,
    class_names: Sequence[str],
    class_colors: np.ndarray,
    max_points: int = MAX_RENDERED_POINTS,
    seed: int = 0,
) -> Figure:
    """Two 3D scatter views of the cloud (from the camera, and oblique): :data:`CLOUD_SIZE` pixels.

    Draws a fixed random subset of at most ``max_points`` points (``seed``); highlighted points are
    drawn after the others so that they stay visible. The camera sits at the black triangle.
    """
    num_points = len(cloud.points)
    keep = np.arange(num_points)
    if num_points > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(num_points, max_points, replace=False))
    # Plot in (x right, z forward, -y up): matplotlib's vertical axis is the third one.
    xyz = cloud.points[keep][:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])  # [M, 3]
    colors, labels = cloud.colors[keep], cloud.labels[keep]
    inside = labels >= 0

    fig = new_figure(*CLOUD_SIZE)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.1, top=0.88, wspace=0.02)
    size = 6.0 if len(keep) < 5_000 else 2.0  # marker area in pt², enough to read as a surface
    for column, (view, elevation, azimuth) in enumerate(VIEWS):
        ax = fig.add_subplot(1, 2, column + 1, projection="3d")
        for mask in (~inside, inside):
            if mask.any():
                ax.scatter(xyz[mask, 0], xyz[mask, 1], xyz[mask, 2], c=colors[mask], s=size, marker="o",
                           linewidths=0, depthshade=False)  # fmt: skip
        ax.scatter([0.0], [0.0], [0.0], c="black", marker="^", s=40, depthshade=False)  # the camera
        if len(xyz):
            span = np.ptp(np.vstack([xyz, np.zeros((1, 3))]), axis=0)  # include the camera
            ax.set_box_aspect(np.maximum(span, 1e-3), zoom=1.1)  # metres equal on every axis
        ax.view_init(elev=elevation, azim=azimuth)
        ax.set_xlabel("x [m]", fontsize=9)
        ax.set_ylabel("forward [m]", fontsize=9)
        ax.set_zlabel("up [m]", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_title(view, fontsize=11)
    present = np.unique(cloud.labels[cloud.labels >= 0])  # all highlighted classes, not just those drawn
    handles = [Patch(color=class_colors[c], label=class_names[c]) for c in present]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=9, frameon=False,
                   title="points inside a detected box, by class", title_fontsize=9)  # fmt: skip
    else:
        fig.text(0.5, 0.03, "no detection above the score threshold in this frame", ha="center", fontsize=9)
    fig.suptitle(title, fontsize=12)
    return fig
