"""Decoders for the depth files of real sensors and datasets, to float metres.

* NYU Depth v2 *raw* Kinect frames (``.pgm``, P5 with maxval 65535): the values are
  Kinect disparity units written little-endian (the dataset's dump tool ignores
  the PGM rule of big-endian samples); metres = 351.3 / (1092.5 - raw), clipped
  to [0, 10] (NYU toolbox ``depth_rel2depth_abs``); 2047 marks "no reading".
* SUN RGB-D depth PNGs: uint16 millimetres with the bits rotated left by 3; the
  toolbox (``read3dPoints``) rotates them back, divides by 1000 and clips at 8 m.
* Generic depth: a 16-bit single-channel PNG or a 2-D ``.npy`` (integer or
  float), metres = value / depth_scale.

8-bit and colour images are refused: they cannot hold metric depth (the kit
never divides depth by 255). Every expected problem raises :class:`KitError`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from tokenize import TokenError

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.fileio import atomic_output

NYU_DEPTH_PARAMS = (351.3, 1092.5)  # metres = p1 / (p2 - raw)
NYU_MAX_DEPTH_M = 10.0
NYU_INVALID = 2047
SUN_MAX_DEPTH_M = 8.0
SUN_SCALE = 1000.0  # millimetres

# Pillow modes of single-channel images with more than 8 bits per sample.
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise KitError(f"{what} file not found: {path}")
    return path


def read_pgm(path: str | Path, *, byteorder: str = "big") -> np.ndarray:
    """Read a binary (P5) PGM image.

    Args:
        path: the file.
        byteorder: of 16-bit samples: "big" (the PGM standard) or "little".

    Returns:
        uint8 or uint16 [H, W].
    """
    path = _existing(path, "PGM")
    data = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:  # magic, width, height, maxval; '#' starts a comment
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise KitError(f"{path}: truncated PGM header")
        tokens.append(data[pos:end])
        pos = end
    pos += 1  # the single whitespace byte after maxval
    try:
        magic, width, height, maxval = tokens[0], int(tokens[1]), int(tokens[2]), int(tokens[3])
    except ValueError:
        raise KitError(f"{path}: malformed PGM header {b' '.join(tokens)!r}") from None
    if magic != b"P5" or width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise KitError(f"{path}: not a binary greyscale PGM (P5), header {b' '.join(tokens)!r}")
    order = {"big": ">", "little": "<"}[byteorder]
    dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(order + "u2")
    count = width * height
    if len(data) - pos < count * dtype.itemsize:
        raise KitError(f"{path}: expected {width}x{height} samples, the file is too short")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
    return values.reshape(height, width).astype(dtype.newbyteorder("="))  # [H*W] -> [H, W], native order


def nyu_raw_to_metres(raw: np.ndarray) -> np.ndarray:
    """NYU Kinect disparity units -> metres (float32), 0 where there is no reading.

    Args:
        raw: integer [H, W] values as stored in the raw dataset (0..2047).

    Returns:
        float32 [H, W] metres in [0, 10]; 2047 (no reading) and values past the
        model's pole give 0.
    """
    p1, p2 = NYU_DEPTH_PARAMS
    values = np.asarray(raw, dtype=np.float64)
    with np.errstate(divide="ignore"):
        metres = p1 / (p2 - values)
    metres = np.clip(metres, 0.0, NYU_MAX_DEPTH_M)  # negative (raw > 1092.5) -> 0, far -> 10 m
    metres[values >= NYU_INVALID] = 0.0
    return metres.astype(np.float32)


def read_nyu_raw_depth(path: str | Path) -> np.ndarray:
    """A raw NYU Depth v2 Kinect frame (``.pgm``) as float32 metres [H, W] (0 = missing)."""
    return nyu_raw_to_metres(read_pgm(path, byteorder="little"))


def sun_png_to_metres(stored: np.ndarray) -> np.ndarray:
    """SUN RGB-D stored depth -> metres (float32): rotate the 16 bits right by 3, /1000, clip at 8 m.

    Args:
        stored: uint16 [H, W] as read from the PNG.

    Returns:
        float32 [H, W] metres, 0 = missing.
    """
    d = np.asarray(stored).astype(np.uint16)
    millimetres = (d >> 3) | (d << 13)  # uint16 arithmetic: a right rotation by 3 bits
    return np.minimum(millimetres.astype(np.float32) / SUN_SCALE, SUN_MAX_DEPTH_M)


def read_sun_depth(path: str | Path) -> np.ndarray:
    """A SUN RGB-D depth PNG (``depth/`` or ``depth_bfx/``) as float32 metres [H, W]."""
    return sun_png_to_metres(_read_png_samples(_existing(path, "depth")))


def _read_png_samples(path: Path) -> np.ndarray:
    """The integer samples of a 16-bit single-channel image; KitError for 8-bit or colour images."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in _DEEP_MODES:
                kind = "a colour" if len(im.getbands()) > 1 else "an 8-bit"
                raise KitError(
                    f"{path} is {kind} image (mode {mode}): depth must be a 16-bit single-channel PNG "
                    "or a .npy array; 8-bit images cannot hold metric depth"
                )
            values = np.array(im)
    except Image.DecompressionBombError as err:
        raise KitError(f"{path}: the image header claims an implausible size ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        # Pillow reports a damaged PNG chunk as SyntaxError ("broken PNG file").
        raise KitError(f"{path} is not a readable image ({err})") from None
    if values.ndim != 2:
        raise KitError(f"{path}: expected a single-channel depth image, got shape {values.shape}")
    return values


def read_depth(path: str | Path, depth_scale: float) -> np.ndarray:
    """Read a depth map from a 16-bit PNG or a ``.npy`` file, in metres.

    Args:
        path: ``.png`` (16-bit greyscale) or ``.npy`` (2-D, integer or float).
        depth_scale: stored units per metre (1000 for millimetres, 10000 for the
            NYU HHA demo files, 1 for a float array already in metres).

    Returns:
        float64 [H, W] metres = value / depth_scale (0 stays 0 = missing). NaN and infinite
        values (a float ``.npy`` may hold them) are holes: they become 0, with a warning that
        counts them.

    Raises:
        KitError: missing file, 8-bit or colour image, wrong shape or dtype,
            non-positive scale.
    """
    if not np.isfinite(depth_scale) or depth_scale <= 0:
        raise KitError(f"depth scale must be a positive number (units per metre), got {depth_scale}")
    path = _existing(path, "depth")
    if path.suffix.lower() == ".npy":
        try:
            # mmap: a header that claims more data than the file holds fails here instead of
            # allocating it; damaged headers raise EOF, tokenizer and syntax errors besides ValueError.
            values = np.array(np.load(path, allow_pickle=False, mmap_mode="r"))
        except (ValueError, OSError, EOFError, SyntaxError, TokenError) as err:
            raise KitError(f"{path} is not a readable .npy array ({err})") from None
        if values.ndim != 2 or values.size == 0:
            raise KitError(f"{path}: depth must be a non-empty 2-D array [H, W], got shape {values.shape}")
        if values.dtype.kind not in "iuf" or values.dtype.itemsize == 1:
            raise KitError(
                f"{path}: depth array has dtype {values.dtype}; expected float or 16/32-bit integers "
                "(8-bit depth cannot hold metric values)"
            )
    else:
        values = _read_png_samples(path)
    metres = np.asarray(values, dtype=np.float64) / float(depth_scale)
    bad = ~np.isfinite(metres)
    if bad.any():
        # Sensor SDKs write NaN/inf for "no reading"; the kit's convention for a hole is 0.
        warnings.warn(
            f"{path}: {int(bad.sum())} of {bad.size} depth values are NaN or infinite; read as holes (0)",
            stacklevel=2,
        )
        metres[bad] = 0.0
    return metres


def save_png_atomic(path: str | Path, image: np.ndarray) -> None:
    """Write an image as PNG atomically: a temporary file in the same folder, then a rename.

    Args:
        path: destination; its folder must exist.
        image: uint8 [H, W] or [H, W, 3], or uint16 [H, W].

    Raises:
        KitError: the folder does not exist or cannot be written.
    """
    from PIL import Image

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise KitError(f"output folder does not exist: {folder}; create it first")
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
