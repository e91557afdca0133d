"""Names shared by sweeps and comparisons: modality and initialisation labels and their order.

A sweep names its run folders with these labels and ``compare`` groups runs by them, so both read
them from here. Nothing in this module touches the file system.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from dsod_depth.engine.run_dir import checkpoint_folder
from dsod_depth.errors import KitError

__all__ = [
    "PRETRAINED_PREFIX",
    "canonical_modality",
    "modality_token",
    "init_label",
    "init_token",
    "is_rgb",
    "modality_sort_key",
    "init_sort_key",
    "check_name",
]

PRETRAINED_PREFIX = "pretrained:"

# The loader reads "depth" as the "raw" encoder (dsod_depth.data.loader); tables say "depth".
_DISPLAY = {"raw": "depth"}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def canonical_modality(modality: str) -> str:
    """``"RGB_HHA"``, ``"rgb+hha"`` → ``"rgb+hha"``; ``"raw"`` → ``"depth"`` (groups joined by '+')."""
    words = [_DISPLAY.get(w, w) for w in re.split(r"[+_]", modality.strip().lower()) if w]
    return "+".join(words)


def modality_token(modality: str) -> str:
    """File-name form of a modality: groups joined by '_' (``rgb+hha`` → ``rgb_hha``), as in the
    shipped config names ``experiments/configs/<dataset>/<modality>_<init>.yaml``."""
    return canonical_modality(modality).replace("+", "_")


def is_rgb(modality: str) -> bool:
    """True for the colour-only modality, the reference of the domain-mismatch figure."""
    return canonical_modality(modality) == "rgb"


def init_label(init: str) -> str:
    """Table label of a ``model.init`` value: ``scratch``, ``imagenet`` or ``pretrained:NAME``.

    NAME is the run folder of a kit checkpoint (``.../NAME/checkpoints/last.pt`` → ``NAME``), or the
    file's stem for any other file (``weights/rgb_backbone.pt`` → ``rgb_backbone``), or the folder
    name when PATH is a folder.
    """
    if not init.startswith(PRETRAINED_PREFIX):
        return init
    path = PurePath(init[len(PRETRAINED_PREFIX) :])
    if path.suffix and path.parent.name == "checkpoints" and checkpoint_folder(path).name:
        name = checkpoint_folder(path).name
    elif path.suffix:
        name = path.stem
    else:
        name = path.name
    return PRETRAINED_PREFIX + (name or "checkpoint")


def init_token(label: str) -> str:
    """File-name form of an init label (``pretrained:rgb`` → ``pretrained-rgb``)."""
    return label.replace(":", "-")


def modality_sort_key(modality: str) -> tuple[int, int, str]:
    """RGB first (the mismatch reference), then single channel groups, then fusions; by name within."""
    canonical = canonical_modality(modality)
    return (0 if canonical == "rgb" else 1, canonical.count("+"), canonical)


def init_sort_key(label: str) -> tuple[int, str]:
    """scratch, imagenet, then every ``pretrained:NAME`` by name."""
    order = {"scratch": 0, "imagenet": 1}
    return (order.get(label, 2), label)


def check_name(name: str, what: str, source: str) -> str:
    """A name that becomes a folder: letters, digits, '_', '.', '-' (not starting with '.' or '-')."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KitError(
            f"{source}: {what} {name!r} cannot name a folder; use letters, digits, '_', '.' and '-'"
        )
    return name

