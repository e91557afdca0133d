"""Where a run computes: the torch device of ``train.device`` and the autocast dtype of ``train.amp``.

One home for both so that the trainer, the evaluator and any other runner read the same rule without
importing each other.
"""

from __future__ import annotations

import torch

from dsod_depth.config import ExperimentConfig
from dsod_depth.errors import KitError


def select_device(name: str, *, option: str = "train.device") -> torch.device:
    """``auto`` → CUDA when a device is visible, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as named.

    ``option`` names where the value came from (``train.device``, ``--device``) in the one-line
    :class:`KitError` for an unknown name or for CUDA without a visible device.
    """
    index = name[5:] if name.startswith("cuda:") else ""
    if name not in ("auto", "cpu", "cuda") and not index.isdigit():
        raise KitError(f"{option} must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        fix = f"{option}=cpu or auto" if "." in option else f"{option} cpu or auto"
        raise KitError(f"{option} is {name} but no CUDA device is visible; use {fix}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def amp_dtype_for(config: ExperimentConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, only on CUDA (CPU runs stay float32 so that they are exactly reproducible)."""
    if config.train.amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16 if config.train.amp == "bf16" else torch.float16
