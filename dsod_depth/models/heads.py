"""Multibox heads: box regression and classification on every prediction map (the detector that ties
features, heads and default boxes together is :mod:`dsod_depth.models.detector`).

DSOD head (official ``CreateMultiBoxHead`` with ``use_batchnorm=True``, REFERENCE §1): on every scale
an L2 normalisation over channels with a learnable per-channel scale initialised to 20 (Caffe
``Normalize``, ParseNet), then two 3×3 convolutions without bias, each followed by BatchNorm and no
ReLU, initialised N(0, 0.01). SSD head (``norm=None``): 3×3 convolutions with bias, Caffe xavier
initialisation, L2 normalisation on the first scale only (conv4_3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dsod_depth.errors import KitError
from dsod_depth.models.layers import DEFAULT_BN_MOMENTUM, HEAD_NORM_EPS, make_norm


class L2Norm(nn.Module):
    """x / ‖x‖₂ over channels, times a learnable per-channel scale (init ``scale``, 20 in SSD/DSOD).

    [N, C, H, W] → [N, C, H, W]. ``eps`` guards all-zero pixels (e.g. after ReLU).
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.init_scale = scale
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps) * self.weight.view(1, -1, 1, 1)

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.init_scale)


def _predictor(in_channels: int, out_channels: int, norm: str | None, bn_momentum: float) -> nn.Module:
    if norm is None:
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)
        nn.init.kaiming_uniform_(conv.weight, nonlinearity="linear")  # Caffe xavier (fan-in)
        nn.init.zeros_(conv.bias)
        return conv
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return nn.Sequential(conv, make_norm(norm, out_channels, momentum=bn_momentum, eps=HEAD_NORM_EPS))


class MultiBoxHead(nn.Module):
    """Box regression and classification on every prediction map.

    in_channels:        channels of each map, finest first.
    boxes_per_location: default boxes per cell of each map (4 or 6 for DSOD300).
    num_classes:        object classes; conf gets ``num_classes + 1`` columns, column 0 = background.
    l2norm:             per map (or one bool for all): L2-normalise the map before the predictors.
    norm:               ``"bn"``/``"gn"``: conv (no bias) → norm, N(0, 0.01) (DSOD); ``None``: conv with
                        bias, Caffe xavier (SSD).

    forward(maps) with maps[k] [N, in_channels[k], H_k, W_k] → (loc [N, P, 4], conf [N, P, num_classes + 1]),
    P = Σ H_k·W_k·boxes_per_location[k], ordered map by map, cell row-major, box within cell — the
    order of :func:`dsod_depth.detection.priors.default_boxes`.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        boxes_per_location: Sequence[int],
        num_classes: int,
        *,
        l2norm: bool | Sequence[bool] = True,
        norm: str | None = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(boxes_per_location):
            raise ValueError(f"{len(in_channels)} maps but {len(boxes_per_location)} box counts")
        if num_classes < 1:
            raise KitError(f"num_classes counts object classes and must be ≥ 1, got {num_classes}")
        flags = [l2norm] * len(in_channels) if isinstance(l2norm, bool) else list(l2norm)
        self.num_classes = num_classes
        self.l2norm = nn.ModuleList(L2Norm(c) if f else nn.Identity() for c, f in zip(in_channels, flags))
        self.loc = nn.ModuleList(
            _predictor(c, k * 4, norm, bn_momentum) for c, k in zip(in_channels, boxes_per_location)
        )
        self.conf = nn.ModuleList(
            _predictor(c, k * (num_classes + 1), norm, bn_momentum)
            for c, k in zip(in_channels, boxes_per_location)
        )

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        locs, confs = [], []
        for x, l2, loc, conf in zip(maps, self.l2norm, self.loc, self.conf):
            x = l2(x)
            n = x.shape[0]
            # [N, K·4, H, W] → [N, H, W, K·4] → [N, H·W·K, 4] (NHWC flatten, as Caffe's Permute + Flatten)
            locs.append(loc(x).permute(0, 2, 3, 1).reshape(n, -1, 4))
            # [N, K·(C+1), H, W] → [N, H, W, K·(C+1)] → [N, H·W·K, C+1]
            confs.append(conf(x).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes + 1))
        return torch.cat(locs, dim=1), torch.cat(confs, dim=1)
