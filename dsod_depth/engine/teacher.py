"""The teacher of a supervision-transfer run: a frozen network whose feature maps the student learns.

A teacher is named by one string (``dsod-depth transfer --teacher``):

* a kit run folder or checkpoint file: a detector run (``train``, ``sweep``) or a ``pretrain`` run.
  Its inference record says how to rebuild the architecture, which channel groups it reads and how it
  normalised them; its ``features.*`` tensors are loaded (detection heads are not needed);
* ``imagenet:ssd300_vgg16`` or ``imagenet:densenet121_dsod``: an ImageNet baseline's backbone with
  torchvision's ImageNet weights (the file must be present, see :mod:`dsod_depth.models.weights`).
  It reads RGB normalised as the kit's own ImageNet-initialised runs read it: with the statistics of
  the store being trained on.

The method transfers supervision *from* RGB, so a teacher must read ``rgb`` alone unless the caller
allows any teacher (a depth teacher for an RGB student, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsod_depth.errors import KitError

__all__ = ["IMAGENET_PREFIX", "IMAGENET_TEACHERS", "Teacher", "load_teacher"]

IMAGENET_PREFIX = "imagenet:"
IMAGENET_TEACHERS = ("ssd300_vgg16", "densenet121_dsod")


@dataclass
class Teacher:
    """A loaded teacher.

    features:   the network's ``features`` module, frozen and in eval mode.
    groups:     channel groups it reads, in input order (``["rgb"]``).
    mean, std:  per group the statistics its inputs were normalised with (tensors [C_g]); None for
                a group normalised with the store's own statistics.
    input_size: (height, width) it was trained at; None: any size (the student's is used).
    record:     plain description for the transfer run's record (source, kind, model, modality).
    """

    features: nn.Module
    groups: list[str]
    input_size: tuple[int, int] | None
    record: dict[str, Any]
    mean: dict[str, torch.Tensor | None] = field(default_factory=dict)
    std: dict[str, torch.Tensor | None] = field(default_factory=dict)


def _frozen(features: nn.Module) -> nn.Module:
    features.eval()
    for param in features.parameters():
        param.requires_grad_(False)
    return features


def _imagenet_teacher(name: str, input_size: tuple[int, int]) -> Teacher:
    from dsod_depth.models import build_detector

    if name not in IMAGENET_TEACHERS:
        raise KitError(
            f"teacher {IMAGENET_PREFIX}{name}: no ImageNet baseline of that name; choose "
            + " or ".join(IMAGENET_PREFIX + n for n in IMAGENET_TEACHERS)
        )
    model = build_detector(name, num_classes=1, in_channels=3, input_size=input_size, init="imagenet")
    record = {"source": IMAGENET_PREFIX + name, "kind": "imagenet", "model": name, "modality": "rgb"}
    return Teacher(_frozen(model.features), ["rgb"], None, record, {"rgb": None}, {"rgb": None})


def _checkpoint_teacher(source: str, *, allow_any: bool) -> Teacher:
    from dsod_depth.engine.checkpoint import read_inference_record
    from dsod_depth.engine.init import load_source
    from dsod_depth.models import rebuild_detector

    file, checkpoint = load_source(source)
    kind = checkpoint.get("kind", "detector")
    if kind not in ("detector", "backbone"):
        raise KitError(
            f"teacher {file} is a {kind} checkpoint; pass a detector run or a pretrain run (or "
            f"{IMAGENET_PREFIX}MODEL)"
        )
    record = read_inference_record(checkpoint, file)
    groups = [g["name"] for g in record["groups"]]
    if groups != ["rgb"] and not allow_any:
        raise KitError(
            f"teacher {file} reads {record['modality']}, not rgb: supervision transfer distils an RGB "
            "network; pass an RGB run, or --allow-any-teacher to use it anyway"
        )
    build = record["build"]
    try:
        model = rebuild_detector(build)
    except KitError as err:
        raise KitError(f"teacher {file}: cannot rebuild its architecture ({err})") from None
    state = {k[len("features.") :]: v for k, v in checkpoint["model"].items() if k.startswith("features.")}
    try:
        model.features.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise KitError(f"teacher {file}: its weights do not fit {build['name']!r} ({first})") from None
    mean = {g["name"]: torch.tensor(g["mean"], dtype=torch.float32) for g in record["groups"]}
    std = {g["name"]: torch.tensor(g["std"], dtype=torch.float32) for g in record["groups"]}
    described = {
        "source": str(file), "kind": kind, "model": build["name"], "modality": record["modality"],
        "step": checkpoint.get("step"),
    }  # fmt: skip
    size = tuple(int(s) for s in record["input_size"])
    return Teacher(_frozen(model.features), groups, size, described, mean, std)


def load_teacher(source: str, *, input_size: tuple[int, int], allow_any: bool = False) -> Teacher:
    """The teacher named by ``source`` (module docstring), frozen; ``input_size`` (H, W) is the student's,
    used by ImageNet teachers. Problems are one-line :class:`KitError`\\ s."""
    if source.startswith(IMAGENET_PREFIX):
        return _imagenet_teacher(source[len(IMAGENET_PREFIX) :], input_size)
    if not Path(source).exists():
        raise KitError(
            f"teacher {source} not found; pass an RGB run folder, a checkpoint file or "
            + " / ".join(IMAGENET_PREFIX + n for n in IMAGENET_TEACHERS)
        )
    return _checkpoint_teacher(source, allow_any=allow_any)
