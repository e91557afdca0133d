"""A user's own RGB-D frames: finding the files, decoding depth to metres, filling depth holes.

Depth formats (``--depth-format``), all decoded to float metres with 0 = hole:

* ``plain``: a 16-bit PNG or a 2-D ``.npy``, metres = value / depth_scale. Two checks refuse
  the usual unit mistakes instead of letting them turn into wrong HHA: SUN RGB-D's
  bit-rotated PNGs (nearly every value a multiple of 8) and a scale that puts the median
  depth outside any plausible scene (see the thresholds below);
* ``sun``: SUN RGB-D's ``depth``/``depth_bfx`` PNGs (millimetres, bits rotated left by 3);
* ``nyu-kinect``: NYU Depth v2 raw Kinect disparity frames (``.pgm``).

Frames are given three ways: repeated ``--rgb/--depth/--raw`` paths, a folder with ``rgb/``,
``depth/`` and optionally ``raw/`` paired by file name, or a list file. Every problem a user can
fix raises :class:`KitError` with one line naming the file.

The detector's datasets come with *filled* depth (NYU's colorization in-painting, SUN's
``depth_bfx``) beside the raw sensor depth. A frame that has only raw depth is filled by
:func:`~dsod_depth.geometry.fill.fill_depth` (membrane in-painting).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsod_depth.data.depth_io import read_depth, read_nyu_raw_depth, read_sun_depth
from dsod_depth.data.frame_files import FRAME_FOLDERS, INTRINSICS_FILE
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics, read_sunrgbd_intrinsics
from dsod_depth.geometry.fill import fill_depth

__all__ = [
    "DEPTH_FORMATS",
    "FrameFiles",
    "frames_from_folder",
    "frames_from_list",
    "frames_from_paths",
    "depth_metres",
    "load_frame",
    "read_depth_file",
    "read_frame",
    "read_rgb",
    "rgb_image",
]

DEPTH_FORMATS = ("plain", "sun", "nyu-kinect")

# SUN RGB-D signature: the PNGs store millimetres rotated left by 3 bits, so every depth nearer
# than 8.192 m is stored as a multiple of 8. Measured share of the distinct non-zero values that
# are multiples of 8: 97 % on a real SUN frame (the rest lie beyond 8.19 m, where the rotation
# moves bits into the low three); 11-13 % on millimetre depth (NYU filled and raw, NYU Kinect,
# rendered rooms), the 1/8 that chance gives. 80 % leaves room for SUN frames with more far
# points and still refuses nothing coarser than 4-mm steps (at most 50 %). Distinct values, not
# pixels, so that a large flat wall at one distance cannot decide; fewer than 32 distinct values
# (a constant test image) carry no signature.
SUN_SIGNATURE_MIN_SHARE = 0.8
SUN_SIGNATURE_MIN_VALUES = 32

# Median of the valid depth, after decoding, that a real scene can have: a camera held closer
# than 20 cm to most of what it sees, or seeing mostly beyond 20 m, is far less likely than a
# wrong unit, which moves the median by a factor of 10 or more (mm read as metres: ×1000; NYU's
# HHA demo files at ×10000 read as mm: ×10). A ×10 mistake on a scene nearer than 2 m still
# passes; a narrower range would refuse real scenes.
PLAUSIBLE_MEDIAN_M = (0.2, 20.0)
_COMMON_SCALES = (1.0, 1000.0, 10000.0)  # metres, millimetres, NYU HHA demo files (1/10 mm)
_TYPICAL_MEDIAN_M = 3.0  # an indoor scene; picks among the common scales that fit


@dataclass(frozen=True)
class FrameFiles:
    """The files of one frame: colour (None for depth-only), depth, and raw depth if separate."""

    rgb: Path | None
    depth: Path
    raw: Path | None = None


# --------------------------------------------------------------------------- depth decoding


def read_depth_file(
    path: str | Path,
    *,
    depth_format: str = "plain",
    depth_scale: float = 1000.0,
    dtype: type[np.floating] = np.float32,
) -> np.ndarray:
    """Read one depth file in metres, refusing the usual unit mistakes of ``plain`` files.

    Args:
        path: the depth file (``.png`` or ``.npy`` for plain, ``.png`` for sun, ``.pgm`` for nyu-kinect).
        depth_format: one of :data:`DEPTH_FORMATS`.
        depth_scale: stored units per metre, for ``plain`` only (1000 = millimetres).
        dtype: float32 (the kit's sample contract) or float64 (``hha``: MATLAB's HHA works in
            double on the stored integers, and float32 metres move a few pixels of it).

    Returns:
        [H, W] metres of ``dtype``, 0 = hole. An all-zero map is returned as is.

    Raises:
        KitError: unknown format, unreadable, 8-bit or colour file; for ``plain``, negative
            values, the SUN RGB-D signature (use ``sun``) or a median depth outside
            :data:`PLAUSIBLE_MEDIAN_M` (the message suggests a scale). Float ``.npy`` files of
            non-integer values skip the SUN check.
    """
    if depth_format == "sun":
        metres = read_sun_depth(path)
    elif depth_format == "nyu-kinect":
        metres = read_nyu_raw_depth(path)
    elif depth_format == "plain":
        if not math.isfinite(depth_scale) or depth_scale <= 0:
            raise KitError(f"depth scale must be a positive number (units per metre), got {depth_scale}")
        stored = read_depth(path, 1.0)  # float64 [H, W]: the stored values themselves
        if stored.min() < 0:
            raise KitError(f"{path}: negative depth values (minimum {stored.min():g}); use 0 for holes")
        _refuse_sun_signature(stored, path)
        metres = stored / float(depth_scale)  # the same operation as read_depth(path, depth_scale)
        _refuse_implausible_median(metres, path, depth_scale)
    else:
        raise KitError(f"unknown depth format {depth_format!r}; choose one of {', '.join(DEPTH_FORMATS)}")
    return metres.astype(dtype, copy=False)


def _refuse_sun_signature(stored: np.ndarray, path: str | Path) -> None:
    nonzero = stored[stored > 0]
    if nonzero.size == 0 or not np.array_equal(nonzero, np.floor(nonzero)):
        return  # nothing to judge, or not integer samples (metres in a float array)
    values = np.unique(nonzero)
    if values.size < SUN_SIGNATURE_MIN_VALUES:
        return
    share = float(np.mean(values % 8 == 0))
    if share >= SUN_SIGNATURE_MIN_SHARE:
        raise KitError(
            f"{path}: {share:.0%} of the distinct depth values are multiples of 8, the signature of "
            "SUN RGB-D's bit-rotated depth PNGs; read it with --depth-format sun"
        )


def _refuse_implausible_median(metres: np.ndarray, path: str | Path, depth_scale: float) -> None:
    valid = metres[metres > 0]
    if valid.size == 0:
        return  # an empty map is refused where depth is needed (fill, HHA)
    low, high = PLAUSIBLE_MEDIAN_M
    median = float(np.median(valid))
    if low <= median <= high:
        return
    stored_median = median * depth_scale
    fits = [s for s in _COMMON_SCALES if low <= stored_median / s <= high]
    where = (
        f"{path}: median depth {median:.3g} m with --depth-scale {depth_scale:g} is outside {low}-{high} m"
    )
    if not fits:
        raise KitError(f"{where}, and no common scale (1, 1000, 10000) fits; is this a depth image?")
    best = min(fits, key=lambda s: abs(math.log(stored_median / s / _TYPICAL_MEDIAN_M)))
    raise KitError(
        f"{where}; use --depth-scale {best:g} (median {stored_median / best:.3g} m) "
        "(1000 for millimetres, 10000 for NYU's HHA demo files, 1 for metres)"
    )


# --------------------------------------------------------------------------- gathering frames


def frames_from_paths(
    rgb: Sequence[str | Path], depth: Sequence[str | Path], raw: Sequence[str | Path] = ()
) -> tuple[list[FrameFiles], Intrinsics | None]:
    """Frames from repeated ``--rgb A --depth B [--raw C]`` options, matched by position.

    ``rgb`` is empty (depth-only) or one per depth; ``raw`` is empty or one per depth.

    Returns:
        (frames, None): the camera comes from the command line.

    Raises:
        KitError: no depth, counts that disagree, a missing file.
    """
    if not depth:
        raise KitError("no depth image given: pass --depth (once per frame)")
    for what, given in (("--rgb", rgb), ("--raw", raw)):
        if given and len(given) != len(depth):
            raise KitError(
                f"got {len(given)} {what} and {len(depth)} --depth; give one {what} per --depth "
                f"(in the same order) or none"
            )
    frames = [
        FrameFiles(
            rgb=_existing(rgb[i], "rgb") if rgb else None,
            depth=_existing(depth[i], "depth"),
            raw=_existing(raw[i], "raw depth") if raw else None,
        )
        for i in range(len(depth))
    ]
    return frames, None


def frames_from_folder(folder: str | Path) -> tuple[list[FrameFiles], Intrinsics | None]:
    """Frames from ``FOLDER/rgb/``, ``FOLDER/depth/`` and optionally ``FOLDER/raw/``.

    Files are paired by name without extension (``rgb/0001.jpg`` with ``depth/0001.png``) and
    ordered by name, numbers compared as numbers (``2`` before ``10``). Without ``rgb/`` the
    frames are depth-only. With ``raw/``, every depth has its raw depth. Hidden files are
    ignored. ``FOLDER/intrinsics.txt`` (SUN RGB-D layout: the 3×3 camera matrix, 1-based
    principal point) is the camera of every frame.

    Returns:
        (frames, camera or None).

    Raises:
        KitError: no ``depth/`` folder or no file in it, two files with one name in a folder,
            files without a partner (the first few named, and how many), bad intrinsics.
    """
    folder = Path(folder)
    rgb_dir, depth_dir, raw_dir = (folder / name for name in FRAME_FOLDERS)
    if not depth_dir.is_dir():
        raise KitError(
            f"{folder} has no depth/ folder; expected FOLDER/rgb/, FOLDER/depth/ [and FOLDER/raw/]"
        )
    depth = _files_by_stem(depth_dir)
    if not depth:
        raise KitError(f"{depth_dir} holds no file")
    rgb = _files_by_stem(rgb_dir) if rgb_dir.is_dir() else None
    raw = _files_by_stem(raw_dir) if raw_dir.is_dir() else None
    unpaired = sorted(
        [f"depth/{depth[s].name}" for s in depth if any(d is not None and s not in d for d in (rgb, raw))]
        + [f"{sub}/{d[s].name}" for sub, d in (("rgb", rgb), ("raw", raw)) if d for s in d if s not in depth]
    )
    if unpaired:
        shown = ", ".join(unpaired[:5]) + (", ..." if len(unpaired) > 5 else "")
        raise KitError(
            f"{folder}: {len(unpaired)} file(s) without a partner of the same name in rgb/, depth/ "
            f"or raw/: {shown}"
        )
    frames = [
        FrameFiles(rgb=None if rgb is None else rgb[s], depth=depth[s], raw=None if raw is None else raw[s])
        for s in sorted(depth, key=_natural_key)
    ]
    camera_file = folder / INTRINSICS_FILE
    return frames, read_sunrgbd_intrinsics(camera_file) if camera_file.is_file() else None


def frames_from_list(list_file: str | Path) -> tuple[list[FrameFiles], Intrinsics | None]:
    """Frames from a text file: one frame per line, ``RGB DEPTH [RAW]``.

    Paths are relative to the list file's folder (absolute ones are kept); ``-`` as RGB means a
    depth-only frame; quotes allow spaces in names; blank lines and ``#`` comments are ignored.

    Returns:
        (frames in the file's order, None).

    Raises:
        KitError: unreadable list, a line without 2 or 3 paths (named by line number), a missing
            file, or no frame at all.
    """
    list_file = Path(list_file)
    try:
        lines = list_file.read_text().splitlines()
    except OSError as err:
        raise KitError(f"cannot read frame list {list_file}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise KitError(f"{list_file}: not a text file; expected lines 'RGB DEPTH [RAW]'") from None
    base = list_file.parent
    frames = []
    for number, line in enumerate(lines, start=1):
        where = f"{list_file}, line {number}"
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as err:
            raise KitError(f"{where}: {err}; expected 'RGB DEPTH [RAW]'") from None
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise KitError(
                f"{where}: expected 'RGB DEPTH [RAW]' (2 or 3 paths, '-' for no RGB), got {line!r}"
            )
        rgb, depth, raw = (fields + [None])[:3]
        frames.append(
            FrameFiles(
                rgb=None if rgb == "-" else _existing(base / rgb, "rgb", where),
                depth=_existing(base / depth, "depth", where),
                raw=None if raw is None else _existing(base / raw, "raw depth", where),
            )
        )
    if not frames:
        raise KitError(f"{list_file} lists no frame; expected lines 'RGB DEPTH [RAW]'")
    return frames, None


def _existing(path: str | Path, what: str, where: str = "") -> Path:
    path = Path(path)
    if not path.is_file():
        raise KitError(f"{what} file not found: {path}" + (f" ({where})" if where else ""))
    return path


def _files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in files:
            raise KitError(f"{folder}: {files[path.stem].name} and {path.name} have the same name; keep one")
        files[path.stem] = path
    return files


def _natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: 'frame2' ('frame', 2, '') before 'frame10'."""
    parts = re.split(r"(\d+)", name)  # alternates text, digits, text, ...: positions keep their type
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


# --------------------------------------------------------------------------- loading one frame


def load_frame(
    files: FrameFiles, *, depth_format: str = "plain", depth_scale: float = 1000.0, fill: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """:func:`read_frame` of a frame's files."""
    return read_frame(files.rgb, files.depth, files.raw, depth_format=depth_format, depth_scale=depth_scale,
                      fill=fill)  # fmt: skip


def read_frame(
    rgb: Any,
    depth: Any,
    raw: Any = None,
    *,
    depth_format: str = "plain",
    depth_scale: float = 1000.0,
    fill: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Read one frame, each image given as a file or an array, as the kit's arrays.

    With a raw depth, ``depth`` is the filled depth and ``raw`` the raw depth, both taken as they
    are. Otherwise ``depth`` is the sensor's depth: if it has holes it is the raw depth and the
    filled depth is :func:`~dsod_depth.geometry.fill.fill_depth` of it (the same map when ``fill``
    is False); without holes both are that map.

    Args:
        rgb: None, a colour image file or uint8 [H, W, 3] (:func:`rgb_image`).
        depth, raw: depth files or arrays (:func:`depth_metres`); ``raw`` may be None.
        depth_format, depth_scale: as :func:`read_depth_file`, for depth and raw alike.
        fill: in-paint the holes of a frame given without raw depth.

    Returns:
        (rgb uint8 [H, W, 3] or None, filled depth float32 [H, W] metres, raw depth float32
        [H, W] metres with 0 at holes).

    Raises:
        KitError: unreadable files, a depth without any valid pixel, sizes that disagree.
    """
    options = {"depth_format": depth_format, "depth_scale": depth_scale}
    filled = depth_metres(depth, what="depth", **options)
    if not filled.any():
        raise KitError(f"{_name(depth, 'depth')}: no valid depth pixel (all zero)")
    if raw is not None:
        raw_metres = depth_metres(raw, what="raw depth", **options)
        _same_size(_name(depth, "depth"), filled.shape, _name(raw, "raw depth"), raw_metres.shape)
    else:
        raw_metres = filled
        if fill and not filled.all():
            filled = fill_depth(raw_metres)
    image = None
    if rgb is not None:
        image = rgb_image(rgb)
        _same_size(_name(rgb, "rgb"), image.shape[:2], _name(depth, "depth"), filled.shape)
    return image, filled, raw_metres


def depth_metres(
    value: Any, *, depth_format: str = "plain", depth_scale: float = 1000.0, what: str = "depth"
) -> np.ndarray:
    """A depth file (:func:`read_depth_file`) or array as float32 metres [H, W], 0 = hole.

    Arrays: integers are in units of ``depth_scale`` per metre (16 bits or more; 8-bit refused),
    floats are metres; NaN/inf become holes with a warning, as sensor SDKs write them for "no
    reading"; negative values are refused.
    """
    if isinstance(value, (str, os.PathLike)):
        return read_depth_file(value, depth_format=depth_format, depth_scale=depth_scale)
    array = np.asarray(value)
    if array.ndim != 2 or array.size == 0:
        raise KitError(f"{what} must be a 2-D array [H, W], got shape {array.shape}")
    if array.dtype.kind in "iu":
        if array.dtype.itemsize == 1:
            raise KitError(f"{what} is 8-bit; 8-bit images cannot hold metric depth (pass 16-bit or metres)")
        metres = array.astype(np.float64) / float(depth_scale)
    elif array.dtype.kind == "f":
        metres = array.astype(np.float64)
    else:
        raise KitError(f"{what} has dtype {array.dtype}; expected float metres or 16-bit integers")
    bad = ~np.isfinite(metres)
    if bad.any():
        warnings.warn(f"{what}: {int(bad.sum())} NaN or infinite values read as holes (0)", stacklevel=3)
        metres[bad] = 0.0
    if (metres < 0).any():
        raise KitError(f"{what} has negative values; depth must be ≥ 0 (0 = no reading)")
    return metres.astype(np.float32)


def rgb_image(value: Any) -> np.ndarray:
    """A colour image file (:func:`read_rgb`) or a uint8 [H, W, 3] array, as uint8 [H, W, 3]."""
    if isinstance(value, (str, os.PathLike)):
        return read_rgb(value)
    array = np.asarray(value)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise KitError(f"rgb must be uint8 [H, W, 3], got {array.dtype} {list(array.shape)}")
    return array


def _name(value: Any, what: str) -> str:
    return str(value) if isinstance(value, (str, os.PathLike)) else what


def _same_size(name_a: str, shape_a: tuple, name_b: str, shape_b: tuple) -> None:
    if tuple(shape_a) != tuple(shape_b):
        (ha, wa), (hb, wb) = shape_a, shape_b
        raise KitError(f"{name_a} is {wa}x{ha} but {name_b} is {wb}x{hb}; a frame's images must match")


def read_rgb(path: str | Path) -> np.ndarray:
    """A colour image (PPM, JPEG, PNG, ...) as uint8 [H, W, 3]; greyscale is repeated 3 times.

    Raises:
        KitError: unreadable file, or a 16-bit single-channel image (depth given as colour).
    """
    from dsod_depth.data.image_io import read_colour

    return read_colour(_existing(path, "rgb"), unreadable="{path} is not a readable image ({err})")
