"""Where a run computes: the torch device of ``train.device`` and the autocast dtype of ``train.amp``.

One home for both so that the trainer, the evaluator and any other runner read the same rule without
importing each other.
"""

from __future__ import annotations

import torch

from dsod_depth.config import ExperimentConfig
from dsod_depth.errors import KitError


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when a device is visible, else CPU; ``cpu`` / ``cuda`` as named (``cuda`` without a
    visible device is a :class:`KitError`)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise KitError("train.device is cuda but no CUDA device is visible; use train.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def amp_dtype_for(config: ExperimentConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, only on CUDA (CPU runs stay float32 so that they are exactly reproducible)."""
    if config.train.amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16 if config.train.amp == "bf16" else torch.float16
