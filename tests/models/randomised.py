"""Models with the BatchNorm state of a trained network, for tests that need more than the defaults."""

from __future__ import annotations

import torch
from torch import nn


def with_random_statistics(model: nn.Module, *, seed: int | None = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as after training; drawn from torch's global
    generator, seeded with ``seed`` first (None: continue its current stream)."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()
