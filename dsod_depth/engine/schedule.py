"""Learning-rate schedules as a function of the optimiser step: linear warm-up, then multistep or cosine."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dsod_depth.config import OptimConfig

if TYPE_CHECKING:
    import torch


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    Warm-up rises linearly from ``warmup_factor`` to 1 over ``warmup_iters`` steps. Multistep
    divides by ``1 / gamma`` at each milestone passed (REFERENCE §1: ÷10 every 20k iterations);
    cosine decays to 0 at ``total_steps``.
    """
    if optim.schedule == "multistep":
        factor = optim.gamma ** sum(step >= m for m in optim.milestones)
    else:
        progress = min(step / max(total_steps, 1), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    if step < optim.warmup_iters:
        alpha = step / optim.warmup_iters
        factor *= optim.warmup_factor * (1 - alpha) + alpha
    return factor


def set_learning_rate(
    optimiser: torch.optim.Optimizer, optim: OptimConfig, step: int, total_steps: int
) -> float:
    """Give every parameter group of ``optimiser`` the rate of step ``step`` (``optim.lr`` ×
    :func:`lr_factor`); returns it. The trainer, pretraining and supervision transfer all call this."""
    lr = optim.lr * lr_factor(step, optim, total_steps)
    for group in optimiser.param_groups:
        group["lr"] = lr
    return lr
