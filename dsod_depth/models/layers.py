"""Small building blocks shared by every detector: normalisation, pre-activation conv units, initialisation.

DSOD is written in the pre-activation style of DenseNet: every convolution is preceded by
normalisation and ReLU ("BN-ReLU-Conv", the official code's ``bn_relu_conv``) and has no bias.
"""

from __future__ import annotations

import math

from torch import nn

from dsod_depth.errors import KitError

#: PyTorch momentum equivalent to Caffe's ``moving_average_fraction`` 0.999 (REFERENCE §1):
#: running = (1 - m) * running + m * batch_stat with m = 1 - 0.999.
CAFFE_BN_MOMENTUM = 0.001

#: Default momentum of every BatchNorm built by this package. PyTorch's 0.1 lets the running
#: statistics settle within a few hundred iterations, which short runs need; pass
#: ``bn_momentum=CAFFE_BN_MOMENTUM`` to reproduce the official Caffe schedule.
DEFAULT_BN_MOMENTUM = 0.1

#: Epsilon of the backbone's BatchNorm (Caffe's BatchNorm default) and of the heads' BatchNorm
#: (SSD's ``ConvBNLayer`` default, which the official DSOD head uses).
BACKBONE_NORM_EPS = 1e-5
HEAD_NORM_EPS = 1e-3

#: Upper bound of GroupNorm groups; the actual count is the largest divisor of the channel count
#: not above it (e.g. 48 channels → 16 groups), so odd widths such as growth 48 still work.
MAX_GROUPS = 32

NORM_KINDS = ("bn", "gn")


def make_norm(
    kind: str, channels: int, *, momentum: float = DEFAULT_BN_MOMENTUM, eps: float = BACKBONE_NORM_EPS
) -> nn.Module:
    """A normalisation layer over ``channels`` feature maps ([N, C, H, W] → same shape).

    kind: ``"bn"`` (BatchNorm2d with ``momentum``) or ``"gn"`` (GroupNorm, independent of the
    batch size, for the small per-device batches DSOD's authors warn about, REFERENCE §1).
    """
    if kind == "bn":
        check_bn_momentum(momentum)
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(channels, MAX_GROUPS), channels, eps=eps)
    raise KitError(f"unknown norm {kind!r}; choose one of: {', '.join(NORM_KINDS)}")


class NormReLUConv(nn.Sequential):
    """Pre-activation unit: norm → ReLU → conv (no bias); the official ``bn_relu_conv``.

    Input [N, in_channels, H, W] float32 → output [N, out_channels, H', W'] with the usual
    convolution arithmetic H' = floor((H + 2·padding − kernel) / stride) + 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.norm = make_norm(norm, in_channels, momentum=bn_momentum)
        # In place is safe: BatchNorm/GroupNorm keep their input, not their output, for backward.
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )


class ConvNormReLU(nn.Sequential):
    """Post-activation unit of the DSOD stem: conv (no bias) → norm → ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm = make_norm(norm, out_channels, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)


def max_pool_ceil(kernel_size: int = 2, stride: int | None = None) -> nn.MaxPool2d:
    """Max pooling with Caffe's ceil-mode output size (75→38, 19→10, 5→3, 3→2 for 2×2 / s2)."""
    return nn.MaxPool2d(kernel_size, stride=stride or kernel_size, ceil_mode=True)


def caffe_xavier_(module: nn.Module) -> None:
    """Initialise every conv of ``module`` like Caffe's ``xavier`` filler, and its norms to identity.

    Caffe's xavier draws U(−√(3/fan_in), √(3/fan_in)) — kaiming-uniform with linear gain
    (REFERENCE §1). Biases are zero; norm weights 1 and biases 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_bn_momentum(momentum: float) -> None:
    """KitError unless 0 < momentum ≤ 1 (PyTorch convention: the weight of the new batch)."""
    if not 0.0 < momentum <= 1.0:
        raise KitError(
            f"bn_momentum must be in (0, 1] (PyTorch convention), got {momentum}; "
            f"Caffe's moving_average_fraction 0.999 is bn_momentum={CAFFE_BN_MOMENTUM}"
        )


def set_bn_momentum(module: nn.Module, momentum: float) -> None:
    """Set the running-statistics momentum of every BatchNorm in ``module`` (pretrained ones too)."""
    check_bn_momentum(momentum)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def count_parameters(module: nn.Module) -> int:
    """Number of learnable scalars (parameters with ``requires_grad``; BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def first_conv(module: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``module`` in registration order (the input layer)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError("module has no convolution")


def replace_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv``'s geometry that reads ``in_channels`` input channels (freshly initialised)."""
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
    )


__all__ = [
    "CAFFE_BN_MOMENTUM",
    "DEFAULT_BN_MOMENTUM",
    "ConvNormReLU",
    "NormReLUConv",
    "caffe_xavier_",
    "check_bn_momentum",
    "count_parameters",
    "first_conv",
    "make_norm",
    "max_pool_ceil",
    "replace_first_conv",
    "set_bn_momentum",
]
