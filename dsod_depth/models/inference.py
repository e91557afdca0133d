"""A faster, numerically equivalent copy of a detector for inference on CPU.

:func:`prepare_for_inference` returns an eval-mode copy of a detector with

* every BatchNorm that directly follows a convolution folded into that convolution's weights and bias
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the stem's conv → BN, each dense layer's
  bottleneck conv → BN of its 3×3 unit, the learned halves' 1×1 conv → BN, and the heads' conv → BN.
  DSOD's pre-activation BatchNorms (BN → ReLU → conv) cannot be folded directly, a ReLU sits between
  them and the next convolution; before a 1×1 conv they become a per-channel clamp whose affine part
  folds into the conv (:func:`fold_preactivation`, one elementwise pass instead of two), and the few
  others (torchvision DenseNet layers) become :class:`ChannelAffine` (one ``addcmul``);
* the heads' loc and conf convolutions of each map merged into one, with the L2Norm scale folded in
  (:class:`FusedMultiBoxHead`);
* optionally channels-last (NHWC) weights and inputs, which oneDNN's CPU convolutions and PyTorch's
  CPU max pooling run much faster than NCHW;
* optionally ``concat="buffer"`` in the dense blocks: no quadratic concatenation copies, since the
  clamp reads each layer's input slice of the preallocated block buffer in place (``batch_norm``
  would copy a strided slice first).
* optionally (``prepack=True``) every convolution with its weights reordered once into oneDNN's blocked
  layout, and the ReLU that directly follows a convolution fused into it (:class:`PackedConv2d`). This
  uses oneDNN entry points that PyTorch's compiler (inductor) calls but does not document, so it is off
  by default and skipped where they are missing; the packed copy has no ``state_dict`` of its convolutions.

``benchmarks/bench_models.py`` measures each step.

The training module is left untouched; outputs agree with ``model.eval()`` to float32 rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dsod_depth.models.detector import SingleShotDetector
from dsod_depth.models.dsod import DenseBlock, DenseLayer
from dsod_depth.models.heads import L2Norm, MultiBoxHead
from dsod_depth.models.layers import NormReLUConv


def _foldable(norm: nn.Module) -> bool:
    return isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats and norm.affine


def _successive_units(parent: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """The (first, next) pairs of units inside ``parent`` whose first output feeds the next: a dense
    layer's bottleneck and 3×3 unit, and neighbours in a ``Sequential``; [] for other modules."""
    if isinstance(parent, DenseLayer):
        return [(parent.bottleneck, parent.conv)]
    if isinstance(parent, nn.Sequential):
        children = list(parent)
        return list(zip(children[:-1], children[1:]))
    return []


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm that directly follows a convolution inside ``module``.

    ``module`` must be in eval mode (running statistics are used). Returns the number of folds.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs an eval-mode module")
    folds = 0
    for parent in list(module.modules()):
        pairs = _successive_units(parent)
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


class ChannelClamp(nn.Module):
    """y = clamp(x, lo[c], hi[c]): a per-channel clamp, one pass, any memory layout.

    [N, C, H, W] → [N, C, H, W] (a new tensor in the input's memory format); ``lo``/``hi`` [1, C, 1, 1].
    """

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("lo", lo.view(1, -1, 1, 1))
        self.register_buffer("hi", hi.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=self.lo, max=self.hi)


def fold_preactivation(module: nn.Module) -> int:
    """Rewrite, in place, each eval-mode BN → ReLU → 1×1 conv (:class:`NormReLUConv`) as a per-channel
    clamp followed by a 1×1 conv with folded weights and bias. Returns the number of rewrites.

    With the BN as y = a·x + b per channel: ReLU(a·x + b) = a·clamp(x, lo, hi) + b', where for a > 0
    lo = −b/a, hi = +∞; for a < 0 lo = −∞, hi = −b/a; for a = 0 lo = hi = 0 and b' = ReLU(b) (else
    b' = b). The affine part then folds into the conv: W'[o, c] = W[o, c]·a[c], bias'[o] = bias[o] +
    Σ_c W[o, c]·b'[c] — exact only for unpadded (1×1) convolutions, where no padding sees b'. One
    elementwise pass over the dense layers' wide inputs instead of two (BN, then ReLU).
    """
    count = 0
    for unit in list(module.modules()):
        if not (
            isinstance(unit, NormReLUConv)
            and _foldable(unit.norm)
            and unit.conv.kernel_size == (1, 1)
            and unit.conv.padding == (0, 0)
            and unit.conv.groups == 1
        ):
            continue
        norm, conv = unit.norm, unit.conv
        with torch.no_grad():
            a = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # [C]
            b = norm.bias - norm.running_mean * a  # [C]
            safe = torch.where(a == 0, torch.ones_like(a), a)
            t = -b / safe  # where ReLU(a·x + b) switches, [C]
            inf = torch.full_like(a, float("inf"))
            lo = torch.where(a > 0, t, torch.where(a < 0, -inf, torch.zeros_like(a)))
            hi = torch.where(a < 0, t, torch.where(a > 0, inf, torch.zeros_like(a)))
            b_eff = torch.where(a == 0, b.clamp(min=0), b)
            weight = conv.weight * a.view(1, -1, 1, 1)  # [out, C, 1, 1]
            bias = conv.weight.flatten(1) @ b_eff  # [out]
            if conv.bias is not None:
                bias = bias + conv.bias
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, 1, stride=conv.stride, bias=True)
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
        unit.norm, unit.relu, unit.conv = ChannelClamp(lo, hi), nn.Identity(), folded
        count += 1
    return count


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


def _plain_conv(predictor: nn.Module) -> nn.Conv2d | None:
    """The single convolution a (folded) head predictor amounts to, or None if it has a norm left."""
    if isinstance(predictor, nn.Conv2d):
        return predictor
    convs = [m for m in predictor if not isinstance(m, nn.Identity)]
    return convs[0] if len(convs) == 1 and isinstance(convs[0], nn.Conv2d) else None


class FusedMultiBoxHead(nn.Module):
    """Inference form of a BN-folded :class:`MultiBoxHead`: per map one 3×3 convolution producing the
    loc and conf channels together, with the L2Norm's per-channel scale folded into its weights
    (conv(x̂ · s) = conv_{W·s}(x̂), exact with zero padding too). Same outputs, same order."""

    def __init__(self, head: MultiBoxHead) -> None:
        super().__init__()
        self.num_classes = head.num_classes
        self.convs = nn.ModuleList()
        self.normalize: list[float | None] = []  # L2 eps per map, None when the map is not normalised
        self.num_loc: list[int] = []
        for l2, loc, conf in zip(head.l2norm, head.loc, head.conf):
            loc_conv, conf_conv = _plain_conv(loc), _plain_conv(conf)
            weight = torch.cat([loc_conv.weight, conf_conv.weight]).detach()  # [K·4 + K·(C+1), C_in, 3, 3]
            bias = torch.cat([_bias(loc_conv), _bias(conf_conv)]).detach()
            if isinstance(l2, L2Norm):
                weight = weight * l2.weight.detach().view(1, -1, 1, 1)
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
            self.convs.append(conv)
            self.normalize.append(l2.eps if isinstance(l2, L2Norm) else None)
            self.num_loc.append(loc_conv.out_channels)

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        locs, confs = [], []
        for x, conv, eps, num_loc in zip(maps, self.convs, self.normalize, self.num_loc):
            if eps is not None:
                x = F.normalize(x, p=2.0, dim=1, eps=eps)
            n = x.shape[0]
            y = conv(x).permute(0, 2, 3, 1)  # [N, H, W, K·4 + K·(C+1)]
            locs.append(y[..., :num_loc].reshape(n, -1, 4))  # [N, H·W·K, 4]
            confs.append(y[..., num_loc:].reshape(n, -1, self.num_classes + 1))  # [N, H·W·K, C+1]
        return torch.cat(locs, dim=1), torch.cat(confs, dim=1)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)


def mkldnn_prepack_available() -> bool:
    """Whether the undocumented oneDNN entry points :class:`PackedConv2d` needs exist in this PyTorch."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight")
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


class PackedConv2d(nn.Module):
    """An ``nn.Conv2d`` (any memory format, float32) whose weights oneDNN reorders once, at construction,
    instead of at every call as ``F.conv2d`` does; ``relu=True`` applies a ReLU as oneDNN's post-op.
    ``input_shape`` ([N, C_in, H, W]) is the input the weight layout is chosen for: without it oneDNN picks
    a generic layout that is up to 7× slower for some 1×1 convolutions (measured: 1184 → 192 at 19×19);
    other shapes give the same values.

    [N, C_in, H, W] → [N, C_out, H', W'], same values as the convolution (then ReLU): oneDNN computes
    both, only the weight reorder and the separate ReLU pass are saved. Inference only (no autograd
    through the packed weight); the packed weight is a plain attribute, not a parameter or buffer.
    """

    def __init__(self, conv: nn.Conv2d, input_shape: Sequence[int], *, relu: bool = False) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("PackedConv2d needs numeric zero padding")
        # padding, stride, dilation, groups
        self.geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        weight = conv.weight.detach().contiguous().to_mkldnn()  # [C_out, C_in / groups, kh, kw]
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(weight, *self.geometry, list(input_shape))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.attr = "relu" if relu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convolution = torch.ops.mkldnn._convolution_pointwise
        return convolution(x, self.weight, self.bias, *self.geometry, self.attr, [], "")


def pack_convolutions(module: nn.Module, example: torch.Tensor) -> int:
    """Replace, in place, every ``nn.Conv2d`` that eval-mode ``module`` runs on ``example`` (one forward
    pass records each convolution's input shape) by a :class:`PackedConv2d`, fusing the
    ReLU that directly follows it where the structure shows one: conv → (Identity…) → ReLU inside an
    ``nn.Sequential`` (the stem's conv → folded BN → ReLU), and conv(a) → ReLU(b) of two consecutive
    :class:`NormReLUConv` units whose BN was folded into conv(a) (a dense layer's bottleneck → 3×3 unit,
    a learned half's 1×1 → 3×3). Call after :func:`fold_batchnorm`. Returns the number of fused ReLUs.
    """
    if module.training:
        raise ValueError("pack_convolutions needs an eval-mode module")
    shapes: dict[nn.Module, torch.Size] = {}

    def record(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes.setdefault(conv, args[0].shape)  # [N, C_in, H, W]

    hooks = [m.register_forward_pre_hook(record) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(example)
    for hook in hooks:
        hook.remove()
    fused = 0
    for parent in list(module.modules()):
        for a, b in _successive_units(parent):
            # conv(a) → folded BN(b) → ReLU(b): the ReLU moves into conv(a).
            units = isinstance(a, NormReLUConv) and isinstance(b, NormReLUConv)
            if units and a.conv in shapes and isinstance(b.norm, nn.Identity) and isinstance(b.relu, nn.ReLU):
                a.conv, b.relu = PackedConv2d(a.conv, shapes[a.conv], relu=True), nn.Identity()
                fused += 1
        if isinstance(parent, nn.Sequential):
            live = [(name, m) for name, m in parent.named_children() if not isinstance(m, nn.Identity)]
            for (name, conv), (relu_name, relu) in zip(live[:-1], live[1:]):
                if conv in shapes and isinstance(relu, nn.ReLU):
                    setattr(parent, name, PackedConv2d(conv, shapes[conv], relu=True))
                    setattr(parent, relu_name, nn.Identity())
                    fused += 1
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if child in shapes:
                setattr(parent, name, PackedConv2d(child, shapes[child]))
    return fused


def prepare_for_inference(
    model: SingleShotDetector,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    concat: str | None = "buffer",
    prepack: bool = False,
) -> SingleShotDetector:
    """An eval-mode copy of ``model`` optimised for inference (module docstring).

    Same forward contract: images [N, C, H, W] → (loc [N, P, 4], conf [N, P, num_classes + 1]); NCHW
    inputs are accepted and converted when ``channels_last`` is set. ``concat`` sets the dense blocks'
    concatenation mode (None keeps the model's); ``fold_bn`` applies :func:`fold_batchnorm`,
    :func:`fold_preactivation` and :func:`freeze_batchnorm`; ``prepack`` applies :func:`pack_convolutions`
    (undocumented oneDNN entry points; ignored where :func:`mkldnn_prepack_available` is false).
    Defaults are the fastest measured on CPU using public PyTorch only.
    """
    fast = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(fast)
        fold_preactivation(fast)
        freeze_batchnorm(fast)
        predictors = [*fast.head.loc, *fast.head.conf]
        if all(_plain_conv(p) is not None and _plain_conv(p).kernel_size == (3, 3) for p in predictors):
            fast.head = FusedMultiBoxHead(fast.head)
    if concat is not None:
        for m in fast.modules():
            if isinstance(m, DenseBlock):
                m.concat = concat
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    fast.channels_last = channels_last
    prepack = prepack and mkldnn_prepack_available()
    if prepack:  # weight layouts chosen for one image of the model's input size
        pack_convolutions(fast, torch.zeros(1, fast.in_channels, *fast.input_size))
    fast.info = {
        **model.info,
        "inference": {
            "channels_last": channels_last,
            "fold_bn": fold_bn,
            "concat": concat,
            "prepack": prepack,
        },
    }
    return fast
