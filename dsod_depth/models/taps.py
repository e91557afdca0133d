"""Named intermediate maps of a detector's ``features`` module, for supervision transfer.

Every feature extractor of the kit is a backbone returning ``(first, second)`` followed by a
prediction structure (DSOD, DenseNet-121 + DSOD head, VGG-16 + SSD extras), or one such extractor per
channel group under late fusion. The maps a transfer can match are named:

* ``backbone.first``, ``backbone.second``: the backbone's two outputs (DSOD300: 38×38 and 19×19 at
  300×300; ``second`` is the deepest backbone map);
* ``scale.0`` … ``scale.K-1``: the K maps the detection heads read, finest first.

Under late fusion a ``backbone.*`` map is the branches' maps concatenated along channels, as the
``scale.*`` maps already are. The backbone maps are read with forward hooks (the extractors keep no
reference to them), so any extractor with a ``backbone`` submodule returning two maps has these names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dsod_depth.errors import KitError

__all__ = ["BACKBONE_MAPS", "DEFAULT_LAYERS", "feature_layers", "check_layers", "tap_features"]

BACKBONE_MAPS = ("first", "second")
DEFAULT_LAYERS = ("backbone.second",)


def _backbones(features: nn.Module) -> list[nn.Module]:
    """The backbone module(s) of ``features``, in branch order (one unless late fusion)."""
    return [m for name, m in features.named_modules() if name.split(".")[-1] == "backbone"]


def feature_layers(features: nn.Module) -> list[str]:
    """Names of every map of ``features`` (module docstring), backbone first."""
    names = [f"backbone.{m}" for m in BACKBONE_MAPS] if _backbones(features) else []
    return names + [f"scale.{k}" for k in range(len(features.out_channels))]


def check_layers(features: nn.Module, layers: Sequence[str], *, who: str) -> list[str]:
    """``layers`` as a list, each a name of :func:`feature_layers`; a one-line :class:`KitError` names
    ``who`` (e.g. "the student dsod_tiny") and lists the valid names otherwise."""
    valid = feature_layers(features)
    if not layers:
        raise KitError(f"no layer given; choose from {', '.join(valid)}")
    for layer in layers:
        if layer not in valid:
            raise KitError(f"layer {layer!r} does not exist in {who}; valid layers: {', '.join(valid)}")
    if len(set(layers)) != len(layers):
        raise KitError(f"layers {', '.join(layers)} name a map twice")
    return list(layers)


def tap_features(features: nn.Module, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run ``features`` on ``images`` [N, C, H, W] and return layer name → map [N, C_l, H_l, W_l]."""
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    wanted_backbone = any(layer.startswith("backbone.") for layer in layers)
    handles = (
        [b.register_forward_hook(lambda _m, _i, out: captured.append(out)) for b in _backbones(features)]
        if wanted_backbone
        else []
    )
    try:
        maps = features(images)
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for layer in layers:
        kind, which = layer.split(".", 1)
        if kind == "backbone":
            index = BACKBONE_MAPS.index(which)
            parts = [c[index] for c in captured]
            out[layer] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        else:
            out[layer] = maps[int(which)]
    return out
