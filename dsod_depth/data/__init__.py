"""Data: the sample contract, datasets, the prepared store, joint augmentation and the loader.

``RGBDSample`` (:mod:`.sample`) is imported eagerly; everything else loads on first use, so that
importing the package (e.g. when the CLI builds its parser) does not pull in h5py, torch or Open3D.
Each dataset is prepared by a plain function ``prepare_<dataset>`` that returns a
:class:`~dsod_depth.data.summary.PrepareReport`.
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
    "PrepareReport": "dsod_depth.data.summary",
    "prepare_synthrooms": "dsod_depth.data.prepare",
    "prepare_nyudv2": "dsod_depth.data.nyudv2",
    "prepare_sunrgbd": "dsod_depth.data.sunrgbd",
    "prepare_voc": "dsod_depth.data.voc",
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
