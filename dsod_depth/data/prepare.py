"""Dataset preparers: one registered entry per dataset that ``dsod-depth prepare`` can convert.

Each :class:`Preparer` declares its command-line options and turns parsed arguments into a
prepared store (:func:`dsod_depth.data.store_writer.write_store`). The CLI lists the registry as
the choices of ``prepare <dataset>``, so adding NYU Depth v2, SUN RGB-D or VOC is one registration.
This module stays light to import (the CLI builds its parser from it): heavy modules are imported
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dsod_depth.errors import KitError
from dsod_depth.registry import Registry

__all__ = ["Preparer", "PREPARERS", "add_common_arguments", "prepare_synthrooms", "parse_size"]


@dataclass(frozen=True)
class Preparer:
    """help: one line for ``--help``; add_arguments: declares dataset options on its sub-parser;
    run: parsed arguments (with ``out``, ``workers``, ``progress``) → split name → written file."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Path]]


PREPARERS: Registry[Preparer] = Registry("dataset")


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` → (width, height) in pixels, each at least 16."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise KitError(f"size must look like 320x240 (width x height in pixels), got {text!r}") from None
    if width < 16 or height < 16:
        raise KitError(f"size must be at least 16x16 pixels, got {text!r}")
    return width, height


def _size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except KitError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _fraction_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options every preparer takes: the output folder, worker processes, progress bar, compression."""
    p.add_argument("--out", required=True, help="store folder to write (<split>.h5 files and stats.json)")
    p.add_argument("--workers", type=_count_arg, default=1, help="processes generating frames (default 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    from dsod_depth.data.store_writer import COMPRESSIONS

    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="lz4",
        help="image compression in the store: lz4 (default, fastest to read), lzf, or gzip (readable by "
        "any HDF5 tool without plugins)",
    )


def prepare_synthrooms(
    out: str | Path,
    *,
    num_train: int = 1000,
    num_test: int = 300,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    appearance_randomness: float = 0.75,
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> dict[str, Path]:
    """Generate SynthRooms and write it as a prepared store in ``out`` (train.h5, test.h5, stats.json).

    Train and test frames come from independent random streams of the same seed; rerunning with
    the same arguments resumes an interrupted preparation or keeps the finished files.
    """
    from dsod_depth.data.store_writer import SplitSource, write_store
    from dsod_depth.data.synthrooms import CLASS_NAMES, SynthRooms, SynthRoomsConfig

    width, height = size
    config = SynthRoomsConfig(width=width, height=height, appearance_randomness=appearance_randomness)
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
    }
    return write_store(
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


def _synthrooms_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-train", type=_count_arg, default=1000, help="training frames (default 1000)")
    p.add_argument("--num-test", type=_count_arg, default=300, help="test frames (default 300)")
    p.add_argument("--size", type=_size_arg, default=(320, 240), help="frame size WxH (default 320x240)")
    p.add_argument("--seed", type=int, default=0, help="random seed; frame i of a split depends only on it")
    p.add_argument(
        "--appearance-randomness",
        type=_fraction_arg,
        default=0.75,
        help="0 = fixed colours per class, 1 = colours and textures independent of the class (default 0.75)",
    )


def _synthrooms_run(args: argparse.Namespace) -> dict[str, Path]:
    from dsod_depth.data.summary import print_summary

    files = prepare_synthrooms(
        args.out,
        num_train=args.num_train,
        num_test=args.num_test,
        size=args.size,
        seed=args.seed,
        appearance_randomness=args.appearance_randomness,
        workers=args.workers,
        progress=args.progress,
        compression=args.compression,
    )
    print_summary(files)
    return files


PREPARERS.register("synthrooms")(
    Preparer(
        help="generate the built-in procedural RGB-D dataset (no download)",
        add_arguments=_synthrooms_arguments,
        run=_synthrooms_run,
    )
)

# The real datasets register themselves in their own modules, which stay light to import (h5py,
# scipy and Pillow load only when a preparation runs). Imported last: they use PREPARERS above.
_DATASET_MODULES = ("nyudv2", "sunrgbd", "voc")
for _module in _DATASET_MODULES:
    importlib.import_module(f"dsod_depth.data.{_module}")
