"""Using a trained detector outside the study: :class:`Detector` on raw RGB-D frames, and ONNX export."""

from dsod_depth.lazy import lazy_exports

__all__ = ["Detector", "Prediction"]

_LAZY = {"Detector": "dsod_depth.inference.detector", "Prediction": "dsod_depth.inference.detector"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
