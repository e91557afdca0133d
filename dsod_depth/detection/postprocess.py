"""From raw network outputs to detections: decode, per-class NMS, score threshold, top-k.

Defaults follow the official DSOD/SSD ``DetectionOutput`` layer (REFERENCE §1): score ≥ 0.01,
per-class NMS at IoU 0.45 over at most the 400 best boxes of each class, then the 200 best
detections of the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms

from dsod_depth.detection.coder import DEFAULT_VARIANCES, decode


def postprocess(
    loc: torch.Tensor,
    conf: torch.Tensor,
    priors_cxcywh: torch.Tensor,
    *,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    top_k: int = 400,
    keep_top_k: int = 200,
    variances: Sequence[float] = DEFAULT_VARIANCES,
) -> list[dict[str, torch.Tensor]]:
    """Detections per image.

    Args:
        loc: [N, P, 4] box regression outputs.
        conf: [N, P, C + 1] class logits, column 0 = background.
        priors_cxcywh: [P, 4] default boxes, normalised.

    Returns:
        One dict per image: ``boxes`` float [K, 4] xyxy normalised (not clipped), ``scores``
        [K] softmax probabilities, ``labels`` int64 [K] 0-based object classes; sorted by
        descending score, K ≤ keep_top_k.
    """
    boxes = decode(loc.float(), priors_cxcywh.float(), variances)  # [N, P, 4]
    probs = conf.float().softmax(dim=-1)[..., 1:]  # [N, P, C] without background
    num_priors, num_classes = probs.shape[1:]
    k = min(top_k, num_priors)
    results = []
    for boxes_per_image, probs_per_image in zip(boxes, probs):
        # The k best default boxes of each class, as in Caffe's per-class top_k before NMS.
        scores, prior_idx = probs_per_image.t().topk(k, dim=1)  # [C, k], [C, k]
        labels = torch.arange(num_classes, device=probs.device).unsqueeze(1).expand(-1, k)  # [C, k]
        keep = scores >= score_threshold
        scores, prior_idx, labels = scores[keep], prior_idx[keep], labels[keep]
        cand_boxes = boxes_per_image[prior_idx]  # [M, 4]
        kept = batched_nms(cand_boxes, scores, labels, nms_threshold)[:keep_top_k]  # sorted by score
        results.append({"boxes": cand_boxes[kept], "scores": scores[kept], "labels": labels[kept]})
    return results


def to_frame_pixels(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised detections → pixels of a ``height`` × ``width`` frame.

    Args:
        boxes: float [K, 4] xyxy normalised to [0, 1], unclipped (as :func:`postprocess` returns them).

    Returns:
        (float32 [K, 4] xyxy pixels clipped to the frame, bool [K] True where the clipped box still
        has positive width and height). Boxes leave the network unclipped; the SSD evaluation
        scripts clip them to the image before writing pixel boxes, and so does the kit.
    """
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
    pixels = torch.minimum((boxes.float() * scale).clamp(min=0), scale)
    keep = (pixels[:, 2] > pixels[:, 0]) & (pixels[:, 3] > pixels[:, 1])
    return pixels, keep
