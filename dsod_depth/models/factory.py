"""Detector registry: ``build_detector(name, *, num_classes, in_channels, **options)``.

The builders live beside their families and register themselves here when :mod:`dsod_depth.models`
is imported: the DSOD presets in :mod:`~dsod_depth.models.dsod_detectors`, the ImageNet-initialisable
baselines in :mod:`~dsod_depth.models.baselines`; each ends with
:func:`~dsod_depth.models.detector.assemble`.

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

Default boxes: see :mod:`dsod_depth.models.detector`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from dsod_depth.errors import KitError
from dsod_depth.models.detector import SingleShotDetector
from dsod_depth.registry import Registry

DETECTORS: Registry[Callable[..., SingleShotDetector]] = Registry("detector")


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
    :func:`rebuild_detector` rebuilds it (untrained) and the spec fits a ``weights_only`` checkpoint."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    kept = {k: plain(v) for k, v in sorted(options.items()) if k not in INIT_OPTIONS}
    return {"name": name, "num_classes": num_classes, "in_channels": in_channels, "options": kept}


def rebuild_detector(spec: dict) -> SingleShotDetector:
    """The untrained detector a :func:`build_spec` describes (e.g. a checkpoint's inference record's
    ``build``)."""
    return build_detector(
        spec["name"], num_classes=spec["num_classes"], in_channels=spec["in_channels"], **spec["options"]
    )


def detector_options(name: str) -> dict[str, object]:
    """The options detector ``name`` accepts, with their defaults."""
    params = inspect.signature(DETECTORS.get(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("num_classes", "in_channels")}
