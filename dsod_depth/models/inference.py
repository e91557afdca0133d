"""A faster, numerically equivalent copy of a detector for inference on CPU.

:func:`prepare_for_inference` returns an eval-mode copy of a detector with

* every BatchNorm that directly follows a convolution folded into that convolution's weights and bias
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the stem's conv → BN, each dense layer's
  bottleneck conv → BN of its 3×3 unit, the learned halves' 1×1 conv → BN, and the heads' conv → BN.
  DSOD's pre-activation BatchNorms (BN → ReLU → conv) cannot be folded: a ReLU sits between them and
  the next convolution, so they become :class:`ChannelAffine` (one ``addcmul``);
* optionally channels-last (NHWC) weights and inputs, which oneDNN's CPU convolutions and PyTorch's
  CPU max pooling run much faster than NCHW;
* optionally ``concat="buffer"`` in the dense blocks: no quadratic concatenation copies, since
  ``ChannelAffine`` reads each layer's input slice of the preallocated block buffer in place.

``benchmarks/bench_models.py`` measures each step.

The training module is left untouched; outputs agree with ``model.eval()`` to float32 rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dsod_depth.models.dsod import DenseBlock, DenseLayer
from dsod_depth.models.heads import SingleShotDetector
from dsod_depth.models.layers import NormReLUConv


def _foldable(norm: nn.Module) -> bool:
    return isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats and norm.affine


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm that directly follows a convolution inside ``module``.

    ``module`` must be in eval mode (running statistics are used). Returns the number of folds.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs an eval-mode module")
    folds = 0
    for parent in list(module.modules()):
        if isinstance(parent, DenseLayer):
            pairs = [(parent.bottleneck, parent.conv)]
        elif isinstance(parent, nn.Sequential):
            children = list(parent)
            pairs = list(zip(children[:-1], children[1:]))
        else:
            continue
        for i, (a, b) in enumerate(pairs):
            if isinstance(a, NormReLUConv) and isinstance(b, NormReLUConv) and _foldable(b.norm):
                # conv(a) → BN(b) → ReLU(b) → conv(b): the BN moves into conv(a).
                a.conv, b.norm = fuse_conv_bn_eval(a.conv, b.norm), nn.Identity()
                folds += 1
            elif isinstance(a, nn.Conv2d) and isinstance(parent, nn.Sequential) and _foldable(b):
                parent[i], parent[i + 1] = fuse_conv_bn_eval(a, b), nn.Identity()
                folds += 1
    return folds


class ChannelAffine(nn.Module):
    """y = x · scale[c] + shift[c]: an eval-mode BatchNorm as one ``torch.addcmul``.

    [N, C, H, W] → [N, C, H, W] in the input's memory format. Unlike ``batch_norm``, ``addcmul`` reads a
    strided channel slice (a dense block's preallocated buffer in channels-last) without copying it first.
    """

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias.detach() - norm.running_mean * scale
        self.register_buffer("scale", scale.view(1, -1, 1, 1))  # [1, C, 1, 1]
        self.register_buffer("shift", shift.view(1, -1, 1, 1))  # [1, C, 1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


def freeze_batchnorm(module: nn.Module) -> int:
    """Replace, in place, every eval-mode BatchNorm2d of ``module`` by an equivalent :class:`ChannelAffine`.

    Returns the number of replacements.
    """
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if _foldable(child):
                setattr(parent, name, ChannelAffine(child))
                count += 1
    return count


def prepare_for_inference(
    model: SingleShotDetector,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    concat: str | None = "buffer",
) -> SingleShotDetector:
    """An eval-mode copy of ``model`` optimised for inference (module docstring).

    Same forward contract: images [N, C, H, W] → (loc [N, P, 4], conf [N, P, num_classes + 1]); NCHW
    inputs are accepted and converted when ``channels_last`` is set. ``concat`` sets the dense blocks'
    concatenation mode (None keeps the model's); ``fold_bn`` also turns the remaining BatchNorms into
    :class:`ChannelAffine`. Defaults are the fastest measured on CPU.
    """
    fast = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(fast)
        freeze_batchnorm(fast)
    if concat is not None:
        for m in fast.modules():
            if isinstance(m, DenseBlock):
                m.concat = concat
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    fast.channels_last = channels_last
    fast.info = {
        **model.info,
        "inference": {"channels_last": channels_last, "fold_bn": fold_bn, "concat": concat},
    }
    return fast
