"""Object crops: every ground-truth box of a split as a square, normalised image of the modality's channels.

The data of classification pretraining (:mod:`dsod_depth.engine.pretrain`): a detector's backbone learns
to name the object in a crop, the offline stand-in for ImageNet and the way to pretrain on depth.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from dsod_depth.data.loader import DetectionDataset
from dsod_depth.data.transforms import TensorSample

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

    def _cut(self, frames: DetectionDataset, sample: TensorSample, box: list[float]) -> torch.Tensor:
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
