"""Early and late fusion of channel groups (e.g. RGB + HHA).

* Early fusion: the channel groups are concatenated at the input and one feature extractor reads all
  of them (any ``in_channels``; the first convolution simply has that many input channels).
* Late fusion: the input channels are split into groups (``late_split``, e.g. (3, 3) for RGB + HHA),
  each group has its own feature extractor (backbone + prediction structure), and their maps are
  concatenated scale by scale before the shared multibox head (as in Gupta et al.'s two-stream RGB-D
  detectors, applied at every prediction scale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dsod_depth.errors import KitError

FUSION_KINDS = ("early", "late")


class LateFusionFeatures(nn.Module):
    """One feature extractor per channel group; maps concatenated per scale.

    branches: modules mapping [N, splits[i], H, W] to lists of maps with identical spatial sizes.
    forward: images [N, Σ splits, H, W] → list of maps [N, Σ_i out_channels_i[k], H_k, W_k], with the
    channels of branch 0 first.
    """

    def __init__(self, branches: Sequence[nn.Module], splits: Sequence[int]) -> None:
        super().__init__()
        if len(branches) != len(splits):
            raise ValueError(f"{len(branches)} branches for {len(splits)} channel groups")
        self.splits = [int(s) for s in splits]
        self.branches = nn.ModuleList(branches)
        per_branch = [list(b.out_channels) for b in branches]
        if len({len(c) for c in per_branch}) != 1:
            raise ValueError("late-fusion branches produce different numbers of maps")
        self.out_channels = [sum(cs) for cs in zip(*per_branch)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        groups = torch.split(x, self.splits, dim=1)  # [N, splits[i], H, W] each
        outputs = [branch(g) for branch, g in zip(self.branches, groups)]
        return [torch.cat(maps, dim=1) for maps in zip(*outputs)]


def check_fusion(fusion: str, in_channels: int, late_split: Sequence[int]) -> list[int]:
    """Validate the fusion options; returns the channel count of each feature extractor."""
    if fusion not in FUSION_KINDS:
        raise KitError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSION_KINDS)}")
    if in_channels < 1:
        raise KitError(f"in_channels must be ≥ 1, got {in_channels}")
    if fusion == "early":
        return [in_channels]
    split = [int(s) for s in late_split]
    if len(split) < 2 or min(split) < 1 or sum(split) != in_channels:
        given = f"in_channels={in_channels} but late_split={tuple(late_split)}"
        if in_channels < 2:
            raise KitError(f"late fusion needs at least two channel groups; {given}")
        example = f"late_split=({min(3, in_channels - 1)}, {in_channels - min(3, in_channels - 1)})"
        raise KitError(
            f"late fusion splits the input channels into groups: {given}; pass positive group sizes "
            f"that add up to {in_channels}, e.g. {example}"
        )
    return split


def build_fused_features(
    make_features: Callable[[int], nn.Module],
    in_channels: int,
    *,
    fusion: str = "early",
    late_split: Sequence[int] = (3, 3),
) -> nn.Module:
    """The feature extractor for ``in_channels`` inputs: ``make_features(in_channels)`` (early fusion) or
    a :class:`LateFusionFeatures` over ``make_features(c)`` for each group size c in ``late_split``."""
    groups = check_fusion(fusion, in_channels, late_split)
    if fusion == "early":
        return make_features(in_channels)
    return LateFusionFeatures([make_features(c) for c in groups], groups)
