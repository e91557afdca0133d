"""Names shared by sweeps and comparisons: modality and initialisation labels, their order, and the
phrase naming a metric.

A sweep names its run folders with these labels and ``compare`` groups runs by them, so both read
them from here. The initialisation label is the rule figures use too
(:func:`dsod_depth.engine.init.init_label`, re-exported here); modality aliases come from
:mod:`dsod_depth.data.modality`. Nothing in this module touches the file system.
"""

from __future__ import annotations

import re
from typing import Any

from dsod_depth.data.modality import MODALITY_ALIASES
from dsod_depth.engine.init import init_label
from dsod_depth.errors import KitError

__all__ = [
    "canonical_modality",
    "modality_token",
    "init_label",
    "init_token",
    "is_rgb",
    "modality_sort_key",
    "init_sort_key",
    "is_transfer",
    "check_name",
    "metric_phrase",
]

# The loader reads "depth" as the "raw" encoder; tables say "depth": the alias table read backwards.
_DISPLAY = {encoder: word for word, encoder in MODALITY_ALIASES.items()}

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


def init_token(label: str) -> str:
    """File-name form of an init label (``pretrained:rgb`` → ``pretrained-rgb``)."""
    return label.replace(":", "-")


def modality_sort_key(modality: str) -> tuple[int, int, str]:
    """RGB first (the mismatch reference), then single channel groups, then fusions; by name within."""
    canonical = canonical_modality(modality)
    return (0 if canonical == "rgb" else 1, canonical.count("+"), canonical)


def init_sort_key(label: str) -> tuple[int, str]:
    """Table order of init labels: scratch (the reference of every Δ), imagenet, every
    ``pretrained:NAME`` by name, then ``transfer`` (supervision-transfer students; a label
    ``transfer:...`` sorts there too). Any other label sorts by name among the ``pretrained:`` ones."""
    if is_transfer(label):
        return (3, label)
    order = {"scratch": 0, "imagenet": 1}
    return (order.get(label, 2), label)


def is_transfer(label: str) -> bool:
    """True for the init label of supervision-transfer students: ``transfer`` (or ``transfer:...``)."""
    return label.split(":", 1)[0] == "transfer"


def check_name(name: str, what: str, source: str) -> str:
    """A name that becomes a folder: letters, digits, '_', '.', '-' (not starting with '.' or '-')."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KitError(
            f"{source}: {what} {name!r} cannot name a folder; use letters, digits, '_', '.' and '-'"
        )
    return name


def metric_phrase(dataset: dict[str, Any]) -> str:
    """How tables and the chart name a dataset's metric (an entry of ``compare_runs(...)["datasets"]``):
    ``VOC07 11-point AP at IoU 0.5``, ``VOC area AP at IoU 0.5``, ``COCO AP@[.50:.95]``."""
    iou = dataset.get("iou_threshold")
    at = f" at IoU {iou:g}" if isinstance(iou, (int, float)) else ""
    return {
        "voc07": f"VOC07 11-point AP{at}",
        "voc12": f"VOC area AP{at}",
        "coco": "COCO AP@[.50:.95]",
    }.get(dataset["metric"], dataset["metric"])
