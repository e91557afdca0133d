"""Prediction structures: from a backbone's two outputs to the multi-scale maps the heads read.

Dense structure (DSOD, "learning half, reusing half"; official ``add_bl_layer2``, REFERENCE §1):

* scale 1 = First (the backbone's stride-8 map);
* scale 2 = concat(transition 4 [learned], BN-ReLU-conv1×1(maxpool(First)) [reused]);
* scale k ≥ 3 = concat(reused, learned) of scale k−1 with
  learned = BN-ReLU-conv1×1(n) → BN-ReLU-conv3×3(n, stride 2, pad 1),
  reused = maxpool 2×2 ceil → BN-ReLU-conv1×1(n).

At 300×300 the official code's last map is 2×2 (5 → 3 → 2 with ceil pooling and a padded stride-2
conv; the author confirmed this in the repository's issue #23), giving 8,744 default boxes. The
paper's figure shows 1×1: ``last_scale="1x1"`` makes the last scale a valid 3×3 convolution
(learned) and a 3×3 max pool (reused), 3 → 1, giving 8,732 boxes as in SSD300.

Plain structure (the paper's ablation, Table 3, SSD-style): scale 2 is transition 4 alone and each
further scale is transited from the previous one only: BN-ReLU-conv1×1(n) → BN-ReLU-conv3×3(2n, s2).
The official code does not publish the ablation's widths; here every scale has the same width as in
the dense structure, so the two structures differ only in how the maps are formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dsod_depth.errors import KitError
from dsod_depth.models.layers import DEFAULT_BN_MOMENTUM, NormReLUConv, caffe_xavier_, max_pool_ceil

PREDICTION_KINDS = ("dense", "plain")
LAST_SCALES = ("2x2", "1x1")


def _check(prediction: str, last_scale: str) -> None:
    if prediction not in PREDICTION_KINDS:
        raise KitError(
            f"unknown prediction structure {prediction!r}; choose one of: {', '.join(PREDICTION_KINDS)}"
        )
    if last_scale not in LAST_SCALES:
        raise KitError(f"unknown last_scale {last_scale!r}; choose one of: {', '.join(LAST_SCALES)}")


class LearnReuseBlock(nn.Module):
    """One dense-structure scale: [N, C, H, W] → [N, 2n, H', W'], channels (reused, learned).

    ``valid=False``: stride-2 padded conv and 2×2 ceil pool (H' = ceil(H / 2)).
    ``valid=True``: unpadded 3×3 conv and 3×3 pool with stride 1 (H' = H − 2; the paper's 1×1 scale).
    """

    def __init__(
        self,
        in_channels: int,
        n: int,
        *,
        valid: bool = False,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        unit = {"norm": norm, "bn_momentum": bn_momentum}
        stride, pad = (1, 0) if valid else (2, 1)
        self.learned = nn.Sequential(
            NormReLUConv(in_channels, n, 1, **unit),
            NormReLUConv(n, n, 3, stride=stride, padding=pad, **unit),
        )
        self.pool = max_pool_ceil(3, 1) if valid else max_pool_ceil()
        self.reused = NormReLUConv(in_channels, n, 1, **unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Official order: Concat(reused, learned).
        return torch.cat((self.reused(self.pool(x)), self.learned(x)), dim=1)


class DensePrediction(nn.Module):
    """DSOD's dense prediction structure. forward(first, second) → list of maps, finest first.

    first: [N, first_channels, H1, W1]; second: [N, second_channels, ceil(H1/2), ceil(W1/2)].
    Output channels: ``out_channels`` = [first_channels, second_channels + half[0], 2·half[1], …].
    """

    def __init__(
        self,
        first_channels: int,
        second_channels: int,
        half_channels: Sequence[int],
        *,
        last_scale: str = "2x2",
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _check("dense", last_scale)
        unit = {"norm": norm, "bn_momentum": bn_momentum}
        self.first_pool = max_pool_ceil()
        self.first_reuse = NormReLUConv(first_channels, half_channels[0], 1, **unit)
        c = second_channels + half_channels[0]
        self.out_channels = [first_channels, c]
        self.extras = nn.ModuleList()
        for i, n in enumerate(half_channels[1:]):
            valid = last_scale == "1x1" and i == len(half_channels) - 2
            self.extras.append(LearnReuseBlock(c, n, valid=valid, **unit))
            c = 2 * n
            self.out_channels.append(c)
        caffe_xavier_(self)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat((second, self.first_reuse(self.first_pool(first))), dim=1)  # [N, C2, H2, W2]
        maps = [first, x]
        for block in self.extras:
            x = block(x)
            maps.append(x)
        return maps


class PlainPrediction(nn.Module):
    """SSD-style plain structure. forward(first, second) → list of maps, finest first.

    ``second`` is used as scale 2 directly (the backbone's transition 4 is 2·half[0] wide); scales 3+
    are BN-ReLU-conv1×1(half) → BN-ReLU-conv3×3(2·half, stride 2) of the previous scale.
    """

    def __init__(
        self,
        first_channels: int,
        second_channels: int,
        half_channels: Sequence[int],
        *,
        last_scale: str = "2x2",
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        _check("plain", last_scale)
        unit = {"norm": norm, "bn_momentum": bn_momentum}
        c = second_channels
        self.out_channels = [first_channels, c]
        self.extras = nn.ModuleList()
        for i, n in enumerate(half_channels[1:]):
            stride, pad = (1, 0) if last_scale == "1x1" and i == len(half_channels) - 2 else (2, 1)
            self.extras.append(
                nn.Sequential(
                    NormReLUConv(c, n, 1, **unit),
                    NormReLUConv(n, 2 * n, 3, stride=stride, padding=pad, **unit),
                )
            )
            c = 2 * n
            self.out_channels.append(c)
        caffe_xavier_(self)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> list[torch.Tensor]:
        maps = [first, second]
        x = second
        for block in self.extras:
            x = block(x)
            maps.append(x)
        return maps


def second_channels_for(prediction: str, half_channels: Sequence[int]) -> int:
    """Width of the backbone's scale-2 output: one half (dense) or the whole scale (plain)."""
    _check(prediction, "2x2")
    return half_channels[0] if prediction == "dense" else 2 * half_channels[0]


def build_prediction(
    prediction: str, first_channels: int, second_channels: int, half_channels: Sequence[int], **options
) -> DensePrediction | PlainPrediction:
    """The prediction structure named ``prediction`` ("dense" or "plain")."""
    _check(prediction, options.get("last_scale", "2x2"))
    cls = DensePrediction if prediction == "dense" else PlainPrediction
    return cls(first_channels, second_channels, half_channels, **options)


class MultiScaleFeatures(nn.Module):
    """A backbone returning (first, second) followed by a prediction structure.

    forward: images [N, C, H, W] → list of maps [N, out_channels[k], H_k, W_k], finest first.
    """

    def __init__(self, backbone: nn.Module, prediction: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.prediction = prediction
        self.out_channels: list[int] = list(prediction.out_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        first, second = self.backbone(x)
        return self.prediction(first, second)
