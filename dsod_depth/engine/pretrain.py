"""Classification pretraining of a detector's backbone on object crops from a prepared store: the loop.

The offline stand-in for ImageNet pretraining, and a real tool for depth-domain pretraining: the
detector named in the config is built, its ``features`` module (backbone + prediction structure)
is trained to classify ground-truth object crops (:class:`~dsod_depth.data.crops.ObjectCrops`) through
:class:`~dsod_depth.models.classifier.BackboneClassifier` (global average pooling of every feature map →
one linear layer), and the features are saved as a checkpoint that ``init: pretrained:PATH``
loads into any detector of the same architecture (:func:`dsod_depth.engine.init.transfer_weights`),
for the same or another modality. The optimiser is the trainer's
(:func:`~dsod_depth.engine.model_setup.optimiser_for`): weight decay on convolution and linear weights
only, not on norm scales or biases.

Checkpoint (``<out>/checkpoints/last.pt``): ``model`` = the detector-shaped state dict of the
features (keys ``features.*``), ``kind`` = ``"backbone"``, ``in_channels``, ``modality``,
``class_names``, ``config``, ``accuracy`` (on the test split's crops), ``step``, ``inference`` (the
record of :func:`~dsod_depth.engine.checkpoint.dataset_inference_record`, kind ``backbone``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from dsod_depth.config import ExperimentConfig, dump_config, to_dict
from dsod_depth.data.crops import ObjectCrops
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.checkpoint import dataset_inference_record, save_checkpoint
from dsod_depth.engine.logging import MetricsLogger
from dsod_depth.engine.model_setup import build_model_for, optimiser_for
from dsod_depth.engine.run_dir import RunDir, run_lock, write_run_kind
from dsod_depth.engine.schedule import set_learning_rate
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic
from dsod_depth.models.classifier import BackboneClassifier


@torch.no_grad()
def crop_accuracy(model: BackboneClassifier, crops: ObjectCrops, batch_size: int) -> float:
    """Share of ``crops`` whose arg-max logit is their label (0.0 for no crops)."""
    model.eval()
    correct = 0
    for images, labels in DataLoader(crops, batch_size=batch_size):
        correct += int((model(images).argmax(1) == labels).sum())
    return correct / max(len(crops), 1)


def pretrain(config: ExperimentConfig, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Pretrain the features of ``config.model.name`` on object crops; returns a summary dict.

    Uses ``data`` (store, modality, ``input_size`` = crop side), ``optim`` (the trainer's optimiser and
    schedule; ``accumulate`` and ``grad_clip`` do not apply) and ``train`` (iters, batch_size, seed) of
    the config; the classifier head is dropped at the end.
    """
    run = RunDir(out_dir)
    if not config.data.store:
        raise KitError("no prepared store given: pass --data STORE or set data.store")
    if run.last.exists():
        raise KitError(f"{run} already holds a pretraining run; choose another --out")
    torch.manual_seed(config.train.seed)
    data = config.data
    frames = DetectionDataset(data.store, data.train_split, data.modality, data.input_size)
    test_frames = DetectionDataset(data.store, data.test_split, data.modality, data.input_size)
    train_crops = ObjectCrops(frames, data.input_size, train=True, seed=config.train.seed)
    test_crops = ObjectCrops(test_frames, data.input_size, train=False)
    if len(train_crops) < config.train.batch_size:
        raise KitError(
            f"{data.store}: only {len(train_crops)} object crops for a batch of {config.train.batch_size}; "
            "lower train.batch_size or prepare more frames"
        )
    detector = build_model_for(config, frames)
    model = BackboneClassifier(detector.features, frames.in_channels, frames.num_classes, data.input_size)
    # Every input is checked: only now does the folder come to exist, locked while it is written.
    with run_lock(run, create=True):
        if run.last.exists():  # finished by another process while this one was checking
            raise KitError(f"{run} already holds a pretraining run; choose another --out")
        record = dataset_inference_record(detector.info["build"], frames, kind="backbone")
        return _pretrain_into(run, config, model, train_crops, test_crops, frames, record, progress=progress)


def _pretrain_into(
    run: RunDir, config: ExperimentConfig, model: BackboneClassifier, train_crops: ObjectCrops,
    test_crops: ObjectCrops, frames: DetectionDataset, inference: dict[str, Any], *, progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """The loop of :func:`pretrain` in a locked run folder; ``inference`` goes into the checkpoint."""
    data = config.data
    optimiser = optimiser_for(model, config.optim)  # the trainer's rule: no decay on norms and biases
    write_text_atomic(run.config, dump_config(config))
    write_run_kind(run, "pretrain")
    run.metrics_log.unlink(missing_ok=True)
    logger = MetricsLogger(run.path, tensorboard=False)
    steps_per_epoch = len(train_crops) // config.train.batch_size
    step, start = 0, time.perf_counter()
    bar = tqdm(total=config.train.iters, desc="pretrain", unit="step", disable=not progress)
    while step < config.train.iters:
        train_crops.epoch = step // steps_per_epoch
        order = torch.Generator().manual_seed(config.train.seed * 7919 + train_crops.epoch)
        loader = DataLoader(
            train_crops, batch_size=config.train.batch_size, shuffle=True, generator=order, drop_last=True,
            num_workers=data.num_workers,
        )  # fmt: skip
        model.train()
        for images, labels in loader:
            lr = set_learning_rate(optimiser, config.optim, step, config.train.iters)
            loss = F.cross_entropy(model(images), labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise KitError(f"pretraining loss became {value} at step {step + 1}; lower optim.lr")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            bar.update(1)
            if step % config.train.log_every == 0 or step == config.train.iters:
                logger.log({"step": step, "loss": round(value, 6), "lr": lr})
            if step >= config.train.iters:
                break
    bar.close()
    accuracy = crop_accuracy(model, test_crops, max(config.train.batch_size, 32)) if len(test_crops) else None
    summary = {
        "steps": step, "seconds": round(time.perf_counter() - start, 1), "train_crops": len(train_crops),
        "test_crops": len(test_crops), "test_accuracy": accuracy, "modality": frames.modality,
        "model": config.model.name,
    }  # fmt: skip
    logger.log({"step": step, "test_accuracy": accuracy})
    logger.close()
    save_checkpoint(
        run.last,
        {
            "model": {f"features.{k}": v for k, v in model.features.state_dict().items()},
            "kind": "backbone", "in_channels": frames.in_channels, "modality": frames.modality,
            "class_names": list(frames.class_names), "config": to_dict(config), "accuracy": accuracy,
            "step": step,
            "inference": inference,
        },
    )  # fmt: skip
    write_text_atomic(run.summary, json.dumps(summary, indent=2) + "\n")
    return summary
