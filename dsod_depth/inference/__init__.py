"""Using a trained detector outside the study.

* :mod:`.detector` — :class:`Detector`: a checkpoint on raw RGB-D frames, encoded as for training;
* :mod:`.frames` — users' files: gathering frames, depth formats and units, colour images;
* :mod:`.detect` — ``dsod-depth detect``: frames to COCO files, figures and point clouds;
* :mod:`.export` — ONNX export with metadata, checked in onnxruntime.
"""

from dsod_depth.lazy import lazy_exports

__all__ = ["Detector", "Prediction"]

_LAZY = {"Detector": "dsod_depth.inference.detector", "Prediction": "dsod_depth.inference.detector"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
