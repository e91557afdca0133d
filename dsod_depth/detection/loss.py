"""The MultiBox loss of SSD/DSOD: smooth-L1 localisation + softmax cross-entropy with
hard-negative mining, normalised by the number of matched default boxes (REFERENCE §1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dsod_depth.detection.coder import DEFAULT_VARIANCES, encode
from dsod_depth.detection.matching import match


def build_targets(
    targets: Sequence[dict[str, torch.Tensor]],
    priors_cxcywh: torch.Tensor,
    *,
    iou_threshold: float = 0.5,
    variances: Sequence[float] = DEFAULT_VARIANCES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-default-box training targets for a batch.

    Args:
        targets: one dict per image with ``boxes`` [G, 4] xyxy normalised and ``labels`` [G]
            int64, 0-based object classes.
        priors_cxcywh: [P, 4] default boxes.

    Returns:
        loc_targets float [N, P, 4] (zeros for background) and cls_targets int64 [N, P]
        (0 = background, object class c → c + 1).
    """
    loc_t, cls_t = [], []
    for target in targets:
        gt_boxes = target["boxes"].to(priors_cxcywh)
        gt_labels = target["labels"].to(device=priors_cxcywh.device, dtype=torch.long)
        assigned = match(gt_boxes, priors_cxcywh, iou_threshold)  # [P]
        positive = assigned >= 0
        classes = torch.zeros_like(assigned)
        classes[positive] = gt_labels[assigned[positive]] + 1
        loc = torch.zeros_like(priors_cxcywh)
        if positive.any():
            loc[positive] = encode(gt_boxes[assigned[positive]], priors_cxcywh[positive], variances)
        loc_t.append(loc)
        cls_t.append(classes)
    return torch.stack(loc_t), torch.stack(cls_t)


def mine_hard_negatives(
    background_loss: torch.Tensor, positive: torch.Tensor, neg_pos_ratio: float, min_negatives: int = 0
) -> torch.Tensor:
    """Select the hardest negatives per image.

    Args:
        background_loss: [N, P] cross-entropy of each default box against the background class.
        positive: bool [N, P] matched default boxes (never selected as negatives).
        neg_pos_ratio: negatives per positive (3 in SSD/DSOD).
        min_negatives: negatives kept in an image with no positives (0 = Caffe behaviour).

    Returns:
        bool [N, P]: the chosen negatives; image i has
        ``min(max(ratio * num_pos_i, min_negatives), num_negatives_i)`` of them.
    """
    num_pos = positive.sum(dim=1)  # [N]
    num_neg = (num_pos * neg_pos_ratio).floor().long().clamp(min=min_negatives)
    num_neg = torch.minimum(num_neg, (~positive).sum(dim=1))
    loss = background_loss.detach().masked_fill(positive, float("-inf"))
    order = loss.argsort(dim=1, descending=True, stable=True)  # [N, P]
    rank = order.argsort(dim=1)  # [N, P] rank of each box by loss
    return rank < num_neg.unsqueeze(1)


class MultiBoxLoss(torch.nn.Module):
    """SSD/DSOD training loss.

    ``forward(loc, conf, priors, targets)`` with loc [N, P, 4], conf [N, P, C + 1] and
    targets as in :func:`build_targets` returns a dict with ``loss`` (weighted sum),
    ``loss_loc``, ``loss_conf`` and ``num_pos``. Both terms are summed over images and
    divided by the number of positives in the batch (at least 1), as the Caffe
    ``MultiBoxLoss`` layer with VALID normalisation does; an image without objects
    contributes ``min_negatives`` background terms and nothing else.
    """

    def __init__(
        self,
        *,
        neg_pos_ratio: float = 3.0,
        iou_threshold: float = 0.5,
        variances: Sequence[float] = DEFAULT_VARIANCES,
        min_negatives: int = 0,
        weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.neg_pos_ratio = neg_pos_ratio
        self.iou_threshold = iou_threshold
        self.variances = tuple(variances)
        self.min_negatives = min_negatives
        self.weights = {"loss_loc": 1.0, "loss_conf": 1.0, **(weights or {})}

    def loss_loc(self, loc: torch.Tensor, loc_t: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """Smooth-L1 (β = 1, Caffe σ = 1) summed over positive boxes and coordinates."""
        return F.smooth_l1_loss(loc[positive], loc_t[positive], beta=1.0, reduction="sum")

    def loss_conf(self, conf: torch.Tensor, cls_t: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy summed over positives and mined hard negatives."""
        ce = F.cross_entropy(conf.flatten(0, 1), cls_t.flatten(), reduction="none").view_as(cls_t)  # [N, P]
        # For negatives the target is background, so ce is their background loss.
        negative = mine_hard_negatives(ce, positive, self.neg_pos_ratio, self.min_negatives)
        return ce[positive | negative].sum()

    def forward(
        self,
        loc: torch.Tensor,
        conf: torch.Tensor,
        priors_cxcywh: torch.Tensor,
        targets: Sequence[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            loc_t, cls_t = build_targets(
                targets, priors_cxcywh, iou_threshold=self.iou_threshold, variances=self.variances
            )
        positive = cls_t > 0  # [N, P]
        num_pos = positive.sum()
        norm = num_pos.clamp(min=1).to(loc.dtype)
        losses = {
            "loss_loc": self.loss_loc(loc.float(), loc_t, positive) / norm,
            "loss_conf": self.loss_conf(conf.float(), cls_t, positive) / norm,
        }
        losses["loss"] = sum(self.weights[k] * v for k, v in losses.items())
        losses["num_pos"] = num_pos
        return losses
