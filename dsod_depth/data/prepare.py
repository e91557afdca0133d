"""SynthRooms → prepared store: :func:`prepare_synthrooms`.

Every dataset has one preparation function, ``prepare_<dataset>(...) -> PrepareReport``
(:class:`~dsod_depth.data.summary.PrepareReport`: the files written and what was left out):
SynthRooms here, the real datasets in their own modules (:func:`~dsod_depth.data.nyudv2.prepare_nyudv2`,
:func:`~dsod_depth.data.sunrgbd.prepare_sunrgbd`, :func:`~dsod_depth.data.voc.prepare_voc`). They
take plain keyword arguments and print nothing; ``dsod-depth prepare`` (:mod:`dsod_depth.cli.prepare`)
declares their options and prints the summary. This module stays light to import: the generator
and the store writer are imported when a preparation runs.
"""

from __future__ import annotations

from pathlib import Path

from dsod_depth.data.summary import PrepareReport
from dsod_depth.data.synthrooms_defaults import DEFAULT_APPEARANCE_MODEL, DEFAULT_RANDOMNESS

__all__ = ["prepare_synthrooms"]


def prepare_synthrooms(
    out: str | Path,
    *,
    num_train: int = 1000,
    num_test: int = 300,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    appearance_randomness: float = DEFAULT_RANDOMNESS,
    appearance_model: str = DEFAULT_APPEARANCE_MODEL,
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> PrepareReport:
    """Generate SynthRooms and write it as a prepared store in ``out`` (train.h5, test.h5, stats.json).

    ``size`` is (width, height) in pixels. Train and test frames come from independent random
    streams of the same seed; rerunning with the same arguments resumes an interrupted preparation
    or keeps the finished files. ``appearance_model`` (``materials`` or the legacy ``hue-blend``) and
    ``appearance_randomness`` default to the calibrated defaults; the store records both. Returns the
    report (``files``: split → file; nothing is left out).
    """
    from dsod_depth.data.store_writer import SplitSource, write_store
    from dsod_depth.data.synthrooms import CLASS_NAMES, SynthRooms, SynthRoomsConfig

    width, height = size
    config = SynthRoomsConfig(
        width=width,
        height=height,
        appearance_randomness=appearance_randomness,
        appearance_model=appearance_model,
    )
    splits = [
        SplitSource(name, count, SynthRooms(config, seed=seed, split=name).sample, height, width)
        for name, count in (("train", num_train), ("test", num_test))
    ]
    prep_args = {
        "num_train": num_train,
        "num_test": num_test,
        "size": [width, height],
        "seed": seed,
        "appearance_randomness": appearance_randomness,
        "appearance_model": appearance_model,
    }
    files = write_store(
        out,
        dataset="synthrooms",
        class_names=CLASS_NAMES,
        splits=splits,
        prep_args=prep_args,
        raw_separate=False,  # filled depth = raw depth wherever the sensor measured (nearest fill)
        meta_shapes={"gravity": (3,), "camera_to_world": (4, 4)},
        workers=workers,
        progress=progress,
        compression=compression,
    )
    return PrepareReport(files=files)
