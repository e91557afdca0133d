"""Box format conversions and overlaps.

Formats are named by their coordinates:
``xyxy`` = (x1, y1, x2, y2) corners, ``cxcywh`` = (centre x, centre y, width, height),
``xywh`` = (x1, y1, width, height) as in COCO JSON. All functions work on the last
dimension, so any leading batch shape is kept.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_convert, box_iou

__all__ = [
    "xyxy_to_cxcywh",
    "cxcywh_to_xyxy",
    "xyxy_to_xywh",
    "xywh_to_xyxy",
    "box_iou",
    "box_area",
]


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] corners → [..., 4] centre-size, same units."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] centre-size → [..., 4] corners, same units."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4] corners → [N, 4] COCO (x, y, w, h)."""
    return box_convert(boxes, "xyxy", "xywh")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4] COCO (x, y, w, h) → [N, 4] corners."""
    return box_convert(boxes, "xywh", "xyxy")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] xyxy → [...] area (continuous convention: no +1)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
