"""Building the detector and optimiser of a run from its config (the only place that reads ``model.*``)."""

from __future__ import annotations

from pathlib import Path

import torch

from dsod_depth.config import ExperimentConfig, OptimConfig
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.errors import KitError
from dsod_depth.models import adapt_first_conv, build_detector, detector_options

PRETRAINED_PREFIX = "pretrained:"


def transfer_weights(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source_in_channels: int | None = None,
    first_conv: str = "mean",
) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model``; returns the copied names.

    Used for ``init: pretrained:PATH``: a detector or backbone trained on another modality or dataset
    gives its weights wherever the shapes agree (a different class count leaves the classifier heads
    at their initial values). When the source read 3 channels (RGB, HHA) and the model reads another
    number, input filters [out, 3, k, k] are adapted with :func:`~dsod_depth.models.adapt_first_conv`
    (strategy ``first_conv``), as for ImageNet weights.
    """
    own = model.state_dict()
    target_in = getattr(model, "in_channels", None)
    copied, update = [], {}
    for key, value in state.items():
        if key not in own:
            continue
        mine = own[key]
        if mine.shape == value.shape:
            update[key] = value
        elif (
            value.dim() == 4 and source_in_channels == 3 and value.shape[1] == 3 and target_in is not None
            and mine.shape[1] == target_in and mine.shape[0] == value.shape[0]
            and mine.shape[2:] == value.shape[2:]
        ):  # fmt: skip
            update[key] = adapt_first_conv(value, target_in, first_conv)
        else:
            continue
        copied.append(key)
    model.load_state_dict({**own, **update})
    return copied


def build_model_for(config: ExperimentConfig, dataset: DetectionDataset) -> torch.nn.Module:
    """The detector of ``config.model`` for the dataset's classes and channel count."""
    from dsod_depth.engine.checkpoint import load_checkpoint

    mcfg = config.model
    options = dict(mcfg.options)
    accepted = detector_options(mcfg.name)
    if "input_size" in accepted:
        options.setdefault("input_size", config.data.input_size)
    pretrained = None
    if mcfg.init.startswith(PRETRAINED_PREFIX):
        pretrained = Path(mcfg.init[len(PRETRAINED_PREFIX) :])
    elif mcfg.init == "imagenet":
        if "weights_path" not in accepted:
            raise KitError(
                f"model {mcfg.name!r} has no ImageNet initialisation; use init: scratch, or an ImageNet "
                "baseline (ssd300_vgg16, densenet121_dsod)"
            )
        options.update(init="imagenet", first_conv=mcfg.first_conv)
    elif mcfg.init != "scratch":
        raise KitError(f"model.init must be scratch, imagenet or pretrained:PATH, got {mcfg.init!r}")
    model = build_detector(
        mcfg.name, num_classes=dataset.num_classes, in_channels=dataset.in_channels, **options
    )
    if pretrained is not None:
        checkpoint = load_checkpoint(pretrained)
        copied = transfer_weights(
            model, checkpoint["model"], source_in_channels=checkpoint.get("in_channels"),
            first_conv=mcfg.first_conv,
        )  # fmt: skip
        if not copied:
            raise KitError(f"{pretrained}: no tensor matches model {mcfg.name!r} by name and shape")
    return model


def optimiser_for(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on convolution/linear weights only (not on norm scales or biases)."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim > 1 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
