"""DSOD backbone: stem, dense blocks and transitions (Shen et al., ICCV 2017; REFERENCE §1).

Layer table of DSOD300 ("DS/64-192-48-1": stem 64, bottleneck 192, growth 48, compression 1) at a
300×300 input, as built by the official Caffe code (``DSOD300_V3_Body``); every convolution has no
bias and every max pool is 2×2 / stride 2 in ceil mode:

=============  ================================================================  =================
stage          op                                                                out C @ H×W
=============  ================================================================  =================
stem           conv3×3 s2 → BN → ReLU; conv3×3 → BN → ReLU; conv3×3 → BN → ReLU  64, 64, 128 @ 150
pool           max 2×2 s2 ceil                                                   128 @ 75
dense block 1  6 × [BN-ReLU-conv1×1(192), BN-ReLU-conv3×3(48)], concat           416 @ 75
transition 1   BN-ReLU-conv1×1(416), max 2×2 s2 ceil                             416 @ 38
dense block 2  8 layers                                                          800 @ 38
transition 2   BN-ReLU-conv1×1(800), no pooling → scale 1 ("First")              800 @ 38
pool           max 2×2 s2 ceil                                                   800 @ 19
dense block 3  8 layers                                                          1184 @ 19
transition 3   BN-ReLU-conv1×1(1184), no pooling                                 1184 @ 19
dense block 4  8 layers                                                          1568 @ 19
transition 4   BN-ReLU-conv1×1(256), no pooling (learned half of scale 2)        256 @ 19
=============  ================================================================  =================

The prediction structures that turn (First, transition 4) into the six scales are in
:mod:`dsod_depth.models.prediction`.

Memory. A dense block keeps every intermediate concatenation alive for backward, so activation memory
grows quadratically with the block length (the official code fits 4 images per GPU). Two options:

* ``memory_efficient=True`` recomputes each dense layer (concatenation, both BN-ReLU-conv units) in
  the backward pass with :func:`torch.utils.checkpoint.checkpoint`, like torchvision's
  ``DenseNet(memory_efficient=True)`` but over the whole layer; only the block input and the new
  ``growth``-channel features are stored. The stem and transitions 1 and 4 are recomputed as well (the
  stem's 150×150 maps are the largest activations left otherwise). BatchNorm running statistics are
  restored after each recomputation, so they are updated once per step as without checkpointing;
  gradients are identical. ``benchmarks/bench_models.py`` measures the memory saved and the time spent.
* ``concat="buffer"`` preallocates the block output [N, C_out, H, W] (in the input's memory format)
  and writes each layer's new features into it in place, so the input of layer i is a view of the
  first C_i channels instead of a fresh ``torch.cat`` copy (linear instead of quadratic copying). It is
  used only without gradients (inference): autograd, and checkpointing too, records the version of
  every tensor it saves, and writing into a buffer whose views were saved invalidates them. With
  gradients the block uses ``torch.cat``. Whether it helps depends on what reads the view:
  ``batch_norm`` copies a strided slice first (no gain), while the per-channel clamp that
  :func:`dsod_depth.models.inference.prepare_for_inference` puts in place of an eval-mode BN + ReLU
  reads it in place (a few per cent faster; ``benchmarks/bench_models.py`` measures it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dsod_depth.errors import KitError
from dsod_depth.models.layers import (
    DEFAULT_BN_MOMENTUM,
    ConvNormReLU,
    NormReLUConv,
    caffe_xavier_,
    max_pool_ceil,
)

CONCAT_MODES = ("cat", "buffer")


@dataclass(frozen=True)
class DSODConfig:
    """Widths and depths of a DSOD network (the paper's "DS/stem-bottleneck-growth-compression").

    stem_channels:   output channels of the three stem convolutions (DSOD300: 64, 64, 128).
    growth_rate:     channels each dense layer adds (48).
    bottleneck:      output channels of each dense layer's 1×1 bottleneck conv (192 = 4 × growth).
    block_layers:    dense layers in blocks 1–4 (6, 8, 8, 8).
    compression:     transitions 1–3 output int(compression × input channels) (1.0: none).
    half_channels:   width of each half of prediction scales 2, 3, …: scale k ≥ 2 has 2 × half channels,
                     half learned and half reused (256, 256, 128, 128, 128 → 512, 512, 256, 256, 256).
                     Its length + 1 is the number of prediction scales.
    """

    stem_channels: tuple[int, int, int] = (64, 64, 128)
    growth_rate: int = 48
    bottleneck: int = 192
    block_layers: tuple[int, int, int, int] = (6, 8, 8, 8)
    compression: float = 1.0
    half_channels: tuple[int, ...] = (256, 256, 128, 128, 128)

    def __post_init__(self) -> None:
        if len(self.stem_channels) != 3 or len(self.block_layers) != 4:
            raise KitError("DSODConfig needs 3 stem widths and 4 dense-block lengths")
        if not 0.0 < self.compression <= 1.0:
            raise KitError(f"compression must be in (0, 1], got {self.compression}")
        if len(self.half_channels) < 1:
            raise KitError("half_channels needs at least one entry (scale 2)")


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers of ``module`` normalise with batch statistics as usual, but
    their running statistics and batch counters are restored on exit. Used while recomputing
    checkpointed layers, so that a step updates the statistics once, as without checkpointing.
    (Switching the statistics off instead would change what BatchNorm saves for backward, which
    checkpointing forbids between the forward pass and the recomputation.)"""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [[b.clone() for b in m.buffers()] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, copies in zip(norms, saved):
                for buffer, copy in zip(m.buffers(), copies):
                    buffer.copy_(copy)


def recompute_in_backward(
    fn: Callable[..., torch.Tensor], owner: nn.Module, *inputs: torch.Tensor
) -> torch.Tensor:
    """``fn(*inputs)`` whose activations are recomputed in the backward pass instead of stored
    (:func:`torch.utils.checkpoint.checkpoint`, non-reentrant); BatchNorm statistics of ``owner`` are
    updated once per step (:func:`frozen_running_stats` during the recomputation)."""
    return checkpoint(
        fn,
        *inputs,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), frozen_running_stats(owner)),
    )


class DenseLayer(nn.Module):
    """One bottleneck dense layer (official ``add_bl_layer``): BN-ReLU-conv1×1(bottleneck) then
    BN-ReLU-conv3×3(growth). Input [N, C_in, H, W] → new features [N, growth, H, W] (the caller
    concatenates them to its input)."""

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bottleneck: int,
        *,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.bottleneck = NormReLUConv(in_channels, bottleneck, 1, norm=norm, bn_momentum=bn_momentum)
        self.conv = NormReLUConv(bottleneck, growth_rate, 3, padding=1, norm=norm, bn_momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bottleneck(x))

    def forward_parts(self, *features: torch.Tensor) -> torch.Tensor:
        """The layer applied to the channel concatenation of ``features`` (each [N, C_i, H, W])."""
        return self(features[0] if len(features) == 1 else torch.cat(features, dim=1))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; output = [input, new_1, …, new_L] along channels.

    Input [N, C, H, W] → output [N, C + num_layers × growth_rate, H, W]. See the module docstring
    for ``memory_efficient`` and ``concat``.
    """

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        growth_rate: int,
        bottleneck: int,
        *,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
        memory_efficient: bool = False,
        concat: str = "cat",
    ) -> None:
        super().__init__()
        if concat not in CONCAT_MODES:
            raise KitError(f"unknown concat mode {concat!r}; choose one of: {', '.join(CONCAT_MODES)}")
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.out_channels = in_channels + num_layers * growth_rate
        self.memory_efficient = memory_efficient
        self.concat = concat
        self.layers = nn.ModuleList(
            DenseLayer(
                in_channels + i * growth_rate, growth_rate, bottleneck, norm=norm, bn_momentum=bn_momentum
            )
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self._forward_buffer(x) if self.concat == "buffer" else self._forward_list(x, False)
        return self._forward_list(x, self.memory_efficient)

    def _forward_list(self, x: torch.Tensor, use_checkpoint: bool) -> torch.Tensor:
        return torch.cat(self.feature_list(x, use_checkpoint), dim=1)  # [N, C_out, H, W]

    def feature_list(self, x: torch.Tensor, use_checkpoint: bool) -> list[torch.Tensor]:
        """[input [N, C, H, W], new_1 [N, growth, H, W], …]: the block output before concatenation."""
        features = [x]
        for layer in self.layers:
            if use_checkpoint:
                # The concatenation happens inside the recomputed function, so only the separate
                # feature tensors are stored: linear, not quadratic, memory in the block length.
                features.append(recompute_in_backward(layer.forward_parts, layer, *features))
            else:
                features.append(layer.forward_parts(*features))
        return features

    def _forward_buffer(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty(n, self.out_channels, h, w, dtype=x.dtype, device=x.device, memory_format=fmt)
        out[:, :c] = x
        for layer in self.layers:
            # Layer i reads channels [0, c) and writes [c, c + growth): never a region it reads.
            out[:, c : c + self.growth_rate] = layer(out[:, :c])
            c += self.growth_rate
        return out


class DSODBackbone(nn.Module):
    """Stem, four dense blocks and four transitions (table in the module docstring).

    forward: images [N, in_channels, H, W] float32 → (first [N, C_first, H/8, W/8],
    second [N, second_channels, H/16, W/16]) with ceil rounding at every pooling (38 and 19 at 300).
    ``first`` is scale 1 of the detector; ``second`` is the output of transition 4 (the learned half of
    scale 2 in the dense prediction structure, the whole of scale 2 in the plain one).
    """

    def __init__(
        self,
        in_channels: int,
        config: DSODConfig,
        *,
        second_channels: int,
        norm: str = "bn",
        bn_momentum: float = DEFAULT_BN_MOMENTUM,
        memory_efficient: bool = False,
        concat: str = "cat",
    ) -> None:
        super().__init__()
        s0, s1, s2 = config.stem_channels
        self.memory_efficient = memory_efficient
        unit = {"norm": norm, "bn_momentum": bn_momentum}
        block = {**unit, "memory_efficient": memory_efficient, "concat": concat}
        self.stem = nn.Sequential(
            ConvNormReLU(in_channels, s0, stride=2, **unit),
            ConvNormReLU(s0, s1, **unit),
            ConvNormReLU(s1, s2, **unit),
            max_pool_ceil(),
        )
        g, b = config.growth_rate, config.bottleneck
        self.block1 = DenseBlock(s2, config.block_layers[0], g, b, **block)
        c = int(self.block1.out_channels * config.compression)
        self.transition1 = nn.Sequential(
            NormReLUConv(self.block1.out_channels, c, 1, **unit), max_pool_ceil()
        )
        self.block2 = DenseBlock(c, config.block_layers[1], g, b, **block)
        self.first_channels = int(self.block2.out_channels * config.compression)
        self.transition2 = NormReLUConv(self.block2.out_channels, self.first_channels, 1, **unit)
        self.pool2 = max_pool_ceil()
        self.block3 = DenseBlock(self.first_channels, config.block_layers[2], g, b, **block)
        c = int(self.block3.out_channels * config.compression)
        self.transition3 = NormReLUConv(self.block3.out_channels, c, 1, **unit)
        self.block4 = DenseBlock(c, config.block_layers[3], g, b, **block)
        # Transition 4 is not compressed: it sets the width of scale 2's learned half (official: 256).
        self.second_channels = second_channels
        self.transition4 = NormReLUConv(self.block4.out_channels, second_channels, 1, **unit)
        caffe_xavier_(self)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        # With memory_efficient the stem is recomputed too: at 300×300 its 150×150 maps would otherwise
        # be the largest activations stored.
        if self.memory_efficient and torch.is_grad_enabled():
            return recompute_in_backward(self.stem, self.stem, x)
        return self.stem(x)

    def _block(
        self, block: DenseBlock, transition: nn.Module, x: torch.Tensor, recompute: bool
    ) -> torch.Tensor:
        """transition(block(x)). With memory_efficient the dense layers are recomputed and, if
        ``recompute``, the transition too, with the block's final concatenation inside it so that the
        block output is never stored next to its parts."""
        if self.memory_efficient and torch.is_grad_enabled() and recompute:
            parts = block.feature_list(x, use_checkpoint=True)
            return recompute_in_backward(lambda *p: transition(torch.cat(p, dim=1)), transition, *parts)
        return transition(block(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Transition 1 (75×75 input) and 4 (1568 channels in, cheap 1×1 to 256) are recomputed with
        # memory_efficient. Transitions 2 and 3 are not: at 300×300 recomputing them costs 1.4 GMAC per
        # image and lowers no peak (measured: the peak falls during the backward of blocks 1–2).
        x = self._block(self.block1, self.transition1, self._stem(x), recompute=True)
        first = self._block(self.block2, self.transition2, x, recompute=False)
        x = self._block(self.block3, self.transition3, self.pool2(first), recompute=False)
        second = self._block(self.block4, self.transition4, x, recompute=True)
        return first, second
