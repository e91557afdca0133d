"""``dsod-depth detect``: a trained detector over a user's own frames, with files a COCO tool reads.

:func:`detect_files` runs a :class:`~dsod_depth.inference.detector.Detector` over frames given as files
(:mod:`dsod_depth.inference.frames`) and writes into the output folder:

* ``detections.json`` — COCO results (``image_id``, ``category_id`` = label + 1, ``bbox`` [x, y, w, h]
  in the frame's pixels, ``score``), the format ``eval`` writes;
* ``images.json`` — a COCO ``images`` list: ids 1..N in input order, ``file_name`` the colour image's
  path as given (the depth path for depth-only frames), ``width``, ``height``; with your own COCO
  ground truth using these ids, ``dsod-depth evaluate --gt GT.json --det DIR/detections.json`` scores
  the run on your frames;
* ``figures/<stem>.png`` — the detections on RGB, the colourised depth and HHA (for HHA runs);
* ``clouds/<stem>.ply`` (``ply=True``) — the back-projected frame, points in detected boxes in class
  colours.

Nothing appears in the output folder unless every frame went through: files are written into a
hidden staging folder beside it and moved in at the end, so a bad frame (wrong size, 8-bit depth,
wrong units) leaves the folder as it was.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dsod_depth.data.transforms import TensorSample
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics
from dsod_depth.inference.detector import Detector, Prediction
from dsod_depth.inference.frames import FrameFiles

__all__ = ["DetectSummary", "detect_files", "FIGURE_SCORE", "DETECTIONS_FILE", "IMAGES_FILE"]

DETECTIONS_FILE, IMAGES_FILE = "detections.json", "images.json"
FIGURES, CLOUDS = "figures", "clouds"
FIGURE_SCORE = 0.3  # detections drawn and counted in the summary score at least this (as `visualize`)


@dataclass(frozen=True)
class DetectSummary:
    """What a :func:`detect_files` call wrote: frames, detections written (score ≥ the threshold),
    per class the detections scoring ≥ ``figure_score``, and the output files."""

    frames: int
    detections: int
    per_class: dict[str, int]
    figure_score: float
    out: Path
    figures: int
    clouds: int


def _staging(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` (same file system, so the final moves are renames)."""
    if out.exists() and not out.is_dir():
        raise KitError(f"--out {out} exists and is a file; pass a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise KitError(f"the folder {parent} for --out does not exist; create it first")
    staging = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Move everything in ``staging`` into ``out`` (created if needed), replacing same-named files."""
    if not out.exists():
        staging.rename(out)
        return
    for item in staging.iterdir():
        target = out / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            for file in item.iterdir():
                os.replace(file, target / file.name)
        else:
            os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)


def _stems(names: list[str]) -> list[str]:
    """File stems for the frames' outputs: the input files' stems when they are distinct, else the
    whole paths made file-safe (frames from several folders may share a name)."""
    from dsod_depth.viz.run import file_stems

    short = [Path(n).stem for n in names]
    keys = short if len(set(short)) == len(short) else names
    table = file_stems(keys)
    return [table[k] for k in keys]


def _figure(detector: Detector, frame: tuple, groups: TensorSample, prediction: Prediction,
            title: str, path: Path, score: float) -> None:  # fmt: skip
    from dsod_depth.viz.detections import FrameBoxes, detection_figure, image_panels
    from dsod_depth.viz.style import class_colors, save_figure

    rgb, depth, raw = frame
    camera = groups.intrinsics
    hha = None
    if "hha" in groups.images:  # the HHA the network read: float32 [3, H, W] of whole values 0..255
        hha = groups.images["hha"].permute(1, 2, 0).to(torch.uint8).numpy()  # [H, W, 3]
    panels = image_panels(rgb=rgb, depth=depth, raw_depth=raw, hha=hha, camera=camera)
    none = np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    boxes = FrameBoxes(*none, prediction.boxes, prediction.scores, prediction.labels)
    colors = class_colors(len(detector.classes))
    fig = detection_figure(panels, boxes, class_names=detector.classes, colors=colors, title=title,
                           score_threshold=score, ground_truth=False)  # fmt: skip
    save_figure(fig, path)


def _cloud(detector: Detector, frame: tuple, camera: Intrinsics, prediction: Prediction, path: Path,
           score: float) -> None:  # fmt: skip
    from dsod_depth.viz.cloud import save_ply, shown_frame_cloud
    from dsod_depth.viz.detections import image_panels
    from dsod_depth.viz.style import class_colors

    rgb, depth, raw = frame
    base = image_panels(rgb=rgb, depth=depth, raw_depth=raw, camera=camera)[0][1]  # RGB, else jet depth
    cloud, _ = shown_frame_cloud(
        depth, camera, base_colors=base, boxes=prediction.boxes, labels=prediction.labels,
        scores=prediction.scores, class_colors=class_colors(len(detector.classes)), score_threshold=score,
    )  # fmt: skip
    save_ply(cloud, path)


def detect_files(
    detector: Detector,
    frames: Sequence[FrameFiles],
    out: str | os.PathLike,
    *,
    camera: Intrinsics | None = None,
    depth_format: str = "plain",
    depth_scale: float = 1000.0,
    fill: bool = True,
    score_threshold: float | None = None,
    batch_size: int = 8,
    figures: bool = True,
    ply: bool = False,
    progress: bool = True,
) -> DetectSummary:
    """Detect objects in ``frames`` and write the module's files into ``out``.

    Args:
        camera: the intrinsics of every frame (0-based principal point); required when the run's
            modality uses the camera (HHA, normals) and for ``ply``.
        depth_format, depth_scale, fill: how depth files are read and holes filled
            (:meth:`Detector.read_frame`).
        score_threshold: detections written score at least this (default: the checkpoint's, the run's
            ``postprocess.score_threshold`` (0.01 unless set) — what ``eval`` writes, so AP on your frames
            is comparable).
        figures: one figure per frame, drawing detections scoring ≥ max(``score_threshold``,
            :data:`FIGURE_SCORE`); ``ply``: one coloured point cloud per frame.
    """
    from dsod_depth.evaluation import coco_image, coco_results, write_json_atomic

    out = Path(out)
    if not frames:
        raise KitError("no frames to detect on; give --rgb/--depth, --input FOLDER or --list FILE")
    if detector.needs_camera and camera is None:
        raise KitError(
            f"the run's modality {detector.modality} needs the camera: pass --camera nyu|FX,FY,CX,CY or put "
            "intrinsics.txt in the --input folder"
        )
    if ply and camera is None:
        raise KitError("--ply back-projects the depth and needs the camera: pass --camera nyu|FX,FY,CX,CY")
    if ply and not detector.uses_depth:
        raise KitError(f"--ply needs depth, but the run's modality is {detector.modality}")
    names = [str(f.rgb if f.rgb is not None else f.depth) for f in frames]
    stems = _stems(names)
    figure_score = max(FIGURE_SCORE, score_threshold or 0.0)
    staging = _staging(out)
    try:
        images: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        counts: Counter[str] = Counter()
        bar = tqdm(total=len(frames), desc="detect", unit="frame", disable=not progress)
        for start in range(0, len(frames), batch_size):
            chunk = range(start, min(start + batch_size, len(frames)))
            loaded = [
                detector.read_frame(frames[i].rgb, frames[i].depth, frames[i].raw, depth_scale=depth_scale,
                                    depth_format=depth_format, fill=fill)
                for i in chunk
            ]  # fmt: skip
            groups = [detector.frame_groups(*frame, camera) for frame in loaded]  # at frame size
            encoded = [detector.network_input(sample) for sample in groups]
            sizes = [sample.size for sample in groups]  # (height, width) of each frame
            predictions = detector.predict_batch(torch.stack(encoded), sizes, score_threshold=score_threshold)
            for i, frame, sample, prediction, (height, width) in zip(
                chunk, loaded, groups, predictions, sizes
            ):
                image_id = i + 1
                images.append(coco_image(image_id, width=width, height=height, file_name=names[i]))
                results += coco_results(image_id, prediction.boxes, prediction.scores, prediction.labels)
                counts.update(
                    n for n, s in zip(prediction.class_names, prediction.scores) if s >= figure_score
                )
                stem = stems[i]
                title = f"{names[i]}: {detector.modality} detector"
                if figures:
                    _figure(detector, frame, sample, prediction, title, staging / FIGURES / f"{stem}.png",
                            figure_score)  # fmt: skip
                if ply:
                    (staging / CLOUDS).mkdir(exist_ok=True)
                    _cloud(
                        detector, frame, camera, prediction, staging / CLOUDS / f"{stem}.ply", figure_score
                    )
                bar.update(1)
        bar.close()
        write_json_atomic(staging / DETECTIONS_FILE, results)
        write_json_atomic(staging / IMAGES_FILE, images)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DetectSummary(
        frames=len(frames), detections=len(results), per_class=dict(counts.most_common()),
        figure_score=figure_score, out=out, figures=len(frames) if figures else 0,
        clouds=len(frames) if ply else 0,
    )  # fmt: skip
