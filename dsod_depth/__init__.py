"""dsod-depth: DSOD detectors trained from scratch on depth, HHA and RGB-D images."""

from dsod_depth.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["Detector", "__version__"]

# Resolved on first use: `import dsod_depth` (the CLI's start-up) stays free of torch.
__getattr__, __dir__ = lazy_exports(__name__, {"Detector": "dsod_depth.inference.detector"}, __all__)
