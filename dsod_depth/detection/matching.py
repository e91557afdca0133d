"""Assigning ground-truth boxes to default boxes (SSD "bipartite + per-prediction" matching).

Follows the Caffe ``MatchBBox`` used by the official SSD/DSOD code:

1. Bipartite stage: repeatedly take the (ground truth, default box) pair with the
   highest remaining IoU, assign it, and remove both from further bipartite
   choices. Every ground truth that overlaps any default box thus gets its own
   best default box, even when the IoU is below the threshold ("forced" match).
2. Per-prediction stage: every still-unassigned default box whose best IoU with
   any ground truth is ≥ ``iou_threshold`` is assigned to that ground truth.

Ties are broken by the lowest index (ground truth first, then default box), the
order ``torch.argmax`` returns.
"""

from __future__ import annotations

import torch

from dsod_depth.detection.boxes import box_iou, cxcywh_to_xyxy


def match(
    gt_boxes: torch.Tensor,
    priors_cxcywh: torch.Tensor,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Index of the ground truth assigned to each default box.

    Args:
        gt_boxes: [G, 4] xyxy, same units as the priors (normalised in the kit).
        priors_cxcywh: [P, 4] default boxes (cx, cy, w, h).
        iou_threshold: per-prediction stage threshold (IoU ≥ threshold matches).

    Returns:
        int64 [P]: index into ``gt_boxes`` for matched default boxes, -1 for background.
    """
    num_priors = priors_cxcywh.shape[0]
    assigned = torch.full((num_priors,), -1, dtype=torch.long, device=priors_cxcywh.device)
    num_gt = gt_boxes.shape[0]
    if num_gt == 0:
        return assigned
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors_cxcywh))  # [G, P]

    # Stage 1 (bipartite). Hand-written: no library offers this greedy global-max
    # assignment; G is small (tens), so a loop over G with vectorised argmax is cheap.
    remaining = iou.clone()
    for _ in range(num_gt):
        flat = int(torch.argmax(remaining))
        g, p = divmod(flat, num_priors)
        if remaining[g, p] <= 0:  # the rest overlap nothing (Caffe keeps only IoU > 0 pairs)
            break
        assigned[p] = g
        remaining[g, :] = -1.0
        remaining[:, p] = -1.0

    # Stage 2 (per prediction): the rest take their best ground truth if it clears the threshold.
    best_iou, best_gt = iou.max(dim=0)  # [P], [P]
    free = (assigned < 0) & (best_iou >= iou_threshold)
    assigned[free] = best_gt[free]
    return assigned
