"""Data: the sample contract, datasets, the prepared store, joint augmentation and the loader.

``RGBDSample`` (:mod:`.sample`) is imported eagerly; everything else loads on first use, so that
importing the package (e.g. for the CLI's list of preparers) does not pull in h5py, torch or Open3D.
"""

from __future__ import annotations

from dsod_depth.data.sample import RGBDSample
from dsod_depth.lazy import lazy_exports

# Public name → module that defines it (loaded lazily, PEP 562).
_LAZY = {
    "load_prepared": "dsod_depth.data.store",
    "PreparedSplit": "dsod_depth.data.store",
    "write_store": "dsod_depth.data.store_writer",
    "SplitSource": "dsod_depth.data.store_writer",
    "PREPARERS": "dsod_depth.data.prepare",
    "prepare_synthrooms": "dsod_depth.data.prepare",
    "SynthRooms": "dsod_depth.data.synthrooms",
    "SynthRoomsConfig": "dsod_depth.data.synthrooms",
    "TensorSample": "dsod_depth.data.transforms",
    "SSDAugment": "dsod_depth.data.transforms",
    "Resize": "dsod_depth.data.transforms",
    "DetectionDataset": "dsod_depth.data.loader",
    "parse_modality": "dsod_depth.data.loader",
    "collate": "dsod_depth.data.loader",
    "worker_init_fn": "dsod_depth.data.loader",
    "make_loader": "dsod_depth.data.loader",
}

__all__ = ["RGBDSample", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
