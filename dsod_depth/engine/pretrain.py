"""Classification pretraining of a detector's backbone on object crops from a prepared store.

The offline stand-in for ImageNet pretraining, and a real tool for depth-domain pretraining: the
detector named in the config is built, its ``features`` module (backbone + prediction structure)
is trained to classify ground-truth object crops (global average pooling of every feature map →
one linear layer), and the features are saved as a checkpoint that ``init: pretrained:PATH``
loads into any detector of the same architecture (:func:`dsod_depth.engine.model_setup.transfer_weights`),
for the same or another modality.

Checkpoint (``<out>/checkpoints/last.pt``): ``model`` = the detector-shaped state dict of the
features (keys ``features.*``), ``kind`` = ``"backbone"``, ``in_channels``, ``modality``,
``class_names``, ``config``, ``accuracy`` (on the test split's crops), ``step``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from dsod_depth.config import ExperimentConfig, dump_config, to_dict
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.checkpoint import dataset_inference_record, save_checkpoint
from dsod_depth.engine.logging import MetricsLogger
from dsod_depth.engine.run_dir import RunDir, run_lock
from dsod_depth.engine.schedule import lr_factor
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic

MIN_CROP_PIXELS = 8  # boxes smaller than this on either side carry too little signal to classify
CONTEXT = 1.2  # crops take a margin of context around the box, as R-CNN-style classifiers do


class ObjectCrops(Dataset):
    """Every non-difficult ground-truth box of a split as a square crop of the modality's channels.

    ``crops[i]`` → (image float32 [C, S, S] normalised with the store's statistics, label int).
    Each frame is read once, at construction: every box is cut out with ``CONTEXT`` margin plus
    room for jitter (``PAD``) and kept in memory as float16 [C, S·PAD, S·PAD], so an epoch costs
    no store reads. Training crops jitter the box (±10 % shift and scale) and flip half of the
    time, drawing from a generator seeded by (seed, epoch, i); evaluation crops are centred.
    """

    PAD = 1.25  # stored crop side / network crop side: the room the jitter moves in

    def __init__(self, frames: DetectionDataset, crop_size: int, *, train: bool, seed: int = 0) -> None:
        self.crop_size, self.train, self.seed = int(crop_size), train, int(seed)
        self.stored = round(self.crop_size * self.PAD)
        crops, labels = [], []
        for frame in range(len(frames)):
            boxes, box_labels, difficult = frames.samples.annotations(frame)
            sides = (boxes[:, 2:] - boxes[:, :2]).min(axis=1)  # [N] shorter side in pixels
            keep = [k for k in range(len(box_labels)) if not difficult[k] and sides[k] >= MIN_CROP_PIXELS]
            if not keep:
                continue
            sample = frames.load(frame)  # unnormalised groups [C, H, W]
            for k in keep:
                crops.append(self._cut(frames, sample, sample.boxes[k].tolist()))
                labels.append(int(box_labels[k]))
        channels = frames.in_channels
        self.crops = torch.stack(crops) if crops else torch.zeros(0, channels, self.stored, self.stored)
        self.labels = labels
        self.epoch = 0

    def _cut(self, frames: DetectionDataset, sample, box: list[float]) -> torch.Tensor:
        """The box with context and jitter room, resized to [C, stored, stored], normalised, float16."""
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1) * CONTEXT * self.PAD
        top, left = round((y1 + y2 - side) / 2), round((x1 + x2 - side) / 2)
        size = max(round(side), 1)
        parts = []
        for group in frames.groups:
            # RGB is interpolated; depth-like groups keep measured values (nearest), like the detector's
            # augmentation. Pixels outside the frame are 0 (invalid depth / black).
            mode = InterpolationMode.BILINEAR if group == "rgb" else InterpolationMode.NEAREST_EXACT
            image = sample.images[group].float()
            crop = TF.resized_crop(image, top, left, size, size, [self.stored] * 2, mode)
            mean, std = frames.mean[group][:, None, None], frames.std[group][:, None, None]
            parts.append((crop - mean) / std)
        return torch.cat(parts, dim=0).to(torch.float16)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        inner = self.stored / self.PAD  # side of the un-jittered crop inside the stored one
        offset, side, flip = (self.stored - inner) / 2, inner, False
        top = left = offset
        if self.train:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + i)
            jitter = torch.rand(4, generator=gen).tolist()
            side = inner * (0.9 + 0.2 * jitter[2])
            left = (self.stored - side) / 2 + (jitter[0] - 0.5) * 0.2 * inner
            top = (self.stored - side) / 2 + (jitter[1] - 0.5) * 0.2 * inner
            flip = jitter[3] < 0.5
        # Nearest for every group: the stored crop is already at about the network's resolution.
        crop = TF.resized_crop(
            self.crops[i].float(), round(top), round(left), round(side), round(side), [self.crop_size] * 2,
            InterpolationMode.NEAREST_EXACT,
        )  # fmt: skip
        return (crop.flip(-1) if flip else crop), self.labels[i]


class BackboneClassifier(nn.Module):
    """features(images) → list of maps → global average pool of each, concatenated → linear → logits."""

    def __init__(self, features: nn.Module, in_channels: int, num_classes: int, crop_size: int) -> None:
        super().__init__()
        self.features = features
        with torch.no_grad():
            was_training = features.training
            features.eval()
            maps = features(torch.zeros(1, in_channels, crop_size, crop_size))
            features.train(was_training)
        self.classifier = nn.Linear(sum(m.shape[1] for m in maps), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = [F.adaptive_avg_pool2d(m, 1).flatten(1) for m in self.features(images)]  # each [N, C_k]
        return self.classifier(torch.cat(pooled, dim=1))


@torch.no_grad()
def crop_accuracy(model: BackboneClassifier, crops: ObjectCrops, batch_size: int) -> float:
    model.eval()
    correct = 0
    for images, labels in DataLoader(crops, batch_size=batch_size):
        correct += int((model(images).argmax(1) == labels).sum())
    return correct / max(len(crops), 1)


def pretrain(config: ExperimentConfig, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Pretrain the features of ``config.model.name`` on object crops; returns a summary dict.

    Uses ``data`` (store, modality, ``input_size`` = crop side), ``optim`` and ``train`` (iters,
    batch_size, seed) of the config; the classifier head is dropped at the end.
    """
    from dsod_depth.engine.model_setup import build_model_for

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
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(
        params, lr=config.optim.lr, momentum=config.optim.momentum, weight_decay=config.optim.weight_decay
    )
    write_text_atomic(run.config, dump_config(config))
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
            lr = config.optim.lr * lr_factor(step, config.optim, config.train.iters)
            for group in optimiser.param_groups:
                group["lr"] = lr
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
