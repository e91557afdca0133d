"""A classifier on a detector's features, for classification pretraining of the backbone.

``dsod-depth pretrain`` (:mod:`dsod_depth.engine.pretrain`) trains a detector's ``features`` module
(backbone + prediction structure, every scale) to name the object in a crop; the linear layer is
dropped afterwards and the features load into a detector through ``init: pretrained:PATH``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BackboneClassifier(nn.Module):
    """features(images) → list of maps → global average pool of each, concatenated → linear → logits.

    Args:
        features: a detector's ``features`` module: images [N, C, S, S] → list of maps [N, C_k, H_k, W_k].
        in_channels: C, the channel count of the images.
        num_classes: object classes (no background: every crop shows an object).
        crop_size: S, the side of the square crops; used once, to count the pooled channels Σ C_k.

    ``forward(images float32 [N, C, S, S])`` → logits float32 [N, num_classes].
    """

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
        return self.classifier(torch.cat(pooled, dim=1))  # [N, Σ C_k] → [N, num_classes]
