"""Building the detector and optimiser of a run from its config (the only place that reads ``model.*``).

How ``model.init`` is parsed, loaded and applied lives in :mod:`dsod_depth.engine.init`.
"""

from __future__ import annotations

import torch

from dsod_depth.config import ExperimentConfig, OptimConfig
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.init import apply_init, factory_options, parse_init
from dsod_depth.models import build_detector, detector_options


def build_model_for(config: ExperimentConfig, dataset: DetectionDataset) -> torch.nn.Module:
    """The detector of ``config.model`` for the dataset's classes, channel count and modality, initialised as
    ``model.init`` says (:mod:`dsod_depth.engine.init`)."""
    mcfg = config.model
    init = parse_init(mcfg.init)
    options = dict(mcfg.options)
    accepted = detector_options(mcfg.name)
    if "input_size" in accepted:
        options.setdefault("input_size", config.data.input_size)
    options.update(factory_options(init, model_name=mcfg.name, accepted=accepted, first_conv=mcfg.first_conv))
    model = build_detector(
        mcfg.name, num_classes=dataset.num_classes, in_channels=dataset.in_channels, **options
    )
    apply_init(model, init, model_name=mcfg.name, first_conv=mcfg.first_conv, modality=dataset.modality)
    return model


def optimiser_for(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on convolution/linear weights only (not on norm scales or biases).

    The one optimiser rule of the kit: detector training and backbone pretraining both build theirs here.
    """
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
