"""Building the detector and optimiser of a run from its config (the only place that reads ``model.*``)."""

from __future__ import annotations

from pathlib import Path

import torch

from dsod_depth.config import ExperimentConfig, OptimConfig
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.errors import KitError
from dsod_depth.models import build_detector, detector_options

PRETRAINED_PREFIX = "pretrained:"


def transfer_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model``; returns the copied names.

    Used for ``init: pretrained:PATH``: a detector trained on another modality or dataset keeps its
    backbone and prediction layers where the shapes agree (a different class count leaves the
    classifier heads, a different channel count the first convolution, at their initial values).
    """
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    model.load_state_dict({**own, **{k: state[k] for k in copied}})
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
        state = load_checkpoint(pretrained)["model"]
        copied = transfer_weights(model, state)
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
