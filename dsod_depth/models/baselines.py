"""Detectors that can start from ImageNet: SSD300's VGG16 and a DenseNet-121 under DSOD's prediction.

SSD300 (Liu et al., ECCV 2016; Caffe ``ssd_pascal.py``): torchvision's VGG16 ``features`` (conv1_1 …
conv5_3, ReLUs, 2×2 pools in ceil mode) with pool5 changed to 3×3 / stride 1 / pad 1, fc6 → conv6
(3×3, dilation 6, 1024) and fc7 → conv7 (1×1, 1024), then the extra layers conv8–conv11
(1×1 then 3×3, with bias and ReLU). Maps at 300×300: conv4_3 512@38, conv7 1024@19, 512@10, 256@5,
256@3, 256@1. ImageNet fc6/fc7 become conv6/conv7 by decimation, as SSD did: fc6 [4096, 512·7·7]
keeps every 4th filter and every 3rd tap in each spatial direction → [1024, 512, 3, 3]; fc7 keeps
every 4th row and column → [1024, 1024, 1, 1].

DenseNet-121 + DSOD (torchvision ``densenet121().features``): conv0 … denseblock4, norm5, with the
transitions' 2×2 average pools in ceil mode (75 → 38) and transition 3's pool removed, so that blocks 3
and 4 run at stride 16 like DSOD's transitions without pooling. Scale 1 = transition 2's conv output
(256@38, before its pool); the backbone ends with ReLU(norm5) → conv1×1 (DSOD's transition 4, new).
DSOD's dense (or plain) prediction structure follows. Pretrained filters are resolution-agnostic, so
dropping one pool keeps them meaningful.

Registered builders (end of the module): ``ssd300_vgg16`` (:func:`build_ssd300_vgg16`) and
``densenet121_dsod`` (:func:`build_densenet121_dsod`), from scratch or from torchvision's ImageNet
weights (``init="imagenet"``; first convolution adapted to any channel count, see
:func:`dsod_depth.models.weights.adapt_first_conv`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import densenet121
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers as vgg_make_layers

from dsod_depth.errors import KitError
from dsod_depth.models import presets
from dsod_depth.models.detector import SingleShotDetector, assemble, input_size_hw
from dsod_depth.models.factory import DETECTORS
from dsod_depth.models.layers import DEFAULT_BN_MOMENTUM, caffe_xavier_, replace_first_conv, set_bn_momentum
from dsod_depth.models.prediction import MultiScaleFeatures, build_prediction, second_channels_for
from dsod_depth.models.weights import (
    FIRST_CONV_STRATEGIES,
    adapt_state_first_conv,
    load_state_strict,
    load_weights_file,
    rename_densenet_keys,
    resolve_weights_file,
)

_CONV4_3_RELU = 22  # index of relu4_3 in torchvision's vgg16().features
_POOL5 = 30

INITS = ("scratch", "imagenet")


class VGG16Backbone(nn.Module):
    """VGG16 conv layers, pool5 3×3/s1, conv6 (dilated fc6), conv7 (fc7) — the pretrained part of SSD300.

    forward: [N, in_channels, H, W] → (conv4_3 [N, 512, H/8, W/8], conv7 [N, 1024, H/16, W/16]) (ceil).
    Scratch initialisation: torchvision's VGG init for ``features`` (He normal), Caffe xavier for conv6/7.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        # torchvision's own VGG16 ("D") layer list, without building the 120M-parameter classifier.
        features = vgg_make_layers(vgg_cfgs["D"], batch_norm=False)
        for i, layer in enumerate(features):
            if isinstance(layer, nn.MaxPool2d):
                features[i] = nn.MaxPool2d(2, 2, ceil_mode=True)  # Caffe pooling arithmetic
        features[_POOL5] = nn.MaxPool2d(3, stride=1, padding=1)
        if in_channels != 3:
            features[0] = replace_first_conv(features[0], in_channels)
        for m in features.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.features = features
        self.conv6 = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)
        self.conv7 = nn.Conv2d(1024, 1024, 1)
        caffe_xavier_(self.conv6)
        caffe_xavier_(self.conv7)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        conv4_3 = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == _CONV4_3_RELU:
                conv4_3 = x
        x = F.relu(self.conv6(x), inplace=True)
        return conv4_3, F.relu(self.conv7(x), inplace=True)


def vgg16_imagenet_state(
    state: Mapping[str, torch.Tensor], in_channels: int, strategy: str, *, source: str
) -> dict[str, torch.Tensor]:
    """torchvision ``vgg16`` ImageNet state → :class:`VGG16Backbone` state (first conv adapted, fc6/fc7
    decimated as in SSD). Raises KitError if the classifier tensors are absent or mis-shaped."""
    need = {
        "classifier.0.weight": (4096, 25088),
        "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096),
        "classifier.3.bias": (4096,),
    }
    for key, shape in need.items():
        if key not in state or tuple(state[key].shape) != shape:
            got = tuple(state[key].shape) if key in state else "absent"
            raise KitError(
                f"weights file {source} is not torchvision's VGG16: {key} is {got}, expected {shape}"
            )
    out = {k: v for k, v in state.items() if k.startswith("features.")}
    adapt_state_first_conv(out, "features.0.weight", in_channels, strategy, source=source)
    fc6 = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
    out["conv6.weight"] = fc6[::4, :, ::3, ::3].contiguous()  # [1024, 512, 3, 3]
    out["conv6.bias"] = state["classifier.0.bias"][::4].clone()
    out["conv7.weight"] = state["classifier.3.weight"][::4, ::4].reshape(1024, 1024, 1, 1).contiguous()
    out["conv7.bias"] = state["classifier.3.bias"][::4].clone()
    return out


class SSDExtras(nn.Module):
    """SSD300's extra layers on conv7: [N, 1024, 19, 19] → maps 512@10, 256@5, 256@3, 256@1 (at 300)."""

    # (in, bottleneck, out, stride, padding) of conv8 … conv11 (Caffe ssd_pascal.py AddExtraLayers).
    SPEC = ((1024, 256, 512, 2, 1), (512, 128, 256, 2, 1), (256, 128, 256, 1, 0), (256, 128, 256, 1, 0))

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, b, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(b, o, 3, stride=s, padding=p),
                nn.ReLU(inplace=True),
            )
            for c, b, o, s, p in self.SPEC
        )
        caffe_xavier_(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        return maps


class SSDFeatures(nn.Module):
    """VGG16 backbone + SSD extras. forward: images → six maps (512, 1024, 512, 256, 256, 256 channels)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.backbone = VGG16Backbone(in_channels)
        self.extras = SSDExtras()
        self.out_channels = [512, 1024] + [spec[2] for spec in SSDExtras.SPEC]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        conv4_3, conv7 = self.backbone(x)
        return [conv4_3, conv7, *self.extras(conv7)]

    def load_imagenet(self, state: Mapping[str, torch.Tensor], strategy: str, *, source: str) -> None:
        """Load torchvision ``vgg16`` ImageNet weights into the backbone (extras keep their init)."""
        in_channels = self.backbone.features[0].in_channels
        load_state_strict(
            self.backbone, vgg16_imagenet_state(state, in_channels, strategy, source=source), source=source
        )


class DenseNet121Backbone(nn.Module):
    """torchvision DenseNet-121 features arranged as a DSOD backbone (module docstring).

    forward: [N, in_channels, H, W] → (first [N, 256, H/8, W/8], second [N, second_channels, H/16, W/16]).
    ``memory_efficient`` is torchvision's (checkpointed bottlenecks).
    """

    first_channels = 256

    def __init__(self, in_channels: int, *, second_channels: int, memory_efficient: bool = False) -> None:
        super().__init__()
        features = densenet121(weights=None, memory_efficient=memory_efficient).features
        if in_channels != 3:
            features.conv0 = replace_first_conv(features.conv0, in_channels)
            nn.init.kaiming_normal_(features.conv0.weight)  # torchvision's DenseNet init
        for name in ("transition1", "transition2"):
            getattr(features, name).pool = nn.AvgPool2d(2, 2, ceil_mode=True)
        features.transition3.pool = nn.Identity()  # DSOD: blocks 3 and 4 share stride 16
        self.features = features
        self.second_channels = second_channels
        self.transition4 = nn.Conv2d(features.norm5.num_features, second_channels, 1, bias=False)
        caffe_xavier_(self.transition4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features
        x = f.transition1(f.denseblock1(f.pool0(f.relu0(f.norm0(f.conv0(x))))))
        t2 = f.transition2
        first = t2.conv(t2.relu(t2.norm(f.denseblock2(x))))  # scale 1, before transition 2's pool
        x = f.denseblock4(f.transition3(f.denseblock3(t2.pool(first))))
        return first, self.transition4(F.relu(f.norm5(x)))

    def load_imagenet(self, state: Mapping[str, torch.Tensor], strategy: str, *, source: str) -> None:
        """Load torchvision ``densenet121`` ImageNet weights (either key layout) into ``features``."""
        renamed = rename_densenet_keys(state)
        own = {k[len("features.") :]: v for k, v in renamed.items() if k.startswith("features.")}
        unexpected = [k for k in renamed if not k.startswith(("features.", "classifier."))]
        if unexpected:
            raise KitError(
                f"weights file {source} is not torchvision's DenseNet-121: unexpected key {unexpected[0]}"
            )
        adapt_state_first_conv(own, "conv0.weight", self.features.conv0.in_channels, strategy, source=source)
        load_state_strict(self.features, own, source=source)


# --------------------------------------------------------------------------- registered builders


def _imagenet_loader(arch: str, init: str, weights_path: str | Path | None, first_conv: str):
    """(state dict or None, file path or None) for ``init``; validates the ImageNet options."""
    if init not in INITS:
        raise KitError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    if first_conv not in FIRST_CONV_STRATEGIES:
        raise KitError(
            f"unknown first_conv strategy {first_conv!r}; choose one of: {', '.join(FIRST_CONV_STRATEGIES)}"
        )
    if init == "scratch":
        if weights_path is not None:
            raise KitError("weights_path is only used with init='imagenet'")
        return None, None
    path = resolve_weights_file(arch, weights_path)
    return load_weights_file(path), path


@DETECTORS.register("ssd300_vgg16")
def build_ssd300_vgg16(
    *,
    num_classes: int,
    in_channels: int,
    input_size: int | Sequence[int] = 300,
    init: str = "scratch",
    weights_path: str | Path | None = None,
    first_conv: str = "mean",
    fusion: str = "early",
    late_split: Sequence[int] = (3, 3),
    box_sizes: str = "voc",
) -> SingleShotDetector:
    """SSD300: :class:`SSDFeatures` (torchvision's VGG16 + SSD extras) and SSD heads."""
    state, path = _imagenet_loader("vgg16", init, weights_path, first_conv)

    def make_features(channels: int) -> nn.Module:
        features = SSDFeatures(channels)
        if state is not None:
            features.load_imagenet(state, first_conv, source=str(path))
        return features

    info = {
        "detector": "ssd300_vgg16",
        "init": init,
        "first_conv": first_conv if init == "imagenet" else None,
        "weights_file": str(path) if path else None,
    }
    # SSD head: conv with bias, no norm; L2Norm(20) on conv4_3 only (Liu et al. 2016, §3.1 / ParseNet).
    return assemble(
        make_features,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size_hw(input_size),
        fusion=fusion,
        late_split=late_split,
        box_sizes=box_sizes,
        head={"norm": None, "l2norm": [True] + [False] * 5},
        info=info,
    )


@DETECTORS.register("densenet121_dsod")
def build_densenet121_dsod(
    *,
    num_classes: int,
    in_channels: int,
    input_size: int | Sequence[int] = 300,
    init: str = "scratch",
    weights_path: str | Path | None = None,
    first_conv: str = "mean",
    prediction: str = "dense",
    last_scale: str = "2x2",
    norm: str = "bn",
    bn_momentum: float = DEFAULT_BN_MOMENTUM,
    memory_efficient: bool = False,
    fusion: str = "early",
    late_split: Sequence[int] = (3, 3),
    box_sizes: str = "voc",
) -> SingleShotDetector:
    """torchvision DenseNet-121 backbone + DSOD prediction structure and heads."""
    state, path = _imagenet_loader("densenet121", init, weights_path, first_conv)
    half = presets.DSOD300.half_channels
    second = second_channels_for(prediction, half)
    unit = {"norm": norm, "bn_momentum": bn_momentum}

    def make_features(channels: int) -> nn.Module:
        backbone = DenseNet121Backbone(channels, second_channels=second, memory_efficient=memory_efficient)
        if state is not None:
            backbone.load_imagenet(state, first_conv, source=str(path))
        structure = build_prediction(
            prediction, backbone.first_channels, second, half, last_scale=last_scale, **unit
        )
        return MultiScaleFeatures(backbone, structure)

    info = {
        "detector": "densenet121_dsod",
        "init": init,
        "first_conv": first_conv if init == "imagenet" else None,
        "weights_file": str(path) if path else None,
        "prediction": prediction,
        "last_scale": last_scale,
        "norm": norm,
        "bn_momentum": bn_momentum,
        "memory_efficient": memory_efficient,
    }
    model = assemble(
        make_features,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size_hw(input_size),
        fusion=fusion,
        late_split=late_split,
        box_sizes=box_sizes,
        head=unit,
        info=info,
    )
    set_bn_momentum(model, bn_momentum)  # torchvision's BatchNorms too
    return model
