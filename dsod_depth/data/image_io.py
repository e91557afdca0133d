"""Colour images as the sample contract's ``rgb`` array: the one decoder of colour files.

:func:`read_colour` converts every colour file the same way (Pillow, to RGB) and refuses the same
mistakes: a 16-bit single-channel image (depth given as colour) and an implausible header. The dataset
readers (SUN RGB-D, PASCAL VOC) call it through :func:`read_dataset_rgb`, the frames a user passes to
``detect`` through :func:`dsod_depth.inference.frames.read_rgb`; they differ only in what a damaged
file's message advises.
"""

from __future__ import annotations

import os

import numpy as np

from dsod_depth.errors import KitError

__all__ = ["read_colour", "read_dataset_rgb"]


def read_colour(path: str | os.PathLike, *, unreadable: str) -> np.ndarray:
    """A colour image file (JPEG, PNG, PPM, ...) as a writable uint8 [H, W, 3]; greyscale, palette and
    RGBA images are converted by Pillow (alpha dropped).

    ``unreadable`` is the message for a file that cannot be decoded, with ``{path}`` and ``{err}``.
    Raises :class:`KitError` for that, for a 16-bit single-channel image and for an implausible size.
    """
    from PIL import Image, UnidentifiedImageError

    from dsod_depth.data.depth_io import _DEEP_MODES

    try:
        with Image.open(path) as im:
            if im.mode in _DEEP_MODES:
                raise KitError(
                    f"{path} is a 16-bit single-channel image (mode {im.mode}), not a colour image; "
                    "were colour and depth swapped?"
                )
            return np.array(im.convert("RGB"))  # a writable copy (torch warns on read-only arrays)
    except Image.DecompressionBombError as err:
        raise KitError(f"{path}: the image header claims an implausible size ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise KitError(unreadable.format(path=path, err=err)) from None


def read_dataset_rgb(path: str | os.PathLike) -> np.ndarray:
    """The colour image of a dataset frame (JPEG, PNG, ...) as uint8 [H, W, 3].

    :func:`read_colour`; a file that cannot be decoded (truncated, not an image) raises a
    :class:`KitError` naming it: the dataset's archive was extracted incompletely.
    """
    return read_colour(path, unreadable="{path} is unreadable ({err}); extract it again, then rerun")
