"""Colour images of the datasets (SUN RGB-D, PASCAL VOC) as the sample contract's ``rgb`` array.

One reader for every dataset frame reader, so that they convert colour the same way and name a damaged
file the same way. (Frames a user passes to ``detect`` are read by
:func:`dsod_depth.inference.frames.read_rgb`, which also refuses a 16-bit depth image given as colour.)
"""

from __future__ import annotations

import os

import numpy as np

from dsod_depth.errors import KitError

__all__ = ["read_dataset_rgb"]


def read_dataset_rgb(path: str | os.PathLike) -> np.ndarray:
    """The colour image of a dataset frame (JPEG, PNG, ...) as uint8 [H, W, 3].

    Greyscale, palette and RGBA images are converted to RGB by Pillow (alpha dropped). A file that
    cannot be decoded (truncated, not an image) raises a :class:`KitError` naming it: the dataset's
    archive was extracted incompletely.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    except OSError as err:
        raise KitError(f"{path} is unreadable ({err}); extract it again, then rerun") from None
