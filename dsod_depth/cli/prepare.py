"""`dsod-depth prepare <dataset>`: every dataset's options, the call of its preparation function, the summary.

Each dataset is one entry of :data:`_DATASETS`: its one-line help, the function declaring its
options, and the function calling its ``prepare_<dataset>`` with them. Every preparation
function returns a :class:`~dsod_depth.data.summary.PrepareReport`; the command prints the store's
summary with it, then the files written. Warnings of the preparation (dropped annotations, skipped
frames) are printed as one ``warning: ...`` line each.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dsod_depth.cli.common import warnings_as_lines
from dsod_depth.data.synthrooms_defaults import (
    APPEARANCE_MODELS,
    DEFAULT_APPEARANCE_MODEL,
    DEFAULT_RANDOMNESS,
)

if TYPE_CHECKING:
    from dsod_depth.data.summary import PrepareReport


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="convert a dataset into the prepared HDF5 store (resumable, atomic)",
        description="Convert a dataset into the prepared HDF5 store read by training and evaluation. "
        "Rerunning the same command resumes an interrupted preparation.",
    )
    datasets = p.add_subparsers(dest="dataset", metavar="<dataset>")
    datasets.required = True
    for name, (help_text, add_options, _) in _DATASETS.items():
        dp = datasets.add_parser(name, help=help_text, description=help_text)
        _add_common_options(dp)
        add_options(dp)
        dp.set_defaults(run=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from dsod_depth.data.summary import format_summary, store_counts

    _, _, prepare = _DATASETS[args.dataset]
    with warnings_as_lines():
        report = prepare(args)
    print(format_summary(store_counts(report.files), report))
    for split, path in report.files.items():
        print(f"{split}: {path}")
    print(f"prepared store ready in {args.out}")
    return 0


# --------------------------------------------------------------------------- option types


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


def _size_arg(text: str) -> tuple[int, int]:
    """``"WxH"`` → (width, height) in pixels, each at least 16."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 320x240 (width x height in pixels), got {text!r}"
        ) from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16 pixels, got {text!r}")
    return width, height


# --------------------------------------------------------------------------- every dataset


def _add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every dataset takes: the output folder, worker processes, progress bar, compression."""
    from dsod_depth.data.store_writer import COMPRESSIONS

    p.add_argument("--out", required=True, help="store folder to write (<split>.h5 files and stats.json)")
    p.add_argument("--workers", type=_count_arg, default=1, help="processes generating frames (default 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="lz4",
        help="image compression in the store: lz4 (default, fastest to read), lzf, or gzip (readable by "
        "any HDF5 tool without plugins)",
    )


def _common(args: argparse.Namespace) -> dict:
    """The keyword arguments of every ``prepare_<dataset>`` from the common options."""
    return {"workers": args.workers, "progress": args.progress, "compression": args.compression}


# --------------------------------------------------------------------------- nyudv2


def _add_nyudv2(p: argparse.ArgumentParser) -> None:
    from dsod_depth.data.nyudv2 import CROPS, LABELED_FILE, SPLITS_FILE

    p.add_argument("--source", required=True, help=f"folder with {LABELED_FILE} and {SPLITS_FILE}")
    p.add_argument(
        "--crop",
        choices=list(CROPS),
        default="gupta",
        help="gupta: 560×425 detection crop (default); nyu: 561×427 toolbox crop; none: full 640×480",
    )
    p.add_argument("--split-file", default=None, help=f"official split file (default: SOURCE/{SPLITS_FILE})")


def _prepare_nyudv2(args: argparse.Namespace) -> PrepareReport:
    from dsod_depth.data.nyudv2 import prepare_nyudv2

    return prepare_nyudv2(args.source, args.out, crop=args.crop, split_file=args.split_file, **_common(args))


# --------------------------------------------------------------------------- sunrgbd


def _add_sunrgbd(p: argparse.ArgumentParser) -> None:
    from dsod_depth.data.sunrgbd import SPLIT_FILE

    p.add_argument("--source", required=True, help="the SUNRGBD folder (kv1/, kv2/, realsense/, xtion/)")
    p.add_argument(
        "--split-file",
        default=None,
        help=f"official {SPLIT_FILE} (default: in SOURCE or SOURCE/SUNRGBDtoolbox/traintestSUNRGBD/)",
    )
    p.add_argument("--with-val", action="store_true", help="split the training frames into train/val "
                   "(trainvalsplit of the split file)")  # fmt: skip


def _prepare_sunrgbd(args: argparse.Namespace) -> PrepareReport:
    from dsod_depth.data.sunrgbd import prepare_sunrgbd

    return prepare_sunrgbd(args.source, args.out, split_file=args.split_file, with_val=args.with_val,
                           **_common(args))  # fmt: skip


# --------------------------------------------------------------------------- synthrooms


def _add_synthrooms(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-train", type=_count_arg, default=1000, help="training frames (default 1000)")
    p.add_argument("--num-test", type=_count_arg, default=300, help="test frames (default 300)")
    p.add_argument("--size", type=_size_arg, default=(320, 240), help="frame size WxH (default 320x240)")
    p.add_argument("--seed", type=int, default=0, help="random seed; frame i of a split depends only on it")
    p.add_argument(
        "--appearance-model",
        choices=APPEARANCE_MODELS,
        default=DEFAULT_APPEARANCE_MODEL,
        help=f"materials: class-correlated material families; hue-blend: the legacy model, for "
        f"regenerating stores made before the materials model exactly (default {DEFAULT_APPEARANCE_MODEL})",
    )
    p.add_argument(
        "--appearance-randomness",
        type=_fraction_arg,
        default=DEFAULT_RANDOMNESS,
        help="probability that a part's material ignores its class (materials; hue-blend: weight of the "
        f"random colour); 1 = appearance independent of the class (default {DEFAULT_RANDOMNESS}, calibrated)",
    )


def _prepare_synthrooms(args: argparse.Namespace) -> PrepareReport:
    from dsod_depth.data.prepare import prepare_synthrooms

    return prepare_synthrooms(
        args.out, num_train=args.num_train, num_test=args.num_test, size=args.size, seed=args.seed,
        appearance_randomness=args.appearance_randomness, appearance_model=args.appearance_model,
        **_common(args),
    )  # fmt: skip


# --------------------------------------------------------------------------- voc


def _add_voc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="the VOCdevkit folder (holding VOC2007/ and/or VOC2012/)")
    p.add_argument(
        "--sets",
        default="2007-trainval,2012-trainval",
        help="training sets, year-set joined by commas (default 2007-trainval,2012-trainval)",
    )
    p.add_argument("--test", default="2007-test", help="test sets in the same form (default 2007-test)")


def _prepare_voc(args: argparse.Namespace) -> PrepareReport:
    from dsod_depth.data.voc import prepare_voc

    return prepare_voc(args.source, args.out, sets=args.sets, test=args.test, **_common(args))


# Dataset → (one-line help, its options, its preparation), in the order `prepare --help` lists them.
_DATASETS = {
    "nyudv2": (
        "NYU Depth v2 labeled set (nyu_depth_v2_labeled.mat + splits.mat), 19 detection classes",
        _add_nyudv2,
        _prepare_nyudv2,
    ),
    "sunrgbd": (
        "SUN RGB-D (SUNRGBD tree + allsplit.mat, any sensor), 19 detection classes",
        _add_sunrgbd,
        _prepare_sunrgbd,
    ),
    "synthrooms": (
        "generate the built-in procedural RGB-D dataset (no download)",
        _add_synthrooms,
        _prepare_synthrooms,
    ),
    "voc": (
        "PASCAL VOC 2007/2012 from a VOCdevkit folder (colour only), 20 classes",
        _add_voc,
        _prepare_voc,
    ),
}
