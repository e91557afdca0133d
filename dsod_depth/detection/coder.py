"""Centre-size box coding with variances (SSD/DSOD "CENTER_SIZE" coder).

For a default box p = (p_cx, p_cy, p_w, p_h) and a ground-truth box g, the regression target is
``((g_cx - p_cx) / p_w / v0, (g_cy - p_cy) / p_h / v1, log(g_w / p_w) / v2, log(g_h / p_h) / v3)``
with variances v = (0.1, 0.1, 0.2, 0.2) as in the official code (REFERENCE §1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dsod_depth.detection.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)


def encode(
    boxes_xyxy: torch.Tensor, priors_cxcywh: torch.Tensor, variances: Sequence[float] = DEFAULT_VARIANCES
) -> torch.Tensor:
    """Regression targets [..., P, 4] for boxes [..., P, 4] (xyxy) against priors [P, 4] (cx, cy, w, h).

    Boxes and priors share units (normalised image coordinates in the kit). Boxes must
    have positive width and height.
    """
    var = boxes_xyxy.new_tensor(variances)
    g = xyxy_to_cxcywh(boxes_xyxy)
    centre = (g[..., :2] - priors_cxcywh[..., :2]) / priors_cxcywh[..., 2:] / var[:2]
    size = torch.log(g[..., 2:] / priors_cxcywh[..., 2:]) / var[2:]
    return torch.cat((centre, size), dim=-1)


def decode(
    loc: torch.Tensor, priors_cxcywh: torch.Tensor, variances: Sequence[float] = DEFAULT_VARIANCES
) -> torch.Tensor:
    """Boxes [..., P, 4] (xyxy, prior units) from regression outputs [..., P, 4]; inverts :func:`encode`."""
    var = loc.new_tensor(variances)
    centre = priors_cxcywh[..., :2] + loc[..., :2] * var[:2] * priors_cxcywh[..., 2:]
    size = priors_cxcywh[..., 2:] * torch.exp(loc[..., 2:] * var[2:])
    return cxcywh_to_xyxy(torch.cat((centre, size), dim=-1))
