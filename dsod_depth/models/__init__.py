"""Detectors: the DSOD family trained from scratch and ImageNet-initialisable baselines.

``build_detector(name, *, num_classes, in_channels, **options)`` is the entry point (DESIGN.md
"Model contract"); ``DETECTORS.list()`` names what can be built.

Reading order: :mod:`.layers` (shared units) → :mod:`.dsod` (backbone) and :mod:`.prediction` (the
multi-scale structure) → :mod:`.heads` → :mod:`.detector` (features + default boxes + heads) →
:mod:`.dsod_detectors` and :mod:`.baselines` (each family's builders, registered by name) →
:mod:`.factory` (the registry and ``build_detector``).
"""

# Each family registers its detectors in factory.DETECTORS when its module is imported.
from dsod_depth.models import baselines, dsod_detectors  # noqa: F401
from dsod_depth.models.detector import SingleShotDetector
from dsod_depth.models.factory import DETECTORS, build_detector, detector_options, rebuild_detector
from dsod_depth.models.heads import L2Norm, MultiBoxHead
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
    "rebuild_detector",
]
