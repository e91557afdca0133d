"""dsod-depth: DSOD detectors trained from scratch on depth, HHA and RGB-D images."""

__version__ = "0.1.0"
