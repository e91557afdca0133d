"""The single-shot detector: features + default boxes + multibox head (the model contract, DESIGN.md).

:func:`assemble` is what every registered builder ends with: it wraps the family's feature extractor
for early or late fusion (:mod:`~dsod_depth.models.fusion`), finds the feature-map sizes, lays the
default boxes on them and puts a :class:`~dsod_depth.models.heads.MultiBoxHead` on top.

Default boxes: at 300×300 with six maps, DSOD300's VOC (or COCO) boxes of REFERENCE §1
(:func:`~dsod_depth.detection.priors.dsod300_voc`) at the maps' actual sizes; otherwise
:func:`~dsod_depth.detection.priors.scaled_config` (sizes from 0.1 — COCO 0.07 — to 1.05 of the
shorter side). The feature-map sizes are found by running the network on a shape-only ("meta") tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from dsod_depth.detection.priors import PriorConfig, default_boxes, dsod300_coco, dsod300_voc, scaled_config
from dsod_depth.errors import KitError
from dsod_depth.models.fusion import build_fused_features
from dsod_depth.models.heads import MultiBoxHead
from dsod_depth.models.layers import count_parameters

BOX_SIZES = ("voc", "coco")


class SingleShotDetector(nn.Module):
    """features → multibox head, with the matching default boxes (the model contract, DESIGN.md).

    features:    module mapping images [N, in_channels, H, W] to a list of maps (finest first).
    head:        :class:`~dsod_depth.models.heads.MultiBoxHead` over those maps.
    priors:      float32 [P, 4] default boxes (cx, cy, w, h) normalised to [0, 1], same order as the head.
    in_channels: channels the model reads; input_size: (height, width) the priors were built for.
    info:        plain description of how the model was built (name, options, initialisation), for
                 experiment outputs.

    forward(images [N, in_channels, H, W] float32) → (loc [N, P, 4], conf [N, P, num_classes + 1]) raw
    (un-decoded offsets, un-normalised scores); class 0 is background.
    """

    def __init__(
        self,
        features: nn.Module,
        head: MultiBoxHead,
        priors: torch.Tensor,
        *,
        in_channels: int,
        input_size: tuple[int, int],
        info: dict | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.in_channels = in_channels
        self.input_size = tuple(input_size)
        self.num_classes = head.num_classes
        self.info = dict(info or {})
        # Set by models.inference.prepare_for_inference: convert inputs to NHWC for faster CPU kernels.
        self.channels_last = False
        # Not persistent: default boxes are derived from the architecture, never learned or loaded.
        self.register_buffer("priors", priors.to(torch.float32), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise KitError(
                f"the model reads images [N, {self.in_channels}, H, W] but got shape {tuple(images.shape)}; "
                f"check the modality's channel count or build the model with in_channels={images.shape[1]}"
                if images.dim() == 4
                else f"images must be [N, C, H, W], got shape {tuple(images.shape)}"
            )
        if tuple(images.shape[-2:]) != self.input_size:
            raise KitError(
                f"the model's default boxes are built for {self.input_size[0]}×{self.input_size[1]} inputs "
                f"but got {images.shape[-2]}×{images.shape[-1]}; resize the images or build with "
                f"input_size={tuple(images.shape[-2:])}"
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loc, conf = self.head(self.features(images))
        if loc.shape[1] != self.priors.shape[0]:  # a bug in a features module, not a user error
            raise RuntimeError(f"head produced {loc.shape[1]} boxes for {self.priors.shape[0]} priors")
        return loc, conf


def input_size_hw(input_size: int | Sequence[int]) -> tuple[int, int]:
    """A builder's ``input_size`` option (side of a square, or (H, W)) → (H, W); KitError otherwise."""
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
    """Features (with fusion) + default boxes + multibox head → :class:`SingleShotDetector`.

    make_features: in_channels → module mapping [N, in_channels, H, W] to maps (finest first) with an
                   ``out_channels`` list; called once (early fusion) or once per group (late fusion).
    head:          keyword options of :class:`~dsod_depth.models.heads.MultiBoxHead`.
    info:          the builder's description of the model; the assembled facts (sizes, boxes,
                   parameter count) are added to it as ``model.info``.
    """
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
