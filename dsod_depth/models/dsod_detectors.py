"""DSOD detectors trained from scratch: :func:`build_dsod` and the registered presets.

``dsod300``, ``dsod300_plain`` (plain prediction structure), ``dsod300_small`` and ``dsod_tiny`` are
:func:`build_dsod` with a configuration of :mod:`~dsod_depth.models.presets` and the preset's defaults
(options in :mod:`~dsod_depth.models.factory`). The network is :mod:`~dsod_depth.models.dsod`'s
backbone and :mod:`~dsod_depth.models.prediction`'s dense (or plain) structure; the head and default
boxes come from :func:`~dsod_depth.models.detector.assemble`.

(A module of its own rather than the end of ``dsod.py``: ``presets.py`` imports ``DSODConfig`` from
``dsod.py``, so registering the presets there would be an import cycle, and ``dsod.py`` would pass
the ~400-line mark.)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from torch import nn

from dsod_depth.errors import KitError
from dsod_depth.models import presets
from dsod_depth.models.detector import SingleShotDetector, assemble, input_size_hw
from dsod_depth.models.dsod import DSODBackbone, DSODConfig
from dsod_depth.models.factory import DETECTORS
from dsod_depth.models.layers import DEFAULT_BN_MOMENTUM
from dsod_depth.models.prediction import MultiScaleFeatures, build_prediction, second_channels_for


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
    size = input_size_hw(input_size)
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
