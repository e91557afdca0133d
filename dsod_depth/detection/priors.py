"""Default boxes ("priors") of SSD/DSOD.

Follows the Caffe ``PriorBox`` layer used by the official DSOD code: for every
feature-map cell (row-major) the boxes are, in order, the ``min_size`` square,
the ``sqrt(min_size * max_size)`` square, then for each aspect ratio r the box
(min·√r, min/√r) followed by its transpose (the "flip"). Centres sit at
``(j + offset) * step`` pixels; nothing is clipped. Output is normalised to the
image size in centre-size form (cx, cy, w, h).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PriorConfig:
    """Everything that defines a set of default boxes.

    image_size:    (width, height) of the network input in pixels.
    feature_sizes: (height, width) of each prediction map, coarsest last.
    steps:         pixel distance between neighbouring centres per map; ``None`` uses image / feature size.
    min_sizes, max_sizes: box sizes in pixels per map (REFERENCE §1).
    aspect_ratios: extra ratios per map; each r > 1 adds (r, 1/r).
    offset:        centre offset within a cell, as a fraction of the step.
    clip:          clamp boxes to [0, 1] (the official DSOD code does not).
    """

    image_size: tuple[int, int]
    feature_sizes: tuple[tuple[int, int], ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    steps: tuple[float, ...] | None = None
    offset: float = 0.5
    clip: bool = False

    def __post_init__(self) -> None:
        n = len(self.feature_sizes)
        for name in ("min_sizes", "max_sizes", "aspect_ratios"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} feature maps")
        if self.steps is not None and len(self.steps) != n:
            raise ValueError(f"steps has {len(self.steps)} entries for {n} feature maps")

    def boxes_per_location(self) -> list[int]:
        """Number of default boxes at each cell, per map (2 squares + 2 per extra ratio)."""
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def num_priors(self) -> int:
        return sum(h * w * k for (h, w), k in zip(self.feature_sizes, self.boxes_per_location()))


# REFERENCE §1: DSOD300 / SSD300 on a 300×300 input. The last map is 2×2 as in the
# official code (the paper's figure shows 1×1): 8,744 boxes.
DSOD300_FEATURE_SIZES = ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (2, 2))
_DSOD300_STEPS = (8, 16, 32, 64, 100, 300)
_DSOD300_RATIOS = ((2.0,), (2.0, 3.0), (2.0, 3.0), (2.0, 3.0), (2.0,), (2.0,))


def dsod300_voc(feature_sizes: Sequence[tuple[int, int]] = DSOD300_FEATURE_SIZES) -> PriorConfig:
    """The PASCAL VOC default boxes of DSOD300 (min sizes 30..264)."""
    return PriorConfig(
        image_size=(300, 300),
        feature_sizes=tuple(tuple(s) for s in feature_sizes),
        min_sizes=(30, 60, 111, 162, 213, 264),
        max_sizes=(60, 111, 162, 213, 264, 315),
        aspect_ratios=_DSOD300_RATIOS,
        steps=_DSOD300_STEPS,
    )


def dsod300_coco(feature_sizes: Sequence[tuple[int, int]] = DSOD300_FEATURE_SIZES) -> PriorConfig:
    """The COCO default boxes of DSOD300 (min sizes 21..261)."""
    return PriorConfig(
        image_size=(300, 300),
        feature_sizes=tuple(tuple(s) for s in feature_sizes),
        min_sizes=(21, 45, 99, 153, 207, 261),
        max_sizes=(45, 99, 153, 207, 261, 315),
        aspect_ratios=_DSOD300_RATIOS,
        steps=_DSOD300_STEPS,
    )


def scaled_config(
    image_size: tuple[int, int],
    feature_sizes: Sequence[tuple[int, int]],
    *,
    min_ratio: float = 0.1,
    max_ratio: float = 1.05,
    aspect_ratios: Sequence[Sequence[float]] | None = None,
) -> PriorConfig:
    """Default boxes for any input size: sizes spread linearly between ``min_ratio`` and
    ``max_ratio`` of the shorter image side (at 300×300 with 6 maps this is close to the
    DSOD300 VOC sizes); steps are image size / feature size."""
    n = len(feature_sizes)
    side = min(image_size)
    edges = [side * (min_ratio + (max_ratio - min_ratio) * k / n) for k in range(n + 1)]
    if aspect_ratios is None:
        aspect_ratios = [(2.0,)] + [(2.0, 3.0)] * max(n - 3, 0) + [(2.0,)] * min(2, n - 1)
    return PriorConfig(
        image_size=tuple(image_size),
        feature_sizes=tuple(tuple(s) for s in feature_sizes),
        min_sizes=tuple(round(e, 3) for e in edges[:-1]),
        max_sizes=tuple(round(e, 3) for e in edges[1:]),
        aspect_ratios=tuple(tuple(r) for r in aspect_ratios),
    )


def default_boxes(config: PriorConfig) -> torch.Tensor:
    """All default boxes, float32 [P, 4] as normalised (cx, cy, w, h).

    Order: map by map; within a map, cells row-major; within a cell, the order of
    the module docstring. P = ``config.num_priors()``.
    """
    img_w, img_h = config.image_size
    per_map = []
    for k, (fh, fw) in enumerate(config.feature_sizes):
        if config.steps is None:
            step_x, step_y = img_w / fw, img_h / fh
        else:
            step_x = step_y = float(config.steps[k])
        min_s, max_s = float(config.min_sizes[k]), float(config.max_sizes[k])
        # Box shapes at one cell, in pixels: [K, 2] (w, h).
        shapes = [(min_s, min_s), (math.sqrt(min_s * max_s),) * 2]
        for r in config.aspect_ratios[k]:
            sr = math.sqrt(r)
            shapes += [(min_s * sr, min_s / sr), (min_s / sr, min_s * sr)]
        wh = torch.tensor(shapes, dtype=torch.float64) / torch.tensor([img_w, img_h], dtype=torch.float64)
        ys, xs = torch.meshgrid(
            (torch.arange(fh, dtype=torch.float64) + config.offset) * step_y / img_h,
            (torch.arange(fw, dtype=torch.float64) + config.offset) * step_x / img_w,
            indexing="ij",
        )
        centres = torch.stack((xs, ys), dim=-1).reshape(-1, 1, 2)  # [fh*fw, 1, 2]
        centres = centres.expand(-1, wh.shape[0], 2)  # [fh*fw, K, 2]
        sizes = wh.unsqueeze(0).expand(centres.shape[0], -1, 2)  # [fh*fw, K, 2]
        per_map.append(torch.cat((centres, sizes), dim=-1).reshape(-1, 4))  # [fh*fw*K, 4]
    boxes = torch.cat(per_map, dim=0)
    if config.clip:
        boxes = boxes.clamp(0.0, 1.0)
    return boxes.to(torch.float32)
