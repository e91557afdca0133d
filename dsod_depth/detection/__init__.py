"""Detection core: boxes, default boxes, box coding, matching, loss, post-processing (pure tensor code)."""

from dsod_depth.detection.boxes import box_iou, cxcywh_to_xyxy, xywh_to_xyxy, xyxy_to_cxcywh, xyxy_to_xywh
from dsod_depth.detection.coder import DEFAULT_VARIANCES, decode, encode
from dsod_depth.detection.loss import MultiBoxLoss, build_targets, mine_hard_negatives
from dsod_depth.detection.matching import match
from dsod_depth.detection.postprocess import postprocess
from dsod_depth.detection.priors import PriorConfig, default_boxes, dsod300_coco, dsod300_voc, scaled_config

__all__ = [
    "DEFAULT_VARIANCES",
    "MultiBoxLoss",
    "PriorConfig",
    "box_iou",
    "build_targets",
    "cxcywh_to_xyxy",
    "decode",
    "default_boxes",
    "dsod300_coco",
    "dsod300_voc",
    "encode",
    "match",
    "mine_hard_negatives",
    "postprocess",
    "scaled_config",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
]
