"""Running a detector over a split and scoring it: COCO-format files plus VOC/COCO metrics.

``evaluate`` writes ``<out>/gt.json`` (COCO annotations of the split, with ``difficult``),
``<out>/detections.json`` (COCO results list) and ``<out>/metrics.json``, and scores the files
with :func:`dsod_depth.evaluation.evaluate_files` — the very code path of ``dsod-depth evaluate``,
so a run's metrics can always be recomputed from its files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dsod_depth.config import PostprocessConfig, from_dict
from dsod_depth.data.loader import DetectionDataset, make_loader
from dsod_depth.detection.postprocess import postprocess, to_frame_pixels
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.device import select_device
from dsod_depth.engine.model_setup import build_model_for
from dsod_depth.engine.run_dir import (
    DETECTIONS_FILE,
    GT_FILE,
    METRICS_FILE,
    RunDir,
    resolve_checkpoint,
    run_lock,
)
from dsod_depth.errors import KitError
from dsod_depth.evaluation import coco_ground_truth, coco_results, evaluate_files, write_json_atomic


def ground_truth_json(dataset: DetectionDataset) -> dict[str, Any]:
    """COCO annotation dict of a split: one image per frame (id = image_id), boxes in stored pixels."""
    samples = dataset.samples
    frames = (
        (samples.image_ids[i], *(int(v) for v in samples.sizes[i]), *samples.annotations(i))
        for i in range(len(dataset))
    )  # (image_id, height, width, boxes, labels, difficult)
    return coco_ground_truth(frames, dataset.class_names)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    *,
    device: torch.device,
    batch_size: int = 8,
    num_workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    **postprocess_options,
) -> list[dict[str, Any]]:
    """Detections of every frame as a COCO results list (boxes in the stored frame's pixels).

    ``postprocess_options`` are keyword arguments of :func:`~dsod_depth.detection.postprocess.postprocess`
    (a run passes its ``config.postprocess``; none = the function's defaults).
    """
    model.eval()
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    priors = model.priors.to(device)
    results: list[dict[str, Any]] = []
    for images, targets in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loc, conf = model(images)
        for det, target in zip(postprocess(loc, conf, priors, **postprocess_options), targets):
            height, width = (int(v) for v in target["orig_size"])
            boxes, keep = to_frame_pixels(det["boxes"].cpu(), height, width)
            scores, labels = det["scores"].cpu()[keep], det["labels"].cpu()[keep]
            results += coco_results(target["image_id"], boxes[keep], scores, labels)
    return results


def evaluate(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    out_dir: str | Path,
    *,
    metric: str = "voc07",
    device: torch.device,
    batch_size: int = 8,
    num_workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    postprocess_config: PostprocessConfig | None = None,
) -> dict[str, Any]:
    """Predict on ``dataset``; write gt.json, detections.json and metrics.json under ``out_dir``.

    ``postprocess_config``: the run's post-processing settings (default: :class:`PostprocessConfig`'s,
    the official ``DetectionOutput`` values)."""
    settings = dataclasses.asdict(postprocess_config or PostprocessConfig())  # postprocess() keywords
    out_dir = Path(out_dir)
    detections = predict(
        model, dataset, device=device, batch_size=batch_size, num_workers=num_workers,
        amp_dtype=amp_dtype, progress=progress, **settings,
    )  # fmt: skip
    gt_path, det_path = out_dir / GT_FILE, out_dir / DETECTIONS_FILE
    write_json_atomic(gt_path, ground_truth_json(dataset))
    write_json_atomic(det_path, detections)
    metrics = evaluate_files(gt_path, det_path, metric=metric)
    write_json_atomic(out_dir / METRICS_FILE, metrics)
    return metrics


def evaluate_checkpoint(
    path: str | Path,
    *,
    store: str | None = None,
    split: str = "test",
    metric: str | None = None,
    device: str = "auto",
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = True,
    on_acquired: Callable[[RunDir], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a trained detector; returns (metrics, folder with gt/detections/metrics JSON).

    The checkpoint, store and model are checked first; the run folder's lock is then held while
    ``eval/<split>/`` is written (``on_acquired`` as in :func:`~dsod_depth.engine.run_dir.run_lock`)."""
    ckpt_path, run = resolve_checkpoint(path)
    checkpoint = load_checkpoint(ckpt_path)
    if "config" not in checkpoint:
        raise KitError(f"{ckpt_path} has no config; it was not written by `dsod-depth train`")
    config = from_dict(checkpoint["config"], source=f"{ckpt_path} (stored config)")
    # Weights come from the checkpoint: build the bare architecture, never reload ImageNet files.
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, init="scratch"))
    dataset = DetectionDataset(
        store or config.data.store, split, config.data.modality, config.data.input_size, train=False
    )
    if list(dataset.class_names) != list(checkpoint.get("class_names", dataset.class_names)):
        raise KitError(
            f"the store's classes differ from those {ckpt_path} was trained on; pass the right --data"
        )
    model = build_model_for(config, dataset)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise KitError(f"{ckpt_path}: weights do not fit the model ({str(err).splitlines()[0]})") from None
    dev = select_device(device)
    out_dir = run.eval_dir(split)
    with run_lock(run, on_acquired=on_acquired):
        metrics = evaluate(
            model.to(dev), dataset, out_dir, metric=metric or config.train.eval_metric, device=dev,
            batch_size=batch_size, num_workers=num_workers, progress=progress,
            postprocess_config=config.postprocess,
        )  # fmt: skip
    return metrics, out_dir
