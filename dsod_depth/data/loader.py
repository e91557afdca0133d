"""Detection dataset over a prepared store: modality → normalised tensor, targets, collate, workers.

A modality names the channel groups fed to the network, joined by ``+`` or ``_``: ``rgb``,
``depth`` (the ``raw`` encoder: metric depth, 1 channel), ``hha``, ``rgb+hha``, ``rgb+depth``,
or any registered encoder name (``disparity``, ``jet``, ``normals``, ...). ``rgb`` and ``hha`` are
read from the store (HHA was computed at preparation); other encoders run on the fly on the
stored depth, before augmentation, so every group is augmented together. Each group is
normalised per channel with the store's training-split mean and std, then the groups are
concatenated in the order named.

Randomness: the augmentation of sample i in epoch e draws from a ``torch.Generator`` seeded by
(seed, e, i) alone, so a run is reproducible and identical with any number of workers.
Call :meth:`DetectionDataset.set_epoch` before each epoch (before creating the iterator).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dsod_depth.data.modality import MODALITY_ALIASES
from dsod_depth.data.store import load_prepared
from dsod_depth.data.transforms import Resize, SSDAugment, TensorSample
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = [
    "DetectionDataset",
    "parse_modality",
    "group_tensors",
    "network_input",
    "collate",
    "worker_init_fn",
    "make_loader",
    "STORED_GROUPS",
]

STORED_GROUPS = ("rgb", "hha")  # groups read from the store rather than encoded on the fly


def parse_modality(modality: str) -> list[str]:
    """``"rgb+hha"`` or ``"rgb_hha"`` → ``["rgb", "hha"]``; ``"depth"`` means the ``raw`` encoder.

    Raises KitError for an unknown group or a repeated one.
    """
    from dsod_depth.encoders import ENCODERS

    words = [w for w in re.split(r"[+_]", modality.strip().lower()) if w]
    groups = [MODALITY_ALIASES.get(w, w) for w in words]
    known = {"rgb", "hha", *ENCODERS.list()}
    for word, group in zip(words, groups):
        if group not in known:
            choices = ", ".join(sorted(known | set(MODALITY_ALIASES)))
            raise KitError(
                f"unknown modality part {word!r} in {modality!r}; choose from {choices} joined by '+'"
            )
    if not groups or len(set(groups)) != len(groups):
        raise KitError(f"modality {modality!r} must name each channel group once, e.g. 'rgb+hha'")
    return groups


def group_tensors(
    groups: Sequence[str], arrays: dict[str, np.ndarray], camera: Intrinsics
) -> dict[str, torch.Tensor]:
    """The channel groups of one frame as tensors [C, H, W], before any transform.

    ``arrays`` holds what the groups are made from: ``rgb`` uint8 [H, W, 3]; ``hha`` uint8 [H, W, 3]
    when computed beforehand (at preparation); for every other group ``depth`` and ``raw_depth``,
    float32 [H, W] metres as the store gives them back (whole millimetres), encoded here with
    ``camera``. RGB stays uint8 (bilinear resampling is fastest on bytes); depth-like groups are
    float32, the type the network gets (nearest resampling of float32 is also faster than of bytes).
    Training, evaluation and :class:`~dsod_depth.inference.Detector` all encode a frame through this
    function.
    """
    from dsod_depth.encoders import encode

    images: dict[str, torch.Tensor] = {}
    for g in groups:
        if g == "rgb":  # uint8 [H, W, 3] → [3, H, W]
            images[g] = torch.from_numpy(arrays[g]).permute(2, 0, 1)
        elif g in arrays:  # stored uint8 [H, W, 3] → float32 [3, H, W]
            images[g] = (
                torch.from_numpy(arrays[g])
                .permute(2, 0, 1)
                .to(torch.float32, memory_format=torch.contiguous_format)
            )  # one pass: converts and lays out channels first
        else:
            images[g] = torch.from_numpy(encode(g, arrays["depth"], arrays["raw_depth"], camera))
    return images


def network_input(
    images: dict[str, torch.Tensor], groups: Sequence[str], mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """The groups (each [C_g, H, W], already resized) concatenated in ``groups`` order and normalised
    per channel: float32 [C, H, W] = (x − mean) / std, with ``mean``/``std`` float32 [C, 1, 1]."""
    image = torch.cat([images[g].to(torch.float32) for g in groups])  # [C, H, W]
    return image.sub_(mean).div_(std)


class DetectionDataset(Dataset):
    """Samples of one split of a prepared store as network inputs and detection targets.

    Args:
        store: the store folder written by ``dsod-depth prepare`` (or a split's .h5 file).
        split: ``train`` / ``test`` / ``val``.
        modality: channel groups, see :func:`parse_modality`.
        input_size: network input side (square) or (height, width).
        train: True → SSD augmentation (:class:`SSDAugment`); False → resize only.
        seed: base seed of the per-sample augmentation generators.
        augment_options: keyword options of :class:`SSDAugment` (e.g. ``expand_prob``) for ``train``.

    ``dataset[i]`` → (image float32 [C, H, W] normalised, target dict):
        ``boxes`` float32 [N, 4] x1, y1, x2, y2 **normalised to [0, 1]** by the input width and
        height (the SSD convention of the default boxes; multiply by ``orig_size`` to get pixels
        of the stored frame); ``labels`` int64 [N] 0-based classes; ``difficult`` bool [N];
        ``image_id`` str; ``index`` int; ``orig_size`` int64 [2] = (height, width) of the stored
        frame; ``intrinsics`` float64 [4] = fx, fy, cx, cy of the network-input pixel grid.
    """

    def __init__(
        self,
        store: str | os.PathLike,
        split: str,
        modality: str = "rgb",
        input_size: int | Sequence[int] = 300,
        *,
        train: bool = False,
        seed: int = 0,
        augment_options: dict[str, Any] | None = None,
    ) -> None:
        self.samples, self.class_names = load_prepared(store, split)
        self.groups = parse_modality(modality)
        self.modality = "+".join(self.groups)
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.input_size = (int(size[0]), int(size[1]))
        if "rgb" in self.groups and "rgb" not in self.samples.fields:
            raise KitError(f"{self.samples.path} has no RGB images; choose a depth-only modality")
        if not self.samples.attrs.get("has_depth", True) and self.groups != ["rgb"]:
            raise KitError(f"{self.samples.path} holds a colour-only dataset; the only modality is 'rgb'")
        missing = [g for g in self.groups if g not in self.samples.stats]
        if missing:
            raise KitError(
                f"{self.samples.path} has no statistics for {', '.join(missing)} (encoder added after "
                "preparation?); prepare the store again"
            )
        self.mean = {g: torch.as_tensor(self.samples.stats[g][0], dtype=torch.float32) for g in self.groups}
        self.std = {g: torch.as_tensor(self.samples.stats[g][1], dtype=torch.float32) for g in self.groups}
        self._mean = torch.cat([self.mean[g] for g in self.groups])[:, None, None]  # [C, 1, 1]
        self._std = torch.cat([self.std[g] for g in self.groups])[:, None, None]  # [C, 1, 1]
        # Pixel fields to read: stored groups directly, depth and raw for on-the-fly encoders.
        fields = [g for g in self.groups if g in STORED_GROUPS and g in self.samples.fields]
        if any(g not in fields for g in self.groups if g != "rgb"):
            fields += ["depth", "raw_depth"]
        self.fields = tuple(fields)
        self.train, self.seed = train, int(seed)
        if train:
            rgb_mean = self.samples.stats["rgb"][0] if "rgb" in self.samples.stats else (0.0, 0.0, 0.0)
            self.transform: SSDAugment | Resize = SSDAugment(
                self.input_size, tuple(float(v) for v in rgb_mean), **(augment_options or {})
            )
        else:
            self.transform = Resize(self.input_size)
        # Shared memory, so set_epoch reaches persistent workers too.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def in_channels(self) -> int:
        return sum(int(self.mean[g].numel()) for g in self.groups)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating over it)."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.samples)

    def generator(self, index: int) -> torch.Generator:
        """The augmentation generator of sample ``index`` in the current epoch."""
        state = np.random.SeedSequence([self.seed, int(self._epoch), int(index)]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def load(self, index: int) -> TensorSample:
        """Frame ``index`` with the modality's groups as tensors [C, H, W], before any transform
        (:func:`group_tensors`)."""
        arrays = self.samples.read(index, self.fields)
        camera = self.samples.camera(index)
        boxes, labels, difficult = self.samples.annotations(index)
        return TensorSample(
            group_tensors(self.groups, arrays, camera),
            torch.from_numpy(boxes),
            torch.from_numpy(labels),
            torch.from_numpy(difficult),
            camera,
            self.samples.image_ids[index],
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        sample = self.load(index)
        orig_h, orig_w = sample.size
        sample = self.transform(sample, self.generator(index))
        h, w = sample.size
        image = network_input(sample.images, self.groups, self._mean, self._std)  # [C, H, W]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        target = {
            "boxes": sample.boxes / scale,
            "labels": sample.labels,
            "difficult": sample.difficult,
            "image_id": sample.image_id,
            "index": int(index),
            "orig_size": torch.tensor([orig_h, orig_w], dtype=torch.int64),
            "intrinsics": torch.tensor(sample.intrinsics.as_tuple(), dtype=torch.float64),
        }
        return image, target


def collate(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """List of (image [C, H, W], target) → (images [B, C, H, W], list of B targets).

    Targets stay a list: images have different numbers of boxes.
    """
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]


def worker_init_fn(worker_id: int) -> None:
    """Seed Python's and numpy's global generators in each worker from its torch seed.

    The augmentation itself uses explicit per-sample generators; this protects any other code
    that draws from the global generators from repeating the same numbers in every forked worker.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global generator is exactly what needs seeding)


def make_loader(
    dataset: DetectionDataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader with :func:`collate`, :func:`worker_init_fn` and a seeded shuffling order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(int(seed)),
        drop_last=drop_last,
        persistent_workers=persistent_workers and num_workers > 0,
    )
