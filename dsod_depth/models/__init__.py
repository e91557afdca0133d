"""Detectors: the DSOD family trained from scratch and ImageNet-initialisable baselines.

``build_detector(name, *, num_classes, in_channels, **options)`` is the entry point (DESIGN.md
"Model contract"); ``DETECTORS.list()`` names what can be built.
"""

from dsod_depth.models.factory import DETECTORS, build_detector, detector_options
from dsod_depth.models.heads import L2Norm, MultiBoxHead, SingleShotDetector
from dsod_depth.models.inference import prepare_for_inference
from dsod_depth.models.layers import CAFFE_BN_MOMENTUM, count_parameters
from dsod_depth.models.weights import adapt_first_conv

__all__ = [
    "CAFFE_BN_MOMENTUM",
    "DETECTORS",
    "L2Norm",
    "MultiBoxHead",
    "SingleShotDetector",
    "adapt_first_conv",
    "build_detector",
    "count_parameters",
    "detector_options",
    "prepare_for_inference",
]
