"""Detector registry and builders: ``build_detector(name, *, num_classes, in_channels, **options)``.

Registered detectors and their options (every option is keyword-only; an unknown one is a KitError):

* ``dsod300``, ``dsod300_plain``, ``dsod300_small``, ``dsod_tiny`` (trained from scratch):
  ``input_size`` (int or (H, W); 300, tiny 160), ``prediction`` ("dense" | "plain"), ``last_scale``
  ("2x2" official | "1x1" paper), ``norm`` ("bn" | "gn"), ``bn_momentum`` (PyTorch convention; Caffe's
  0.999 = ``layers.CAFFE_BN_MOMENTUM``), ``memory_efficient`` (checkpointed dense layers), ``concat``
  ("cat" | "buffer"), ``fusion`` ("early" | "late"), ``late_split`` (channel groups for late fusion,
  default (3, 3)), ``box_sizes`` ("voc" | "coco"), ``init`` ("scratch" only).
* ``ssd300_vgg16``: ``input_size``, ``init`` ("scratch" | "imagenet"), ``weights_path``, ``first_conv``
  ("mean" | "sum" | "copy-scaled", see :func:`dsod_depth.models.weights.adapt_first_conv`), ``fusion``,
  ``late_split``, ``box_sizes``.
* ``densenet121_dsod``: the ``ssd300_vgg16`` options plus ``prediction``, ``last_scale``, ``norm`` (new
  layers only), ``bn_momentum`` (all BatchNorms), ``memory_efficient`` (torchvision's).

Default boxes: at 300×300 with six maps, DSOD300's VOC (or COCO) boxes of REFERENCE §1
(:func:`~dsod_depth.detection.priors.dsod300_voc`) at the maps' actual sizes; otherwise
:func:`~dsod_depth.detection.priors.scaled_config` (sizes from 0.1 — COCO 0.07 — to 1.05 of the
shorter side). The feature-map sizes are found by running the network on a shape-only ("meta") tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from dsod_depth.detection.priors import PriorConfig, default_boxes, dsod300_coco, dsod300_voc, scaled_config
from dsod_depth.errors import KitError
from dsod_depth.models import presets
from dsod_depth.models.baselines import DenseNet121Backbone, SSDFeatures
from dsod_depth.models.dsod import DSODBackbone, DSODConfig
from dsod_depth.models.fusion import build_fused_features
from dsod_depth.models.heads import MultiBoxHead, SingleShotDetector
from dsod_depth.models.layers import DEFAULT_BN_MOMENTUM, count_parameters, set_bn_momentum
from dsod_depth.models.prediction import MultiScaleFeatures, build_prediction, second_channels_for
from dsod_depth.models.weights import FIRST_CONV_STRATEGIES, load_weights_file, resolve_weights_file
from dsod_depth.registry import Registry

DETECTORS: Registry[Callable[..., SingleShotDetector]] = Registry("detector")

BOX_SIZES = ("voc", "coco")
INITS = ("scratch", "imagenet")


def build_detector(name: str, *, num_classes: int, in_channels: int, **options) -> SingleShotDetector:
    """Build the registered detector ``name`` (see the module docstring for names and options).

    Returns a :class:`SingleShotDetector`: forward(images [N, in_channels, H, W]) →
    (loc [N, P, 4], conf [N, P, num_classes + 1]), attribute ``priors`` [P, 4] (cx, cy, w, h) in [0, 1].
    """
    builder = DETECTORS.get(name)
    accepted = detector_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise KitError(
            f"unknown option {unknown[0]!r} for detector {name!r}; accepted: {', '.join(sorted(accepted))}"
        )
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KitError(f"{label} must be a positive integer, got {value!r}")
    model = builder(num_classes=num_classes, in_channels=in_channels, **options)
    # How to rebuild this architecture (weights aside): what a checkpoint records for inference.
    model.info["build"] = build_spec(name, num_classes=num_classes, in_channels=in_channels, **options)
    return model


# Options that say where the first weights come from, not what the network is.
INIT_OPTIONS = ("init", "weights_path", "first_conv")


def build_spec(name: str, *, num_classes: int, in_channels: int, **options) -> dict:
    """Plain description of an architecture: ``{"name", "num_classes", "in_channels", "options"}``,
    the initialisation options dropped and tuples made lists, so that
    ``build_detector(spec["name"], num_classes=..., in_channels=..., **spec["options"])`` rebuilds it
    (untrained) and the spec fits a ``weights_only`` checkpoint."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    kept = {k: plain(v) for k, v in sorted(options.items()) if k not in INIT_OPTIONS}
    return {"name": name, "num_classes": num_classes, "in_channels": in_channels, "options": kept}


def detector_options(name: str) -> dict[str, object]:
    """The options detector ``name`` accepts, with their defaults."""
    params = inspect.signature(DETECTORS.get(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("num_classes", "in_channels")}


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise KitError(f"input_size must be a positive int or (height, width), got {input_size!r}")
    return size  # (H, W)


def feature_shapes(
    features: nn.Module, in_channels: int, input_size: tuple[int, int]
) -> list[tuple[int, int, int]]:
    """(C, H, W) of each map ``features`` produces for one [in_channels, *input_size] image.

    Runs the module on shape-only "meta" tensors (no arithmetic, no copy of the weights).
    """
    meta = {
        k: torch.empty_like(v, device="meta")
        for k, v in [*features.named_parameters(), *features.named_buffers()]
    }
    was_training = features.training
    features.eval()  # batch statistics of a 1×1 map of one image are undefined in training mode
    try:
        with torch.no_grad():
            maps = functional_call(features, meta, (torch.empty(1, in_channels, *input_size, device="meta"),))
    except (RuntimeError, ValueError) as exc:
        raise KitError(f"input_size {input_size} is too small for this detector: {exc}") from None
    finally:
        features.train(was_training)
    return [tuple(m.shape[1:]) for m in maps]


def prior_config(
    input_size: tuple[int, int], feature_sizes: Sequence[tuple[int, int]], box_sizes: str
) -> PriorConfig:
    """Default-box configuration for maps of ``feature_sizes`` ((H, W) each) on ``input_size`` (H, W)."""
    if box_sizes not in BOX_SIZES:
        raise KitError(f"unknown box_sizes {box_sizes!r}; choose one of: {', '.join(BOX_SIZES)}")
    if tuple(input_size) == (300, 300) and len(feature_sizes) == 6:
        return (dsod300_voc if box_sizes == "voc" else dsod300_coco)(feature_sizes)
    h, w = input_size
    return scaled_config((w, h), feature_sizes, min_ratio=0.1 if box_sizes == "voc" else 0.07)


def assemble(
    make_features: Callable[[int], nn.Module],
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    fusion: str,
    late_split: Sequence[int],
    box_sizes: str,
    head: dict,
    info: dict,
) -> SingleShotDetector:
    """Features (with fusion) + default boxes + multibox head → :class:`SingleShotDetector`."""
    features = build_fused_features(make_features, in_channels, fusion=fusion, late_split=late_split)
    shapes = feature_shapes(features, in_channels, input_size)
    config = prior_config(input_size, [s[1:] for s in shapes], box_sizes)
    multibox = MultiBoxHead(features.out_channels, config.boxes_per_location(), num_classes, **head)
    model = SingleShotDetector(
        features, multibox, default_boxes(config), in_channels=in_channels, input_size=input_size
    )
    model.info = {
        **info,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "input_size": list(input_size),
        "fusion": fusion,
        "late_split": list(late_split) if fusion == "late" else None,
        "box_sizes": box_sizes,
        "feature_shapes": [list(s) for s in shapes],
        "num_priors": int(model.priors.shape[0]),
        "num_parameters": count_parameters(model),
    }
    return model


def build_dsod(
    config: DSODConfig,
    *,
    name: str,
    num_classes: int,
    in_channels: int,
    input_size: int | Sequence[int] = 300,
    prediction: str = "dense",
    last_scale: str = "2x2",
    norm: str = "bn",
    bn_momentum: float = DEFAULT_BN_MOMENTUM,
    memory_efficient: bool = False,
    concat: str = "cat",
    fusion: str = "early",
    late_split: Sequence[int] = (3, 3),
    box_sizes: str = "voc",
    init: str = "scratch",
) -> SingleShotDetector:
    """A DSOD detector of ``config`` (trained from scratch: ``init`` must be "scratch")."""
    if init != "scratch":
        raise KitError(
            f"{name} is trained from scratch (init='scratch'); for ImageNet initialisation use "
            "ssd300_vgg16 or densenet121_dsod"
        )
    size = _size(input_size)
    unit = {"norm": norm, "bn_momentum": bn_momentum}
    second = second_channels_for(prediction, config.half_channels)

    def make_features(channels: int) -> nn.Module:
        backbone = DSODBackbone(
            channels, config, second_channels=second, memory_efficient=memory_efficient, concat=concat, **unit
        )
        structure = build_prediction(
            prediction, backbone.first_channels, second, config.half_channels, last_scale=last_scale, **unit
        )
        return MultiScaleFeatures(backbone, structure)

    info = {
        "detector": name,
        "init": "scratch",
        "first_conv": None,
        "weights_file": None,
        "prediction": prediction,
        "last_scale": last_scale,
        "norm": norm,
        "bn_momentum": bn_momentum,
        "memory_efficient": memory_efficient,
        "concat": concat,
    }
    return assemble(
        make_features,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=size,
        fusion=fusion,
        late_split=late_split,
        box_sizes=box_sizes,
        head=unit,
        info=info,
    )


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
    """SSD300 with torchvision's VGG16 (module :mod:`~dsod_depth.models.baselines`), SSD heads."""
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
        input_size=_size(input_size),
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
        input_size=_size(input_size),
        fusion=fusion,
        late_split=late_split,
        box_sizes=box_sizes,
        head=unit,
        info=info,
    )
    set_bn_momentum(model, bn_momentum)  # torchvision's BatchNorms too
    return model


def _register_dsod(name: str, config: DSODConfig, **defaults) -> None:
    def builder(*, num_classes: int, in_channels: int, **options) -> SingleShotDetector:
        return build_dsod(
            config, name=name, num_classes=num_classes, in_channels=in_channels, **{**defaults, **options}
        )

    # Advertise build_dsod's options with this preset's defaults (used by detector_options()).
    params = [p for k, p in inspect.signature(build_dsod).parameters.items() if k not in ("config", "name")]
    builder.__signature__ = inspect.Signature(
        [p.replace(default=defaults[p.name]) if p.name in defaults else p for p in params]
    )
    builder.__doc__ = f"DSOD preset {name!r}: {config}."
    DETECTORS.register(name)(builder)


_register_dsod("dsod300", presets.DSOD300)
_register_dsod("dsod300_plain", presets.DSOD300, prediction="plain")
_register_dsod("dsod300_small", presets.DSOD300_SMALL)
_register_dsod("dsod_tiny", presets.DSOD_TINY, input_size=presets.DSOD_TINY_INPUT_SIZE)
